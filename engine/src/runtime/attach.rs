//! The protocol of a shim's attach socket, as plain functions over bytes.
//!
//! A client connects to `attach.sock` in the shim's state directory and sends one request line:
//! `attach [stdin] [stdout] [stderr] [keys=16,17]` to join the container's streams, or
//! `resize ROWS COLS` to set its terminal's size. After `attach`, the shim sends the output in
//! Docker's stream framing (one byte for the stream, three zeros, a big-endian 32-bit length,
//! the bytes; a TTY's output is stream 1), and what the client sends is the container's
//! stdin; on a TTY it passes through the detach-key matcher (as Docker, only a TTY has them):
//! the keys (Docker's `ctrl-p,ctrl-q` by default) end the attachment and leave the container
//! running. A client's half-close ends
//! its input; for a container made with `StdinOnce`, it closes the container's stdin.

/// Docker's default detach keys.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// A malformed request or detach-key specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// A detach key that is neither `ctrl-X` nor a single character.
    #[error(
        "invalid detach keys {spec:?}: {key:?} is not a key (valid: a single character or ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_, separated by commas)"
    )]
    DetachKeys {
        /// The whole specification.
        spec: String,
        /// The key that is not one.
        key: String,
    },
    /// A request line the shim does not know.
    #[error(
        "bad attach request {0:?} (valid: `attach [stdin] [stdout] [stderr] [keys=N,..]` or `resize ROWS COLS`)"
    )]
    Request(String),
}

/// Docker's detach-key specification (`ctrl-p,ctrl-q`, `a,ctrl-@`) as bytes; an empty one is
/// the default.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, AttachError> {
    let spec_or_default = if spec.is_empty() {
        DEFAULT_DETACH_KEYS
    } else {
        spec
    };
    let bad = |key: &str| AttachError::DetachKeys {
        spec: spec.to_string(),
        key: key.to_string(),
    };
    let mut out = Vec::new();
    for key in spec_or_default.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let mut chars = c.chars();
            let (Some(ch), None) = (chars.next(), chars.next()) else {
                return Err(bad(key));
            };
            out.push(match ch.to_ascii_lowercase() {
                ch @ 'a'..='z' => ch as u8 - b'a' + 1,
                '@' => 0,
                '[' => 27,
                '\\' => 28,
                ']' => 29,
                '^' => 30,
                '_' => 31,
                _ => return Err(bad(key)),
            });
        } else {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) if ch.is_ascii() => out.push(ch as u8),
                _ => return Err(bad(key)),
            }
        }
    }
    Ok(out)
}

/// Finds the detach keys in a client's input, holding back a partial match until it is
/// decided. One per attachment; no allocation per call beyond what `out` grows to.
#[derive(Debug, Clone)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachMatcher {
    /// A matcher for `keys` (empty: never detaches).
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, matched: 0 }
    }

    /// Feeds input; appends to `out` what the container should receive. `true` once the
    /// whole sequence was typed: the attachment ends, and the rest of `input` is dropped.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            if self.matched > 0 {
                // The held-back prefix was not the sequence after all.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    if self.keys.len() == 1 {
                        self.matched = 0;
                        return true;
                    }
                    continue;
                }
            }
            out.push(b);
        }
        false
    }
}

impl DetachMatcher {
    /// The input ended: a partial sequence held back is input after all.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.keys[..self.matched]);
        self.matched = 0;
    }
}

/// What an attach request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// Send input to the container's stdin.
    pub stdin: bool,
    /// Receive its stdout.
    pub stdout: bool,
    /// Receive its stderr.
    pub stderr: bool,
    /// The detach sequence (empty: none).
    pub detach_keys: Vec<u8>,
}

impl AttachRequest {
    /// All three streams with Docker's default detach keys.
    pub fn all() -> AttachRequest {
        AttachRequest {
            stdin: true,
            stdout: true,
            stderr: true,
            detach_keys: vec![16, 17],
        }
    }
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Join the streams.
    Attach(AttachRequest),
    /// Set the terminal's size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

impl Request {
    /// The line to send, newline included.
    pub fn line(&self) -> String {
        match self {
            Request::Attach(a) => {
                let mut s = String::from("attach");
                for (on, name) in [
                    (a.stdin, "stdin"),
                    (a.stdout, "stdout"),
                    (a.stderr, "stderr"),
                ] {
                    if on {
                        s.push(' ');
                        s.push_str(name);
                    }
                }
                if !a.detach_keys.is_empty() {
                    let keys: Vec<String> = a.detach_keys.iter().map(u8::to_string).collect();
                    s.push_str(" keys=");
                    s.push_str(&keys.join(","));
                }
                s.push('\n');
                s
            }
            Request::Resize { rows, cols } => format!("resize {rows} {cols}\n"),
        }
    }

