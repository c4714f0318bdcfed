// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone, PartialEq)]
pub(super) enum T {
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
pub(super) struct Tok {
    pub(super) t: T,
    /// Whitespace comes before it (so `.A .B` is two operands, `.A.B` one).
    pub(super) space: bool,
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Debug)]
pub(super) enum Item {
    Text(String),
    Action { toks: Vec<Tok>, line: usize },
}

pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub(super) fn is_ident(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(super) type LexErr = (usize, String);

pub(super) fn lex(src: &str) -> Result<Vec<Item>, LexErr> {
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
pub(super) fn lex_quoted(s: &str) -> Result<(String, usize), String> {
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

pub(super) fn escape(e: char, it: &mut std::str::CharIndices) -> Result<char, String> {
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

pub(super) fn lex_char(s: &str) -> Result<(char, usize), String> {
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

pub(super) fn lex_number(s: &str) -> Result<(T, usize), String> {
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
