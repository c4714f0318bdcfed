//! Go's text/template, the part Docker users type after `--format` / `-f`,
//! on JSON values.
//!
//! A template is parsed once into a tree ([`Template::parse`]) and executed
//! on a value ([`Template::execute`]) with a "dot" and `$variables`:
//! `{{.A.B}}`, `{{.}}`, `{{$}}`, `{{$v.F}}`, literals, `(pipelines).F`,
//! `|`, `{{-`/`-}}` trimming, `{{/* comments */}}`, `{{if}}`/`{{else if}}`,
//! `{{with}}`, `{{range}}` (with `$v :=`, `$k, $v :=`, `{{else}}`,
//! `{{break}}`, `{{continue}}`), `$x := …` and `$x = …`, Go's functions
//! (`and or not len index slice print printf println eq ne lt le gt ge`)
//! and Docker's (`json split join title lower upper pad truncate`).
//! Values print as Go prints JSON-decoded data (`map[k:v]`, `[a b]`,
//! `<no value>`). Not supported: `{{define}}`, `{{template}}`, `{{block}}`,
//! `html`, `js`, `urlquery`, `call`.
//!
//! Hostile input is bounded: nesting depth, execution steps, output and
//! value sizes; every failure is an error, never a panic.

use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::rc::Rc;

const MAX_DEPTH: usize = 100;
const MAX_STEPS: u64 = 2_000_000;
const MAX_SIZE: usize = 16 << 20;
const MAX_WIDTH: usize = 1_000_000;
const MAX_ELEMS: usize = 1_000_000;

const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// Parses `tpl` and executes it on `v`.
pub fn render(tpl: &str, v: &Value) -> anyhow::Result<String> {
    Template::parse(tpl)?.execute(v)
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(src: &str) -> anyhow::Result<Template> {
        let items = lex(src).map_err(|(line, m)| anyhow::anyhow!("template: :{line}: {m}"))?;
        let mut p = Parser {
            src,
            items,
            i: 0,
            depth: 0,
            ranges: 0,
            line: 1,
        };
        let (nodes, stop) = p
            .list()
            .map_err(|m| anyhow::anyhow!("template: :{}: {m}", p.line))?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => anyhow::bail!("template: :{}: unexpected {{{{end}}}}", p.line),
            Stop::Else(..) => anyhow::bail!("template: :{}: unexpected {{{{else}}}}", p.line),
        }
    }

    pub fn execute(&self, data: &Value) -> anyhow::Result<String> {
        let mut x = Exec {
            root: data,
            vars: vec![("$".to_string(), V::Ref(data))],
            out: String::new(),
            steps: 0,
        };
        x.walk(&self.nodes, &V::Ref(data))
            .map_err(|e| anyhow::anyhow!("template: {}", e.msg))?;
        Ok(x.out)
    }
}

// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone, PartialEq)]
enum T {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    Bar,
    Comma,
    Declare,
    Assign,
}

#[derive(Debug, Clone)]
struct Tok {
    t: T,
    /// Whitespace comes before it (so `.A .B` is two operands, `.A.B` one).
    space: bool,
    start: usize,
    end: usize,
}

#[derive(Debug)]
enum Item {
    Text(String),
    Action { toks: Vec<Tok>, line: usize },
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ident(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

type LexErr = (usize, String);

fn lex(src: &str) -> Result<Vec<Item>, LexErr> {
    let b = src.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    let mut trim_next = false;
    loop {
        let found = src[pos..].find("{{").map(|i| pos + i);
        let text_end = found.unwrap_or(src.len());
        let mut text = &src[pos..text_end];
        line += text.matches('\n').count();
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let Some(open) = found else {
            if !text.is_empty() {
                items.push(Item::Text(text.to_string()));
            }
            return Ok(items);
        };
        let mut p = open + 2;
        if b.get(p) == Some(&b'-') && b.get(p + 1).is_some_and(|c| is_space(*c as char)) {
            text = text.trim_end_matches(is_space);
            p += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let start_line = line;
        if src[p..].starts_with("/*") {
            let close = src[p + 2..]
                .find("*/")
                .ok_or((line, "unclosed comment".to_string()))?;
            let mut q = p + 2 + close + 2;
            line += src[p..q].matches('\n').count();
            if b.get(q).is_some_and(|c| is_space(*c as char)) && src[q + 1..].starts_with("-}}") {
                trim_next = true;
                q += 4;
            } else if src[q..].starts_with("}}") {
                trim_next = false;
                q += 2;
            } else {
                return Err((line, "comment ends before closing delimiter".into()));
            }
            pos = q;
            continue;
        }
        let mut toks = Vec::new();
        let mut space = true;
        loop {
            if src[p..].starts_with("}}") {
                trim_next = false;
                p += 2;
                break;
            }
            let Some(c) = src[p..].chars().next() else {
                return Err((start_line, "unclosed action".into()));
            };
            if is_space(c) {
                if c == '\n' {
                    line += 1;
                }
                if src[p + 1..].starts_with("-}}") {
                    trim_next = true;
                    p += 4;
                    break;
                }
                space = true;
                p += 1;
                continue;
            }
            let start = p;
            let next = src[p + c.len_utf8()..].chars().next();
            let t = match c {
                '"' => {
                    let (s, n) = lex_quoted(&src[p + 1..]).map_err(|m| (line, m))?;
                    line += src[p..p + 1 + n].matches('\n').count();
                    p += 1 + n;
                    T::Str(s)
                }
                '`' => {
                    let n = src[p + 1..]
                        .find('`')
                        .ok_or((line, "unterminated raw quoted string".to_string()))?;
                    let s = src[p + 1..p + 1 + n].to_string();
                    line += s.matches('\n').count();
                    p += n + 2;
                    T::Str(s)
                }
                '\'' => {
                    let (ch, n) = lex_char(&src[p + 1..]).map_err(|m| (line, m))?;
                    p += 1 + n;
                    T::Int(ch as i64)
                }
                '.' if next.is_some_and(|d| d.is_ascii_digit()) => {
                    let (t, n) = lex_number(&src[p..]).map_err(|m| (line, m))?;
                    p += n;
                    t
                }
                '.' if next.is_some_and(is_ident) => {
                    let n = src[p + 1..]
                        .find(|c: char| !is_ident(c))
                        .unwrap_or(src.len() - p - 1);
                    let name = src[p + 1..p + 1 + n].to_string();
                    p += 1 + n;
                    T::Field(name)
                }
                '.' => {
                    p += 1;
                    T::Dot
                }
                '$' => {
                    let n = src[p + 1..]
                        .find(|c: char| !is_ident(c))
                        .unwrap_or(src.len() - p - 1);
                    let name = src[p..p + 1 + n].to_string();
                    p += 1 + n;
                    T::Var(name)
                }
                '0'..='9' => {
                    let (t, n) = lex_number(&src[p..]).map_err(|m| (line, m))?;
                    p += n;
                    t
                }
                '+' | '-' if next.is_some_and(|d| d.is_ascii_digit() || d == '.') => {
                    let (t, n) = lex_number(&src[p..]).map_err(|m| (line, m))?;
                    p += n;
                    t
                }
                c if is_ident(c) => {
                    let n = src[p..]
                        .find(|c: char| !is_ident(c))
                        .unwrap_or(src.len() - p);
                    let name = src[p..p + n].to_string();
                    p += n;
                    T::Ident(name)
                }
                '(' | ')' | '|' | ',' | '=' => {
                    p += 1;
                    match c {
                        '(' => T::LParen,
                        ')' => T::RParen,
                        '|' => T::Bar,
                        ',' => T::Comma,
                        _ => T::Assign,
                    }
                }
                ':' if next == Some('=') => {
                    p += 2;
                    T::Declare
                }
                c => return Err((line, format!("unexpected {c:?} in command"))),
            };
            toks.push(Tok {
                t,
                space,
                start,
                end: p,
            });
            space = false;
        }
        items.push(Item::Action {
            toks,
            line: start_line,
        });
        pos = p;
    }
}

/// A Go "…" string after its opening quote: the value and the bytes used
/// (closing quote included).
fn lex_quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let (_, e) = it.next().ok_or("unterminated quoted string")?;
                out.push(escape(e, &mut it)?);
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

fn escape(e: char, it: &mut std::str::CharIndices) -> Result<char, String> {
    let mut hex = |n: usize| -> Result<char, String> {
        let mut v = 0u32;
        for _ in 0..n {
            let (_, d) = it.next().ok_or("unterminated escape sequence")?;
            v = v * 16
                + d.to_digit(16)
                    .ok_or(format!("invalid escape digit {d:?}"))?;
        }
        char::from_u32(v).ok_or_else(|| format!("invalid escape value {v:#x}"))
    };
    Ok(match e {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'v' => '\x0b',
        '\\' | '"' | '\'' => e,
        'x' => hex(2)?,
        'u' => hex(4)?,
        'U' => hex(8)?,
        '0'..='7' => {
            let mut v = e as u32 - '0' as u32;
            for _ in 0..2 {
                let (_, d) = it.next().ok_or("unterminated escape sequence")?;
                v = v * 8 + d.to_digit(8).ok_or(format!("invalid escape digit {d:?}"))?;
            }
            char::from_u32(v).ok_or_else(|| format!("invalid escape value {v:#o}"))?
        }
        e => return Err(format!("unknown escape sequence \\{e}")),
    })
}

fn lex_char(s: &str) -> Result<(char, usize), String> {
    let mut it = s.char_indices();
    let c = match it.next() {
        Some((_, '\\')) => {
            let (_, e) = it.next().ok_or("unterminated character constant")?;
            escape(e, &mut it)?
        }
        Some((_, '\'')) | None => return Err("bad character constant".into()),
        Some((_, c)) => c,
    };
    match it.next() {
        Some((i, '\'')) => Ok((c, i + 1)),
        _ => Err("unterminated character constant".into()),
    }
}

fn lex_number(s: &str) -> Result<(T, usize), String> {
    let mut n = 0;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        let ok = c.is_ascii_alphanumeric()
            || c == '_'
            || c == '.'
            || (i == 0 && (c == '+' || c == '-'))
            || ((c == '+' || c == '-') && matches!(prev, 'e' | 'E' | 'p' | 'P'));
        if !ok {
            break;
        }
        n = i + c.len_utf8();
        prev = c;
    }
    let text = &s[..n];
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let radix = match body.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    let int = match radix {
        Some(r) => i64::from_str_radix(&body[2..], r).ok(),
        None if body.len() > 1
            && body.starts_with('0')
            && body.bytes().all(|c| c.is_ascii_digit()) =>
        {
            i64::from_str_radix(&body[1..], 8).ok()
        }
        None => body.parse::<i64>().ok(),
    };
    if let Some(i) = int {
        return Ok((T::Int(if neg { -i } else { i }), n));
    }
    if radix.is_none()
        && body
            .bytes()
            .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c))
    {
        if let Ok(f) = clean.parse::<f64>() {
            if f.is_finite() {
                return Ok((T::Float(f), n));
            }
        }
    }
    Err(format!("bad number syntax: {text:?}"))
}

