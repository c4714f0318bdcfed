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

mod exec;
mod funcs;
mod lex;
mod parse;
mod print;
#[cfg(test)]
mod tests;

use exec::*;
use funcs::*;
use lex::*;
use parse::*;
use print::*;

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
