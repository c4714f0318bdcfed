//! `berth`: the container engine's command line. Parsing and output only;
//! the work happens in the library crates.

mod commands;
mod config;
mod output;
mod source;
mod template;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// Upload an image to a registry.
    Push(commands::push::Args),
    /// List images.
    Images(commands::images::Args),
    /// Image subcommands.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Remove images.
    Rmi(commands::rmi::Args),
    /// Give an image another name.
    Tag(commands::tag::Args),
    /// Write images to a docker-archive or oci-archive tar.
    Save(commands::save::Args),
    /// Load images from a docker-archive or OCI-layout tar.
    Load(commands::load::Args),
    /// Make a one-layer image from a rootfs tarball.
    Import(commands::import::Args),
    /// Log in to a registry (stores the credentials in Docker's config.json).
    Login(commands::login::LoginArgs),
    /// Log out from a registry.
    Logout(commands::login::LogoutArgs),
    /// Show the history of an image.
    History(commands::history::Args),
    /// Run a command in a new container.
    #[command(disable_help_flag = true)]
    Run(commands::run::Args),
    /// Create a new container (not started).
    #[command(disable_help_flag = true)]
    Create(commands::run::CreateArgs),
    /// Start stopped containers.
    Start(commands::container::StartArgs),
    /// Stop running containers (stop signal, then SIGKILL).
    Stop(commands::container::StopArgs),
    /// Send a signal to running containers.
    Kill(commands::container::KillArgs),
    /// Stop and start containers.
    Restart(commands::container::StopArgs),
    /// Remove containers.
    Rm(commands::container::RmArgs),
    /// List containers.
    Ps(commands::ps::Args),
    /// Show a container's logs.
    Logs(commands::logs::Args),
    /// Run a command in a running container.
    Exec(commands::exec::Args),
    /// Docker-shaped JSON of containers or images.
    Inspect(commands::cinspect::Args),
    /// Wait for containers to stop and print their exit codes.
    Wait(commands::container::WaitArgs),
    /// Rename a container.
    Rename(commands::container::RenameArgs),
    /// Change resource limits or the restart policy of containers.
    Update(commands::update::Args),
    /// Attach to a running container's terminal or stdio.
    Attach(commands::attach::Args),
    /// Create a new image from a container's changes.
    Commit(commands::commit::Args),
    /// Files added (A), changed (C) and deleted (D) in a container.
    Diff(commands::commit::DiffArgs),
    /// Copy files between a container and the host.
    Cp(commands::cp::Args),
    /// A container's filesystem as a tar archive.
    Export(commands::cp::ExportArgs),
    /// Volume subcommands.
    #[command(subcommand)]
    Volume(commands::volume::Cmd),
    /// Network subcommands.
    #[command(subcommand)]
    Network(commands::network::Cmd),
    /// A container's published ports.
    Port(commands::network::PortArgs),
    /// Live resource use of containers (CPU, memory, block I/O, pids).
    Stats(commands::stats::Args),
    /// System subcommands (df, prune).
    #[command(subcommand)]
    System(commands::system::Cmd),
    /// Registry server subcommands (serve, gc; `--root` is its storage,
    /// default /var/lib/berth-registry).
    #[command(subcommand)]
    Registry(commands::registry::Cmd),
    /// The processes of a container.
    Top(commands::stats::TopArgs),
    /// Container subcommands.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// The per-container monitor (run by `run -d`, `start`, `run -t`).
    #[command(name = "__monitor", hide = true)]
    Monitor {
        id: String,
        attach: u8,
        claimer: i32,
    },
    /// A user network's DNS server (started by the first container on it).
    #[command(name = "__dns", hide = true)]
    Dns { network: String },
    /// The bookkeeping after a detached container exits (run by berth-monitor).
    #[command(name = "__finish", hide = true)]
    Finish { id: String, pid: i32, code: i32 },
}

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// List containers.
    #[command(alias = "ps", alias = "list")]
    Ls(commands::ps::Args),
    /// Run a command in a new container.
    #[command(disable_help_flag = true)]
    Run(commands::run::Args),
    /// Create a new container (not started).
    #[command(disable_help_flag = true)]
    Create(commands::run::CreateArgs),
    /// Start stopped containers.
    Start(commands::container::StartArgs),
    /// Stop running containers.
    Stop(commands::container::StopArgs),
    /// Send a signal to running containers.
    Kill(commands::container::KillArgs),
    /// Stop and start containers.
    Restart(commands::container::StopArgs),
    /// Remove containers.
    Rm(commands::container::RmArgs),
    /// Show a container's logs.
    Logs(commands::logs::Args),
    /// Run a command in a running container.
    Exec(commands::exec::Args),
    /// Docker-shaped JSON of containers.
    Inspect(commands::cinspect::Args),
    /// Wait for containers to stop.
    Wait(commands::container::WaitArgs),
    /// Rename a container.
    Rename(commands::container::RenameArgs),
    /// Change resource limits or the restart policy of containers.
    Update(commands::update::Args),
    /// Remove all stopped containers.
    Prune(commands::container::PruneArgs),
    /// Create a new image from a container's changes.
    Commit(commands::commit::Args),
    /// Files added, changed and deleted in a container.
    Diff(commands::commit::DiffArgs),
    /// Copy files between a container and the host.
    Cp(commands::cp::Args),
    /// A container's filesystem as a tar archive.
    Export(commands::cp::ExportArgs),
    /// Live resource use of containers.
    Stats(commands::stats::Args),
    /// The processes of a container.
    Top(commands::stats::TopArgs),
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Write images to a docker-archive or oci-archive tar.
    Save(commands::save::Args),
    /// Load images from a docker-archive or OCI-layout tar.
    Load(commands::load::Args),
    /// Make a one-layer image from a rootfs tarball.
    Import(commands::import::Args),
    /// Docker-shaped JSON of one or more images.
    Inspect(commands::inspect::Args),
    /// List images.
    Ls(commands::images::Args),
    /// Download an image from a registry.
    Pull(commands::pull::Args),
    /// Upload an image to a registry.
    Push(commands::push::Args),
    /// Remove images.
    Rm(commands::rmi::Args),
    /// Show the history of an image.
    History(commands::history::Args),
    /// Remove unused images.
    Prune(commands::prune::Args),
}

