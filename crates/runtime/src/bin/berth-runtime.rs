//! `berth-runtime`: the runc-compatible command line over the berth_runtime library.

use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::container::{self, create::CreateOpts, exec::ExecOpts, run::RunOpts};
use berth_runtime::{log, Runtime};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    about = "berth's OCI runtime (runc-compatible command line)",
    disable_version_flag = true
)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = berth_runtime::state::DEFAULT_ROOT, env = "BERTH_RUNTIME_ROOT")]
    root: PathBuf,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (not supported yet).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (auto, true, false). Not global:
    /// `spec --rootless` is a flag of its own.
    #[arg(long)]
    rootless: Option<String>,
    /// Accepted for runc compatibility; checkpointing is not supported.
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container from a bundle; it waits for `start`.
    Create {
        id: String,
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "no-pivot")]
        no_pivot: bool,
        #[arg(long = "no-new-keyring")]
        no_new_keyring: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
    },
    /// Start a created container.
    Start { id: String },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init, or to all its processes.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete containers.
    Delete {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Create and start a container, wait for it, delete it.
    Run {
        id: String,
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "no-pivot")]
        no_pivot: bool,
        #[arg(long = "no-new-keyring")]
        no_new_keyring: bool,
        #[arg(short, long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
    },
    /// Run a new process in a running container.
    Exec {
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(short, long = "env")]
        env: Vec<String>,
        #[arg(short, long)]
        tty: bool,
        /// uid[:gid]
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        /// An OCI process JSON file; replaces the other process flags.
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "process-label")]
        process_label: Option<String>,
        #[arg(long)]
        apparmor: Option<String>,
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(short, long = "cap")]
        cap: Vec<String>,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
        #[arg(long = "ignore-paused")]
        ignore_paused: bool,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the processes of a container.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
}

fn main() {
    let cli = Cli::parse();
    let format = match cli.log_format.as_str() {
        "json" => log::Format::Json,
        "text" => log::Format::Text,
        other => {
            eprintln!("berth-runtime: invalid --log-format {other:?}: use text or json");
            std::process::exit(1);
        }
    };
    if let Err(e) = log::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("berth-runtime: open log {:?}: {e}", cli.log);
        std::process::exit(1);
    }
    match real_main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = error_text(&e);
            log::error(&msg);
            eprintln!("berth-runtime: {msg}");
            std::process::exit(1);
        }
    }
}

/// The error and its causes on one line. Our error types already print
/// their source (`"{path}: {source}"`), so a cause whose text is already in
/// the line is skipped rather than repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg = format!("{msg}: {c}");
        }
    }
    msg
}

