//! `berth images [-a] [-q] [--digests] [--format json|table]`

use crate::output::{human_size, since};
use berth_image::Reference;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Show all images (berth keeps no intermediate images: same as without).
    #[arg(short, long)]
    pub all: bool,
    /// Only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// `table` (default) or `json` (one object per line, as Docker prints).
    #[arg(long, default_value = "table")]
    pub format: String,
}

struct Row {
    repo: String,
    tag: String,
    digest: String,
    id: String,
    created: String,
    created_at: String,
    size: String,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let (_, db) = super::open(root)?;
    let mut rows = Vec::new();
    for e in db.list_images()? {
        let id: String = e.image.id.hex().chars().take(12).collect();
        let created = since(&e.image.created);
        let size = human_size(e.image.size);
        let digest_for = |repo: &str| -> String {
            e.repo_digests
                .iter()
                .filter_map(|d| Reference::parse(d).ok())
                .find(|r| r.familiar_name() == repo)
                .and_then(|r| r.digest.map(|d| d.to_string()))
                .unwrap_or_else(|| "<none>".into())
        };
        if e.tags.is_empty() {
            rows.push(Row {
                repo: "<none>".into(),
                tag: "<none>".into(),
                digest: "<none>".into(),
                id: id.clone(),
                created: created.clone(),
                created_at: e.image.created.clone(),
                size: size.clone(),
            });
        }
        for t in &e.tags {
            let r = Reference::parse(t)?;
            let repo = r.familiar_name();
            rows.push(Row {
                digest: digest_for(&repo),
                repo,
                tag: r.tag.clone().unwrap_or_else(|| "<none>".into()),
                id: id.clone(),
                created: created.clone(),
                created_at: e.image.created.clone(),
                size: size.clone(),
            });
        }
    }
    rows.sort_by(|x, y| (&x.repo, &x.tag).cmp(&(&y.repo, &y.tag)));
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                println!("{}", r.id);
            }
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => {
            for r in &rows {
                println!(
                    "{}",
                    serde_json::json!({
                        "Containers": "N/A",
                        "CreatedAt": r.created_at,
                        "CreatedSince": r.created,
                        "Digest": r.digest,
                        "ID": r.id,
                        "Repository": r.repo,
                        "SharedSize": "N/A",
                        "Size": r.size,
                        "Tag": r.tag,
                        "UniqueSize": "N/A",
                        "VirtualSize": r.size,
                    })
                );
            }
        }
        "table" => {
            let mut table: Vec<Vec<String>> = Vec::new();
            let mut head = vec!["REPOSITORY", "TAG"];
            if a.digests {
                head.push("DIGEST");
            }
            head.extend(["IMAGE ID", "CREATED", "SIZE"]);
            table.push(head.iter().map(|s| s.to_string()).collect());
            for r in &rows {
                let mut v = vec![r.repo.clone(), r.tag.clone()];
                if a.digests {
                    v.push(r.digest.clone());
                }
                v.extend([r.id.clone(), r.created.clone(), r.size.clone()]);
                table.push(v);
            }
            print!("{}", crate::output::table(&table));
        }
        f => anyhow::bail!("invalid --format {f:?}: use table or json"),
    }
    Ok(0)
}
