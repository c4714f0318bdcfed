//! `kill`: send a signal to the init process, or with `--all` to every
//! process in the container's cgroup.

use super::{Error, Result, Runtime};
use crate::state::Status;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Parse "KILL", "SIGKILL", "9", "sigterm".
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Invalid(format!("invalid signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+')
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid signal {s:?}")))?
        };
        return Ok(libc::SIGRTMIN() + off);
    }
    if let Some(rest) = name.strip_prefix("SIGRTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse()
                .map_err(|_| Error::Invalid(format!("invalid signal {s:?}")))?
        };
        return Ok(libc::SIGRTMAX() + off);
    }
    name.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Invalid(format!("invalid signal {s:?}")))
}

fn raw_kill(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: kill(2) with plain integers.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}

pub fn kill(rt: &Runtime, id: &str, sig: i32, all: bool) -> Result<()> {
    let c = rt.load(id)?;
    if matches!(c.status, Status::Stopped | Status::Creating) {
        return Err(Error::WrongState {
            id: id.into(),
            status: c.status,
            what: "container not running",
        });
    }
    if all {
        let m = super::cgroup_of(&c.rec)?;
        let paused = c.status == Status::Paused;
        for pid in m.pids()? {
            let _ = raw_kill(pid, sig);
        }
        // A frozen task only acts on SIGKILL once thawed.
        if paused && sig == Signal::SIGKILL as i32 {
            let _ = m.thaw();
        }
        return Ok(());
    }
    raw_kill(Pid::from_raw(c.rec.pid).as_raw(), sig)
        .map_err(super::sys(format!("kill {}", c.rec.pid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("99").is_err());
    }
}
