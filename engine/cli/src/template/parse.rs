//! The parser: tokens to the tree the executor walks, with Go's checks done up front
//! (functions exist, variables are declared, `{{break}}` is inside `{{range}}`) so a bad
//! template fails before any output. Blocks and parenthesised pipelines count toward
//! [`MAX_DEPTH`](super::MAX_DEPTH), which bounds the recursion here and in the executor.

use serde_json::Value;

use super::funcs::Func;
use super::lex::{Kw, Tok, Token, lex};
use super::{MAX_DEPTH, TemplateError, syntax};

/// A byte range of the template source, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
}

/// One node of a list: what the executor does in order.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    /// `{{pipeline}}`: prints the value unless the pipeline declares variables.
    Action(Pipe),
    /// `{{if}}` or `{{with}}` (`with` rebinds dot), with its `else if`/`else with` chain.
    If {
        with: bool,
        branches: Vec<Branch>,
        otherwise: Option<Vec<Node>>,
    },
    Range {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
    },
    Break,
    Continue,
}

/// One condition of an `if`/`with` chain and the list it guards.
#[derive(Debug, Clone)]
pub(super) struct Branch {
    pub pipe: Pipe,
    pub body: Vec<Node>,
}

/// `$x := a | b c`: declared (or assigned) variables and the commands.
#[derive(Debug, Clone)]
pub(super) struct Pipe {
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
    pub span: Span,
}

/// One stage of a pipeline: a function and its arguments, or a single operand.
#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub args: Vec<Arg>,
    pub span: Span,
}

