use super::*;

// ---------------------------------------------------------------- parsing

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

#[derive(Debug)]
pub(super) struct Pipe {
    pub(super) decl: Vec<String>,
    pub(super) assign: bool,
    pub(super) cmds: Vec<Cmd>,
    pub(super) line: usize,
}

#[derive(Debug)]
pub(super) struct Cmd {
    pub(super) args: Vec<Arg>,
    pub(super) src: String,
}

#[derive(Debug)]
pub(super) enum Arg {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Rc<Value>),
    Nil,
    Func(String),
    Pipe(Box<Pipe>, Vec<String>),
}

pub(super) enum Stop {
    Eof,
    End,
    Else(Vec<Tok>),
}

pub(super) struct Parser<'s> {
    pub(super) src: &'s str,
    pub(super) items: Vec<Item>,
    pub(super) i: usize,
    pub(super) depth: usize,
    pub(super) ranges: usize,
    pub(super) line: usize,
}

pub(super) struct Cursor<'t> {
    pub(super) toks: &'t [Tok],
    pub(super) i: usize,
}

impl Cursor<'_> {
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
}

pub(super) fn describe(t: &T) -> String {
    match t {
        T::Dot => ".".into(),
        T::Field(f) => format!(".{f}"),
        T::Var(v) | T::Ident(v) => v.clone(),
        T::Str(s) => format!("{s:?}"),
        T::Int(i) => i.to_string(),
        T::Float(f) => f.to_string(),
        T::LParen => "(".into(),
        T::RParen => ")".into(),
        T::Bar => "|".into(),
        T::Comma => ",".into(),
        T::Declare => ":=".into(),
        T::Assign => "=".into(),
    }
}

