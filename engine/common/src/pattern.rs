//! Docker's path patterns: the globs of `COPY`/`ADD` sources (Go's `filepath.Match`: `*`,
//! `?`, `[a-z]`, `[^...]`, `\` escapes, no match across `/`) and `.dockerignore` lines (the
//! same plus `**` across directories, `!` exceptions, the last matching line deciding, a
//! directory's pattern covering what is under it), as moby's patternmatcher reads them. Pure;
//! matching is a set-of-states walk, linear in pattern times path, so no input makes it slow.

/// Why a pattern is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {pattern:?}: {why}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong.
    pub why: &'static str,
}

/// Longest pattern taken (bytes).
pub const MAX_PATTERN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`: one character but `/`.
    Any,
    /// `[...]`: ranges, negated or not; never `/`.
    Class(bool, Vec<(char, char)>),
    /// `*`: any run of characters but `/`.
    Star,
    /// `**` at the end: anything.
    All,
    /// `**` elsewhere (`**/`): nothing, or anything ending in `/`.
    Dirs,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Go's `filepath.Match` pattern (`**` is two stars, as there).
    pub fn glob(pattern: &str) -> Result<Pattern, PatternError> {
        Pattern::compile(pattern, false)
    }

    /// A `.dockerignore` pattern (already cleaned, without its `!`): `**` crosses directories.
    pub fn ignore(pattern: &str) -> Result<Pattern, PatternError> {
        Pattern::compile(pattern, true)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn compile(pattern: &str, double_star: bool) -> Result<Pattern, PatternError> {
        let err = |why| PatternError {
            pattern: pattern.to_string(),
            why,
        };
        if pattern.len() > MAX_PATTERN {
            return Err(err("longer than 4096 bytes"));
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if double_star && chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    let t = if i >= chars.len() {
                        Token::All
                    } else {
                        Token::Dirs
                    };
                    // `**/**/` is `**/`: repeats add states, never matches.
                    if tokens.last() == Some(&Token::Dirs) {
                        tokens.pop();
                    }
                    tokens.push(t);
                }
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '\\' => {
                    let Some(&n) = chars.get(i) else {
                        return Err(err("a trailing \\ escapes nothing"));
                    };
                    i += 1;
                    tokens.push(Token::Char(n));
                }
                '[' => {
                    let negated = chars.get(i) == Some(&'^');
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&c) = chars.get(i) else {
                            return Err(err("a [ without its ]"));
                        };
                        if c == ']' && !first {
                            i += 1;
                            break;
                        }
                        first = false;
                        let lo =
                            class_char(&chars, &mut i).ok_or_else(|| err("a [ without its ]"))?;
                        let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1) != Some(&']') {
                            i += 1;
                            class_char(&chars, &mut i).ok_or_else(|| err("a [ without its ]"))?
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(err("a range whose end comes before its start"));
                        }
                        ranges.push((lo, hi));
                    }
                    if ranges.is_empty() {
                        return Err(err("an empty character class"));
                    }
                    tokens.push(Token::Class(negated, ranges));
                }
                c => tokens.push(Token::Char(c)),
            }
        }
        Ok(Pattern {
            source: pattern.to_string(),
            tokens,
        })
    }

    /// Whether the whole of `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let n = self.tokens.len();
        // State (k, inside): before token k; `inside` only for `Dirs` once it took a character.
        let mut cur = vec![false; 2 * (n + 1)];
        let mut next = vec![false; 2 * (n + 1)];
        cur[0] = true;
        self.close(&mut cur);
        for c in path.chars() {
            next.iter_mut().for_each(|s| *s = false);
            // Only the states reached so far are walked: a long pattern costs its live states.
            let live: Vec<usize> = (0..2 * n).filter(|i| cur[*i]).collect();
            for i in live {
                let k = i / 2;
                {
                    match &self.tokens[k] {
                        Token::Char(t) if *t == c => next[2 * (k + 1)] = true,
                        Token::Char(_) => {}
                        Token::Any if c != '/' => next[2 * (k + 1)] = true,
                        Token::Any => {}
                        Token::Class(neg, ranges) if c != '/' => {
                            if ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *neg {
                                next[2 * (k + 1)] = true;
                            }
                        }
                        Token::Class(..) => {}
                        Token::Star if c != '/' => next[2 * k] = true,
                        Token::Star => {}
                        Token::All => next[2 * k] = true,
                        Token::Dirs => {
                            next[2 * k + 1] = true;
                            if c == '/' {
                                next[2 * (k + 1)] = true;
                            }
                        }
                    }
                }
            }
            self.close(&mut next);
            std::mem::swap(&mut cur, &mut next);
            if !cur.iter().any(|s| *s) {
                return false;
            }
        }
        cur[2 * n]
    }

    /// Adds the states reached without a character (skipping `*`, `**`).
    fn close(&self, states: &mut [bool]) {
        for k in 0..self.tokens.len() {
            if states[2 * k] && matches!(self.tokens[k], Token::Star | Token::All | Token::Dirs) {
                states[2 * (k + 1)] = true;
            }
        }
    }
}

