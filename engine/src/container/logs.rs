//! `docker logs`: `--tail`, `--since`, `--until` over the json-file records (pure), and
//! `--follow` by reading what the shim appends, across rotations.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::runtime::logs::LogLine;

/// Which records to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N (`--tail N`; `None`: all).
    pub tail: Option<usize>,
    /// Only records at or after this RFC 3339 time (`--since`).
    pub since: Option<String>,
    /// Only records before this RFC 3339 time (`--until`).
    pub until: Option<String>,
    /// `stdout` records.
    pub stdout: bool,
    /// `stderr` records.
    pub stderr: bool,
}

/// Seconds and nanoseconds of an RFC 3339 UTC time (`2026-11-23T16:43:20.5Z`) or of a Unix
/// time (`1700000000`, `1700000000.5`), as `docker logs --since` takes both.
pub fn parse_time(s: &str) -> Option<(i64, u32)> {
    if let Some((secs, frac)) = s
        .split_once('.')
        .filter(|(a, _)| a.bytes().all(|b| b.is_ascii_digit()))
    {
        let nanos: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        return Some((secs.parse().ok()?, nanos.parse().ok()?));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        return Some((s.parse().ok()?, 0));
    }
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    // Out-of-range fields are not a time (and would overflow the arithmetic below).
    let in_range = d.len() == 3
        && t.len() == 3
        && (0..=9999).contains(&d[0])
        && (1..=12).contains(&d[1])
        && (1..=31).contains(&d[2])
        && (0..=23).contains(&t[0])
        && (0..=59).contains(&t[1])
        && (0..=60).contains(&t[2])
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !in_range {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let nanos: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    Some((
        days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2],
        nanos.parse().ok()?,
    ))
}

/// The records `opts` selects, in order.
pub fn select(lines: Vec<LogLine>, opts: &LogOptions) -> Vec<LogLine> {
    let since = opts.since.as_deref().and_then(parse_time);
    let until = opts.until.as_deref().and_then(parse_time);
    let mut out: Vec<LogLine> = lines
        .into_iter()
        .filter(|l| (l.stream == "stdout" && opts.stdout) || (l.stream == "stderr" && opts.stderr))
        .filter(|l| {
            let t = parse_time(&l.time);
            since.is_none_or(|s| t.is_some_and(|t| t >= s))
                && until.is_none_or(|u| t.is_some_and(|t| t < u))
        })
        .collect();
    if let Some(n) = opts.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    out
}

/// Reads records appended to a json-file log after a point, following it through rotation
/// (a new file under the name starts over from its beginning).
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    inode: u64,
    partial: String,
}

impl LogFollower {
    /// Follows `path` from its current end.
    pub fn from_end(path: &Path) -> LogFollower {
        let mut f = LogFollower {
            path: path.to_path_buf(),
            reader: None,
            inode: 0,
            partial: String::new(),
        };
        if let Ok(mut file) = File::open(path) {
            let _ = file.seek(SeekFrom::End(0));
            f.inode = file.metadata().map_or(0, |m| m.ino());
            f.reader = Some(BufReader::new(file));
        }
        f
    }

    /// Records appended since the last call.
    pub fn poll(&mut self) -> io::Result<Vec<LogLine>> {
        let mut out = Vec::new();
        let current = std::fs::metadata(&self.path).map_or(0, |m| m.ino());
        if let Some(r) = self.reader.as_mut() {
            Self::read_lines(r, &mut self.partial, &mut out)?;
        }
        if current != 0 && current != self.inode {
            // Rotated (or created): the rest of the old file is read above. When it was rotated
            // twice since the last poll, the file in between is now `NAME.1`: read it whole.
            let first = PathBuf::from(format!("{}.1", self.path.display()));
            if let Ok(file) = File::open(&first) {
                if file.metadata().map_or(0, |m| m.ino()) != self.inode && self.inode != 0 {
                    let mut partial = String::new();
                    Self::read_lines(&mut BufReader::new(file), &mut partial, &mut out)?;
                }
            }
            let file = File::open(&self.path)?;
            self.inode = current;
            self.partial.clear();
            let mut r = BufReader::new(file);
            let mut tmp = Vec::new();
            Self::read_lines(&mut r, &mut self.partial, &mut tmp)?;
            out.extend(tmp);
            self.reader = Some(r);
        }
        Ok(out)
    }