// ---------------------------------------------------------------- parsing

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

#[derive(Debug)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Cmd>,
    line: usize,
}

#[derive(Debug)]
struct Cmd {
    args: Vec<Arg>,
    src: String,
}

#[derive(Debug)]
enum Arg {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Rc<Value>),
    Nil,
    Func(String),
    Pipe(Box<Pipe>, Vec<String>),
}

enum Stop {
    Eof,
    End,
    Else(Vec<Tok>),
}

struct Parser<'s> {
    src: &'s str,
    items: Vec<Item>,
    i: usize,
    depth: usize,
    ranges: usize,
    line: usize,
}

struct Cursor<'t> {
    toks: &'t [Tok],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
}

fn describe(t: &T) -> String {
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
    fn list(&mut self) -> Result<(Vec<Node>, Stop), String> {
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

    fn control(&mut self, kw: &str, toks: &[Tok]) -> Result<Node, String> {
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

    fn pipeline(&mut self, toks: &[Tok], ctx: &str) -> Result<Pipe, String> {
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

    fn cmds(&mut self, c: &mut Cursor, nested: bool) -> Result<Vec<Cmd>, String> {
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

    fn command(&mut self, c: &mut Cursor) -> Result<Cmd, String> {
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
fn chain(c: &mut Cursor, mut names: Vec<String>) -> Vec<String> {
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

// ---------------------------------------------------------------- values

/// A value during execution: missing (Go's invalid value, from a missing
/// map key), borrowed from the data, or made by the template.
#[derive(Clone, Debug)]
enum V<'a> {
    Missing,
    Ref(&'a Value),
    Own(Rc<Value>),
}

impl V<'_> {
    fn get(&self) -> Option<&Value> {
        match self {
            V::Missing => None,
            V::Ref(v) => Some(v),
            V::Own(v) => Some(v),
        }
    }
}

fn own<'a>(v: Value) -> V<'a> {
    V::Own(Rc::new(v))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

fn int_of(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn go_type(v: Option<&Value>) -> &'static str {
    match v {
        None | Some(Value::Null) => "<nil>",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) if int_of(n).is_some() => "int",
        Some(Value::Number(_)) => "float64",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "[]interface {}",
        Some(Value::Object(_)) => "map[string]interface {}",
    }
}

/// Go's `%v` of a float64 (`%g`, shortest): exponent form below 1e-4 and
/// from 1e6 (`1e+06`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        go_exp(mant, exp)
    } else {
        format!("{f}")
    }
}

fn go_exp(mant: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.unsigned_abs())
}

fn go_number(n: &Number) -> String {
    match int_of(n) {
        Some(i) => i.to_string(),
        None => go_float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Go's `%v` of a JSON-decoded value.
fn go_fmt(v: Option<&Value>, out: &mut String) {
    match v {
        None | Some(Value::Null) => out.push_str("<nil>"),
        Some(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => out.push_str(&go_number(n)),
        Some(Value::String(s)) => out.push_str(s),
        Some(Value::Array(a)) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_fmt(Some(x), out);
            }
            out.push(']');
        }
        Some(Value::Object(m)) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                go_fmt(m.get(k), out);
            }
            out.push(']');
        }
    }
}

fn fmt_v(v: Option<&Value>) -> String {
    let mut s = String::new();
    go_fmt(v, &mut s);
    s
}

fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\x07' => o.push_str("\\a"),
            '\x08' => o.push_str("\\b"),
            '\x0c' => o.push_str("\\f"),
            '\x0b' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => o.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

// ---------------------------------------------------------------- execution

#[derive(Debug)]
struct E {
    msg: String,
    located: bool,
}

impl From<String> for E {
    fn from(msg: String) -> E {
        E {
            msg,
            located: false,
        }
    }
}

impl From<&str> for E {
    fn from(msg: &str) -> E {
        E::from(msg.to_string())
    }
}

impl E {
    fn at(self, src: &str, line: usize) -> E {
        if self.located {
            return self;
        }
        E {
            msg: format!(":{line}: executing at <{src}>: {}", self.msg),
            located: true,
        }
    }
}

type R<T> = Result<T, E>;

#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    root: &'a Value,
    vars: Vec<(String, V<'a>)>,
    out: String,
    steps: u64,
}

impl<'a> Exec<'a> {
    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err("execution too long".into());
        }
        Ok(())
    }

    fn emit(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > MAX_SIZE {
            return Err("output too large".into());
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &V<'a>) -> R<Flow> {
        for n in nodes {
            self.step()?;
            match n {
                Node::Text(s) => self.emit(s)?,
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        let s = match v.get() {
                            None | Some(Value::Null) => "<no value>".to_string(),
                            v => fmt_v(v),
                        };
                        self.emit(&s)?;
                    } else {
                        self.declare(p, &[v])?;
                    }
                }
                Node::If(p, body, alt) | Node::With(p, body, alt) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    if !p.decl.is_empty() {
                        self.declare(p, std::slice::from_ref(&v))?;
                    }
                    let flow = if truthy(v.get()) {
                        let dot = if matches!(n, Node::With(..)) { &v } else { dot };
                        self.walk(body, dot)?
                    } else {
                        self.walk(alt, dot)?
                    };
                    self.vars.truncate(mark);
                    if flow != Flow::Normal {
                        return Ok(flow);
                    }
                }
                Node::Range(p, body, alt) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let items = self.items(&v, p)?;
                    if items.is_empty() {
                        let flow = self.walk(alt, dot)?;
                        self.vars.truncate(mark);
                        if flow != Flow::Normal {
                            return Ok(flow);
                        }
                        continue;
                    }
                    for (k, e) in items {
                        self.step()?;
                        match p.decl.len() {
                            0 => {}
                            1 => self.declare(p, std::slice::from_ref(&e))?,
                            _ => self.declare(p, &[k, e.clone()])?,
                        }
                        let flow = self.walk(body, &e)?;
                        self.vars.truncate(mark);
                        if flow == Flow::Break {
                            break;
                        }
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    /// What `{{range}}` iterates: (index or key, element).
    fn items(&self, v: &V<'a>, p: &Pipe) -> R<Vec<(V<'a>, V<'a>)>> {
        let at = |m: String| E::from(m).at(&p.cmds[0].src, p.line);
        let sub = |x: &'a Value| V::Ref(x);
        let pairs: Vec<(V<'a>, V<'a>)> = match v {
            V::Missing | V::Ref(Value::Null) => Vec::new(),
            V::Ref(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (own(Value::from(i)), sub(x)))
                .collect(),
            V::Ref(Value::Object(m)) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (own(Value::String(k.clone())), sub(&m[k])))
                    .collect()
            }
            V::Own(rc) => match &**rc {
                Value::Null => Vec::new(),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (own(Value::from(i)), own(x.clone())))
                    .collect(),
                Value::Object(m) => {
                    let mut keys: Vec<&String> = m.keys().collect();
                    keys.sort();
                    keys.into_iter()
                        .map(|k| (own(Value::String(k.clone())), own(m[k].clone())))
                        .collect()
                }
                other => return self.range_int(other, p).map_err(at),
            },
            V::Ref(other) => return self.range_int(other, p).map_err(at),
        };
        Ok(pairs)
    }

    /// Go 1.22's `{{range N}}`.
    fn range_int(&self, v: &Value, p: &Pipe) -> Result<Vec<(V<'a>, V<'a>)>, String> {
        let n = match v {
            Value::Number(n) => int_of(n),
            _ => None,
        };
        let Some(n) = n else {
            return Err(format!("range can't iterate over {}", fmt_v(Some(v))));
        };
        if p.decl.len() > 1 {
            return Err("can't use two variables to range over an integer".into());
        }
        if n > MAX_STEPS as i128 {
            return Err("execution too long".into());
        }
        Ok((0..n.max(0) as i64)
            .map(|i| (own(Value::from(i)), own(Value::from(i))))
            .collect())
    }

    fn declare(&mut self, p: &Pipe, vals: &[V<'a>]) -> R<()> {
        for (name, v) in p.decl.iter().zip(vals) {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(format!("undefined variable: {name}").into()),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &V<'a>) -> R<V<'a>> {
        let mut v: Option<V<'a>> = None;
        for c in &p.cmds {
            v = Some(self.cmd(c, dot, v).map_err(|e| e.at(&c.src, p.line))?);
        }
        Ok(v.unwrap_or(V::Missing))
    }

    fn cmd(&mut self, c: &Cmd, dot: &V<'a>, fin: Option<V<'a>>) -> R<V<'a>> {
        match &c.args[0] {
            Arg::Func(name) => self.call(name, &c.args[1..], fin, dot),
            Arg::Nil => Err("nil is not a command".into()),
            a => {
                if c.args.len() > 1 || fin.is_some() {
                    return Err(format!("can't give argument to non-function {}", c.src).into());
                }
                self.arg(a, dot)
            }
        }
    }

    fn arg(&mut self, a: &Arg, dot: &V<'a>) -> R<V<'a>> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(names) => self.chain(dot.clone(), names),
            Arg::Var(name, names) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: {name}"))?;
                self.chain(v, names)
            }
            Arg::Lit(v) => Ok(V::Own(v.clone())),
            Arg::Nil => Ok(own(Value::Null)),
            Arg::Func(name) => self.call(name, &[], None, dot),
            Arg::Pipe(p, names) => {
                let v = self.pipe(p, dot)?;
                self.chain(v, names)
            }
        }
    }

    fn chain(&self, mut v: V<'a>, names: &[String]) -> R<V<'a>> {
        for n in names {
            v = match v {
                V::Missing => V::Missing,
                V::Ref(x) => match self.field(x, n)? {
                    Some(f) => V::Ref(f),
                    None => V::Missing,
                },
                V::Own(x) => match self.field(&x, n)? {
                    Some(f) => own(f.clone()),
                    None => V::Missing,
                },
            };
        }
        Ok(v)
    }

    fn field<'v>(&self, v: &'v Value, name: &str) -> R<Option<&'v Value>> {
        match v {
            Value::Object(m) => match m.get(name) {
                Some(f) => Ok(Some(f)),
                // The top-level value stands for Docker's structs, whose
                // unknown fields are errors; other maps give <no value>.
                None if std::ptr::eq(v, self.root) => Err(format!(
                    "can't evaluate field {name} in type map[string]interface {{}}"
                )
                .into()),
                None => Ok(None),
            },
            Value::Null => Err(format!("nil pointer evaluating interface {{}}.{name}").into()),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                go_type(Some(other))
            )
            .into()),
        }
    }

    fn call(&mut self, name: &str, args: &[Arg], fin: Option<V<'a>>, dot: &V<'a>) -> R<V<'a>> {
        self.step()?;
        if name == "and" || name == "or" {
            if args.is_empty() && fin.is_none() {
                return Err(
                    format!("wrong number of args for {name}: want at least 1 got 0").into(),
                );
            }
            let mut last = V::Missing;
            for a in args {
                let v = self.arg(a, dot)?;
                if truthy(v.get()) == (name == "or") {
                    return Ok(v);
                }
                last = v;
            }
            return Ok(fin.unwrap_or(last));
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(a, dot)?);
        }
        vals.extend(fin);
        let r = func(name, vals).map_err(|m| format!("error calling {name}: {m}"))?;
        if let Some(Value::String(s)) = r.get() {
            if s.len() > MAX_SIZE {
                return Err(format!("error calling {name}: value too large").into());
            }
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------- functions

fn want(name: &str, vals: &[V], n: usize, at_least: bool) -> Result<(), String> {
    if vals.len() == n || (at_least && vals.len() > n) {
        return Ok(());
    }
    let w = if at_least { "at least " } else { "" };
    Err(format!(
        "wrong number of args for {name}: want {w}{n} got {}",
        vals.len()
    ))
}

fn as_str<'v>(v: &'v V) -> Result<&'v str, String> {
    match v.get() {
        Some(Value::String(s)) => Ok(s),
        None => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            go_type(other)
        )),
    }
}

