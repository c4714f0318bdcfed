//! `berth cp` (files between a container and the host, or a tar stream
//! with `-`, with Docker's naming rules) and `berth export` (the whole
//! rootfs as a tar).

use berth_engine::container::cp::PathKind;
use berth_engine::db::Record;
use berth_engine::Engine;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// CONTAINER:SRC, a host path, or `-` (a tar on stdin).
    pub src: String,
    /// CONTAINER:DEST, a host path, or `-` (a tar on stdout).
    pub dest: String,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Write to a file instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    pub container: String,
}

/// `NAME:PATH` names a container path unless it looks like a local path.
fn split(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    let (c, p) = s.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

/// A container path: absolute, `/` when empty.
fn abs(p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

fn base_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

pub fn run(root: &Path, a: Args) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    match (split(&a.src), split(&a.dest)) {
        (Some(_), Some(_)) => anyhow::bail!("copying between containers is not supported"),
        (None, None) => anyhow::bail!("must specify at least one container source"),
        (Some((c, p)), None) => {
            let rec = eng.lookup(c)?;
            from_container(root, &eng, &rec, &abs(p), &a.dest)
        }
        (None, Some((c, p))) => {
            let rec = eng.lookup(c)?;
            to_container(root, &eng, &rec, &a.src, &abs(p))
        }
    }?;
    Ok(0)
}

fn from_container(
    root: &Path,
    eng: &Engine,
    rec: &Record,
    src: &str,
    dest: &str,
) -> anyhow::Result<()> {
    let name = base_name(src);
    if dest == "-" {
        let mut out = std::io::stdout().lock();
        eng.copy_from(rec, src, &name, &mut out)?;
        out.flush()?;
        return Ok(());
    }
    let dest = PathBuf::from(dest);
    let into_dir = dest.is_dir();
    let parent = if into_dir {
        dest.clone()
    } else {
        dest.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    if !parent.is_dir() {
        anyhow::bail!("destination directory {} does not exist", parent.display());
    }
    // The copy is spooled to a file first (no thread may run while the
    // engine forks its chrooted child), extracted next to the destination,
    // then moved into place.
    let mut spool = spool_file(root)?;
    eng.copy_from(rec, src, &name, &mut spool)?;
    spool.seek(SeekFrom::Start(0))?;
    let tmp = tempfile::Builder::new()
        .prefix(".berth-cp-")
        .tempdir_in(&parent)?;
    let mut a = tar::Archive::new(spool);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    // The files become root's here: no setuid/setgid bits from the
    // container, and no device nodes.
    a.set_mask(0o6000);
    for e in a.entries()? {
        let mut e = e?;
        if matches!(
            e.header().entry_type(),
            tar::EntryType::Char | tar::EntryType::Block
        ) {
            continue;
        }
        e.unpack_in(tmp.path())?;
    }
    let got = tmp.path().join(&name);
    let final_path = if into_dir { dest.join(&name) } else { dest };
    if got.is_dir() && final_path.exists() && !final_path.is_dir() {
        anyhow::bail!(
            "cannot copy a directory to a file: {}",
            final_path.display()
        );
    }
    if got.is_dir() && final_path.is_dir() {
        // Docker merges into an existing directory.
        for e in std::fs::read_dir(&got)? {
            let e = e?;
            let to = final_path.join(e.file_name());
            if to.is_dir() && !e.file_type()?.is_dir() || !to.is_dir() {
                let _ = std::fs::remove_file(&to);
            }
            if to.is_dir() && e.file_type()?.is_dir() {
                copy_merge(&e.path(), &to)?;
            } else {
                std::fs::rename(e.path(), &to)?;
            }
        }
    } else {
        std::fs::rename(&got, &final_path)?;
    }
    Ok(())
}

/// Moves the entries of `from` into the existing dir `to`, recursively.
fn copy_merge(from: &Path, to: &Path) -> anyhow::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = to.join(e.file_name());
        if t.is_dir() && e.file_type()?.is_dir() {
            copy_merge(&e.path(), &t)?;
        } else {
            if t.is_dir() {
                std::fs::remove_dir_all(&t)?;
            }
            std::fs::rename(e.path(), &t)?;
        }
    }
    Ok(())
}

fn to_container(
    root: &Path,
    eng: &Engine,
    rec: &Record,
    src: &str,
    dest: &str,
) -> anyhow::Result<()> {
    if src == "-" {
        let mut input = std::io::stdin().lock();
        eng.copy_to(rec, dest, &mut input)?;
        return Ok(());
    }
    let src_path = PathBuf::from(src);
    let md = std::fs::symlink_metadata(&src_path)
        .map_err(|e| anyhow::anyhow!("could not stat {src}: {e}"))?;
    let (dir, name) = match eng.path_kind(rec, dest)? {
        PathKind::Dir => (dest.to_string(), base_name(src)),
        PathKind::Other if md.is_dir() => {
            anyhow::bail!("cannot copy a directory to a file: {dest}")
        }
        _ => {
            let parent = Path::new(dest)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "/".into());
            (parent, base_name(dest))
        }
    };
    let mut spool = spool_file(root)?;
    {
        let mut b = tar::Builder::new(&mut spool);
        berth_engine::container::cp::append_tree(&mut b, &src_path, Path::new(&name))?;
        b.finish()?;
    }
    spool.seek(SeekFrom::Start(0))?;
    eng.copy_to(rec, &dir, &mut spool)?;
    Ok(())
}

/// An unnamed temporary file in the store (not /tmp: copies can be big).
fn spool_file(root: &Path) -> anyhow::Result<File> {
    let dir = root.join("tmp");
    std::fs::create_dir_all(&dir)?;
    Ok(tempfile::tempfile_in(&dir)?)
}

pub fn export(root: &Path, a: ExportArgs) -> anyhow::Result<i32> {
    let eng = Engine::open(root)?;
    let rec = eng.lookup(&a.container)?;
    match &a.output {
        Some(p) => {
            let tmp = PathBuf::from(format!("{p}.berth-tmp"));
            let mut f = File::create(&tmp)?;
            let r = eng.export(&rec, &mut f);
            if let Err(e) = r {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            f.sync_all()?;
            std::fs::rename(&tmp, p)?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            eng.export(&rec, &mut out)?;
            out.flush()?;
        }
    }
    Ok(0)
}
