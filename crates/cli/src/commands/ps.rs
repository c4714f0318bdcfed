//! `berth ps`: containers in Docker's table (`-a`, `-q`, `-s`, `--filter`,
//! `--format json`), and the Docker-shaped `State` the other verbs share.

use crate::output::{human_size, parse_rfc3339, render, since, table};
use berth_engine::container::restart::{is_restarting, state_name};
use berth_engine::db::{Record, Status};
use berth_engine::{Config, Engine};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Show all containers (default: running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show the size of each container's writable layer.
    #[arg(short = 's', long)]
    pub size: bool,
    /// `status=`, `name=`, `id=`, `label=K[=V]`, `ancestor=`, `exited=`.
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// `json` (one object per line) or a Go template (`{{.Names}}`,
    /// `table {{.ID}}\t{{.Status}}`).
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate ids and commands.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Docker's `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    match secs {
        i64::MIN..=0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", secs / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", secs / 3600),
        172_800..=1_209_599 => format!("{} days", secs / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", secs / 604_800),
        5_184_000..=63_071_999 => format!("{} months", secs / 2_592_000),
        _ => format!("{} years", secs / 31_536_000),
    }
}

/// "Up 3 minutes", "Exited (0) 5 seconds ago", "Created".
pub fn status_text(r: &Record) -> String {
    let ago = |t: &str| parse_rfc3339(t).map(|t| now() - t).unwrap_or(0);
    match r.status {
        Status::Created | Status::Starting => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Running => format!("Up {}", human_duration(ago(&r.started_at))),
        Status::Exited if is_restarting(r) => format!(
            "Restarting ({}) {} ago",
            r.exit_code,
            human_duration(ago(&r.finished_at))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.exit_code,
            human_duration(ago(&r.finished_at))
        ),
    }
}

/// The command as Docker quotes it in `ps`.
pub fn command_of(r: &Record) -> Vec<String> {
    Config::parse(r)
        .ok()
        .and_then(|c| berth_engine::spec_gen::args(&c.image(), &c.spec).ok())
        .unwrap_or_default()
}

fn matches(r: &Record, filters: &[(String, String)]) -> anyhow::Result<bool> {
    let labels = Config::parse(r).map(|c| c.labels).unwrap_or_default();
    for (k, v) in filters {
        let ok = match k.as_str() {
            "status" => state_name(r) == v,
            "name" => r.name.contains(v.as_str()),
            "id" => r.id.starts_with(v.as_str()),
            "ancestor" => r.image_ref == *v || r.image_id.contains(v.as_str()),
            "exited" => r.status == Status::Exited && r.exit_code.to_string() == *v,
            "label" => match v.split_once('=') {
                Some((lk, lv)) => labels.get(lk).is_some_and(|x| x == lv),
                None => labels.contains_key(v.as_str()),
            },
            other => anyhow::bail!("invalid filter {other:?}"),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Docker's column titles for `--format 'table ...'`.
fn header_object() -> serde_json::Value {
    serde_json::json!({
        "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "ImageID": "IMAGE ID",
        "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
        "State": "STATE", "Status": "STATUS", "Ports": "PORTS", "Size": "SIZE",
        "Labels": "LABELS",
    })
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let mut filters = Vec::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        filters.push((k.to_string(), v.to_string()));
    }
    let show_all = a.all || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    let eng = Engine::open(root)?;
    let mut rows = vec![];
    let mut json_lines = vec![];
    let all = eng.list()?;
    // A user network's DNS server that died comes back here.
    eng.revive_dns(&all);
    for r in all {
        // Docker lists restarting containers with the running ones.
        let listed = r.status == Status::Running || is_restarting(&r);
        if (!show_all && !listed) || !matches(&r, &filters)? {
            continue;
        }
        if a.quiet {
            println!("{}", if a.no_trunc { &r.id[..] } else { &r.id[..12] });
            continue;
        }
        let cmd = command_of(&r).join(" ");
        let ports = ports_text(&eng, &r.id);
        let size = if a.size {
            Some(eng.upper_size(&r.id))
        } else {
            None
        };
        if a.format.is_some() {
            json_lines.push(serde_json::json!({
                "ID": if a.no_trunc { &r.id[..] } else { &r.id[..12] }, "Names": r.name, "Image": r.image_ref, "ImageID": r.image_id,
                "Command": cmd, "CreatedAt": r.created, "RunningFor": since(&r.created),
                "State": state_name(&r), "Status": status_text(&r), "Ports": ports,
                "Size": size.map(human_size).unwrap_or_default(),
                "Labels": Config::parse(&r).map(|c| c.labels).unwrap_or_default(),
            }));
            continue;
        }
        let cmd = if a.no_trunc || cmd.chars().count() <= 20 {
            format!("\"{cmd}\"")
        } else {
            format!("\"{}…\"", cmd.chars().take(19).collect::<String>())
        };
        let mut row = vec![
            if a.no_trunc {
                r.id.clone()
            } else {
                r.id[..12].to_string()
            },
            r.image_ref.clone(),
            cmd,
            since(&r.created),
            status_text(&r),
            ports,
            r.name.clone(),
        ];
        if let Some(s) = size {
            row.push(human_size(s));
        }
        rows.push(row);
    }
    if let Some(f) = &a.format {
        if f == "json" {
            for l in json_lines {
                println!("{l}");
            }
            return Ok(0);
        }
        // A Go template per container; `table ...` adds Docker's headers.
        let (table_mode, tpl) = match f.strip_prefix("table") {
            Some(t) => (true, t.trim_start()),
            None => (false, f.as_str()),
        };
        let mut rows: Vec<Vec<String>> = Vec::new();
        if table_mode {
            let head = render(tpl, &header_object())?;
            rows.push(head.split('\t').map(str::to_string).collect());
        }
        for l in &json_lines {
            let line = render(tpl, l)?;
            if table_mode {
                rows.push(line.split('\t').map(str::to_string).collect());
            } else {
                println!("{line}");
            }
        }
        if table_mode {
            print!("{}", table(&rows));
        }
        return Ok(0);
    }
    if a.quiet {
        return Ok(0);
    }
    let mut head: Vec<String> = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec();
    if a.size {
        head.push("SIZE".into());
    }
    rows.insert(0, head);
    print!("{}", table(&rows));
    Ok(0)
}

/// Docker's PORTS column: `127.0.0.1:8080->80/tcp, 0.0.0.0:53->53/udp`.
fn ports_text(eng: &Engine, id: &str) -> String {
    eng.published(id)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let host = match p.host_ip {
                Some(std::net::IpAddr::V6(a)) => format!("[{a}]"),
                Some(a) => a.to_string(),
                None => "0.0.0.0".into(),
            };
            format!("{host}:{}->{}/{}", p.host_port, p.port, p.proto.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
