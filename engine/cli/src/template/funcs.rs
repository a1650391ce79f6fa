//! The functions a template can call: Go's builtins (`and or not len index slice eq ne lt
//! le gt ge print printf println`) and the helpers Docker adds for `--format` (`json join
//! lower upper title split truncate pad`). Anything that builds a value is charged to the
//! render's budget before or as it is built.

use std::cmp::Ordering;
use std::rc::Rc;

use serde_json::Value;

use super::TemplateError;
use super::exec::{Exec, Key, Val, size, truth};
use super::format::{self, as_int, cmp_numbers, type_name};
use super::parse::{Arg, Span};

/// A function known to templates; the parser resolves names to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Print,
    Printf,
    Println,
    Json,
    Join,
    Lower,
    Upper,
    Title,
    Split,
    Truncate,
    Pad,
}

const TABLE: [(&str, Func); 23] = [
    ("and", Func::And),
    ("or", Func::Or),
    ("not", Func::Not),
    ("len", Func::Len),
    ("index", Func::Index),
    ("slice", Func::Slice),
    ("eq", Func::Eq),
    ("ne", Func::Ne),
    ("lt", Func::Lt),
    ("le", Func::Le),
    ("gt", Func::Gt),
    ("ge", Func::Ge),
    ("print", Func::Print),
    ("printf", Func::Printf),
    ("println", Func::Println),
    ("json", Func::Json),
    ("join", Func::Join),
    ("lower", Func::Lower),
    ("upper", Func::Upper),
    ("title", Func::Title),
    ("split", Func::Split),
    ("truncate", Func::Truncate),
    ("pad", Func::Pad),
];

