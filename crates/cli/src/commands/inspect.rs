//! `berth image inspect IMAGE...`: Docker-shaped JSON.

use berth_image::Reference;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// A Go template per image (`{{.Id}}`, `{{json .Config}}`).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let (_, db) = super::open(root)?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &a.images {
        match image_json(&db, name)? {
            Some(v) => out.push(v),
            None => missing.push(name.clone()),
        }
    }
    match &a.format {
        Some(f) if f != "json" => {
            for v in &out {
                println!("{}", crate::output::render(f, v)?);
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("Error: No such image: {m}");
        }
        return Ok(1);
    }
    Ok(0)
}

/// Docker's image inspect object for `name`, if there is such an image.
pub fn image_json(
    db: &berth_image::db::Db,
    name: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    {
        let Some(img) = db.image_by_ref(name)? else {
            return Ok(None);
        };
        let config: serde_json::Value = serde_json::from_str(&img.config)?;
        let familiar = |s: &String| {
            Reference::parse(s)
                .map(|r| r.familiar())
                .unwrap_or(s.clone())
        };
        let tags: Vec<String> = db.tags_of(&img.id)?.iter().map(familiar).collect();
        let digests: Vec<String> = db
            .repo_digests_of(&img.id)?
            .iter()
            .map(|s| {
                Reference::parse(s)
                    .map(|r| {
                        format!(
                            "{}@{}",
                            r.familiar_name(),
                            r.digest.map(|d| d.to_string()).unwrap_or_default()
                        )
                    })
                    .unwrap_or(s.clone())
            })
            .collect();
        Ok(Some(serde_json::json!({
            "Id": img.id.to_string(),
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": "",
            "Comment": config.get("comment").cloned().unwrap_or(serde_json::Value::from("")),
            "Created": img.created,
            "DockerVersion": "",
            "Author": config.get("author").cloned().unwrap_or(serde_json::Value::from("")),
            "Config": config.get("config").cloned().unwrap_or(serde_json::Value::Null),
            "Architecture": img.architecture,
            "Variant": config.get("variant").cloned(),
            "Os": img.os,
            "Size": img.size,
            "GraphDriver": {"Name": "overlay", "Data": null},
            "RootFS": {
                "Type": "layers",
                "Layers": img.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
            },
            "Descriptor": {
                "mediaType": img.manifest_media_type,
                "digest": img.manifest_digest.to_string(),
            },
        })))
    }
}
