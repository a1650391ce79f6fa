//! The Dockerfile's word rules (Docker's shell lexer): quotes, the escape character and
//! environment substitution (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//! `${VAR+word}`, `${VAR:?message}`, `${VAR?message}`), applied where Docker applies them
//! (`ENV`, `LABEL`, `EXPOSE`, `USER`, `WORKDIR`, `VOLUME`, `STOPSIGNAL`, ...). Pure.

/// Why a word could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    /// `"abc` or `'abc`.
    #[error("unterminated quote in {0:?}")]
    Unterminated(String),
    /// `${VAR` or `${}`.
    #[error(
        "bad substitution in {0:?}: valid forms are $VAR, ${{VAR}}, ${{VAR:-default}} and ${{VAR:+alternative}}"
    )]
    BadSubstitution(String),
    /// `${VAR:?message}` with VAR unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// Its message.
        message: String,
    },
}

/// Words longer than this are refused (a Dockerfile or a change line is written by hand).
pub const MAX_WORD: usize = 1 << 20;

/// The value of `name` in `env` (`K=V` entries, the last one winning).
pub fn lookup<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|e| {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        (k == name).then_some(v)
    })
}

/// `${...}` inside `${...}` this deep at most.
pub const MAX_NESTING: usize = 16;

struct Lexer<'a> {
    depth: usize,
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a [String],
    source: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, env: &'a [String], escape: char) -> Lexer<'a> {
        Lexer {
            depth: 0,
            chars: text.chars().collect(),
            pos: 0,
            escape,
            env,
            source: text,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn unterminated(&self) -> WordError {
        WordError::Unterminated(self.source.to_string())
    }

    /// Reads words until the end (or, in a `${...}` word, until the closing brace, left unread).
    /// `split`: whitespace outside quotes separates words, a variable's value outside quotes
    /// is split too, and empty words are dropped (Docker's `ProcessWords`).
    fn words(&mut self, split: bool, in_brace: bool) -> Result<Vec<String>, WordError> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut total = 0usize;
        while let Some(c) = self.peek() {
            if in_brace && c == '}' {
                break;
            }
            if split && c.is_whitespace() {
                self.pos += 1;
                total += cur.len();
                out.push(std::mem::take(&mut cur));
                continue;
            }
            self.pos += 1;
            match c {
                '\'' => loop {
                    match self.next() {
                        None => return Err(self.unterminated()),
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                    }
                },
                '"' => loop {
                    match self.next() {
                        None => return Err(self.unterminated()),
                        Some('"') => break,
                        Some('$') => {
                            let v = self.variable()?;
                            cur.push_str(&v);
                        }
                        Some(e) if e == self.escape => match self.next() {
                            None => return Err(self.unterminated()),
                            Some(x) if x == '"' || x == '$' || x == self.escape => cur.push(x),
                            Some(x) => {
                                cur.push(e);
                                cur.push(x);
                            }
                        },
                        Some(x) => cur.push(x),
                    }
                },
                '$' => {
                    let v = self.variable()?;
                    if split {
                        // Unquoted: the value's own whitespace separates words.
                        let mut parts = v.split(char::is_whitespace);
                        cur.push_str(parts.next().unwrap_or_default());
                        for p in parts {
                            total += cur.len();
                            out.push(std::mem::replace(&mut cur, p.to_string()));
                        }
                    } else {
                        cur.push_str(&v);
                    }
                }
                e if e == self.escape => match self.next() {
                    // A trailing escape stays as it is.
                    None => cur.push(e),
                    Some(x) => cur.push(x),
                },
                x => cur.push(x),
            }
            if cur.len() + total > MAX_WORD {
                return Err(self.too_long());
            }
        }
        out.push(cur);
        if split {
            out.retain(|w| !w.is_empty());
        }
        Ok(out)
    }

    fn too_long(&self) -> WordError {
        WordError::BadSubstitution(format!(
            "{}... (longer than {MAX_WORD} bytes once substituted)",
            self.source.chars().take(32).collect::<String>()
        ))
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`: the substitution.
    fn variable(&mut self) -> Result<String, WordError> {
        let bad = || WordError::BadSubstitution(self.source.to_string());
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(if name.is_empty() {
                "$".to_string()
            } else {
                lookup(self.env, &name).unwrap_or_default().to_string()
            });
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(bad());
        }
        let value = lookup(self.env, &name);
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default().to_string()),
            Some(c) => {
                let colon = c == ':';
                let op = if colon {
                    self.next().ok_or_else(bad)?
                } else {
                    c
                };
                if !matches!(op, '-' | '+' | '?') {
                    return Err(bad());
                }
                // Nested substitutions (`${A:-${B:-c}}`) go this deep at most.
                if self.depth >= MAX_NESTING {
                    return Err(WordError::BadSubstitution(format!(
                        "{}... (substitutions nested deeper than {MAX_NESTING})",
                        self.source.chars().take(32).collect::<String>()
                    )));
                }
                self.depth += 1;
                let word = self.words(false, true);
                self.depth -= 1;
                let word = word?.concat();
                if self.next() != Some('}') {
                    return Err(bad());
                }
                // With a colon, an empty value counts as unset.
                let set = value.filter(|v| !colon || !v.is_empty());
                match (op, set) {
                    ('-', Some(v)) | ('?', Some(v)) => Ok(v.to_string()),
                    ('-', None) => Ok(word),
                    ('+', Some(_)) => Ok(word),
                    ('+', None) => Ok(String::new()),
                    (_, None) => Err(WordError::Required {
                        name,
                        message: if word.is_empty() {
                            "is not allowed to be unset".into()
                        } else {
                            word
                        },
                    }),
                    _ => unreachable!("op is one of - + ?"),
                }
            }
            None => Err(bad()),
        }
    }
}

/// `text` as one word: quotes removed, escapes applied, variables of `env` substituted
/// (Docker's processing of `WORKDIR`, `USER`, an `ENV` value, ...).
pub fn process_word(text: &str, env: &[String], escape: char) -> Result<String, WordError> {
    let mut l = Lexer::new(text, env, escape);
    Ok(l.words(false, false)?.concat())
}

/// `text` split into words at whitespace outside quotes, each processed as [`process_word`]
/// (Docker's processing of `EXPOSE`, `VOLUME` in its shell form, ...).
pub fn process_words(text: &str, env: &[String], escape: char) -> Result<Vec<String>, WordError> {
    let mut l = Lexer::new(text, env, escape);
    l.words(true, false)
}

/// `text` split into words at whitespace outside quotes, the quotes and escapes kept (the
/// first step of `ENV a=b c="d e"`: each word is then processed on its own).
pub fn split_raw(text: &str, escape: char) -> Result<Vec<String>, WordError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
        }
    }
    if quote.is_some() {
        return Err(WordError::Unterminated(text.to_string()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<String> {
        vec![
            "A=1".into(),
            "EMPTY=".into(),
            "B=two words".into(),
            "A=one".into(),
        ]
    }

    #[test]
    fn substitutes_as_docker() {
        let e = env();
        let w = |s: &str| process_word(s, &e, '\\').unwrap();
        assert_eq!(w("$A"), "one");
        assert_eq!(w("${A}x"), "onex");
        assert_eq!(w("$Ax"), "");
        assert_eq!(w("${NOPE:-d}"), "d");
        assert_eq!(w("${EMPTY:-d}"), "d");
        assert_eq!(w("${EMPTY-d}"), "");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${NOPE:+alt}"), "");
        assert_eq!(w("${NOPE:-$A}"), "one");
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A\""), "one");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"a\\\"b\""), "a\"b");
        assert_eq!(w("\"a\\nb\""), "a\\nb");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("$"), "$");
        assert_eq!(w(""), "");
        assert_eq!(process_word("`$A", &e, '`').unwrap(), "$A");
        assert_eq!(
            process_word("${NOPE:?must be set}", &e, '\\').unwrap_err(),
            WordError::Required {
                name: "NOPE".into(),
                message: "must be set".into()
            }
        );
        assert!(matches!(
            process_word("${A", &e, '\\'),
            Err(WordError::BadSubstitution(_))
        ));
        assert!(matches!(
            process_word("${A/x/y}", &e, '\\'),
            Err(WordError::BadSubstitution(_))
        ));
        assert!(matches!(
            process_word("\"abc", &e, '\\'),
            Err(WordError::Unterminated(_))
        ));
    }

    #[test]
    fn splits_as_docker() {
        let e = env();
        assert_eq!(
            process_words("80 $A  \"a b\" ''", &e, '\\').unwrap(),
            ["80", "one", "a b"]
        );
        assert!(process_words("  ", &e, '\\').unwrap().is_empty());
        // An unquoted value is split; a quoted one is not; empty words are dropped.
        assert_eq!(process_words("$B", &e, '\\').unwrap(), ["two", "words"]);
        assert_eq!(process_words("x$B", &e, '\\').unwrap(), ["xtwo", "words"]);
        assert_eq!(
            process_words("\"$B\" $NOPE", &e, '\\').unwrap(),
            ["two words"]
        );
        // Nesting is bounded (no stack to exhaust).
        let deep = "${A:-".repeat(10_000);
        assert!(matches!(
            process_word(&deep, &e, '\\'),
            Err(WordError::BadSubstitution(_))
        ));
        assert_eq!(process_word("${N:-${M:-${A}}}", &e, '\\').unwrap(), "one");
        assert_eq!(
            split_raw("a=b c=\"d e\" f='g h' i=j\\ k", '\\').unwrap(),
            ["a=b", "c=\"d e\"", "f='g h'", "i=j\\ k"]
        );
        assert!(split_raw("a=\"b", '\\').is_err());
    }
}
