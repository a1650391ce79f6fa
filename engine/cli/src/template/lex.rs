//! The lexer: template text to tokens, the way Go's `text/template/parse` lexer cuts it.
//! Trim markers (`{{- ` and ` -}}`) and comments are resolved here, so the parser only sees
//! text, delimiters and the tokens inside actions. It never recurses, so hostile input
//! (thousands of parens, unclosed quotes) costs one pass and an error, not the stack.

use serde_json::{Number, Value};

use super::{TemplateError, syntax};

/// The keywords of an action, as Go spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kw {
    If,
    Else,
    End,
    Range,
    With,
    Break,
    Continue,
    Define,
    Template,
    Block,
}

/// One token. Literals are decoded already (escapes resolved, numbers parsed).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    /// `.Name`, without the dot.
    Field(String),
    /// `$name` or `$`, with the dollar.
    Var(String),
    Dot,
    /// A string, number, character constant or boolean.
    Lit(Value),
    Nil,
    Ident(String),
    Kw(Kw),
    Eof,
}

/// A token and the byte span of the source it came from.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub end: usize,
}

/// Go's `isSpace` for trim markers and the space between arguments.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Go's `isAlphaNumeric`: what a field, variable or function name is made of.
fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// A character as Go's `%#U` prints it, for error messages that name it.
pub(super) fn go_char(c: char) -> String {
    format!("U+{:04X} {c:?}", c as u32)
}

/// Cuts `src` into tokens, ending with [`Tok::Eof`].
pub(super) fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    let mut l = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
        trim_next: false,
    };
    l.run()?;
    Ok(l.toks)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    toks: Vec<Token>,
    /// The previous action ended with ` -}}`: the next text loses its leading space.
    trim_next: bool,
}

