//! A Dockerfile's text as instructions: the `# escape=` and `# syntax=` parser directives,
//! comments, empty lines and line continuations, as Docker's parser reads them, and the two
//! forms of an instruction's arguments (JSON array or shell form) and its `--flag=value`
//! options. Pure.

use super::words::split_raw;

/// Why a Dockerfile could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token {0:?} in the escape directive: valid are \\ and `")]
    Escape(String),
    /// A line that is not `INSTRUCTION arguments`.
    #[error("line {line}: unknown instruction: {word}")]
    Unknown {
        /// 1-based.
        line: usize,
        /// The first word.
        word: String,
    },
    /// A here-document (`<<EOF`).
    #[error(
        "line {line}: {keyword}: here-documents (<<) are not supported by berth's builder; write the lines into a file and COPY it"
    )]
    Heredoc {
        /// 1-based.
        line: usize,
        /// The instruction.
        keyword: String,
    },
    /// Bigger than [`MAX_DOCKERFILE`].
    #[error("the Dockerfile is larger than {MAX_DOCKERFILE} bytes")]
    TooLarge,
    /// A word could not be split (an unterminated quote in a flag).
    #[error("line {line}: {message}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Bytes of Dockerfile read at most.
pub const MAX_DOCKERFILE: usize = 4 << 20;

/// Every instruction Docker's reference names.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// Upper case (`RUN`).
    pub keyword: String,
    /// What follows the keyword, continuations joined, trimmed.
    pub args: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// `\` unless `# escape=` says `` ` ``.
    pub escape: char,
    /// The instructions in order.
    pub instructions: Vec<Instruction>,
}

/// Parses Dockerfile `text`.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    if text.len() > MAX_DOCKERFILE {
        return Err(ParseError::TooLarge);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut escape = '\\';
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // Parser directives: `# key=value` lines before anything else.
    let mut seen = Vec::new();
    while i < lines.len() {
        let Some(rest) = lines[i].trim().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(char::is_whitespace) || seen.contains(&key) {
            break;
        }
        if key == "escape" {
            escape = match v.trim() {
                "\\" => '\\',
                "`" => '`',
                other => return Err(ParseError::Escape(other.to_string())),
            };
        }
        seen.push(key);
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i].trim();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let mut joined = String::new();
        let mut cur = first.to_string();
        loop {
            let trimmed = cur.trim_end();
            match trimmed.strip_suffix(escape) {
                Some(head) => {
                    joined.push_str(head);
                    // The next line that is not a comment or empty continues this one.
                    let mut next = None;
                    while i < lines.len() {
                        let l = lines[i];
                        i += 1;
                        let t = l.trim();
                        if t.starts_with('#') || t.is_empty() {
                            continue;
                        }
                        next = Some(l.to_string());
                        break;
                    }
                    match next {
                        Some(l) => cur = l,
                        None => break,
                    }
                }
                None => {
                    joined.push_str(trimmed);
                    break;
                }
            }
        }
        let joined = joined.trim();
        let (word, args) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((joined, ""));
        let keyword = word.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(ParseError::Unknown {
                line: start + 1,
                word: word.to_string(),
            });
        }
        let args = args.trim().to_string();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD")
            && args
                .split_whitespace()
                .any(|w| w.starts_with("<<") && w.len() > 2)
        {
            return Err(ParseError::Heredoc {
                line: start + 1,
                keyword,
            });
        }
        instructions.push(Instruction {
            line: start + 1,
            keyword,
            args,
        });
    }
    Ok(Dockerfile {
        escape,
        instructions,
    })
}

/// The arguments of `CMD`, `ENTRYPOINT`, `RUN`, `SHELL`, `VOLUME`: a JSON array of strings,
/// or the shell form (the text as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `["a", "b"]`.
    Json(Vec<String>),
    /// `a b`.
    Shell(String),
}

/// The form of `args` (Docker reads anything that is not a JSON array of strings as the
/// shell form).
pub fn form(args: &str) -> Form {
    let t = args.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return Form::Json(v);
        }
    }
    Form::Shell(t.to_string())
}

