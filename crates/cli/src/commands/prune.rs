//! `berth image prune [-a] [-f]`: removes dangling (untagged) images, or
//! with `-a` every image no container uses, freeing the layer dirs and blobs no remaining image uses,
//! as `rmi` does. Output as Docker's: "Deleted Images:", one line per
//! reference and image, "Total reclaimed space: …".

use crate::output::human_size;
use berth_image::db::Db;
use berth_image::digest::Digest;
use berth_image::{Reference, Store};
use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    if !a.force && !confirm(a.all)? {
        return Ok(0);
    }
    let (lines, reclaimed) = prune_images(root, a.all)?;
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in &lines {
            println!("{l}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// Removes dangling images (every unused one with `all`) and orphan blobs;
/// returns Docker's "Deleted Images" lines and the bytes freed.
pub fn prune_images(root: &Path, all: bool) -> anyhow::Result<(Vec<String>, u64)> {
    let (store, db) = super::open(root)?;
    let ids = if all {
        db.all_image_ids()?
    } else {
        db.dangling_images()?
    };
    let mut lines = Vec::new();
    let mut reclaimed = 0u64;
    let containers = berth_engine::db::ContainerDb::open(root)?;
    for id in ids {
        // Tagged again (or removed) by another process since the list.
        if !all && !db.tags_of(&id)?.is_empty() {
            continue;
        }
        // Images containers were made from stay (also with --all).
        if !containers.users_of_image(id.as_str())?.is_empty() {
            continue;
        }
        reclaimed += remove(&store, &db, &id, &mut lines)?;
    }
    reclaimed += collect_orphan_blobs(&store, &db)?;
    Ok((lines, reclaimed))
}

/// Docker's prompt; reads the answer from stdin (no answer is "no").
fn confirm(all: bool) -> anyhow::Result<bool> {
    let what = if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let yes = matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES");
    if !yes {
        println!();
    }
    Ok(yes)
}

/// Removes one image (its tags and repo digests first); returns the bytes
/// freed on disk.
fn remove(store: &Store, db: &Db, id: &Digest, lines: &mut Vec<String>) -> anyhow::Result<u64> {
    let Some(img) = db.image(id)? else {
        return Ok(0);
    };
    let familiar = |s: &String| {
        Reference::parse(s)
            .map(|r| r.familiar())
            .unwrap_or(s.clone())
    };
    for t in db.tags_of(id)? {
        db.untag(&t)?;
        lines.push(format!("untagged: {}", familiar(&t)));
    }
    for d in db.repo_digests_of(id)? {
        db.remove_repo_digest(&d)?;
        lines.push(format!("untagged: {}", familiar(&d)));
    }
    let mut freed = 0;
    let unused = db.remove_image(id)?;
    for chain in unused {
        let dir = store.layer_path(&chain);
        let size = tree_size(&dir);
        if store.remove_layer(&chain)? {
            freed += size;
        }
    }
    let mut blobs = vec![img.id.clone(), img.manifest_digest.clone()];
    blobs.extend(img.layers.iter().map(|l| l.blob_digest.clone()));
    blobs.sort();
    blobs.dedup();
    for b in blobs {
        if !db.blob_in_use(&b)? {
            let size = std::fs::metadata(store.blob_path(&b))
                .map(|m| m.len())
                .unwrap_or(0);
            if store.remove_blob(&b)? {
                freed += size;
            }
        }
    }
    lines.push(format!("deleted: {id}"));
    Ok(freed)
}

/// Bytes of the files under `dir` (hard links counted once).
pub(crate) fn tree_size(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.nlink() < 2 || seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

/// Verified blobs that no image references: left by a pull that failed or
/// was killed after some blobs were stored. Only those older than an hour
/// go, so a pull still running (it records its image right after its last
/// blob) never loses one.
fn collect_orphan_blobs(store: &Store, db: &Db) -> anyhow::Result<u64> {
    const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
    let mut freed = 0;
    for d in store.list_blobs()? {
        let path = store.blob_path(&d);
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        let old = md
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= MIN_AGE);
        if old && !db.blob_in_use(&d)? && store.remove_blob(&d)? {
            freed += md.len();
        }
    }
    Ok(freed)
}
