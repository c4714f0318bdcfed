//! `state`, `list`, `ps`.

use super::{oci_state, Error, Result, Runtime};
use crate::state::Status;

pub fn state(rt: &Runtime, id: &str) -> Result<serde_json::Value> {
    let c = rt.load(id)?;
    Ok(oci_state(&c.rec, c.status))
}

/// `list` as runc prints it: a table, or JSON with `--format json`.
pub fn list(rt: &Runtime, json: bool, quiet: bool) -> Result<String> {
    let cs = rt.list()?;
    if quiet {
        return Ok(cs.iter().map(|c| format!("{}\n", c.rec.id)).collect());
    }
    if json {
        let v: Vec<serde_json::Value> = cs.iter().map(|c| oci_state(&c.rec, c.status)).collect();
        return Ok(serde_json::to_string(&v).expect("json") + "\n");
    }
    let mut rows = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for c in &cs {
        let pid = if c.status == Status::Stopped {
            0
        } else {
            c.rec.pid
        };
        rows.push([
            c.rec.id.clone(),
            pid.to_string(),
            c.status.to_string(),
            c.rec.bundle.display().to_string(),
            c.rec.created.clone(),
            c.rec.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{:w$}   ", c, w = widths[i]));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// `ps`: the container's pids as JSON, or `ps(1)` output filtered to them.
pub fn ps(rt: &Runtime, id: &str, json: bool, ps_args: &[String]) -> Result<String> {
    let c = rt.load(id)?;
    if c.status == Status::Stopped {
        return Err(Error::WrongState {
            id: id.into(),
            status: c.status,
            what: "container not running",
        });
    }
    let m = super::cgroup_of(&c.rec)?;
    let pids = m.pids()?;
    if json {
        return Ok(serde_json::to_string(&pids).expect("json") + "\n");
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|source| Error::Io {
            path: "ps".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Invalid("ps output has no PID column".into()))?;
    let mut res = format!("{header}\n");
    for l in lines {
        if let Some(p) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&p) {
                res.push_str(l);
                res.push('\n');
            }
        }
    }
    Ok(res)
}