/// Leading `--name=value` options of `args` (`HEALTHCHECK --interval=5s CMD ...`) and the
/// rest. A `--name` without `=` has an empty value.
pub fn flags(args: &str, escape: char) -> Result<(Vec<(String, String)>, String), String> {
    let mut rest = args.trim_start();
    let mut out = Vec::new();
    while let Some(after) = rest.strip_prefix("--") {
        // The word ends at whitespace outside quotes (`--x="a b"`).
        let mut quote = None;
        let end = after
            .char_indices()
            .find(|&(_, c)| match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                    false
                }
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    false
                }
                None => c.is_whitespace(),
            })
            .map_or(after.len(), |(i, _)| i);
        let word = &after[..end];
        if word.is_empty() {
            // `--` ends the options.
            rest = after.trim_start();
            break;
        }
        let raw = split_raw(word, escape).map_err(|e| e.to_string())?;
        let word = raw.concat();
        let (k, v) = word.split_once('=').unwrap_or((&word, ""));
        // A quoted value without its quotes (substitution, where it applies, is the caller's).
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|x| x.strip_suffix(*q)))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string()));
        rest = after[end..].trim_start();
    }
    Ok((out, rest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(d: &Dockerfile) -> Vec<(usize, &str, &str)> {
        d.instructions
            .iter()
            .map(|i| (i.line, i.keyword.as_str(), i.args.as_str()))
            .collect()
    }

    #[test]
    fn reads_lines_as_docker() {
        let d = parse(
            "# syntax=docker/dockerfile:1\n# escape=\\\n\nfrom busybox AS b\n# a comment\nRUN echo a \\\n  # inside\n\n  && echo b\nENV A=1 \\\n    B=2\ncmd [\"sh\"]\n",
        )
        .unwrap();
        assert_eq!(d.escape, '\\');
        assert_eq!(
            kw(&d),
            [
                (4, "FROM", "busybox AS b"),
                (6, "RUN", "echo a   && echo b"),
                (10, "ENV", "A=1     B=2"),
                (12, "CMD", "[\"sh\"]"),
            ]
        );
        let d = parse("# escape=`\nRUN dir c:\\ `\n  x\n").unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(kw(&d), [(2, "RUN", "dir c:\\   x")]);
        // A directive after the first instruction is a comment.
        let d = parse("FROM a\n# escape=`\nRUN x \\\ny\n").unwrap();
        assert_eq!(d.escape, '\\');
        assert_eq!(d.instructions[1].args, "x y");
        assert_eq!(
            parse("FROM a\nFOO bar").unwrap_err(),
            ParseError::Unknown {
                line: 2,
                word: "FOO".into()
            }
        );
        assert!(matches!(
            parse("# escape=x\nFROM a"),
            Err(ParseError::Escape(_))
        ));
        assert!(matches!(
            parse("FROM a\nRUN <<EOF\nx\nEOF\n"),
            Err(ParseError::Heredoc { line: 2, .. })
        ));
        // A continuation at the end of the file ends the instruction.
        assert_eq!(kw(&parse("RUN a \\").unwrap()), [(1, "RUN", "a")]);
    }

    #[test]
    fn forms_and_flags() {
        assert_eq!(
            form(r#"["a", "b c"]"#),
            Form::Json(vec!["a".into(), "b c".into()])
        );
        assert_eq!(form("[a b]"), Form::Shell("[a b]".into()));
        assert_eq!(form(" echo hi "), Form::Shell("echo hi".into()));
        assert_eq!(
            flags("--interval=5s --retries=3 CMD true", '\\').unwrap(),
            (
                vec![
                    ("interval".into(), "5s".into()),
                    ("retries".into(), "3".into())
                ],
                "CMD true".into()
            )
        );
        assert_eq!(flags("CMD --x", '\\').unwrap(), (vec![], "CMD --x".into()));
    }
}
