//! `berth commit` (a container's changes as a new image) and `berth diff`.

use berth_engine::Engine;
use berth_image::commit::CommitOptions;
use berth_image::Reference;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Author (e.g. "Jane Doe <jane@example.com>").
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, ...).
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause the container while committing.
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    pub container: String,
    /// REPOSITORY[:TAG] for the new image.
    pub reference: Option<String>,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    pub container: String,
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    let done = eng.commit(
        &rec,
        CommitOptions {
            changes: a.change,
            author: a.author,
            message: a.message,
            reference,
            ..CommitOptions::default()
        },
        a.pause,
    )?;
    println!("{}", done.image.id);
    Ok(0)
}

pub fn diff(root: &Path, a: DiffArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    for c in eng.diff(&rec)? {
        println!("{c}");
    }
    Ok(0)
}