impl Lexer<'_> {
    fn push(&mut self, tok: Tok, pos: usize, end: usize) {
        self.toks.push(Token { tok, pos, end });
    }

    fn run(&mut self) -> Result<(), TemplateError> {
        loop {
            let start = self.pos;
            let found = self.src[start..].find("{{").map(|i| start + i);
            let mut text = (start, found.unwrap_or(self.src.len()));
            if std::mem::take(&mut self.trim_next) {
                text.0 = text.1 - self.src[text.0..text.1].trim_start_matches(is_space).len();
            }
            let ltrim = found.is_some_and(|d| {
                let r = &self.src[d + 2..];
                r.starts_with('-') && r[1..].starts_with(is_space)
            });
            if ltrim {
                text.1 = text.0 + self.src[text.0..text.1].trim_end_matches(is_space).len();
            }
            if text.1 > text.0 {
                self.push(
                    Tok::Text(self.src[text.0..text.1].to_string()),
                    text.0,
                    text.1,
                );
            }
            let Some(open) = found else { break };
            // Go skips the whole trim marker (dash and one space).
            self.pos = open + if ltrim { 4 } else { 2 };
            if self.src[self.pos..].starts_with("/*") {
                self.comment(open)?;
            } else {
                self.push(Tok::Left, open, open + 2);
                self.action(open)?;
            }
        }
        self.push(Tok::Eof, self.src.len(), self.src.len());
        Ok(())
    }

    fn comment(&mut self, open: usize) -> Result<(), TemplateError> {
        let body = self.pos + 2;
        let Some(close) = self.src[body..].find("*/") else {
            return Err(syntax(self.src, open, "unclosed comment".into()));
        };
        let p = body + close + 2;
        let r = &self.src[p..];
        if r.starts_with(is_space) && r[1..].starts_with("-}}") {
            self.trim_next = true;
            self.pos = p + 4;
        } else if r.starts_with("}}") {
            self.pos = p + 2;
        } else {
            return Err(syntax(
                self.src,
                p,
                "comment ends before closing delimiter".into(),
            ));
        }
        Ok(())
    }

    /// The tokens of one action, up to and including its right delimiter.
    fn action(&mut self, open: usize) -> Result<(), TemplateError> {
        let mut parens = 0usize;
        loop {
            let p = self.pos;
            let rest = &self.src[p..];
            let after_space = p > 0 && is_space(char::from(self.src.as_bytes()[p - 1]));
            let trim = rest.starts_with("-}}") && after_space;
            if rest.starts_with("}}") || trim {
                if parens > 0 {
                    return Err(syntax(self.src, p, "unclosed left paren".into()));
                }
                let end = p + if trim { 3 } else { 2 };
                self.push(Tok::Right, p, end);
                self.pos = end;
                self.trim_next = trim;
                return Ok(());
            }
            let Some(c) = rest.chars().next() else {
                return Err(syntax(self.src, open, "unclosed action".into()));
            };
            let next = rest[c.len_utf8()..].chars().next();
            let (tok, len) = match c {
                c if is_space(c) => (
                    Tok::Space,
                    rest.len() - rest.trim_start_matches(is_space).len(),
                ),
                '=' => (Tok::Assign, 1),
                ':' if next == Some('=') => (Tok::Declare, 2),
                ':' => return Err(syntax(self.src, p, "expected :=".into())),
                '|' => (Tok::Pipe, 1),
                ',' => (Tok::Comma, 1),
                '(' => {
                    parens += 1;
                    (Tok::LParen, 1)
                }
                ')' => {
                    let Some(n) = parens.checked_sub(1) else {
                        return Err(syntax(self.src, p, "unexpected right paren".into()));
                    };
                    parens = n;
                    (Tok::RParen, 1)
                }
                '"' | '`' | '\'' => self.quoted(p, c)?,
                '.' if next.is_some_and(|n| n.is_ascii_digit()) => self.number(p)?,
                '$' | '.' => {
                    let name = rest[1..].len() - rest[1..].trim_start_matches(is_alnum).len();
                    self.check_terminator(p + 1 + name)?;
                    let tok = match (c, name) {
                        ('.', 0) => Tok::Dot,
                        ('.', _) => Tok::Field(rest[1..1 + name].to_string()),
                        _ => Tok::Var(rest[..1 + name].to_string()),
                    };
                    (tok, 1 + name)
                }
                '+' | '-' | '0'..='9' => self.number(p)?,
                c if is_alnum(c) => {
                    let len = rest.len() - rest.trim_start_matches(is_alnum).len();
                    self.check_terminator(p + len)?;
                    (word(&rest[..len]), len)
                }
                c => {
                    let msg = format!("unrecognized character in action: {}", go_char(c));
                    return Err(syntax(self.src, p, msg));
                }
            };
            self.push(tok, p, p + len);
            self.pos = p + len;
        }
    }

    /// After a name, Go wants a space, a delimiter or punctuation: `.A"x"` is an error.
    fn check_terminator(&self, at: usize) -> Result<(), TemplateError> {
        match self.src[at..].chars().next() {
            None | Some('.' | ',' | '|' | ':' | ')' | '(' | '}') => Ok(()),
            Some(c) if is_space(c) => Ok(()),
            Some(c) => Err(syntax(
                self.src,
                at,
                format!("bad character {}", go_char(c)),
            )),
        }
    }

    /// A quoted string, raw string or character constant starting at `p`.
    fn quoted(&self, p: usize, quote: char) -> Result<(Tok, usize), TemplateError> {
        let rest = &self.src[p + 1..];
        let what = match quote {
            '"' => "quoted string",
            '`' => "raw quoted string",
            _ => "character constant",
        };
        let unterminated = || syntax(self.src, p, format!("unterminated {what}"));
        let mut close = None;
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    close = Some(i);
                    break;
                }
                '\\' if quote != '`' => match chars.next() {
                    Some((_, '\n')) | None => return Err(unterminated()),
                    Some(_) => {}
                },
                '\n' if quote != '`' => return Err(unterminated()),
                _ => {}
            }
        }
        let close = close.ok_or_else(unterminated)?;
        let body = &rest[..close];
        let token = &self.src[p..p + close + 2];
        let bad = || syntax(self.src, p, format!("bad {what} syntax: {token}"));
        let tok = match quote {
            '`' => Tok::Lit(Value::String(body.replace('\r', ""))),
            '"' => Tok::Lit(Value::String(unescape(body, '"').ok_or_else(bad)?)),
            _ => {
                let s = unescape(body, '\'').ok_or_else(bad)?;
                let mut cs = s.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => Tok::Lit(Value::from(u32::from(c))),
                    _ => return Err(bad()),
                }
            }
        };
        Ok((tok, close + 2))
    }

    /// A number starting at `p`: sign, `0x`/`0o`/`0b` integers, decimals, exponents, `_`.
    fn number(&self, p: usize) -> Result<(Tok, usize), TemplateError> {
        let b = &self.src.as_bytes()[p..];
        let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
        let radix = match b.get(i..i + 2) {
            Some(b"0x" | b"0X") => 16,
            Some(b"0o" | b"0O") => 8,
            Some(b"0b" | b"0B") => 2,
            _ => 10,
        };
        if radix != 10 {
            i += 2;
        }
        let digits = |i: &mut usize| {
            while b
                .get(*i)
                .is_some_and(|&c| c == b'_' || char::from(c).is_digit(radix))
            {
                *i += 1;
            }
        };
        digits(&mut i);
        if radix == 10 {
            if b.get(i) == Some(&b'.') {
                i += 1;
                digits(&mut i);
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                i += 1;
                if matches!(b.get(i), Some(b'+' | b'-')) {
                    i += 1;
                }
                digits(&mut i);
            }
        }
        let rest = &self.src[p + i..];
        let tail = rest.len() - rest.trim_start_matches(is_alnum).len();
        let text = &self.src[p..p + i];
        match parse_number(text, radix) {
            Some(v) if tail == 0 => Ok((Tok::Lit(v), i)),
            _ => {
                let token = &self.src[p..p + i + tail];
                Err(syntax(self.src, p, format!("bad number syntax: {token:?}")))
            }
        }
    }
}