fn as_int(v: &V) -> Result<i64, String> {
    match v.get() {
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(f as i64),
                _ => Err(format!(
                    "wrong type for value; expected int; got {}",
                    fmt_v(v.get())
                )),
            }
        }
        None => Err("invalid value; expected int".into()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            go_type(other)
        )),
    }
}

fn func<'a>(name: &str, vals: Vec<V<'a>>) -> Result<V<'a>, String> {
    match name {
        "not" => {
            want(name, &vals, 1, false)?;
            Ok(own(Value::Bool(!truthy(vals[0].get()))))
        }
        "len" => {
            want(name, &vals, 1, false)?;
            let n = match vals[0].get() {
                Some(Value::String(s)) => s.len(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                None | Some(Value::Null) => return Err("len of nil pointer".into()),
                other => return Err(format!("len of type {}", go_type(other))),
            };
            Ok(own(Value::from(n)))
        }
        "index" => {
            want(name, &vals, 1, true)?;
            let mut cur = vals[0].clone();
            for k in &vals[1..] {
                cur = index(cur, k)?;
            }
            Ok(cur)
        }
        "slice" => {
            want(name, &vals, 1, true)?;
            if vals.len() > 3 {
                return Err("too many slice indexes".into());
            }
            let idx: Vec<i64> = vals[1..].iter().map(as_int).collect::<Result<_, _>>()?;
            let len = match vals[0].get() {
                Some(Value::String(s)) => s.len(),
                Some(Value::Array(a)) => a.len(),
                None | Some(Value::Null) => return Err("slice of untyped nil".into()),
                other => return Err(format!("can't slice item of type {}", go_type(other))),
            } as i64;
            let i = idx.first().copied().unwrap_or(0);
            let j = idx.get(1).copied().unwrap_or(len);
            if i < 0 || j < i || j > len {
                return Err(format!(
                    "slice bounds out of range [{i}:{j}] with length {len}"
                ));
            }
            let (i, j) = (i as usize, j as usize);
            Ok(own(match vals[0].get() {
                Some(Value::String(s)) => match s.get(i..j) {
                    Some(t) => Value::String(t.to_string()),
                    None => return Err("slice splits a UTF-8 character".into()),
                },
                Some(Value::Array(a)) => Value::Array(a[i..j].to_vec()),
                _ => Value::Null,
            }))
        }
        "print" => {
            let mut s = String::new();
            let mut prev_str = true;
            for (i, v) in vals.iter().enumerate() {
                let is_str = matches!(v.get(), Some(Value::String(_)));
                if i > 0 && !is_str && !prev_str {
                    s.push(' ');
                }
                go_fmt(v.get(), &mut s);
                if s.len() > MAX_SIZE {
                    return Err("value too large".into());
                }
                prev_str = is_str;
            }
            Ok(own(Value::String(s)))
        }
        "println" => {
            let mut s = String::new();
            for (i, v) in vals.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                go_fmt(v.get(), &mut s);
                if s.len() > MAX_SIZE {
                    return Err("value too large".into());
                }
            }
            s.push('\n');
            Ok(own(Value::String(s)))
        }
        "printf" => {
            want(name, &vals, 1, true)?;
            let f = as_str(&vals[0])?.to_string();
            Ok(own(Value::String(sprintf(&f, &vals[1..])?)))
        }
        "eq" => {
            want(name, &vals, 2, true)?;
            for b in &vals[1..] {
                if equal(vals[0].get(), b.get())? {
                    return Ok(own(Value::Bool(true)));
                }
            }
            Ok(own(Value::Bool(false)))
        }
        "ne" => {
            want(name, &vals, 2, false)?;
            Ok(own(Value::Bool(!equal(vals[0].get(), vals[1].get())?)))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(name, &vals, 2, false)?;
            let o = order(vals[0].get(), vals[1].get())?;
            Ok(own(Value::Bool(match (name, o) {
                (_, None) => false,
                ("lt", Some(o)) => o == Ordering::Less,
                ("le", Some(o)) => o != Ordering::Greater,
                ("gt", Some(o)) => o == Ordering::Greater,
                (_, Some(o)) => o != Ordering::Less,
            })))
        }
        "json" => {
            want(name, &vals, 1, false)?;
            let s = match vals[0].get() {
                Some(v) => serde_json::to_string(v).map_err(|e| e.to_string())?,
                None => "null".into(),
            };
            Ok(own(Value::String(s)))
        }
        "split" => {
            want(name, &vals, 2, false)?;
            let (s, sep) = (as_str(&vals[0])?, as_str(&vals[1])?);
            let n = if sep.is_empty() {
                s.chars().count()
            } else {
                s.matches(sep).count() + 1
            };
            if n > MAX_ELEMS {
                return Err("too many elements".into());
            }
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep).map(|p| Value::String(p.to_string())).collect()
            };
            Ok(own(Value::Array(parts)))
        }
        "join" => {
            want(name, &vals, 2, false)?;
            let sep = as_str(&vals[1])?.to_string();
            let mut s = String::new();
            match vals[0].get() {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for (i, x) in a.iter().enumerate() {
                        if i > 0 {
                            s.push_str(&sep);
                        }
                        go_fmt(Some(x), &mut s);
                        if s.len() > MAX_SIZE {
                            return Err("value too large".into());
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "wrong type for value; expected []string; got {}",
                        go_type(other)
                    ))
                }
            }
            Ok(own(Value::String(s)))
        }
        "title" | "lower" | "upper" => {
            want(name, &vals, 1, false)?;
            let s = as_str(&vals[0])?;
            let r = match name {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                _ => {
                    let mut out = String::with_capacity(s.len());
                    let mut prev_sep = true;
                    for c in s.chars() {
                        if prev_sep {
                            out.extend(c.to_uppercase());
                        } else {
                            out.push(c);
                        }
                        prev_sep = if c.is_ascii() {
                            !(c.is_ascii_alphanumeric() || c == '_')
                        } else {
                            c.is_whitespace()
                        };
                    }
                    out
                }
            };
            Ok(own(Value::String(r)))
        }
        "truncate" => {
            want(name, &vals, 2, false)?;
            let n = as_int(&vals[1])?;
            if n < 0 {
                return Err(format!("negative length {n}"));
            }
            let s = as_str(&vals[0])?;
            Ok(own(Value::String(s.chars().take(n as usize).collect())))
        }
        "pad" => {
            want(name, &vals, 3, false)?;
            let (pre, suf) = (as_int(&vals[1])?, as_int(&vals[2])?);
            if pre < 0 || suf < 0 {
                return Err("negative repeat count".into());
            }
            if pre.saturating_add(suf) > MAX_WIDTH as i64 {
                return Err("padding too large".into());
            }
            let s = as_str(&vals[0])?;
            if s.is_empty() {
                return Ok(own(Value::String(String::new())));
            }
            let (pre, suf) = (" ".repeat(pre as usize), " ".repeat(suf as usize));
            Ok(own(Value::String(format!("{pre}{s}{suf}"))))
        }
        _ => Err(format!("unknown function {name:?}")),
    }
}

