//! The executor: walks the parsed tree over a JSON value with Go's semantics (dot, variables
//! scoped to blocks, missing map keys as `<no value>`), under three budgets: output bytes,
//! bytes of values built while rendering, and work, so no template can exhaust memory or
//! spin for long on any data.

use std::rc::Rc;

use serde_json::Value;

use super::format::{self, Buf, sorted, type_name};
use super::funcs;
use super::parse::{Arg, ArgKind, Node, Pipe, Span};
use super::{MAX_OUTPUT, TemplateError, line_col};

/// Bytes of strings and values functions may build in one render (they can be held in
/// variables, so this bounds memory beyond the output).
const MAX_ALLOC: usize = 256 << 20;
/// Work units in one render: a node costs 64, a byte compared or copied costs one.
const MAX_WORK: u64 = 1 << 28;
const STEP: u64 = 64;

pub(super) static NULL: Value = Value::Null;

/// A value during rendering: a missing map key (Go's invalid value), a reference into the
/// data or the template's literals, or a value built while rendering.
#[derive(Debug, Clone)]
pub(super) enum Val<'a> {
    Missing,
    Ref(&'a Value),
    Own(Rc<Value>),
}

impl Val<'_> {
    /// The JSON value; `None` for a missing key.
    pub fn get(&self) -> Option<&Value> {
        match self {
            Val::Missing => None,
            Val::Ref(v) => Some(v),
            Val::Own(v) => Some(v),
        }
    }

    /// The value a function sees: Go passes a missing key as nil.
    pub fn or_null(&self) -> &Value {
        self.get().unwrap_or(&NULL)
    }
}

/// Go's truth: false, 0, "", nil, empty arrays and maps (and missing keys) are false.
pub(super) fn truth(v: &Val) -> bool {
    match v.get() {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// How a list ended: normally, or at `{{break}}`/`{{continue}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// A step down into a value.
pub(super) enum Key<'k> {
    Field(&'k str),
    Index(usize),
}

fn sub<'v>(v: &'v Value, key: &Key) -> Option<&'v Value> {
    match key {
        Key::Field(k) => v.as_object()?.get(*k),
        Key::Index(i) => v.as_array()?.get(*i),
    }
}

/// Approximate heap size of a value, what copying it costs.
pub(super) fn size(v: &Value) -> usize {
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(16);
        match v {
            Value::String(s) => total = total.saturating_add(s.len()),
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => {
                for (k, e) in m {
                    total = total.saturating_add(k.len());
                    stack.push(e);
                }
            }
            _ => {}
        }
    }
    total
}

pub(super) struct Exec<'a> {
    src: &'a str,
    root: &'a Value,
    vars: Vec<(&'a str, Val<'a>)>,
    out: Buf,
    alloc: usize,
    work: u64,
}

/// Renders `nodes` (parsed from `src`) over `data`.
pub(super) fn render(src: &str, nodes: &[Node], data: &Value) -> Result<String, TemplateError> {
    let mut ex = Exec {
        src,
        root: data,
        vars: vec![("$", Val::Ref(data))],
        out: Buf::new(MAX_OUTPUT),
        alloc: 0,
        work: 0,
    };
    ex.walk(nodes, &Val::Ref(data))?;
    Ok(ex.out.s)
}

