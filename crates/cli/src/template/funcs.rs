use super::*;

// ---------------------------------------------------------------- functions

pub(super) fn want(name: &str, vals: &[V], n: usize, at_least: bool) -> Result<(), String> {
    if vals.len() == n || (at_least && vals.len() > n) {
        return Ok(());
    }
    let w = if at_least { "at least " } else { "" };
    Err(format!(
        "wrong number of args for {name}: want {w}{n} got {}",
        vals.len()
    ))
}

pub(super) fn as_str<'v>(v: &'v V) -> Result<&'v str, String> {
    match v.get() {
        Some(Value::String(s)) => Ok(s),
        None => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            go_type(other)
        )),
    }
}

pub(super) fn as_int(v: &V) -> Result<i64, String> {
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

pub(super) fn func<'a>(name: &str, vals: Vec<V<'a>>) -> Result<V<'a>, String> {
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

pub(super) fn index<'a>(cur: V<'a>, k: &V) -> Result<V<'a>, String> {
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

pub(super) fn is_nil(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

pub(super) fn equal(a: Option<&Value>, b: Option<&Value>) -> Result<bool, String> {
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

pub(super) fn order_num(x: &Number, y: &Number) -> Option<Ordering> {
    match (int_of(x), int_of(y)) {
        (Some(i), Some(j)) => Some(i.cmp(&j)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

pub(super) fn order(a: Option<&Value>, b: Option<&Value>) -> Result<Option<Ordering>, String> {
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

pub(super) fn digits(it: &mut std::iter::Peekable<std::str::Chars>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = it.peek().and_then(|d| d.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        it.next();
    }
    n
}

pub(super) struct Spec {
    pub(super) minus: bool,
    pub(super) plus: bool,
    pub(super) zero: bool,
    pub(super) space: bool,
    pub(super) sharp: bool,
    pub(super) prec: Option<usize>,
}

pub(super) fn sprintf(f: &str, args: &[V]) -> Result<String, String> {
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
pub(super) fn verb_fmt(verb: char, v: Option<&Value>, sp: &Spec) -> Option<(String, bool)> {
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