fn index<'a>(cur: V<'a>, k: &V) -> Result<V<'a>, String> {
    fn at<'v>(v: &'v Value, k: Option<&Value>) -> Result<Result<Option<&'v Value>, Value>, String> {
        match v {
            Value::Object(m) => match k {
                Some(Value::String(s)) => Ok(Ok(m.get(s))),
                other => Err(format!(
                    "value has type {}; should be string",
                    go_type(other)
                )),
            },
            Value::Array(_) | Value::String(_) => {
                let i = match k {
                    Some(Value::Number(n)) => int_of(n),
                    _ => None,
                }
                .ok_or_else(|| format!("cannot index slice/array with type {}", go_type(k)))?;
                let len = match v {
                    Value::Array(a) => a.len(),
                    Value::String(s) => s.len(),
                    _ => 0,
                };
                if i < 0 || i >= len as i128 {
                    return Err(format!("index out of range: {i}"));
                }
                Ok(match v {
                    Value::Array(a) => Ok(Some(&a[i as usize])),
                    Value::String(s) => Err(Value::from(s.as_bytes()[i as usize])),
                    _ => Ok(None),
                })
            }
            Value::Null => Err("index of nil pointer".into()),
            other => Err(format!("can't index item of type {}", go_type(Some(other)))),
        }
    }
    Ok(match cur {
        V::Missing => return Err("index of untyped nil".into()),
        V::Ref(v) => match at(v, k.get())? {
            Ok(Some(x)) => V::Ref(x),
            Ok(None) => V::Missing,
            Err(b) => own(b),
        },
        V::Own(v) => match at(&v, k.get())? {
            Ok(Some(x)) => own(x.clone()),
            Ok(None) => V::Missing,
            Err(b) => own(b),
        },
    })
}