    /// Parses a request line (without its newline).
    pub fn parse(line: &str) -> Result<Request, AttachError> {
        let bad = || AttachError::Request(line.chars().take(200).collect());
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("attach") => {
                let mut a = AttachRequest {
                    stdin: false,
                    stdout: false,
                    stderr: false,
                    detach_keys: Vec::new(),
                };
                for w in words {
                    match w {
                        "stdin" => a.stdin = true,
                        "stdout" => a.stdout = true,
                        "stderr" => a.stderr = true,
                        _ => {
                            let keys = w.strip_prefix("keys=").ok_or_else(bad)?;
                            a.detach_keys = keys
                                .split(',')
                                .map(|k| k.parse::<u8>())
                                .collect::<Result<_, _>>()
                                .map_err(|_| bad())?;
                        }
                    }
                }
                Ok(Request::Attach(a))
            }
            Some("resize") => {
                let rows = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                let cols = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                if words.next().is_some() {
                    return Err(bad());
                }
                Ok(Request::Resize { rows, cols })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dockers_detach_keys() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,a").unwrap(),
            vec![0, 27, b'a']
        );
        assert_eq!(parse_detach_keys("ctrl-A").unwrap(), vec![1]);
        let e = parse_detach_keys("ctrl-p,ctrl-1").unwrap_err();
        assert!(e.to_string().contains("\"ctrl-1\" is not a key"), "{e}");
        assert!(parse_detach_keys("ab").is_err());
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("é").is_err());
    }

    #[test]
    fn the_detach_sequence_is_held_back_and_a_broken_one_passes_through() {
        let mut m = DetachMatcher::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(!m.feed(b"ls\x10", &mut out));
        assert_eq!(out, b"ls", "the first key waits to be decided");
        assert!(!m.feed(b"x", &mut out));
        assert_eq!(out, b"ls\x10x");
        out.clear();
        assert!(!m.feed(b"\x10\x10", &mut out));
        assert_eq!(out, b"\x10");
        assert!(m.feed(b"\x11after", &mut out));
        assert_eq!(out, b"\x10", "nothing after the sequence is sent");
        out.clear();
        assert!(!m.feed(b"end\x10", &mut out));
        m.finish(&mut out);
        assert_eq!(
            out, b"end\x10",
            "a partial sequence at the end of input is input"
        );
        let mut none = DetachMatcher::new(vec![]);
        out.clear();
        assert!(!none.feed(b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11");
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_named() {
        for r in [
            Request::Attach(AttachRequest::all()),
            Request::Attach(AttachRequest {
                stdin: false,
                stdout: true,
                stderr: false,
                detach_keys: vec![],
            }),
            Request::Resize {
                rows: 40,
                cols: 100,
            },
        ] {
            let line = r.line();
            assert_eq!(Request::parse(line.trim_end()).unwrap(), r, "{line}");
        }
        assert!(Request::parse("resize 40").is_err());
        assert!(Request::parse("attach keys=300").is_err());
        let e = Request::parse("detach").unwrap_err();
        assert!(e.to_string().contains("\"detach\""), "{e}");
    }

    proptest! {
        #[test]
        fn without_the_sequence_input_passes_unchanged_in_any_chunking(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            cut in 0usize..200,
        ) {
            let keys = vec![16u8, 17];
            prop_assume!(!data.windows(2).any(|w| w == keys.as_slice()));
            let mut m = DetachMatcher::new(keys);
            let mut out = Vec::new();
            let cut = cut.min(data.len());
            prop_assert!(!m.feed(&data[..cut], &mut out));
            prop_assert!(!m.feed(&data[cut..], &mut out));
            // A trailing first key stays held until the next byte decides it.
            let held = usize::from(data.last() == Some(&16));
            prop_assert_eq!(&out[..], &data[..data.len() - held]);
        }

        #[test]
        fn parsers_never_panic(line in ".{0,80}") {
            let _ = Request::parse(&line);
            let _ = parse_detach_keys(&line);
        }
    }
}
