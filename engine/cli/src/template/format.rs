//! Printing values the way Go's `fmt` prints decoded JSON (`%v`, `Sprint`, `Sprintf`), into
//! buffers with a byte cap, so a template can never build a string past its budget.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// A buffer refused a write: the cap it was given would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Overflow;

/// A string that refuses to grow past `cap` bytes.
#[derive(Debug)]
pub(super) struct Buf {
    pub s: String,
    pub cap: usize,
}

impl Buf {
    pub fn new(cap: usize) -> Buf {
        Buf {
            s: String::new(),
            cap,
        }
    }

    pub fn push(&mut self, s: &str) -> Result<(), Overflow> {
        if self.s.len().saturating_add(s.len()) > self.cap {
            return Err(Overflow);
        }
        self.s.push_str(s);
        Ok(())
    }

    pub fn push_char(&mut self, c: char) -> Result<(), Overflow> {
        self.push(c.encode_utf8(&mut [0; 4]))
    }
}

/// Go's name for the type `encoding/json` decodes a value to (integers as `int`, as
/// Docker's own structs have them), for error messages.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A number as `%v` prints it: integers (and whole floats) without decimals.
pub(super) fn number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f.fract() == 0.0 {
            format!("{f:.0}")
        } else {
            format!("{f}")
        }
    }
}

/// A number as an integer, when it is one (whole floats count, as Go's constants do).
pub(super) fn as_int(v: &Value) -> Option<i64> {
    let Value::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Whole and within i64: the cast is exact.
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// Compares two numbers exactly when both are integers, as floats otherwise.
pub(super) fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Object entries in sorted key order, as Go prints and ranges over maps.
pub(super) fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// `%v`: strings as is, `[a b]` for arrays, `map[k:v]` for objects, `<nil>` for null.
pub(super) fn write_v(buf: &mut Buf, v: &Value) -> Result<(), Overflow> {
    match v {
        Value::Null => buf.push("<nil>"),
        Value::Bool(b) => buf.push(if *b { "true" } else { "false" }),
        Value::Number(n) => buf.push(&number(n)),
        Value::String(s) => buf.push(s),
        Value::Array(a) => {
            buf.push("[")?;
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    buf.push(" ")?;
                }
                write_v(buf, e)?;
            }
            buf.push("]")
        }
        Value::Object(m) => {
            buf.push("map[")?;
            for (i, (k, e)) in sorted(m).into_iter().enumerate() {
                if i > 0 {
                    buf.push(" ")?;
                }
                buf.push(k)?;
                buf.push(":")?;
                write_v(buf, e)?;
            }
            buf.push("]")
        }
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
pub(super) fn sprint(buf: &mut Buf, args: &[&Value]) -> Result<(), Overflow> {
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            buf.push(" ")?;
        }
        write_v(buf, a)?;
    }
    Ok(())
}

/// Go's `fmt.Sprintln`: spaces between all operands, and a newline.
pub(super) fn sprintln(buf: &mut Buf, args: &[&Value]) -> Result<(), Overflow> {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            buf.push(" ")?;
        }
        write_v(buf, a)?;
    }
    buf.push("\n")
}

/// Go's `strconv.Quote`, for `%q`.
pub(super) fn quote(buf: &mut Buf, s: &str) -> Result<(), Overflow> {
    buf.push("\"")?;
    for c in s.chars() {
        match c {
            '"' => buf.push("\\\"")?,
            '\\' => buf.push("\\\\")?,
            '\n' => buf.push("\\n")?,
            '\r' => buf.push("\\r")?,
            '\t' => buf.push("\\t")?,
            '\x07' => buf.push("\\a")?,
            '\x08' => buf.push("\\b")?,
            '\x0b' => buf.push("\\v")?,
            '\x0c' => buf.push("\\f")?,
            c if u32::from(c) < 0x20 || c == '\x7f' => {
                buf.push(&format!("\\x{:02x}", u32::from(c)))?
            }
            c if c.is_control() => buf.push(&format!("\\u{:04x}", u32::from(c)))?,
            c => buf.push_char(c)?,
        }
    }
    buf.push("\"")
}

/// Go's widths and precisions stop at a million (`%!(BADWIDTH)` past it).
const MAX_NUM: usize = 1_000_000;

