//! `berth tag SOURCE TARGET`

use berth_image::Reference;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    pub source: String,
    pub target: String,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let (_, db) = super::open(root)?;
    let target = Reference::parse(&a.target)?;
    if target.digest.is_some() {
        anyhow::bail!(
            "refusing to create a tag with a digest reference: {}",
            a.target
        );
    }
    let img = db
        .image_by_ref(&a.source)?
        .ok_or_else(|| anyhow::anyhow!("no such image: {}", a.source))?;
    db.set_tag(&target.tagged_name().expect("parse adds a tag"), &img.id)?;
    Ok(0)
}