impl Parser<'_> {
    pub(super) fn list(&mut self) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        loop {
            let Some(item) = self.items.get_mut(self.i) else {
                return Ok((nodes, Stop::Eof));
            };
            self.i += 1;
            let (toks, line) = match item {
                Item::Text(s) => {
                    nodes.push(Node::Text(std::mem::take(s)));
                    continue;
                }
                Item::Action { toks, line } => (std::mem::take(toks), *line),
            };
            self.line = line;
            let kw = match toks.first().map(|t| &t.t) {
                Some(T::Ident(k)) => k.as_str(),
                None => return Err("missing value for command".into()),
                _ => "",
            };
            match kw {
                "end" => {
                    if let Some(t) = toks.get(1) {
                        return Err(format!("unexpected {} in end", describe(&t.t)));
                    }
                    return Ok((nodes, Stop::End));
                }
                "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec()))),
                "if" | "with" | "range" => {
                    let n = self.control(kw, &toks[1..])?;
                    nodes.push(n);
                }
                "break" | "continue" => {
                    if self.ranges == 0 {
                        return Err(format!("{{{{{kw}}}}} outside {{{{range}}}}"));
                    }
                    if let Some(t) = toks.get(1) {
                        return Err(format!("unexpected {} in {kw}", describe(&t.t)));
                    }
                    nodes.push(if kw == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" => {
                    return Err(format!("{{{{{kw}}}}} is not supported"))
                }
                _ => nodes.push(Node::Action(self.pipeline(&toks, "command")?)),
            }
        }
    }

    pub(super) fn control(&mut self, kw: &str, toks: &[Tok]) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        let pipe = self.pipeline(toks, kw)?;
        if kw == "range" {
            self.ranges += 1;
        }
        let (body, stop) = self.list()?;
        if kw == "range" {
            self.ranges -= 1;
        }
        let alt = match stop {
            Stop::End => Vec::new(),
            Stop::Eof => return Err("unexpected EOF".into()),
            Stop::Else(rest) if rest.is_empty() => match self.list()? {
                (alt, Stop::End) => alt,
                (_, Stop::Eof) => return Err("unexpected EOF".into()),
                (_, Stop::Else(_)) => return Err("expected end; found {{else}}".into()),
            },
            Stop::Else(rest) => match &rest[0].t {
                T::Ident(k) if k == kw && kw != "range" => vec![self.control(kw, &rest[1..])?],
                t => return Err(format!("unexpected {} after else in {kw}", describe(t))),
            },
        };
        self.depth -= 1;
        Ok(match kw {
            "if" => Node::If(pipe, body, alt),
            "with" => Node::With(pipe, body, alt),
            _ => Node::Range(pipe, body, alt),
        })
    }

    pub(super) fn pipeline(&mut self, toks: &[Tok], ctx: &str) -> Result<Pipe, String> {
        let var = |i: usize| match toks.get(i).map(|t| &t.t) {
            Some(T::Var(v)) => Some(v.clone()),
            _ => None,
        };
        let is = |i: usize, t: T| toks.get(i).map(|x| &x.t) == Some(&t);
        let (mut decl, mut assign, mut skip) = (Vec::new(), false, 0);
        if let (Some(v), true) = (var(0), is(1, T::Declare) || is(1, T::Assign)) {
            decl.push(v);
            assign = is(1, T::Assign);
            skip = 2;
        } else if let (Some(a), true, Some(b)) = (var(0), is(1, T::Comma), var(2)) {
            if !(is(3, T::Declare) || is(3, T::Assign)) {
                return Err(format!("missing := in {ctx} declaration"));
            }
            if ctx != "range" {
                return Err(format!("too many declarations in {ctx}"));
            }
            decl = vec![a, b];
            assign = is(3, T::Assign);
            skip = 4;
        }
        let line = self.line;
        let mut c = Cursor {
            toks: &toks[skip..],
            i: 0,
        };
        if c.peek().is_none() {
            return Err(format!("missing value for {ctx}"));
        }
        let cmds = self.cmds(&mut c, false)?;
        Ok(Pipe {
            decl,
            assign,
            cmds,
            line,
        })
    }

    pub(super) fn cmds(&mut self, c: &mut Cursor, nested: bool) -> Result<Vec<Cmd>, String> {
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command(c)?);
            match c.peek().map(|t| &t.t) {
                Some(T::Bar) => c.i += 1,
                Some(T::RParen) if nested => {
                    c.i += 1;
                    return Ok(cmds);
                }
                None if !nested => return Ok(cmds),
                None => return Err("unclosed left paren".into()),
                Some(t) => return Err(format!("unexpected {}", describe(t))),
            }
        }
    }

    pub(super) fn command(&mut self, c: &mut Cursor) -> Result<Cmd, String> {
        let mut args = Vec::new();
        let start = c.peek().map(|t| t.start);
        while let Some(tok) = c.peek() {
            if matches!(tok.t, T::Bar | T::RParen) {
                break;
            }
            let tok = tok.clone();
            c.i += 1;
            let arg = match tok.t {
                T::Dot => Arg::Dot,
                T::Field(f) => Arg::Field(chain(c, vec![f])),
                T::Var(v) => Arg::Var(v, chain(c, Vec::new())),
                T::Ident(k) => match k.as_str() {
                    "true" | "false" => Arg::Lit(Rc::new(Value::Bool(k == "true"))),
                    "nil" => Arg::Nil,
                    k if FUNCS.contains(&k) => Arg::Func(k.to_string()),
                    "end" | "else" | "if" | "range" | "with" | "break" | "continue" | "define"
                    | "template" | "block" => return Err(format!("unexpected {k} in operand")),
                    k => return Err(format!("unknown function {k:?}")),
                },
                T::Str(s) => Arg::Lit(Rc::new(Value::String(s))),
                T::Int(i) => Arg::Lit(Rc::new(Value::Number(i.into()))),
                T::Float(f) => match Number::from_f64(f) {
                    Some(n) => Arg::Lit(Rc::new(Value::Number(n))),
                    None => return Err(format!("bad number {f}")),
                },
                T::LParen => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err("nesting too deep".into());
                    }
                    let line = self.line;
                    if matches!(c.peek().map(|t| &t.t), Some(T::RParen) | None) {
                        return Err("missing value for parenthesized pipeline".into());
                    }
                    let cmds = self.cmds(c, true)?;
                    self.depth -= 1;
                    let p = Pipe {
                        decl: Vec::new(),
                        assign: false,
                        cmds,
                        line,
                    };
                    Arg::Pipe(Box::new(p), chain(c, Vec::new()))
                }
                t => return Err(format!("unexpected {} in operand", describe(&t))),
            };
            args.push(arg);
        }
        if args.is_empty() {
            return Err("missing value for command".into());
        }
        let end = c.toks[c.i - 1].end;
        let src = self.src[start.unwrap_or(end)..end].to_string();
        Ok(Cmd { args, src })
    }
}

/// Fields written right after an operand: `$x.A.B`, `(…).A`.
pub(super) fn chain(c: &mut Cursor, mut names: Vec<String>) -> Vec<String> {
    while let Some(Tok {
        t: T::Field(f),
        space: false,
        ..
    }) = c.peek()
    {
        names.push(f.clone());
        c.i += 1;
    }
    names
}