/// A word inside an action: keyword, boolean, `nil` or a function name.
fn word(w: &str) -> Tok {
    let kw = match w {
        "if" => Kw::If,
        "else" => Kw::Else,
        "end" => Kw::End,
        "range" => Kw::Range,
        "with" => Kw::With,
        "break" => Kw::Break,
        "continue" => Kw::Continue,
        "define" => Kw::Define,
        "template" => Kw::Template,
        "block" => Kw::Block,
        "true" => return Tok::Lit(Value::Bool(true)),
        "false" => return Tok::Lit(Value::Bool(false)),
        "nil" => return Tok::Nil,
        _ => return Tok::Ident(w.to_string()),
    };
    Tok::Kw(kw)
}

/// The value of a scanned number; `None` when it is not one (`-`, `1e`, overflow).
fn parse_number(text: &str, radix: u32) -> Option<Value> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let body = if radix == 10 { body } else { body.get(2..)? };
    if body.is_empty() {
        return None;
    }
    if radix == 10 && body.contains(['.', 'e', 'E']) {
        let f: f64 = body.parse().ok()?;
        let f = if neg { -f } else { f };
        return Number::from_f64(f)
            .filter(|_| f.is_finite())
            .map(Value::Number);
    }
    // Go reads a leading 0 as octal, as its constants do.
    let (body, radix) = match body.strip_prefix('0') {
        Some(octal) if radix == 10 && !octal.is_empty() => (octal, 8),
        _ => (body, radix),
    };
    let n = u64::from_str_radix(body, radix).ok()?;
    if neg {
        let i = i64::try_from(-i128::from(n)).ok()?;
        Some(Value::from(i))
    } else {
        Some(Value::from(n))
    }
}

/// Go's escapes in a quoted string or character constant (`\n \t \\ \" \x41 \101 \u00e9
/// \U0001F600 ...`); `None` for an invalid escape or bytes that are not UTF-8.
fn unescape(body: &str, quote: char) -> Option<String> {
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let hex = |chars: &mut std::str::Chars, n: usize| {
        (0..n).try_fold(0u32, |acc, _| Some(acc * 16 + chars.next()?.to_digit(16)?))
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        let e = chars.next()?;
        let byte = match e {
            'a' => 7,
            'b' => 8,
            'f' => 12,
            'n' => b'\n',
            'r' => b'\r',
            't' => b'\t',
            'v' => 11,
            '\\' => b'\\',
            '"' | '\'' if e == quote => e as u8,
            'x' => u8::try_from(hex(&mut chars, 2)?).ok()?,
            '0'..='7' => {
                let rest =
                    (0..2).try_fold(0u32, |acc, _| Some(acc * 8 + chars.next()?.to_digit(8)?))?;
                u8::try_from(e.to_digit(8)? * 64 + rest).ok()?
            }
            'u' | 'U' => {
                let c = char::from_u32(hex(&mut chars, if e == 'u' { 4 } else { 8 })?)?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(byte);
    }
    String::from_utf8(out).ok()
}
