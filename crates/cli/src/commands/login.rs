//! `berth login [-u USER] [-p PASS | --password-stdin] [SERVER]` and
//! `berth logout [SERVER]`: Docker's `config.json` credentials.
//!
//! Login checks the credentials against the registry first (`GET /v2/`
//! through its bearer or Basic challenge) and stores nothing when it
//! refuses them.

use berth_registry::dockerconfig;
use berth_registry::{Client, ClientConfig, Credential};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

/// Docker Hub, when no server is named.
const DEFAULT_SERVER: &str = "docker.io";

#[derive(clap::Args)]
pub struct LoginArgs {
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: command lines are visible to others).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Verify TLS; `--tls-verify=false` allows plain http to the registry.
    #[arg(long = "tls-verify", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Registry host (default: Docker Hub).
    pub server: Option<String>,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry host (default: Docker Hub).
    pub server: Option<String>,
}

fn config_path() -> anyhow::Result<PathBuf> {
    dockerconfig::default_path()
        .ok_or_else(|| anyhow::anyhow!("cannot find the docker config: set DOCKER_CONFIG or HOME"))
}

fn host_of(server: Option<&str>) -> String {
    dockerconfig::normalize_host(server.unwrap_or(DEFAULT_SERVER))
}

pub fn login(a: LoginArgs) -> anyhow::Result<i32> {
    let host = host_of(a.server.as_deref());
    if host.is_empty() {
        anyhow::bail!("invalid registry {:?}", a.server.unwrap_or_default());
    }
    if a.password_stdin && a.username.is_none() {
        anyhow::bail!("must provide --username with --password-stdin");
    }
    let username = match a.username {
        Some(u) => u,
        None => prompt("Username: ")?,
    };
    if username.is_empty() {
        anyhow::bail!("login failed: a user name is required");
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        prompt_hidden("Password: ")?
    };
    if password.is_empty() {
        anyhow::bail!("login failed: a password is required");
    }
    let cred = Credential::Basic { username, password };
    let cfg = ClientConfig {
        insecure_hosts: if a.tls_verify {
            Vec::new()
        } else {
            vec![host.clone()]
        },
        credentials: HashMap::from([(host.clone(), cred.clone())]),
        ca_certs: crate::config::ca_certs()?,
        ..ClientConfig::default()
    };
    let client = Client::new(cfg)?;
    match client.check_login(&host) {
        Ok(()) => {}
        Err(berth_registry::Error::Unauthorized { .. }) => {
            anyhow::bail!("login failed: {host} refused the user name or password");
        }
        Err(e) => anyhow::bail!("login failed: {e}"),
    }
    let path = config_path()?;
    dockerconfig::store(&path, &host, &cred)?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: LogoutArgs) -> anyhow::Result<i32> {
    let host = host_of(a.server.as_deref());
    let path = config_path()?;
    if dockerconfig::remove(&path, &host)? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(0)
}

/// One line from stdin, after `label` on stderr when stdin is a terminal.
fn prompt(label: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{label}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Like [`prompt`], without echo on a terminal (through `stty`).
fn prompt_hidden(label: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        return prompt(label);
    }
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let hidden = stty("-echo");
    let r = prompt(label);
    if hidden {
        stty("echo");
        eprintln!();
    }
    r
}