#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %t %f %x %X %o %b %c %%`,
/// flags `-+0`, width and precision; Go's `%!v(MISSING)`/`%!(EXTRA ...)` forms for
/// argument mismatches.
pub(super) fn sprintf(buf: &mut Buf, format: &str, args: &[&Value]) -> Result<(), Overflow> {
    let b = format.as_bytes();
    let mut i = 0;
    let mut next_arg = 0;
    while i < b.len() {
        let Some(off) = format[i..].find('%') else {
            buf.push(&format[i..])?;
            break;
        };
        buf.push(&format[i..i + off])?;
        i += off + 1;
        let mut spec = Spec::default();
        while let Some(&c) = b.get(i) {
            match c {
                b'-' => spec.minus = true,
                b'+' => spec.plus = true,
                b'0' => spec.zero = true,
                b' ' | b'#' => {}
                _ => break,
            }
            i += 1;
        }
        let num = |i: &mut usize| {
            let mut n: Option<usize> = None;
            while let Some(d) = b.get(*i).filter(|c| c.is_ascii_digit()) {
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(usize::from(d - b'0')),
                );
                *i += 1;
            }
            n
        };
        spec.width = num(&mut i);
        if b.get(i) == Some(&b'.') {
            i += 1;
            spec.prec = Some(num(&mut i).unwrap_or(0));
        }
        if spec.width.is_some_and(|w| w > MAX_NUM) {
            buf.push("%!(BADWIDTH)")?;
            spec.width = None;
        }
        if spec.prec.is_some_and(|p| p > MAX_NUM) {
            buf.push("%!(BADPREC)")?;
            spec.prec = None;
        }
        let Some(verb) = format[i..].chars().next() else {
            buf.push("%!(NOVERB)")?;
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            buf.push("%")?;
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            buf.push(&format!("%!{verb}(MISSING)"))?;
            continue;
        };
        next_arg += 1;
        let mut one = Buf::new(buf.cap.saturating_sub(buf.s.len()));
        verb_value(&mut one, verb, spec, arg)?;
        pad(
            buf,
            &one.s,
            spec,
            matches!(verb, 'd' | 'f' | 'F' | 'x' | 'X' | 'o' | 'b'),
        )?;
    }
    if next_arg < args.len() {
        buf.push("%!(EXTRA ")?;
        for (n, a) in args[next_arg..].iter().enumerate() {
            if n > 0 {
                buf.push(", ")?;
            }
            bad_value(buf, a)?;
        }
        buf.push(")")?;
    }
    Ok(())
}

/// `type=value`, as Go's bad-verb and extra-argument forms show an operand.
fn bad_value(buf: &mut Buf, v: &Value) -> Result<(), Overflow> {
    if v.is_null() {
        return buf.push("<nil>");
    }
    buf.push(type_name(v))?;
    buf.push("=")?;
    write_v(buf, v)
}

/// Width: spaces on the left (or right with `-`), zeros after the sign for numbers with `0`.
fn pad(buf: &mut Buf, s: &str, spec: Spec, numeric: bool) -> Result<(), Overflow> {
    let len = s.chars().count();
    let fill = spec.width.unwrap_or(0).saturating_sub(len);
    if fill == 0 {
        return buf.push(s);
    }
    if spec.minus {
        buf.push(s)?;
        return buf.push(&" ".repeat(fill));
    }
    if spec.zero && numeric {
        let digits = s.trim_start_matches(['-', '+']);
        buf.push(&s[..s.len() - digits.len()])?;
        buf.push(&"0".repeat(fill))?;
        return buf.push(digits);
    }
    buf.push(&" ".repeat(fill))?;
    buf.push(s)
}

/// One operand under one verb; arrays apply the verb to each element, as Go does.
fn verb_value(buf: &mut Buf, verb: char, spec: Spec, v: &Value) -> Result<(), Overflow> {
    let sign = |n: String| {
        if spec.plus && !n.starts_with('-') {
            format!("+{n}")
        } else {
            n
        }
    };
    match (verb, v) {
        ('v', _) => write_v(buf, v),
        ('s', Value::String(s)) => match spec.prec {
            Some(p) => buf.push(&s.chars().take(p).collect::<String>()),
            None => buf.push(s),
        },
        ('s', _) => write_v(buf, v),
        ('q', Value::String(s)) => quote(buf, s),
        ('t', Value::Bool(b)) => buf.push(if *b { "true" } else { "false" }),
        ('x' | 'X', Value::String(s)) => {
            let hex: String = s.bytes().map(|c| format!("{c:02x}")).collect();
            buf.push(&if verb == 'X' { hex.to_uppercase() } else { hex })
        }
        ('d' | 'x' | 'X' | 'o' | 'b' | 'c', Value::Number(_)) if as_int(v).is_some() => {
            let i = i128::from(as_int(v).unwrap_or(0));
            let (neg, m) = (i < 0, i.unsigned_abs());
            let digits = match verb {
                'd' => m.to_string(),
                'x' => format!("{m:x}"),
                'X' => format!("{m:X}"),
                'o' => format!("{m:o}"),
                'b' => format!("{m:b}"),
                _ => {
                    let c = u32::try_from(i)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or('\u{fffd}');
                    return buf.push_char(c);
                }
            };
            buf.push(&sign(if neg { format!("-{digits}") } else { digits }))
        }
        ('f' | 'F', Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            buf.push(&sign(format!("{f:.*}", spec.prec.unwrap_or(6))))
        }
        (_, Value::Array(a)) => {
            buf.push("[")?;
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    buf.push(" ")?;
                }
                verb_value(buf, verb, spec, e)?;
            }
            buf.push("]")
        }
        _ => {
            buf.push(&format!("%!{verb}("))?;
            bad_value(buf, v)?;
            buf.push(")")
        }
    }
}
