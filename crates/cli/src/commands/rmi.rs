//! `berth rmi [-f] IMAGE...`: untag, and delete an image whose last name is
//! gone (or named by id), freeing layers and blobs no other image uses.

use berth_image::db::Db;
use berth_image::{Reference, Store};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Remove an image by id even if several names point at it.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let (store, db) = super::open(root)?;
    let mut code = 0;
    for name in &a.images {
        if let Err(e) = remove(&store, &db, name, a.force) {
            eprintln!("Error response from berth: {e:#}");
            code = 1;
        }
    }
    Ok(code)
}

fn remove(store: &Store, db: &Db, name: &str, force: bool) -> anyhow::Result<()> {
    let img = db
        .image_by_ref(name)?
        .ok_or_else(|| anyhow::anyhow!("no such image: {name}"))?;
    let tags = db.tags_of(&img.id)?;
    let users =
        berth_engine::db::ContainerDb::open(store.root())?.users_of_image(img.id.as_str())?;
    // Named by a tag (not by id): untag; delete only when it was the last.
    let by_tag = Reference::parse(name)
        .ok()
        .and_then(|r| r.tagged_name())
        .filter(|t| tags.contains(t) && r_is_not_id(name));
    let deletes = by_tag.is_none() || tags.len() <= 1;
    if deletes && !users.is_empty() {
        if !force {
            anyhow::bail!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                &users[0].id[..12],
                &img.id.hex()[..12]
            );
        }
        // Forced: the names go, the image stays while containers use it.
        for t in &tags {
            db.untag(t)?;
            println!(
                "Untagged: {}",
                Reference::parse(t)
                    .map(|r| r.familiar())
                    .unwrap_or(t.clone())
            );
        }
        return Ok(());
    }
    if let Some(t) = by_tag {
        db.untag(&t)?;
        println!(
            "Untagged: {}",
            Reference::parse(&t)
                .map(|r| r.familiar())
                .unwrap_or(t.clone())
        );
        if tags.len() > 1 {
            return Ok(());
        }
    } else if tags.len() > 1 && !force {
        anyhow::bail!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            &img.id.hex()[..12]
        );
    } else {
        for t in &tags {
            db.untag(t)?;
            println!(
                "Untagged: {}",
                Reference::parse(t)
                    .map(|r| r.familiar())
                    .unwrap_or(t.clone())
            );
        }
    }
    let unused = db.remove_image(&img.id)?;
    for chain in unused {
        store.remove_layer(&chain)?;
    }
    // Blobs (manifest, config, layers) no remaining image refers to.
    let mut blobs = vec![img.id.clone(), img.manifest_digest.clone()];
    blobs.extend(img.layers.iter().map(|l| l.blob_digest.clone()));
    for b in blobs {
        if !db.blob_in_use(&b)? {
            store.remove_blob(&b)?;
        }
    }
    println!("Deleted: {}", img.id);
    Ok(())
}

/// A bare hex string (an id prefix) also parses as a repository name.
fn r_is_not_id(name: &str) -> bool {
    !(name.len() >= 4 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}