fn real_main(cli: Cli) -> Result<i32> {
    if cli.version {
        println!(
            "berth-runtime version {}\nspec: {}",
            berth_runtime::VERSION,
            berth_runtime::OCI_VERSION
        );
        return Ok(0);
    }
    let Some(cmd) = cli.cmd else {
        bail!("no command given: see berth-runtime --help");
    };
    if cli.systemd_cgroup && !matches!(cmd, Cmd::Spec { .. } | Cmd::Features) {
        bail!("--systemd-cgroup is not supported yet: use cgroupfs paths (podman: cgroup_manager = \"cgroupfs\")");
    }
    let rt = Runtime::new(&cli.root);
    match cmd {
        Cmd::Create {
            id,
            bundle,
            console_socket,
            pid_file,
            no_pivot,
            no_new_keyring: _,
            preserve_fds,
        } => {
            container::create::create(
                &rt,
                CreateOpts {
                    id,
                    bundle,
                    pid_file,
                    console_socket,
                    console_fd: None,
                    no_pivot,
                    preserve_fds,
                    loaded: None,
                },
            )?;
            Ok(0)
        }
        Cmd::Start { id } => {
            container::start::start(&rt, &id)?;
            Ok(0)
        }
        Cmd::State { id } => {
            let v = container::info::state(&rt, &id)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let sig = container::kill::parse_signal(&signal)?;
            container::kill::kill(&rt, &id, sig, all)?;
            Ok(0)
        }
        Cmd::Delete { force, ids } => {
            let mut failed = None;
            for id in ids {
                if let Err(e) = container::delete::delete(&rt, &id, force) {
                    // runc: deleting a missing container with --force is not an error.
                    if force
                        && matches!(
                            e,
                            container::Error::State(berth_runtime::state::Error::NotFound(_))
                        )
                    {
                        continue;
                    }
                    failed = Some(e);
                }
            }
            match failed {
                Some(e) => Err(e.into()),
                None => Ok(0),
            }
        }
        Cmd::Run {
            id,
            bundle,
            console_socket,
            pid_file,
            no_pivot,
            no_new_keyring: _,
            detach,
            keep,
            preserve_fds,
        } => Ok(container::run::run(
            &rt,
            RunOpts {
                create: CreateOpts {
                    id,
                    bundle,
                    pid_file,
                    console_socket,
                    console_fd: None,
                    no_pivot,
                    preserve_fds,
                    loaded: None,
                },
                detach,
                keep,
            },
        )?),
        Cmd::Exec {
            console_socket,
            cwd,
            env,
            tty,
            user,
            additional_gids,
            process,
            detach,
            pid_file,
            process_label: _,
            apparmor: _,
            no_new_privs,
            cap,
            preserve_fds,
            ignore_paused: _,
            id,
            command,
        } => {
            let proc_ = match process {
                Some(p) => {
                    let data =
                        std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
                    serde_json::from_slice(&data)
                        .with_context(|| format!("parse process {}", p.display()))?
                }
                None => {
                    if command.is_empty() {
                        bail!("exec needs a command or --process");
                    }
                    let c = rt.load(&id)?;
                    let spec = c.dir.load_config()?;
                    let mut p = spec
                        .process()
                        .clone()
                        .ok_or_else(|| anyhow!("container {id:?} has no process in its config"))?;
                    p.set_args(Some(command));
                    let mut e = p.env().clone().unwrap_or_default();
                    e.extend(env);
                    p.set_env(Some(e));
                    if let Some(cwd) = cwd {
                        p.set_cwd(cwd);
                    }
                    p.set_terminal(Some(tty));
                    if let Some(u) = user {
                        let (uid, gid) = match u.split_once(':') {
                            Some((a, b)) => (a.parse::<u32>()?, b.parse::<u32>()?),
                            None => (
                                u.parse::<u32>().with_context(|| {
                                    format!("invalid --user {u:?}: use uid[:gid]")
                                })?,
                                0,
                            ),
                        };
                        let mut us = p.user().clone();
                        us.set_uid(uid);
                        us.set_gid(gid);
                        if !additional_gids.is_empty() {
                            us.set_additional_gids(Some(additional_gids));
                        }
                        p.set_user(us);
                    }
                    if no_new_privs {
                        p.set_no_new_privileges(Some(true));
                    }
                    if !cap.is_empty() {
                        let mut caps = p.capabilities().clone().unwrap_or_default();
                        for c in &cap {
                            let parsed: oci_spec::runtime::Capability =
                                serde_json::from_value(serde_json::Value::String(c.clone()))
                                    .map_err(|_| anyhow!("unknown capability {c:?}"))?;
                            for set in [
                                caps.bounding().clone(),
                                caps.effective().clone(),
                                caps.permitted().clone(),
                            ]
                            .iter()
                            .enumerate()
                            {
                                let mut s = set.1.clone().unwrap_or_default();
                                s.insert(parsed);
                                match set.0 {
                                    0 => caps.set_bounding(Some(s)),
                                    1 => caps.set_effective(Some(s)),
                                    _ => caps.set_permitted(Some(s)),
                                };
                            }
                        }
                        p.set_capabilities(Some(caps));
                    }
                    p
                }
            };
            Ok(container::exec::exec(
                &rt,
                ExecOpts {
                    id,
                    process: proc_,
                    console_socket,
                    detach,
                    pid_file,
                    preserve_fds,
                },
            )?)
        }
        Cmd::List { format, quiet } => {
            let json = match format.as_str() {
                "json" => true,
                "table" => false,
                f => bail!("invalid --format {f:?}: use table or json"),
            };
            print!("{}", container::info::list(&rt, json, quiet)?);
            Ok(0)
        }
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => {
            let json = match format.as_str() {
                "json" => true,
                "table" => false,
                f => bail!("invalid --format {f:?}: use table or json"),
            };
            print!("{}", container::info::ps(&rt, &id, json, &ps_args)?);
            Ok(0)
        }
        Cmd::Pause { id } => {
            container::pause::pause(&rt, &id)?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            container::pause::resume(&rt, &id)?;
            Ok(0)
        }
        Cmd::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} exists: remove it first", path.display());
            }
            let spec = berth_runtime::spec::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&berth_runtime::spec::features())?
            );
            Ok(0)
        }
    }
}
