//! `berth history [--no-trunc] [-q] [--format json|table] IMAGE`: the
//! config's `history`, newest first, in Docker's columns. Entries that made
//! a layer get its unpacked size; `empty_layer` entries 0B. As for a pulled
//! image in Docker, only the newest entry carries the image id; the others
//! are `<missing>` (their intermediate images never came with the pull).

use crate::output::{human_size, since};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Do not truncate ids and commands.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// `table` (default) or `json` (one object per line, as Docker prints).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Print sizes in bytes.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    pub image: String,
}

#[derive(serde::Deserialize, Default)]
struct Entry {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

struct Row {
    id: String,
    created_at: String,
    created_by: String,
    size: u64,
    comment: String,
}

/// Docker's `stringutils.Ellipsis`: at most `max` characters, the last "…".
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let (store, db) = super::open(root)?;
    let Some(img) = db.image_by_ref(&a.image)? else {
        eprintln!("Error response from berth: no such image: {}", a.image);
        return Ok(1);
    };
    let config: serde_json::Value = serde_json::from_str(&img.config)?;
    let history: Vec<Entry> = config
        .get("history")
        .cloned()
        .map(serde_json::from_value)
        .transpose()?
        .unwrap_or_default();
    let layer_size = |i: usize| -> u64 {
        img.layers
            .get(i)
            .map(|l| super::prune::tree_size(&store.layer_dir(&l.chain_id)))
            .unwrap_or(0)
    };
    let mut rows = Vec::new();
    let mut layer = 0;
    if history.is_empty() {
        // No history recorded: one anonymous entry per layer.
        for i in 0..img.layers.len() {
            rows.push(Row {
                id: String::new(),
                created_at: img.created.clone(),
                created_by: String::new(),
                size: layer_size(i),
                comment: String::new(),
            });
        }
    }
    for h in history {
        let size = if h.empty_layer {
            0
        } else {
            layer += 1;
            layer_size(layer - 1)
        };
        rows.push(Row {
            id: String::new(),
            created_at: h.created.unwrap_or_default(),
            created_by: h.created_by.unwrap_or_default(),
            size,
            comment: h.comment.unwrap_or_default(),
        });
    }
    rows.reverse();
    for (i, r) in rows.iter_mut().enumerate() {
        r.id = if i > 0 {
            "<missing>".into()
        } else if a.no_trunc {
            img.id.to_string()
        } else {
            img.id.hex().chars().take(12).collect()
        };
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(0);
    }
    let size = |n: u64| {
        if a.human {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    match a.format.as_str() {
        "json" => {
            for r in &rows {
                println!(
                    "{}",
                    serde_json::json!({
                        "Comment": r.comment,
                        "CreatedAt": r.created_at,
                        "CreatedBy": r.created_by,
                        "CreatedSince": since(&r.created_at),
                        "ID": r.id,
                        "Size": size(r.size),
                    })
                );
            }
        }
        "table" => {
            let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()];
            for r in &rows {
                let by = r.created_by.replace(['\n', '\t'], " ");
                table.push(vec![
                    r.id.clone(),
                    since(&r.created_at),
                    if a.no_trunc { by } else { ellipsis(&by, 45) },
                    size(r.size),
                    r.comment.clone(),
                ]);
            }
            print!("{}", crate::output::table(&table));
        }
        f => anyhow::bail!("invalid --format {f:?}: use table or json"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::ellipsis;

    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(ellipsis("short", 45), "short");
        let long = "x".repeat(50);
        let e = ellipsis(&long, 45);
        assert_eq!(e.chars().count(), 45);
        assert!(e.ends_with('…'));
    }
}