impl Func {
    pub fn lookup(name: &str) -> Option<Func> {
        TABLE.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

fn boolean<'a>(b: bool) -> Val<'a> {
    Val::Ref(if b { &TRUE } else { &FALSE })
}

/// Calls `f` with `args` (evaluated against `dot`) and the previous pipeline stage's value.
pub(super) fn call<'a>(
    ex: &mut Exec<'a>,
    f: Func,
    args: &'a [Arg],
    dot: &Val<'a>,
    fin: Option<Val<'a>>,
    span: Span,
) -> Result<Val<'a>, TemplateError> {
    let name = f.name();
    let total = args.len() + usize::from(fin.is_some());
    let count = |want: &str| format!("wrong number of args for {name}: want {want} got {total}");
    if matches!(f, Func::And | Func::Or) {
        // Short-circuit: later arguments are not evaluated once the answer is known.
        if total == 0 {
            return Err(ex.err(span, count("at least 1")));
        }
        let mut last = Val::Missing;
        for a in args {
            let v = ex.arg(a, dot)?;
            if truth(&v) == (f == Func::Or) {
                return Ok(v);
            }
            last = v;
        }
        return Ok(fin.unwrap_or(last));
    }
    let mut vals = Vec::with_capacity(total);
    for a in args {
        vals.push(ex.arg(a, dot)?);
    }
    vals.extend(fin);
    let v: Vec<&Value> = vals.iter().map(Val::or_null).collect();
    let arity = match f {
        Func::Not | Func::Len | Func::Json | Func::Lower | Func::Upper | Func::Title => Some(1),
        Func::Ne
        | Func::Lt
        | Func::Le
        | Func::Gt
        | Func::Ge
        | Func::Join
        | Func::Split
        | Func::Truncate => Some(2),
        Func::Pad => Some(3),
        _ => None,
    };
    if let Some(n) = arity.filter(|&n| n != total) {
        return Err(ex.err(span, count(&n.to_string())));
    }
    if total == 0 && matches!(f, Func::Index | Func::Slice | Func::Eq | Func::Printf) {
        return Err(ex.err(span, count("at least 1")));
    }
    let fail = |ex: &Exec, msg: String| ex.err(span, format!("error calling {name}: {msg}"));
    let int = |ex: &Exec, v: &Value| {
        as_int(v).ok_or_else(|| {
            ex.err(
                span,
                format!("wrong type for value; expected int; got {}", type_name(v)),
            )
        })
    };
    match f {
        Func::And | Func::Or => Ok(Val::Missing),
        Func::Not => Ok(boolean(!truth(&vals[0]))),
        Func::Len => {
            let n = match v[0] {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => return Err(fail(ex, format!("len of type {}", type_name(other)))),
            };
            ex.own(Value::from(n))
        }
        Func::Index => {
            let mut cur = vals[0].clone();
            for key in &v[1..] {
                let next = match cur.get() {
                    None | Some(Value::Null) => Val::Missing,
                    Some(Value::Object(_)) => match key {
                        Value::String(k) => ex.project(&cur, &Key::Field(k))?,
                        _ => {
                            return Err(fail(
                                ex,
                                format!("value has type {}; should be string", type_name(key)),
                            ));
                        }
                    },
                    Some(Value::Array(a)) => {
                        let i = position(ex, span, name, key, a.len(), a.len())?;
                        ex.project(&cur, &Key::Index(i))?
                    }
                    Some(Value::String(s)) => {
                        let i = position(ex, span, name, key, s.len(), s.len())?;
                        ex.own(Value::from(s.as_bytes().get(i).copied().unwrap_or(0)))?
                    }
                    Some(other) => {
                        return Err(fail(
                            ex,
                            format!("can't index item of type {}", type_name(other)),
                        ));
                    }
                };
                cur = next;
            }
            Ok(cur)
        }
        Func::Slice => {
            if total > 4 {
                return Err(ex.err(span, count("at most 4")));
            }
            let len = match v[0] {
                Value::String(s) if total == 4 => {
                    return Err(fail(ex, format!("cannot 3-index slice a string: {s:?}")));
                }
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                other => {
                    return Err(fail(
                        ex,
                        format!("can't slice item of type {}", type_name(other)),
                    ));
                }
            };
            let mut idx = [0, len, len];
            for (n, key) in v[1..].iter().enumerate() {
                idx[n] = position(ex, span, name, key, len + 1, len)?;
                if n > 0 && idx[n - 1] > idx[n] {
                    return Err(fail(
                        ex,
                        format!("invalid slice index: {} > {}", idx[n - 1], idx[n]),
                    ));
                }
            }
            let sliced = match v[0] {
                Value::String(s) => match s.get(idx[0]..idx[1]) {
                    Some(part) => Value::String(part.to_string()),
                    None => {
                        return Err(fail(
                            ex,
                            "slice of string not at a character boundary".into(),
                        ));
                    }
                },
                Value::Array(a) => {
                    let part = a.get(idx[0]..idx[1]).unwrap_or_default();
                    ex.alloc(part.iter().map(size).sum())?;
                    Value::Array(part.to_vec())
                }
                _ => Value::Null,
            };
            ex.own(sliced)
        }
        Func::Eq => {
            if total == 1 {
                return Err(fail(ex, "missing argument for comparison".into()));
            }
            for b in &v[1..] {
                charge_compare(ex, v[0], b)?;
                if equal(v[0], b).map_err(|m| fail(ex, m))? {
                    return Ok(boolean(true));
                }
            }
            Ok(boolean(false))
        }
        Func::Ne => {
            charge_compare(ex, v[0], v[1])?;
            Ok(boolean(!equal(v[0], v[1]).map_err(|m| fail(ex, m))?))
        }
        Func::Lt | Func::Le | Func::Gt | Func::Ge => {
            charge_compare(ex, v[0], v[1])?;
            let o = order(v[0], v[1]).map_err(|m| fail(ex, m))?;
            Ok(boolean(match f {
                Func::Lt => o == Ordering::Less,
                Func::Le => o != Ordering::Greater,
                Func::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        Func::Print | Func::Println | Func::Printf => {
            let mut buf = ex.buf();
            let r = match f {
                Func::Print => format::sprint(&mut buf, &v),
                Func::Println => format::sprintln(&mut buf, &v),
                _ => {
                    let fmt = as_str(ex, span, v[0])?;
                    format::sprintf(&mut buf, fmt, &v[1..])
                }
            };
            r.map_err(|_| ex.alloc_overflow())?;
            ex.own_buf(buf)
        }
        Func::Json => {
            ex.alloc(size(v[0]))?;
            let s = serde_json::to_string(v[0]).map_err(|e| fail(ex, e.to_string()))?;
            ex.own(Value::String(s))
        }
        Func::Join => {
            let sep = as_str(ex, span, v[1])?;
            let items = match v[0] {
                Value::Array(a) => a.as_slice(),
                Value::Null => &[],
                other => {
                    let msg = format!(
                        "wrong type for value; expected []string; got {}",
                        type_name(other)
                    );
                    return Err(ex.err(span, msg));
                }
            };
            let mut buf = ex.buf();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(sep).map_err(|_| ex.alloc_overflow())?;
                }
                format::write_v(&mut buf, item).map_err(|_| ex.alloc_overflow())?;
            }
            ex.own_buf(buf)
        }
        Func::Lower | Func::Upper | Func::Title => {
            let s = as_str(ex, span, v[0])?;
            ex.alloc(s.len())?;
            let out = match f {
                Func::Lower => s.to_lowercase(),
                Func::Upper => s.to_uppercase(),
                _ => title(s),
            };
            ex.own(Value::String(out))
        }
        Func::Split => {
            let (s, sep) = (as_str(ex, span, v[0])?, as_str(ex, span, v[1])?);
            // Charge for the pieces before building them: `split BIG ""` is one per char.
            let pieces = if sep.is_empty() {
                s.chars().count()
            } else {
                s.matches(sep).count() + 1
            };
            ex.alloc(pieces.saturating_mul(48).saturating_add(s.len()))?;
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep).map(|p| Value::String(p.to_string())).collect()
            };
            Ok(Val::Own(Rc::new(Value::Array(parts))))
        }
        Func::Truncate => {
            let (s, n) = (as_str(ex, span, v[0])?, int(ex, v[1])?);
            let n = usize::try_from(n)
                .map_err(|_| fail(ex, format!("slice bounds out of range [:{n}]")))?;
            ex.own(Value::String(s.chars().take(n).collect()))
        }
        Func::Pad => {
            let (s, l, r) = (as_str(ex, span, v[0])?, int(ex, v[1])?, int(ex, v[2])?);
            let (Ok(l), Ok(r)) = (usize::try_from(l), usize::try_from(r)) else {
                return Err(fail(ex, "negative Repeat count".into()));
            };
            if s.is_empty() {
                return ex.own(Value::String(String::new()));
            }
            ex.alloc(l.saturating_add(r).saturating_add(s.len()))?;
            ex.own(Value::String(format!(
                "{}{s}{}",
                " ".repeat(l),
                " ".repeat(r)
            )))
        }
    }
}

