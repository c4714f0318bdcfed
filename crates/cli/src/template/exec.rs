use super::*;

// ---------------------------------------------------------------- execution

#[derive(Debug)]
pub(super) struct E {
    pub(super) msg: String,
    pub(super) located: bool,
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
    pub(super) fn at(self, src: &str, line: usize) -> E {
        if self.located {
            return self;
        }
        E {
            msg: format!(":{line}: executing at <{src}>: {}", self.msg),
            located: true,
        }
    }
}

pub(super) type R<T> = Result<T, E>;

#[derive(PartialEq)]
pub(super) enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'a> {
    pub(super) root: &'a Value,
    pub(super) vars: Vec<(String, V<'a>)>,
    pub(super) out: String,
    pub(super) steps: u64,
}

impl<'a> Exec<'a> {
    pub(super) fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err("execution too long".into());
        }
        Ok(())
    }

    pub(super) fn emit(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > MAX_SIZE {
            return Err("output too large".into());
        }
        self.out.push_str(s);
        Ok(())
    }

    pub(super) fn walk(&mut self, nodes: &[Node], dot: &V<'a>) -> R<Flow> {
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
    pub(super) fn items(&self, v: &V<'a>, p: &Pipe) -> R<Vec<(V<'a>, V<'a>)>> {
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
    pub(super) fn range_int(&self, v: &Value, p: &Pipe) -> Result<Vec<(V<'a>, V<'a>)>, String> {
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

    pub(super) fn declare(&mut self, p: &Pipe, vals: &[V<'a>]) -> R<()> {
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

    pub(super) fn pipe(&mut self, p: &Pipe, dot: &V<'a>) -> R<V<'a>> {
        let mut v: Option<V<'a>> = None;
        for c in &p.cmds {
            v = Some(self.cmd(c, dot, v).map_err(|e| e.at(&c.src, p.line))?);
        }
        Ok(v.unwrap_or(V::Missing))
    }

    pub(super) fn cmd(&mut self, c: &Cmd, dot: &V<'a>, fin: Option<V<'a>>) -> R<V<'a>> {
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

    pub(super) fn arg(&mut self, a: &Arg, dot: &V<'a>) -> R<V<'a>> {
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

    pub(super) fn chain(&self, mut v: V<'a>, names: &[String]) -> R<V<'a>> {
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

    pub(super) fn field<'v>(&self, v: &'v Value, name: &str) -> R<Option<&'v Value>> {
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

    pub(super) fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        fin: Option<V<'a>>,
        dot: &V<'a>,
    ) -> R<V<'a>> {
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
