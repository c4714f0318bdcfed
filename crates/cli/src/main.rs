//! `berth`: the container engine's command line. Parsing and output only;
//! the work happens in the library crates.

mod commands;
mod output;
mod source;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "berth", version, about = "berth: containers without a daemon")]
pub struct Cli {
    /// The image and container store.
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    pub root: PathBuf,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Download an image from a registry.
    Pull(commands::pull::Args),
    /// List images.
    Images(commands::images::Args),
    /// Image subcommands.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Remove images.
    Rmi(commands::rmi::Args),
    /// Give an image another name.
    Tag(commands::tag::Args),
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Docker-shaped JSON of one or more images.
    Inspect(commands::inspect::Args),
    /// List images.
    Ls(commands::images::Args),
    /// Download an image from a registry.
    Pull(commands::pull::Args),
    /// Remove images.
    Rm(commands::rmi::Args),
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let root = cli.root;
    match cli.cmd {
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => commands::pull::run(&root, a),
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => commands::images::run(&root, a),
        Cmd::Image(ImageCmd::Inspect(a)) => commands::inspect::run(&root, a),
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => commands::rmi::run(&root, a),
        Cmd::Tag(a) => commands::tag::run(&root, a),
    }
}