fn main() {
    let matches = Cli::command().get_matches();
    // `berth registry serve` has its own default root, used unless `--root`
    // is given on its command line (BERTH_ROOT names the engine's store).
    let root_given = matches.value_source("root") == Some(ValueSource::CommandLine);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let code = match run(cli, root_given) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli, root_given: bool) -> anyhow::Result<i32> {
    let root = cli.root;
    match cli.cmd {
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => commands::pull::run(&root, a),
        Cmd::Push(a) | Cmd::Image(ImageCmd::Push(a)) => commands::push::run(&root, a),
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => commands::images::run(&root, a),
        Cmd::Image(ImageCmd::Inspect(a)) => commands::inspect::run(&root, a),
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => commands::rmi::run(&root, a),
        Cmd::Tag(a) => commands::tag::run(&root, a),
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => commands::save::run(&root, a),
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => commands::load::run(&root, a),
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => commands::import::run(&root, a),
        Cmd::Login(a) => commands::login::login(a),
        Cmd::Logout(a) => commands::login::logout(a),
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => commands::history::run(&root, a),
        Cmd::Image(ImageCmd::Prune(a)) => commands::prune::run(&root, a),
        Cmd::Run(a) | Cmd::Container(ContainerCmd::Run(a)) => commands::run::run(&root, a),
        Cmd::Create(a) | Cmd::Container(ContainerCmd::Create(a)) => commands::run::create(&root, a),
        Cmd::Start(a) | Cmd::Container(ContainerCmd::Start(a)) => {
            commands::container::start(&root, a)
        }
        Cmd::Stop(a) | Cmd::Container(ContainerCmd::Stop(a)) => commands::container::stop(&root, a),
        Cmd::Kill(a) | Cmd::Container(ContainerCmd::Kill(a)) => commands::container::kill(&root, a),
        Cmd::Restart(a) | Cmd::Container(ContainerCmd::Restart(a)) => {
            commands::container::restart(&root, a)
        }
        Cmd::Rm(a) | Cmd::Container(ContainerCmd::Rm(a)) => commands::container::rm(&root, a),
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => commands::ps::run(&root, a),
        Cmd::Logs(a) | Cmd::Container(ContainerCmd::Logs(a)) => commands::logs::run(&root, a),
        Cmd::Exec(a) | Cmd::Container(ContainerCmd::Exec(a)) => commands::exec::run(&root, a),
        Cmd::Inspect(a) => commands::cinspect::run(&root, a),
        Cmd::Container(ContainerCmd::Inspect(mut a)) => {
            a.kind = Some("container".into());
            commands::cinspect::run(&root, a)
        }
        Cmd::Wait(a) | Cmd::Container(ContainerCmd::Wait(a)) => commands::container::wait(&root, a),
        Cmd::Rename(a) | Cmd::Container(ContainerCmd::Rename(a)) => {
            commands::container::rename(&root, a)
        }
        Cmd::Update(a) | Cmd::Container(ContainerCmd::Update(a)) => commands::update::run(&root, a),
        Cmd::Container(ContainerCmd::Prune(a)) => commands::container::prune(&root, a),
        Cmd::Commit(a) | Cmd::Container(ContainerCmd::Commit(a)) => commands::commit::run(&root, a),
        Cmd::Diff(a) | Cmd::Container(ContainerCmd::Diff(a)) => commands::commit::diff(&root, a),
        Cmd::Cp(a) | Cmd::Container(ContainerCmd::Cp(a)) => commands::cp::run(&root, a),
        Cmd::Export(a) | Cmd::Container(ContainerCmd::Export(a)) => commands::cp::export(&root, a),
        Cmd::Volume(c) => commands::volume::run(&root, c),
        Cmd::Network(c) => commands::network::run(&root, c),
        Cmd::Port(a) => commands::network::port(&root, a),
        Cmd::Attach(a) => commands::attach::run(&root, a),
        Cmd::System(c) => commands::system::run(&root, c),
        Cmd::Registry(c) => commands::registry::run(root_given.then_some(root.as_path()), c),
        Cmd::Stats(a) | Cmd::Container(ContainerCmd::Stats(a)) => commands::stats::run(&root, a),
        Cmd::Top(a) | Cmd::Container(ContainerCmd::Top(a)) => commands::stats::top(&root, a),
        Cmd::Monitor {
            id,
            attach,
            claimer,
        } => Ok(berth_engine::container::monitor::main(
            &root,
            &id,
            attach == 1,
            claimer,
        )),
        Cmd::Finish { id, pid, code } => Ok(berth_engine::container::monitor::finish_main(
            &root, &id, pid, code,
        )),
        Cmd::Dns { network } => Ok(berth_engine::network::dns::dns_main(&root, &network)),
    }
}