impl<'a> Exec<'a> {
    /// An execution error at `span`, in Go's `executing "" at <node>: msg` form.
    pub fn err(&self, span: Span, msg: String) -> TemplateError {
        let (line, col) = line_col(self.src, span.start);
        let text = self.src.get(span.start..span.end).unwrap_or("");
        // Go shows at most 20 characters of the node.
        let node = match text.char_indices().nth(20) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text.to_string(),
        };
        TemplateError::Exec {
            line,
            col,
            node,
            msg,
        }
    }

    pub fn step(&mut self) -> Result<(), TemplateError> {
        self.work(STEP)
    }

    /// Charges `units` of work (bytes compared, copied).
    pub fn work(&mut self, units: u64) -> Result<(), TemplateError> {
        self.work = self.work.saturating_add(units);
        if self.work > MAX_WORK {
            return Err(TemplateError::Limit(format!(
                "rendering exceeds its work budget ({MAX_WORK} units)"
            )));
        }
        Ok(())
    }

    /// Charges `bytes` of values built while rendering.
    pub fn alloc(&mut self, bytes: usize) -> Result<(), TemplateError> {
        self.alloc = self.alloc.saturating_add(bytes);
        if self.alloc > MAX_ALLOC {
            return Err(self.alloc_overflow());
        }
        self.work(bytes as u64)
    }

    pub fn alloc_overflow(&self) -> TemplateError {
        TemplateError::Limit(format!(
            "values built while rendering exceed {} MiB",
            MAX_ALLOC >> 20
        ))
    }

    /// A buffer for a function's result, capped at what is left of the allocation budget.
    pub fn buf(&self) -> Buf {
        Buf::new(MAX_ALLOC.saturating_sub(self.alloc))
    }

    /// A value built by a function, charged to the budget.
    pub fn own(&mut self, v: Value) -> Result<Val<'a>, TemplateError> {
        self.alloc(size(&v))?;
        Ok(Val::Own(Rc::new(v)))
    }

    /// A string built in `buf` (already capped), charged to the budget.
    pub fn own_buf(&mut self, buf: Buf) -> Result<Val<'a>, TemplateError> {
        self.own(Value::String(buf.s))
    }

    /// `base[key]`: a reference when `base` is, a charged copy when it was built here.
    pub fn project(&mut self, base: &Val<'a>, key: &Key) -> Result<Val<'a>, TemplateError> {
        match base {
            Val::Missing => Ok(Val::Missing),
            Val::Ref(v) => Ok(sub(v, key).map_or(Val::Missing, Val::Ref)),
            Val::Own(v) => match sub(v, key) {
                Some(s) => {
                    let copy = s.clone();
                    self.own(copy)
                }
                None => Ok(Val::Missing),
            },
        }
    }

    fn walk(&mut self, nodes: &'a [Node], dot: &Val<'a>) -> Result<Flow, TemplateError> {
        for node in nodes {
            self.step()?;
            let flow = match node {
                Node::Text(s) => {
                    self.out.push(s).map_err(|_| output_overflow())?;
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        self.print(&v)?;
                    }
                    Flow::Normal
                }
                Node::If {
                    with,
                    branches,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let flow = self.if_with(*with, branches, otherwise.as_deref(), dot);
                    self.vars.truncate(mark);
                    flow?
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let flow = self.range(pipe, body, otherwise.as_deref(), dot);
                    self.vars.truncate(mark);
                    flow?
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn print(&mut self, v: &Val) -> Result<(), TemplateError> {
        let r = match v.get() {
            None => self.out.push("<no value>"),
            Some(v) => format::write_v(&mut self.out, v),
        };
        r.map_err(|_| output_overflow())
    }

    fn if_with(
        &mut self,
        with: bool,
        branches: &'a [super::parse::Branch],
        otherwise: Option<&'a [Node]>,
        dot: &Val<'a>,
    ) -> Result<Flow, TemplateError> {
        for b in branches {
            let v = self.pipe(&b.pipe, dot)?;
            if truth(&v) {
                return self.walk(&b.body, if with { &v } else { dot });
            }
        }
        match otherwise {
            Some(list) => self.walk(list, dot),
            None => Ok(Flow::Normal),
        }
    }

    fn range(
        &mut self,
        pipe: &'a Pipe,
        body: &'a [Node],
        otherwise: Option<&'a [Node]>,
        dot: &Val<'a>,
    ) -> Result<Flow, TemplateError> {
        let val = self.pipe(pipe, dot)?;
        let top = self.vars.len();
        let mut ran = false;
        let mut each =
            |ex: &mut Exec<'a>, key: Val<'a>, elem: Val<'a>| -> Result<bool, TemplateError> {
                ex.step()?;
                ran = true;
                match pipe.decl.as_slice() {
                    [] => {}
                    [e] => ex.set(pipe, top, 1, e, elem.clone())?,
                    [k, e, ..] => {
                        ex.set(pipe, top, 2, k, key)?;
                        ex.set(pipe, top, 1, e, elem.clone())?;
                    }
                }
                let flow = ex.walk(body, &elem);
                ex.vars.truncate(top);
                Ok(flow? != Flow::Break)
            };
        match val.get() {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for i in 0..a.len() {
                    let key = self.own(Value::from(i))?;
                    let elem = self.project(&val, &Key::Index(i))?;
                    if !each(self, key, elem)? {
                        break;
                    }
                }
            }
            Some(Value::Object(m)) => {
                self.work(m.len() as u64)?;
                for (k, _) in sorted(m) {
                    let key = self.own(Value::String(k.clone()))?;
                    let elem = self.project(&val, &Key::Field(k))?;
                    if !each(self, key, elem)? {
                        break;
                    }
                }
            }
            Some(v @ Value::Number(n)) if n.is_i64() || n.is_u64() => {
                if pipe.decl.len() > 1 {
                    return Err(self.err(
                        pipe.span,
                        "can't use two variables to range over an integer".into(),
                    ));
                }
                let n = format::as_int(v).unwrap_or(i64::MAX);
                for i in 0..n {
                    let elem = self.own(Value::from(i))?;
                    if !each(self, elem.clone(), elem)? {
                        break;
                    }
                }
            }
            Some(v) => {
                let mut b = Buf::new(64);
                let _ = format::write_v(&mut b, v);
                return Err(self.err(pipe.span, format!("range can't iterate over {}", b.s)));
            }
        }
        match otherwise {
            Some(list) if !ran => self.walk(list, dot),
            _ => Ok(Flow::Normal),
        }
    }

    /// Sets a range variable: the `nth` from the top of the declared ones, or by name when
    /// the range assigns (`{{range $i, $e = ...}}`).
    fn set(
        &mut self,
        pipe: &Pipe,
        top: usize,
        nth: usize,
        name: &str,
        v: Val<'a>,
    ) -> Result<(), TemplateError> {
        let slot = if pipe.assign {
            self.vars.iter().rposition(|(n, _)| *n == name)
        } else {
            top.checked_sub(nth)
        };
        match slot.and_then(|i| self.vars.get_mut(i)) {
            Some(var) => {
                var.1 = v;
                Ok(())
            }
            None => Err(self.err(pipe.span, format!("undefined variable {name:?}"))),
        }
    }

    pub fn pipe(&mut self, pipe: &'a Pipe, dot: &Val<'a>) -> Result<Val<'a>, TemplateError> {
        let mut v = None;
        for cmd in &pipe.cmds {
            self.step()?;
            let prev = v.take();
            v = Some(match cmd.args.first() {
                Some(Arg {
                    kind: ArgKind::Func(f),
                    ..
                }) => funcs::call(self, *f, &cmd.args[1..], dot, prev, cmd.span)?,
                Some(first) if cmd.args.len() > 1 || prev.is_some() => {
                    let text = self.src.get(first.span.start..first.span.end).unwrap_or("");
                    return Err(self.err(
                        first.span,
                        format!("can't give argument to non-function {text}"),
                    ));
                }
                Some(Arg {
                    kind: ArgKind::Nil,
                    span,
                }) => return Err(self.err(*span, "nil is not a command".into())),
                Some(first) => self.arg(first, dot)?,
                None => return Err(self.err(cmd.span, "empty command".into())),
            });
        }
        let v = v.unwrap_or(Val::Missing);
        for name in &pipe.decl {
            if pipe.assign {
                let top = self.vars.len();
                self.set(pipe, top, 0, name, v.clone())?;
            } else {
                self.vars.push((name, v.clone()));
            }
        }
        Ok(v)
    }

    /// Evaluates one argument (a function name alone is a call without arguments).
    pub fn arg(&mut self, arg: &'a Arg, dot: &Val<'a>) -> Result<Val<'a>, TemplateError> {
        match &arg.kind {
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Ok(Val::Ref(&NULL)),
            ArgKind::Lit(v) => Ok(Val::Ref(v)),
            ArgKind::Field(names) => self.fields(dot.clone(), names, arg.span),
            ArgKind::Var(name, names) => {
                let v = match self.vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v.clone(),
                    None if name == "$" => Val::Ref(self.root),
                    None => return Err(self.err(arg.span, format!("undefined variable {name:?}"))),
                };
                self.fields(v, names, arg.span)
            }
            ArgKind::Func(f) => funcs::call(self, *f, &[], dot, None, arg.span),
            ArgKind::Pipe(p) => self.pipe(p, dot),
            ArgKind::Chain(p, names) => {
                let v = self.pipe(p, dot)?;
                self.fields(v, names, arg.span)
            }
        }
    }

    /// `.A.B` from `v`: missing keys and null give `<no value>`; other types are an error.
    fn fields(
        &mut self,
        mut v: Val<'a>,
        names: &[String],
        span: Span,
    ) -> Result<Val<'a>, TemplateError> {
        for name in names {
            v = match v.get() {
                None | Some(Value::Null) => Val::Missing,
                Some(Value::Object(_)) => self.project(&v, &Key::Field(name))?,
                Some(other) => {
                    let msg = format!("can't evaluate field {name} in type {}", type_name(other));
                    return Err(self.err(span, msg));
                }
            };
        }
        Ok(v)
    }
}

fn output_overflow() -> TemplateError {
    TemplateError::Limit(format!("output exceeds {} MiB", MAX_OUTPUT >> 20))
}