/// An operand and where it is.
#[derive(Debug, Clone)]
pub(super) struct Arg {
    pub kind: ArgKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(super) enum ArgKind {
    Dot,
    Nil,
    Lit(Value),
    /// `.A.B`: a field chain from dot.
    Field(Vec<String>),
    /// `$x.A.B`: a variable and a field chain from it.
    Var(String, Vec<String>),
    Func(Func),
    Pipe(Box<Pipe>),
    /// `(pipeline).A.B`.
    Chain(Box<Pipe>, Vec<String>),
}

/// What ended a list.
enum End {
    Eof(usize),
    Close(usize),
    /// `{{else}}`, or `{{else if}}`/`{{else with}}` with the keyword.
    Else(usize, Option<Kw>),
}

/// Parses a whole template.
pub(super) fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        last_end: 0,
        vars: vec!["$".into()],
        depth: 0,
        ranges: 0,
    };
    match p.list()? {
        (nodes, End::Eof(_)) => Ok(nodes),
        (_, End::Close(pos)) => Err(syntax(src, pos, "unexpected {{end}}".into())),
        (_, End::Else(pos, _)) => Err(syntax(src, pos, "unexpected {{else}}".into())),
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    i: usize,
    last_end: usize,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    depth: usize,
    /// How many `{{range}}` bodies enclose the current list.
    ranges: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        let eof = Token {
            tok: Tok::Eof,
            pos: self.src.len(),
            end: self.src.len(),
        };
        self.toks.get(self.i).cloned().unwrap_or(eof)
    }

    fn next(&mut self) -> Token {
        let t = self.peek();
        if self.i < self.toks.len() {
            self.i += 1;
            self.last_end = t.end;
        }
        t
    }

    fn skip_space(&mut self) {
        while self.toks.get(self.i).is_some_and(|t| t.tok == Tok::Space) {
            self.i += 1;
        }
    }

    fn peek_non_space(&mut self) -> Token {
        self.skip_space();
        self.peek()
    }

    fn next_non_space(&mut self) -> Token {
        self.skip_space();
        self.next()
    }

    fn err(&self, pos: usize, msg: String) -> TemplateError {
        syntax(self.src, pos, msg)
    }

    /// Go's `unexpected X in Y`, naming the token as written.
    fn unexpected(&self, t: &Token, context: &str) -> TemplateError {
        let what = match t.tok {
            Tok::Eof => "EOF".to_string(),
            _ => format!("{:?}", self.src.get(t.pos..t.end).unwrap_or("")),
        };
        self.err(t.pos, format!("unexpected {what} in {context}"))
    }

    fn enter(&mut self, pos: usize) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                pos,
                format!("template nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn eof(&self, pos: usize) -> TemplateError {
        let (line, _) = super::line_col(self.src, pos);
        TemplateError::UnexpectedEof { line }
    }

    /// Text and actions up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, End), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::Left => {
                    if let Some(end) = self.action(&mut nodes)? {
                        return Ok((nodes, end));
                    }
                }
                Tok::Eof => return Ok((nodes, End::Eof(t.pos))),
                _ => return Err(self.unexpected(&t, "text")),
            }
        }
    }

    /// One action after its `{{`; `Some` when it ends the enclosing list.
    fn action(&mut self, nodes: &mut Vec<Node>) -> Result<Option<End>, TemplateError> {
        let t = self.peek_non_space();
        let Tok::Kw(kw) = t.tok else {
            nodes.push(Node::Action(self.pipeline("command", &Tok::Right)?));
            return Ok(None);
        };
        self.next();
        match kw {
            Kw::If | Kw::With => nodes.push(self.if_with(kw == Kw::With, t.pos)?),
            Kw::Range => nodes.push(self.range(t.pos)?),
            Kw::End => {
                self.expect_right("end")?;
                return Ok(Some(End::Close(t.pos)));
            }
            Kw::Else => {
                let n = self.peek_non_space();
                if let Tok::Kw(k @ (Kw::If | Kw::With)) = n.tok {
                    self.next();
                    return Ok(Some(End::Else(t.pos, Some(k))));
                }
                self.expect_right("else")?;
                return Ok(Some(End::Else(t.pos, None)));
            }
            Kw::Break | Kw::Continue => {
                let name = if kw == Kw::Break { "break" } else { "continue" };
                if self.ranges == 0 {
                    return Err(self.err(t.pos, format!("{{{{{name}}}}} outside {{{{range}}}}")));
                }
                self.expect_right(name)?;
                nodes.push(if kw == Kw::Break {
                    Node::Break
                } else {
                    Node::Continue
                });
            }
            Kw::Define | Kw::Template | Kw::Block => {
                let name = self.src.get(t.pos..t.end).unwrap_or("");
                return Err(self.err(t.pos, format!("{{{{{name}}}}} is not supported")));
            }
        }
        Ok(None)
    }

    fn expect_right(&mut self, context: &str) -> Result<(), TemplateError> {
        let t = self.next_non_space();
        if t.tok == Tok::Right {
            Ok(())
        } else {
            Err(self.unexpected(&t, context))
        }
    }

    /// `{{if}}`/`{{with}}` after the keyword, through its `{{end}}`.
    fn if_with(&mut self, with: bool, pos: usize) -> Result<Node, TemplateError> {
        self.enter(pos)?;
        let (context, kw) = if with {
            ("with", Kw::With)
        } else {
            ("if", Kw::If)
        };
        let mark = self.vars.len();
        let mut branches = Vec::new();
        let mut otherwise = None;
        let mut pipe = self.pipeline(context, &Tok::Right)?;
        loop {
            let body_mark = self.vars.len();
            let (body, end) = self.list()?;
            self.vars.truncate(body_mark);
            branches.push(Branch { pipe, body });
            match end {
                End::Close(_) => break,
                End::Eof(p) => return Err(self.eof(p)),
                End::Else(_, Some(k)) if k == kw => pipe = self.pipeline(context, &Tok::Right)?,
                End::Else(p, Some(_)) => {
                    return Err(self.err(
                        p,
                        format!("unexpected {{{{else}}}} chain in {{{{{context}}}}}"),
                    ));
                }
                End::Else(_, None) => {
                    otherwise = Some(self.else_list(body_mark)?);
                    break;
                }
            }
        }
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Node::If {
            with,
            branches,
            otherwise,
        })
    }

    /// The list after `{{else}}`, which must end with `{{end}}`.
    fn else_list(&mut self, mark: usize) -> Result<Vec<Node>, TemplateError> {
        let (body, end) = self.list()?;
        self.vars.truncate(mark);
        match end {
            End::Close(_) => Ok(body),
            End::Eof(p) => Err(self.eof(p)),
            End::Else(p, _) => Err(self.err(p, "expected {{end}}; found {{else}}".into())),
        }
    }

    fn range(&mut self, pos: usize) -> Result<Node, TemplateError> {
        self.enter(pos)?;
        let mark = self.vars.len();
        let pipe = self.pipeline("range", &Tok::Right)?;
        let body_mark = self.vars.len();
        self.ranges += 1;
        let listed = self.list();
        self.ranges -= 1;
        let (body, end) = listed?;
        self.vars.truncate(body_mark);
        let otherwise = match end {
            End::Close(_) => None,
            End::Eof(p) => return Err(self.eof(p)),
            End::Else(_, None) => Some(self.else_list(body_mark)?),
            End::Else(p, Some(_)) => {
                return Err(self.err(p, "unexpected {{else}} chain in {{range}}".into()));
            }
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Node::Range {
            pipe,
            body,
            otherwise,
        })
    }

    /// `[$x :=] cmd | cmd ...` up to and including `closer` (`}}` or `)`).
    fn pipeline(&mut self, context: &str, closer: &Tok) -> Result<Pipe, TemplateError> {
        let start = self.peek_non_space().pos;
        let mut decl = Vec::new();
        let mut assign = false;
        let save = self.i;
        if let Tok::Var(name) = self.peek_non_space().tok {
            self.next();
            let n = self.next_non_space();
            match n.tok {
                Tok::Declare | Tok::Assign => {
                    decl.push(name);
                    assign = n.tok == Tok::Assign;
                }
                Tok::Comma if context == "range" => {
                    decl.push(name);
                    let v = self.next_non_space();
                    let Tok::Var(second) = v.tok else {
                        return Err(self.err(v.pos, "range can only initialize variables".into()));
                    };
                    decl.push(second);
                    let op = self.next_non_space();
                    match op.tok {
                        Tok::Declare | Tok::Assign => assign = op.tok == Tok::Assign,
                        _ => return Err(self.unexpected(&op, "range declaration")),
                    }
                }
                Tok::Comma => {
                    return Err(self.err(n.pos, format!("too many declarations in {context}")));
                }
                _ => self.i = save,
            }
        }
        if assign {
            if let Some(v) = decl.iter().find(|v| !self.vars.contains(v)) {
                return Err(self.err(start, format!("undefined variable {v:?}")));
            }
        }
        let mut cmds = Vec::new();
        loop {
            let t = self.peek_non_space();
            if &t.tok == closer {
                self.next();
                break;
            }
            if !starts_operand(&t.tok) {
                return Err(self.unexpected(&t, context));
            }
            let (cmd, piped) = self.command()?;
            cmds.push(cmd);
            if piped {
                let t = self.peek_non_space();
                if !starts_operand(&t.tok) {
                    return Err(self.unexpected(&t, "command after \"|\""));
                }
            }
        }
        let span = Span {
            start,
            end: self.last_end,
        };
        if cmds.is_empty() {
            return Err(self.err(start, format!("missing value for {context}")));
        }
        for (i, cmd) in cmds.iter().enumerate().skip(1) {
            if let Some(Arg {
                kind: ArgKind::Dot | ArgKind::Nil | ArgKind::Lit(_),
                span,
            }) = cmd.args.first()
            {
                let msg = format!("non executable command in pipeline stage {}", i + 1);
                return Err(self.err(span.start, msg));
            }
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe {
            decl,
            assign,
            cmds,
            span,
        })
    }

    /// One command; `true` when it ended at a `|`.
    fn command(&mut self) -> Result<(Cmd, bool), TemplateError> {
        let start = self.peek_non_space().pos;
        let mut args = Vec::new();
        let mut piped = false;
        loop {
            self.skip_space();
            if let Some(arg) = self.operand()? {
                args.push(arg);
            }
            let t = self.next();
            match t.tok {
                Tok::Space => continue,
                Tok::Right | Tok::RParen => self.i -= 1,
                Tok::Pipe => piped = true,
                _ => return Err(self.unexpected(&t, "operand")),
            }
            break;
        }
        let end = args.last().map_or(start, |a: &Arg| a.span.end);
        if args.is_empty() {
            return Err(self.err(start, "empty command".into()));
        }
        Ok((
            Cmd {
                args,
                span: Span { start, end },
            },
            piped,
        ))
    }

    /// A term and the fields chained onto it (`$x.A`, `(pipe).B`).
    fn operand(&mut self) -> Result<Option<Arg>, TemplateError> {
        let Some(mut arg) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Tok::Field(f) = self.peek().tok {
            fields.push(f);
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(arg));
        }
        arg.kind = match arg.kind {
            ArgKind::Field(mut names) => {
                names.extend(fields);
                ArgKind::Field(names)
            }
            ArgKind::Var(name, mut names) => {
                names.extend(fields);
                ArgKind::Var(name, names)
            }
            ArgKind::Pipe(p) => ArgKind::Chain(p, fields),
            _ => {
                let term = self.src.get(arg.span.start..arg.span.end).unwrap_or("");
                return Err(self.err(arg.span.start, format!("unexpected . after term {term:?}")));
            }
        };
        arg.span.end = self.last_end;
        Ok(Some(arg))
    }

    fn term(&mut self) -> Result<Option<Arg>, TemplateError> {
        let t = self.peek_non_space();
        let kind = match t.tok {
            Tok::Ident(name) => match Func::lookup(&name) {
                Some(f) => ArgKind::Func(f),
                None => return Err(self.err(t.pos, format!("function {name:?} not defined"))),
            },
            Tok::Dot => ArgKind::Dot,
            Tok::Nil => ArgKind::Nil,
            Tok::Lit(v) => ArgKind::Lit(v),
            Tok::Field(name) => ArgKind::Field(vec![name]),
            Tok::Var(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err(t.pos, format!("undefined variable {name:?}")));
                }
                ArgKind::Var(name, Vec::new())
            }
            Tok::LParen => {
                self.next();
                self.enter(t.pos)?;
                let pipe = self.pipeline("parenthesized pipeline", &Tok::RParen)?;
                self.depth -= 1;
                let span = Span {
                    start: t.pos,
                    end: self.last_end,
                };
                return Ok(Some(Arg {
                    kind: ArgKind::Pipe(Box::new(pipe)),
                    span,
                }));
            }
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(Arg {
            kind,
            span: Span {
                start: t.pos,
                end: t.end,
            },
        }))
    }
}

/// Whether a token can begin a command.
fn starts_operand(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Ident(_)
            | Tok::Dot
            | Tok::Nil
            | Tok::Lit(_)
            | Tok::Field(_)
            | Tok::Var(_)
            | Tok::LParen
    )
}