    fn read_lines(
        r: &mut BufReader<File>,
        partial: &mut String,
        out: &mut Vec<LogLine>,
    ) -> io::Result<()> {
        loop {
            let n = r.read_line(partial)?;
            if n == 0 || !partial.ends_with('\n') {
                return Ok(());
            }
            if let Ok(l) = serde_json::from_str::<LogLine>(partial.trim_end()) {
                out.push(l);
            }
            partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::logs::{JsonFileWriter, Rotation};

    fn line(t: &str, s: &str, text: &str) -> LogLine {
        LogLine {
            log: text.into(),
            stream: s.into(),
            time: t.into(),
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:10Z"), Some((10, 0)));
        assert_eq!(
            parse_time("2026-11-23T16:43:20.000000001Z"),
            Some((1_795_452_200, 1))
        );
        assert_eq!(
            parse_time("1795452200.5"),
            Some((1_795_452_200, 500_000_000))
        );
        assert_eq!(parse_time("1795452200"), Some((1_795_452_200, 0)));
        assert_eq!(parse_time("yesterday"), None);
        // Found by fuzzing: fields out of range overflowed the day arithmetic.
        assert_eq!(
            parse_time("20026-12022200222022212-02T12:00:00.526-12-02:00.5Z"),
            None
        );
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("2026-12-01T24:00:00Z"), None);
    }

    #[test]
    fn tail_since_until_and_streams() {
        let lines = vec![
            line("2026-11-23T10:00:00.000000000Z", "stdout", "a\n"),
            line("2026-11-23T10:00:01.000000000Z", "stderr", "b\n"),
            line("2026-11-23T10:00:02.000000000Z", "stdout", "c\n"),
            line("2026-11-23T10:00:03.000000000Z", "stdout", "d\n"),
        ];
        let all = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let texts = |o: &LogOptions| {
            select(lines.clone(), o)
                .into_iter()
                .map(|l| l.log)
                .collect::<Vec<_>>()
                .concat()
        };
        assert_eq!(texts(&all), "a\nb\nc\nd\n");
        assert_eq!(
            texts(&LogOptions {
                tail: Some(2),
                ..all.clone()
            }),
            "c\nd\n"
        );
        assert_eq!(
            texts(&LogOptions {
                tail: Some(0),
                ..all.clone()
            }),
            ""
        );
        assert_eq!(
            texts(&LogOptions {
                since: Some("2026-11-23T10:00:01Z".into()),
                ..all.clone()
            }),
            "b\nc\nd\n"
        );
        assert_eq!(
            texts(&LogOptions {
                until: Some("2026-11-23T10:00:02Z".into()),
                ..all.clone()
            }),
            "a\nb\n"
        );
        assert_eq!(
            texts(&LogOptions {
                stderr: false,
                ..all.clone()
            }),
            "a\nc\nd\n"
        );
    }

    #[test]
    fn follow_sees_appends_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rot = Rotation {
            max_size: Some(160),
            max_file: 3,
        };
        let mut w = JsonFileWriter::open(&path, rot).unwrap();
        w.write("stdout", b"before\n", "2026-11-23T10:00:00.000000000Z")
            .unwrap();
        let mut f = LogFollower::from_end(&path);
        assert!(f.poll().unwrap().is_empty());
        let mut want = Vec::new();
        for i in 0..10 {
            let t = format!("line {i}\n");
            w.write("stdout", t.as_bytes(), "2026-11-23T10:00:00.000000000Z")
                .unwrap();
            want.push(t);
            // Two records per file: two rotations between some polls.
            if i % 3 == 0 {
                let got: Vec<String> = f.poll().unwrap().into_iter().map(|l| l.log).collect();
                assert_eq!(got, want, "after line {i}");
                want.clear();
            }
        }
        let got: Vec<String> = f.poll().unwrap().into_iter().map(|l| l.log).collect();
        assert_eq!(got, want);
    }
}