/// A string argument, or Go's wrong-type error.
fn as_str<'v>(ex: &Exec, span: Span, v: &'v Value) -> Result<&'v str, TemplateError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(ex.err(
            span,
            format!(
                "wrong type for value; expected string; got {}",
                type_name(v)
            ),
        )),
    }
}

/// An integer argument as an index below `bound` (error names it when out of range).
fn position(
    ex: &Exec,
    span: Span,
    name: &str,
    key: &Value,
    bound: usize,
    len: usize,
) -> Result<usize, TemplateError> {
    let Some(i) = as_int(key) else {
        let msg = format!(
            "error calling {name}: cannot index slice/array with type {}",
            type_name(key)
        );
        return Err(ex.err(span, msg));
    };
    match usize::try_from(i) {
        Ok(u) if u < bound => Ok(u),
        _ => Err(ex.err(
            span,
            format!("error calling {name}: index out of range: {i} (length {len})"),
        )),
    }
}

/// Comparing strings costs their length.
fn charge_compare(ex: &mut Exec, a: &Value, b: &Value) -> Result<(), TemplateError> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => ex.work(x.len().min(y.len()) as u64),
        _ => Ok(()),
    }
}

/// Go's `eq` on two operands: basic values compare, nil equals only nil.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Number(x), Value::Number(y)) => Ok(cmp_numbers(x, y) == Some(Ordering::Equal)),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (v @ (Value::Array(_) | Value::Object(_)), _)
        | (_, v @ (Value::Array(_) | Value::Object(_))) => {
            Err(format!("uncomparable type {}", type_name(v)))
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's `lt` and friends: numbers with numbers, strings with strings.
fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            cmp_numbers(x, y).ok_or_else(|| "incompatible types for comparison".into())
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
            Err("incompatible types for comparison".into())
        }
        _ => Err("invalid type for comparison".into()),
    }
}

/// Go's `strings.Title`: upper-cases each letter that follows a separator.
fn title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric() && c.is_whitespace()
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_sep(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}