fn class_char(chars: &[char], i: &mut usize) -> Option<char> {
    let c = *chars.get(*i)?;
    *i += 1;
    if c == '\\' {
        let n = *chars.get(*i)?;
        *i += 1;
        return Some(n);
    }
    Some(c)
}

/// Go's `filepath.Clean` for `/`-separated paths: no empty or `.` elements, `..` taken
/// lexically, no trailing `/`; `.` for nothing.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRule {
    /// `!`: an exception.
    pub exception: bool,
    /// What it matches.
    pub pattern: Pattern,
}

/// A `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    /// Its lines, in order.
    pub rules: Vec<IgnoreRule>,
}

/// Bytes of `.dockerignore` taken at most (matching costs patterns times path length).
pub const MAX_IGNORE_BYTES: usize = 256 << 10;

/// Lines of `.dockerignore` taken at most.
pub const MAX_IGNORE_LINES: usize = 10_000;

impl Ignore {
    /// Reads a `.dockerignore` as Docker does: `#` comments, blank lines skipped, spaces
    /// trimmed, `!` exceptions, each pattern cleaned and its leading `/` dropped.
    pub fn parse(text: &str) -> Result<Ignore, PatternError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.len() > MAX_IGNORE_BYTES {
            return Err(PatternError {
                pattern: String::new(),
                why: "a .dockerignore larger than 256 KiB",
            });
        }
        let mut rules = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
            }
            let mut p = if p.is_empty() {
                String::new()
            } else {
                clean(p)
            };
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
            if rules.len() == MAX_IGNORE_LINES {
                return Err(PatternError {
                    pattern: p,
                    why: "more than 10000 lines in .dockerignore",
                });
            }
            rules.push(IgnoreRule {
                exception,
                pattern: Pattern::ignore(&p)?,
            });
        }
        Ok(Ignore { rules })
    }

    /// Whether context path `path` (relative, `/`-separated) is left out: the last line that
    /// matches it or one of its parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let mut parents = Vec::new();
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            parents.push(&path[..at + i]);
            at += i + 1;
        }
        let mut excluded = false;
        for r in &self.rules {
            if r.pattern.matches(&path) || parents.iter().any(|p| r.pattern.matches(p)) {
                excluded = !r.exception;
            }
        }
        excluded
    }

    /// Whether any line is an exception (a directory left out may still hold files taken).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, s: &str) -> bool {
        Pattern::glob(p).unwrap().matches(s)
    }

    #[test]
    fn globs_as_go_filepath_match() {
        assert!(g("*.txt", "a.txt"));
        assert!(!g("*.txt", "d/a.txt"));
        assert!(g("d/*.txt", "d/a.txt"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "a/c"));
        assert!(g("[a-c]x", "bx"));
        assert!(!g("[^a-c]x", "bx"));
        assert!(g("[^a-c]x", "dx"));
        assert!(g("\\*", "*"));
        assert!(!g("\\*", "a"));
        assert!(g("**", "abc"));
        assert!(!g("**", "a/b"));
        assert!(g("*", ""));
        assert!(g("a*b*c", "aXbYc"));
        assert!(!g("a*b*c", "aXbY"));
        assert!(Pattern::glob("[a").is_err());
        assert!(Pattern::glob("a\\").is_err());
        assert!(Pattern::glob("[z-a]").is_err());
    }

    #[test]
    fn double_star_crosses_directories() {
        let p = |s| Pattern::ignore(s).unwrap();
        assert!(p("**/*.go").matches("a.go"));
        assert!(p("**/*.go").matches("x/y/a.go"));
        assert!(p("a/**").matches("a/b/c"));
        assert!(p("a/**/b").matches("a/b"));
        assert!(p("a/**/b").matches("a/x/y/b"));
        assert!(!p("a/**/b").matches("a/xb"));
    }

    #[test]
    fn dockerignore_as_docker_reads_it() {
        let i =
            Ignore::parse("# c\n\n  node_modules/  \n*.log\n!keep.log\n/build\n**/tmp\n").unwrap();
        assert!(i.excludes("node_modules"));
        assert!(i.excludes("node_modules/x/y.js"));
        assert!(i.excludes("a.log"));
        assert!(!i.excludes("keep.log"));
        assert!(!i.excludes("d/a.log"));
        assert!(i.excludes("build/out"));
        assert!(i.excludes("x/y/tmp/z"));
        assert!(!i.excludes("src/main.rs"));
        assert!(i.has_exceptions());
        // The last matching line decides.
        let i = Ignore::parse("!a\na").unwrap();
        assert!(i.excludes("a"));
    }

    #[test]
    fn clean_as_go() {
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a/"), "a");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(p in ".{0,40}", s in ".{0,60}") {
            if let Ok(pat) = Pattern::ignore(&p) { let _ = pat.matches(&s); }
            if let Ok(pat) = Pattern::glob(&p) { let _ = pat.matches(&s); }
            if let Ok(i) = Ignore::parse(&p) { let _ = i.excludes(&s); }
        }

        #[test]
        fn a_literal_matches_itself(s in "[a-z0-9_./-]{1,30}") {
            proptest::prop_assert!(Pattern::glob(&s).unwrap().matches(&s));
        }
    }
}