fn is_nil(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn equal(a: Option<&Value>, b: Option<&Value>) -> Result<bool, String> {
    if is_nil(a) || is_nil(b) {
        return Ok(is_nil(a) && is_nil(b));
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            Ok(order_num(x, y) == Some(Ordering::Equal))
        }
        (Some(Value::String(x)), Some(Value::String(y))) => Ok(x == y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => Ok(x == y),
        (Some(Value::Array(_) | Value::Object(_)), _)
        | (_, Some(Value::Array(_) | Value::Object(_))) => Err("non-comparable type".into()),
        _ => Err("incompatible types for comparison".into()),
    }
}

fn order_num(x: &Number, y: &Number) -> Option<Ordering> {
    match (int_of(x), int_of(y)) {
        (Some(i), Some(j)) => Some(i.cmp(&j)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

fn order(a: Option<&Value>, b: Option<&Value>) -> Result<Option<Ordering>, String> {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => Ok(order_num(x, y)),
        (Some(Value::String(x)), Some(Value::String(y))) => Ok(Some(x.cmp(y))),
        (Some(Value::Number(_)), Some(Value::String(_)))
        | (Some(Value::String(_)), Some(Value::Number(_))) => {
            Err("incompatible types for comparison".into())
        }
        _ => Err("invalid type for comparison".into()),
    }
}

// ---------------------------------------------------------------- printf

fn digits(it: &mut std::iter::Peekable<std::str::Chars>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = it.peek().and_then(|d| d.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        it.next();
    }
    n
}

struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    prec: Option<usize>,
}

fn sprintf(f: &str, args: &[V]) -> Result<String, String> {
    let mut out = String::new();
    let mut next = 0;
    let mut it = f.chars().peekable();
    while let Some(c) = it.next() {
        if out.len() > MAX_SIZE {
            return Err("value too large".into());
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut sp = Spec {
            minus: false,
            plus: false,
            zero: false,
            space: false,
            sharp: false,
            prec: None,
        };
        while let Some(&fl) = it.peek() {
            match fl {
                '-' => sp.minus = true,
                '+' => sp.plus = true,
                '0' => sp.zero = true,
                ' ' => sp.space = true,
                '#' => sp.sharp = true,
                _ => break,
            }
            it.next();
        }
        let mut width = digits(&mut it);
        if width.is_some_and(|w| w > MAX_WIDTH) {
            out.push_str("%!(BADWIDTH)");
            width = None;
        }
        if it.peek() == Some(&'.') {
            it.next();
            sp.prec = Some(digits(&mut it).unwrap_or(0));
            if sp.prec.is_some_and(|p| p > MAX_WIDTH) {
                out.push_str("%!(BADPREC)");
                sp.prec = None;
            }
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let v = arg.get();
        let (s, numeric) = match verb_fmt(verb, v, &sp) {
            Some(r) => r,
            None if is_nil(v) => (format!("%!{verb}(<nil>)"), false),
            None => (format!("%!{verb}({}={})", go_type(v), fmt_v(v)), false),
        };
        let w = width.unwrap_or(0);
        let n = s.chars().count();
        if n >= w {
            out.push_str(&s);
        } else if sp.minus {
            out.push_str(&s);
            out.push_str(&" ".repeat(w - n));
        } else if sp.zero && numeric {
            let (sign, digits) = match s.strip_prefix(['-', '+']) {
                Some(d) => (&s[..1], d),
                None => ("", s.as_str()),
            };
            out.push_str(sign);
            out.push_str(&"0".repeat(w - n));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(w - n));
            out.push_str(&s);
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if is_nil(a.get()) {
                out.push_str("<nil>");
            } else {
                out.push_str(&format!("{}={}", go_type(a.get()), fmt_v(a.get())));
            }
        }
        out.push(')');
    }
    if out.len() > MAX_SIZE {
        return Err("value too large".into());
    }
    Ok(out)
}

/// One verb on one value: the text and whether it is a number (for `%05d`);
/// None for a verb that does not fit the value.
fn verb_fmt(verb: char, v: Option<&Value>, sp: &Spec) -> Option<(String, bool)> {
    let sign = |s: String, neg: bool| {
        if neg {
            s
        } else if sp.plus {
            format!("+{s}")
        } else if sp.space {
            format!(" {s}")
        } else {
            s
        }
    };
    let int = match v {
        Some(Value::Number(n)) => int_of(n),
        _ => None,
    };
    let float = match v {
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    };
    match (verb, v) {
        ('v', None | Some(Value::Null)) => Some(("<nil>".into(), false)),
        ('v', Some(Value::Number(_))) => {
            let s = fmt_v(v);
            let neg = s.starts_with('-');
            Some((sign(s, neg), true))
        }
        ('v', _) => Some((fmt_v(v), false)),
        ('s', Some(Value::String(s))) => Some(match sp.prec {
            Some(p) => (s.chars().take(p).collect(), false),
            None => (s.clone(), false),
        }),
        ('s', Some(Value::Array(_) | Value::Object(_))) => Some((fmt_v(v), false)),
        ('q', Some(Value::String(s))) if sp.sharp && !s.contains('`') => {
            Some((format!("`{s}`"), false))
        }
        ('q', Some(Value::String(s))) => Some((go_quote(s), false)),
        ('q', Some(Value::Array(a))) => {
            let parts: Option<Vec<String>> = a
                .iter()
                .map(|x| verb_fmt('q', Some(x), sp).map(|r| r.0))
                .collect();
            Some((format!("[{}]", parts?.join(" ")), false))
        }
        ('q', Some(Value::Number(_))) => {
            let c = char::from_u32(u32::try_from(int?).ok()?)?;
            let q = go_quote(&c.to_string());
            Some((
                format!("'{}'", &q[1..q.len() - 1].replace("\\\"", "\"")),
                false,
            ))
        }
        ('t', Some(Value::Bool(b))) => Some((b.to_string(), false)),
        ('d', _) => {
            let i = int?;
            Some((sign(i.to_string(), i < 0), true))
        }
        ('c', _) => Some((
            char::from_u32(u32::try_from(int?).ok()?)?.to_string(),
            false,
        )),
        ('x' | 'X' | 'o' | 'b', Some(Value::Number(_))) => {
            let i = int?;
            let m = i.unsigned_abs();
            let s = match verb {
                'x' => format!("{m:x}"),
                'X' => format!("{m:X}"),
                'o' => format!("{m:o}"),
                _ => format!("{m:b}"),
            };
            let s = if i < 0 { format!("-{s}") } else { s };
            Some((sign(s, i < 0), true))
        }
        ('x' | 'X', Some(Value::String(s))) => {
            let h: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            Some((if verb == 'X' { h.to_uppercase() } else { h }, false))
        }
        ('f' | 'F' | 'e' | 'E' | 'g' | 'G', _) => {
            let f = float?;
            let p = sp.prec;
            let s = match verb {
                'f' | 'F' => format!("{f:.*}", p.unwrap_or(6)),
                'e' | 'E' => {
                    let e = format!("{f:.*e}", p.unwrap_or(6));
                    let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
                    let s = go_exp(m, x.parse().unwrap_or(0));
                    if verb == 'E' {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
                _ => {
                    let s = go_float(f);
                    if verb == 'G' {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
            };
            Some((sign(s, f.is_sign_negative()), true))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::{json, Value};

    fn r(t: &str, v: &Value) -> String {
        match render(t, v) {
            Ok(s) => s,
            Err(e) => panic!("{t:?}: {e:#}"),
        }
    }

    fn err(t: &str, v: &Value) -> String {
        match render(t, v) {
            Ok(s) => panic!("{t:?} rendered {s:?}, expected an error"),
            Err(e) => format!("{e:#}"),
        }
    }

    fn container() -> Value {
        json!({
            "Id": "abc123",
            "Name": "/web",
            "Args": ["-g", "daemon off;"],
            "State": {"Running": true, "Status": "running", "Pid": 42, "ExitCode": 0},
            "Config": {
                "Image": "nginx",
                "Labels": {"com.example.x": "1", "team": "a"},
                "Env": ["A=1", "B=2"],
                "Cmd": null,
            },
            "NetworkSettings": {
                "Networks": {
                    "front": {"IPAddress": "10.0.0.2", "Gateway": "10.0.0.1"},
                    "back": {"IPAddress": "10.1.0.2", "Gateway": "10.1.0.1"},
                },
                "Ports": {
                    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                    "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}],
                },
            },
            "Size": 1.5,
            "Empty": [],
        })
    }

    #[test]
    fn docker_doc_examples() {
        let c = container();
        assert_eq!(
            r(
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                &c
            ),
            "10.1.0.2 10.0.0.2 "
        );
        assert_eq!(
            r(
                "{{range $p, $conf := .NetworkSettings.Ports}} {{$p}} -> {{(index $conf 0).HostPort}} {{end}}",
                &c
            ),
            " 443/tcp -> 8443  80/tcp -> 8080 "
        );
        assert_eq!(
            r("{{json .Config}}", &c),
            serde_json::to_string(&c["Config"]).unwrap()
        );
        assert_eq!(r(r#"{{index .Config.Labels "com.example.x"}}"#, &c), "1");
        assert_eq!(r("{{.Name | upper}}", &c), "/WEB");
        assert_eq!(r("{{if .State.Running}}up{{else}}down{{end}}", &c), "up");
        assert_eq!(r(r#"{{join .Args ","}}"#, &c), "-g,daemon off;");
        assert_eq!(r(r#"{{printf "%s:%d" .Name 3}}"#, &c), "/web:3");
        assert_eq!(r("{{.State.Pid}}", &c), "42");
    }

    #[test]
    fn dot_vars_literals() {
        let c = container();
        assert_eq!(r("{{.}}", &json!("x")), "x");
        assert_eq!(
            r("{{with .State}}{{$.Name}} {{.Status}}{{end}}", &c),
            "/web running"
        );
        assert_eq!(r("{{$n := .Name}}{{$n}}/{{$n}}", &c), "/web//web");
        assert_eq!(r("{{$s := .State}}{{$s.Pid}}", &c), "42");
        assert_eq!(r("{{$x := 1}}{{$x = 2}}{{$x}}", &c), "2");
        assert_eq!(
            r(
                r#"{{"str"}} {{`raw\n`}} {{3}} {{-2}} {{1.5}} {{true}} {{'a'}}"#,
                &c
            ),
            "str raw\\n 3 -2 1.5 true 97"
        );
        assert_eq!(r(r#"{{"a\tb\"c"}}"#, &c), "a\tb\"c");
        assert_eq!(r("{{0x10}} {{1_000}} {{1e3}}", &c), "16 1000 1000");
        assert_eq!(r("{{(index .Args 1)}}", &c), "daemon off;");
        assert_eq!(
            r(
                "{{(index .NetworkSettings.Networks \"front\").IPAddress}}",
                &c
            ),
            "10.0.0.2"
        );
        assert_eq!(r("{{$.State.Status}}", &c), "running");
        assert_eq!(r("{{.Name | printf \"%s!\" | upper}}", &c), "/WEB!");
    }

    #[test]
    fn trim_and_comments() {
        let c = container();
        assert_eq!(r("a  {{- .State.Pid -}}  \n b", &c), "a42b");
        assert_eq!(r("a {{/* hidden */}} b", &c), "a  b");
        assert_eq!(r("a {{- /* hidden */ -}} b", &c), "ab");
        assert_eq!(r("{{-3}}", &c), "-3");
        assert_eq!(
            r("{{range .Args -}}\n  [{{.}}]\n{{- end}}", &c),
            "[-g][daemon off;]"
        );
        assert!(err("{{/* open", &c).contains("unclosed comment"));
        assert!(err("{{/* x */ .Name}}", &c).contains("comment ends before closing delimiter"));
    }

    #[test]
    fn range_forms() {
        let c = container();
        assert_eq!(r("{{range .Args}}[{{.}}]{{end}}", &c), "[-g][daemon off;]");
        assert_eq!(
            r("{{range $i, $a := .Args}}{{$i}}={{$a}} {{end}}", &c),
            "0=-g 1=daemon off; "
        );
        assert_eq!(
            r("{{range $v := .Config.Env}}{{$v}};{{end}}", &c),
            "A=1;B=2;"
        );
        assert_eq!(
            r(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}",
                &c
            ),
            "com.example.x=1,team=a,"
        );
        assert_eq!(r("{{range .Empty}}x{{else}}none{{end}}", &c), "none");
        assert_eq!(r("{{range .Config.Cmd}}x{{else}}nil{{end}}", &c), "nil");
        assert_eq!(
            r("{{range .Config.Nope}}x{{else}}missing{{end}}", &c),
            "missing"
        );
        assert_eq!(r("{{range 3}}{{.}}{{end}}", &c), "012");
        assert_eq!(
            r(
                "{{range .Config.Env}}{{if eq . \"B=2\"}}{{break}}{{end}}{{.}}{{end}}",
                &c
            ),
            "A=1"
        );
        assert_eq!(
            r(
                "{{range .Config.Env}}{{if eq . \"A=1\"}}{{continue}}{{end}}{{.}}{{end}}",
                &c
            ),
            "B=2"
        );
        // variables declared in a body do not leak out of it
        assert!(
            err("{{range .Args}}{{$x := .}}{{end}}{{$x}}", &c).contains("undefined variable: $x")
        );
        // a range over split's owned result
        assert_eq!(
            r(r#"{{range split "a,b" ","}}<{{.}}>{{end}}"#, &c),
            "<a><b>"
        );
        assert!(err("{{range .Name}}x{{end}}", &c).contains("range can't iterate over /web"));
        assert!(err("{{break}}", &c).contains("{{break}} outside {{range}}"));
    }

    #[test]
    fn if_else_with() {
        let c = container();
        let t = "{{if eq .State.Status \"exited\"}}E{{else if .State.Running}}R{{else}}?{{end}}";
        assert_eq!(r(t, &c), "R");
        let mut d = c.clone();
        d["State"]["Running"] = json!(false);
        assert_eq!(r(t, &d), "?");
        d["State"]["Status"] = json!("exited");
        assert_eq!(r(t, &d), "E");
        for (falsy, want) in [
            ("false", "F"),
            ("0", "F"),
            ("\"\"", "F"),
            ("(not true)", "F"),
            (".Empty", "F"),
            ("(index .Config.Labels \"none\")", "F"),
            (".Config.Cmd", "F"),
            ("1", "T"),
            ("\"x\"", "T"),
            (".Args", "T"),
            (".Config.Labels", "T"),
        ] {
            assert_eq!(
                r(&format!("{{{{if {falsy}}}}}T{{{{else}}}}F{{{{end}}}}"), &c),
                want,
                "{falsy}"
            );
        }
        assert_eq!(r("{{with .State}}{{.Pid}}{{end}}", &c), "42");
        assert_eq!(r("{{with .Empty}}{{.}}{{else}}empty{{end}}", &c), "empty");
        assert_eq!(r("{{with $x := .State.Pid}}{{$x}}{{end}}", &c), "42");
        assert_eq!(
            r(
                "{{with .Config.Nope}}a{{else with .State}}{{.Pid}}{{end}}",
                &c
            ),
            "42"
        );
        assert_eq!(
            r("{{if and .State.Running (gt .State.Pid 10)}}ok{{end}}", &c),
            "ok"
        );
        assert_eq!(r("{{or .Config.Cmd .Config.Image}}", &c), "nginx");
        assert_eq!(r("{{and 1 0 .No.Such}}", &c), "0",);
        assert_eq!(r("{{not .State.Running}}", &c), "false");
    }

    #[test]
    fn printing_like_go() {
        let v = json!({
            "m": {"b": [1, "x", null], "a": true, "c": {}},
            "f": 1.5, "big": 1e6, "tiny": 0.00001, "neg": -2, "z": null, "u": 18446744073709551615u64
        });
        assert_eq!(r("{{.m}}", &v), "map[a:true b:[1 x <nil>] c:map[]]");
        assert_eq!(r("{{.m.b}}", &v), "[1 x <nil>]");
        assert_eq!(
            r("{{.f}} {{.big}} {{.tiny}} {{.neg}} {{.u}}", &v),
            "1.5 1e+06 1e-05 -2 18446744073709551615"
        );
        assert_eq!(r("{{.z}} {{.m.nope}}", &v), "<no value> <no value>");
        assert_eq!(
            r("{{json .m}}", &v),
            r#"{"a":true,"b":[1,"x",null],"c":{}}"#
        );
        assert_eq!(r("{{json .m.nope}}", &v), "null");
        assert_eq!(r("{{print 1 2 \"a\" 3 \"b\" \"c\"}}", &v), "1 2a3bc");
        assert_eq!(r("{{println .neg \"x\"}}", &v), "-2 x\n");
    }

    #[test]
    fn functions() {
        let c = container();
        assert_eq!(
            r("{{len .Args}} {{len .Config.Labels}} {{len .Name}}", &c),
            "2 2 4"
        );
        assert_eq!(
            r(
                r#"{{index .NetworkSettings.Ports "80/tcp" 0 "HostPort"}}"#,
                &c
            ),
            "8080"
        );
        assert_eq!(r(r#"{{index .Config.Labels "missing"}}"#, &c), "<no value>");
        assert_eq!(r("{{index .Args}}", &c), "[-g daemon off;]");
        assert_eq!(
            r("{{slice .Args 1}} {{slice .Name 1 3}}", &c),
            "[daemon off;] we"
        );
        assert_eq!(
            r(r#"{{split "a:b:c" ":"}} {{len (split "a:b" ":")}}"#, &c),
            "[a b c] 2"
        );
        assert_eq!(r(r#"{{join (split "a:b:c" ":") "-"}}"#, &c), "a-b-c");
        assert_eq!(r(r#"{{join .Config.Cmd ","}}|"#, &c), "|");
        assert_eq!(
            r(
                r#"{{lower "AbC"}} {{upper "AbC"}} {{title "hello big_world-x"}}"#,
                &c
            ),
            "abc ABC Hello Big_world-X"
        );
        assert_eq!(
            r(
                r#"{{truncate "abcdef" 3}} {{truncate "ab" 3}} {{truncate .Id 2}}"#,
                &c
            ),
            "abc ab ab"
        );
        assert_eq!(r(r#"[{{pad "a" 1 2}}][{{pad "" 1 2}}]"#, &c), "[ a  ][]");
        assert_eq!(
            r(
                r#"{{eq .State.Pid 42}} {{eq .State.Status "x" "running"}} {{ne 1 2}}"#,
                &c
            ),
            "true true true"
        );
        assert_eq!(
            r(
                r#"{{lt 1 2}} {{le 2 2}} {{gt 1.5 2}} {{ge "b" "a"}} {{lt -1 0.5}}"#,
                &c
            ),
            "true true false true true"
        );
        assert_eq!(
            r(
                r#"{{eq (index .Config.Labels "nope") "x"}} {{eq nil .Config.Cmd}}"#,
                &c
            ),
            "false true"
        );
        assert!(err(r#"{{lt 1 "a"}}"#, &c).contains("incompatible types for comparison"));
        assert!(err("{{eq .Args .Args}}", &c).contains("non-comparable"));
        assert!(err("{{index .Args 5}}", &c).contains("index out of range: 5"));
        assert!(err("{{index .Args \"x\"}}", &c).contains("cannot index slice"));
        assert!(err("{{upper .State.Pid}}", &c).contains("expected string; got int"));
        assert!(err("{{len .State.Pid}}", &c).contains("len of type int"));
        assert!(err("{{len}}", &c).contains("wrong number of args for len: want 1 got 0"));
        assert!(err("{{lower}}", &c).contains("wrong number of args for lower"));
    }

    #[test]
    fn printf_verbs() {
        let c = container();
        let p = |f: &str| r(&format!("{{{{printf {f}}}}}"), &c);
        assert_eq!(
            p(r#""%s|%d|%v|%q" .Name .State.Pid .Args .Name"#),
            "/web|42|[-g daemon off;]|\"/web\""
        );
        assert_eq!(
            p(r#""%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%c" 42 42 -42 42 255 255 8 5 65"#),
            "   42|42   |-0042|+42|ff|FF|10|101|A"
        );
        assert_eq!(
            p(r#""%.2f|%8.3f|%e|%t|%%|%v" 3.14159 2 1500.0 true .Size"#),
            "3.14|   2.000|1.500000e+03|true|%|1.5"
        );
        assert_eq!(p(r#""%-6s|%6s|%.2s" "ab" "ab" "abc""#), "ab    |    ab|ab");
        assert_eq!(p(r#""%q %q" "a\"b\n" 97"#), r#""a\"b\n" 'a'"#);
        assert_eq!(p(r#""%d %s" "x" 3"#), "%!d(string=x) %!s(int=3)");
        assert_eq!(p(r#""%d %d" 1"#), "1 %!d(MISSING)");
        assert_eq!(p(r#""%d" 1 "x""#), "1%!(EXTRA string=x)");
        assert_eq!(p(r#""%v %s" .Config.Cmd .Config.Nope"#), "<nil> %!s(<nil>)");
        assert_eq!(p(r#""%999999999d" 1"#), "%!(BADWIDTH)1");
        assert_eq!(p(r#""abc%""#), "abc%!(NOVERB)");
    }

    #[test]
    fn missing_fields() {
        let c = container();
        // the top level is Docker's struct: unknown fields are errors
        let e = err("{{.No.Such}}", &c);
        assert!(e.contains("can't evaluate field No"), "{e}");
        assert!(e.contains("<.No.Such>"), "{e}");
        // inner maps behave as Go maps: <no value>
        assert_eq!(
            r("{{.State.Nope}} {{.Config.Labels.nope.deeper}}", &c),
            "<no value> <no value>"
        );
        assert!(err("{{.Name.X}}", &c).contains("can't evaluate field X in type string"));
        assert!(err("{{.Config.Cmd.X}}", &c).contains("nil pointer evaluating interface {}.X"));
        assert!(err("{{$.Nope}}", &c).contains("can't evaluate field Nope"));
    }

    #[test]
    fn parse_errors() {
        let c = container();
        for (t, want) in [
            ("{{.Name", "unclosed action"),
            ("{{range .Args}}", "unexpected EOF"),
            ("{{if .Name}}a{{else}}b", "unexpected EOF"),
            ("{{end}}", "unexpected {{end}}"),
            ("{{else}}", "unexpected {{else}}"),
            ("{{nope .Name}}", "unknown function \"nope\""),
            ("{{.Name | nope}}", "unknown function \"nope\""),
            ("{{}}", "missing value for command"),
            ("{{(.Name}}", "unclosed left paren"),
            ("{{.Name)}}", "unexpected )"),
            ("{{if}}{{end}}", "missing value for if"),
            ("{{\"abc}}", "unterminated quoted string"),
            ("{{.Name | }}", "missing value for command"),
            ("{{$x, $y := .Args}}", "too many declarations"),
            ("{{define \"x\"}}{{end}}", "{{define}} is not supported"),
            (
                "{{if 1}}{{else}}{{else}}{{end}}",
                "expected end; found {{else}}",
            ),
            (
                "{{range .Args}}{{else if 1}}{{end}}",
                "unexpected if after else in range",
            ),
            ("{{.A @}}", "unexpected '@' in command"),
            ("{{1x}}", "bad number syntax"),
            ("a\nb\n{{.Name", ":3: unclosed action"),
        ] {
            let e = err(t, &c);
            assert!(e.contains(want), "{t:?}: {e}");
            assert!(e.starts_with("template: "), "{t:?}: {e}");
        }
        for (t, want) in [
            ("{{.Name 1}}", "can't give argument to non-function .Name 1"),
            ("{{1 | .Name}}", "can't give argument to non-function .Name"),
            ("{{nil}}", "nil is not a command"),
            ("{{$nope}}", "undefined variable: $nope"),
            ("{{$x = 1}}", "undefined variable: $x"),
        ] {
            let e = err(t, &c);
            assert!(e.contains(want), "{t:?}: {e}");
        }
    }

    #[test]
    fn bounded() {
        let c = container();
        let deep = format!("{}x{}", "{{if 1}}".repeat(500), "{{end}}".repeat(500));
        assert!(err(&deep, &c).contains("nesting too deep"));
        let parens = format!("{{{{{}1{}}}}}", "(".repeat(500), ")".repeat(500));
        assert!(err(&parens, &c).contains("nesting too deep"));
        let ok = format!("{}x{}", "{{if 1}}".repeat(100), "{{end}}".repeat(100));
        assert_eq!(r(&ok, &c), "x");
        let ok = format!("{{{{{}1{}}}}}", "(".repeat(99), ")".repeat(99));
        assert_eq!(r(&ok, &c), "1");
        let big = i64::MAX;
        assert!(err(&format!("{{{{pad \"a\" {big} {big}}}}}"), &c).contains("padding too large"));
        assert!(err(&format!("{{{{truncate \"a\" -{big}}}}}"), &c).contains("negative length"));
        assert!(err("{{range 100000000000}}{{end}}", &c).contains("execution too long"));
        assert!(
            err("{{range 5000}}{{range 5000}}{{end}}{{end}}", &c).contains("execution too long")
        );
        let grow = r#"{{$x := "aaaaaaaaaaaaaaaa"}}{{range 40}}{{$x = printf "%s%s" $x $x}}{{end}}"#;
        assert!(err(grow, &c).contains("value too large"));
        assert!(err(r#"{{pad "a" 100000000 1}}"#, &c).contains("padding too large"));
    }

    /// Random and truncated templates: always Ok or Err, never a panic.
    #[test]
    fn fuzz() {
        let c = container();
        let pieces = [
            "{{",
            "}}",
            "{{-",
            "-}}",
            " ",
            ".",
            ".Name",
            ".Args",
            "$",
            "$x",
            ":=",
            "=",
            ",",
            "(",
            ")",
            "|",
            "\"",
            "`",
            "'",
            "range",
            "if",
            "else",
            "end",
            "with",
            "break",
            "index",
            "printf",
            "\"%d%s%q\"",
            "0",
            "1",
            "-1",
            "nil",
            "true",
            "len",
            "json",
            "split",
            "join",
            "\\",
            "/*",
            "*/",
            "é",
            "\n",
            ".State",
            ".NetworkSettings.Ports",
            "eq",
            "and",
            "or",
            "not",
            "slice",
            "truncate",
            "pad",
            "0x",
            "1e",
            "\\u",
            "{{/*",
        ];
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let start = std::time::Instant::now();
        let mut oks = 0;
        for _ in 0..5_000 {
            let n = (rnd() % 24) as usize;
            let t: String = (0..n)
                .map(|_| pieces[(rnd() % pieces.len() as u64) as usize])
                .collect();
            if super::render(&t, &c).is_ok() {
                oks += 1;
            }
            for cut in t.char_indices().map(|(i, _)| i).step_by(3) {
                let _ = super::render(&t[..cut], &c);
            }
        }
        // valid templates exist among them, so both paths run
        assert!(oks > 100, "{oks}");
        assert!(start.elapsed().as_secs() < 60);
        // random bytes, biased to the template alphabet
        let alphabet =
            b"{}{}{}-. $x:=,()|\"`'\\/*0123456789abcdefrangeifelsendwithjsonindex%\n\t\xff";
        for _ in 0..20_000 {
            let n = (rnd() % 40) as usize;
            let bytes: Vec<u8> = (0..n)
                .map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize])
                .collect();
            let t = String::from_utf8_lossy(&bytes);
            let _ = super::render(&t, &c);
        }
        // every prefix of a real template
        let full = r#"{{range $p, $conf := .NetworkSettings.Ports}}{{- $p}} -> {{(index $conf 0).HostPort | printf "%q"}}{{else}}none{{end}}{{/* c */}}"#;
        for i in 0..=full.len() {
            let _ = super::render(&full[..i], &c);
        }
        assert_eq!(r(full, &c), "443/tcp -> \"8443\"80/tcp -> \"8080\"");
    }
}
