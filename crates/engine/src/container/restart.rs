//! Restart policies (`--restart no|always|unless-stopped|on-failure[:N]`),
//! as Docker has them, without a daemon: whoever records a container's exit
//! (`berth __finish` after berth-monitor, or the CLI of an attached run)
//! then decides on a restart, waits out the back-off (100 ms, doubled for
//! each restart in a row of runs shorter than 10 s, at most a minute;
//! `ps` says "Restarting" meanwhile) and starts the container again under
//! a new monitor. `stop` and `kill` mark the container stopped by the
//! user, which calls a restart off; a start by the user resets the count.
//!
//! Nothing restarts containers after a host reboot by itself: there is no
//! daemon to do it at boot. `contrib/berth-restart.service` runs `berth
//! start --all --filter restart-policy=...` for them.

use super::{Config, Engine, Error, Result};
use crate::db::{Record, Status};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A container's restart policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Name", content = "MaximumRetryCount")]
pub enum RestartPolicy {
    #[default]
    #[serde(rename = "no")]
    No,
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "unless-stopped")]
    UnlessStopped,
    /// Restart after a non-zero exit, at most this many times (0: no limit).
    #[serde(rename = "on-failure")]
    OnFailure(u32),
}

/// Runs at least this long reset the back-off.
const STEADY: Duration = Duration::from_secs(10);
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);

impl RestartPolicy {
    /// Docker's `--restart` values.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let bad = |why: &str| Error::Invalid(format!("invalid restart policy {s:?}: {why}"));
        let (name, max) = match s.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (s, None),
        };
        let p = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure(match max {
                None => 0,
                Some(m) => m
                    .parse()
                    .map_err(|_| bad("the maximum retry count must be a non-negative integer"))?,
            }),
            _ => {
                return Err(bad(
                    "use no, always, unless-stopped or on-failure[:max-retries]",
                ))
            }
        };
        if max.is_some() && !matches!(p, RestartPolicy::OnFailure(_)) {
            return Err(bad("a maximum retry count goes only with on-failure"));
        }
        Ok(p)
    }

    /// Docker's `HostConfig.RestartPolicy.Name`.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure(_) => "on-failure",
        }
    }

    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure(n) => n,
            _ => 0,
        }
    }

    /// Whether a run that ended with `code`, after `count` restarts, is
    /// restarted (a stop by the user is checked by the caller).
    pub fn wants_restart(self, code: i32, count: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || count < max),
        }
    }
}

/// The delay before a restart, and the streak it makes: a run of at least
/// [`STEADY`] starts the doubling over.
fn back_off(streak: u32, ran: Duration) -> (Duration, u32) {
    let streak = if ran >= STEADY { 0 } else { streak };
    let delay = FIRST_DELAY
        .saturating_mul(1u32 << streak.min(16))
        .min(MAX_DELAY);
    (delay, streak + 1)
}

/// The time between two RFC 3339 times as berth writes them (zero when
/// either does not parse).
fn ran_for(started: &str, finished: &str) -> Duration {
    let t = super::logs::parse_time;
    match (t(started), t(finished)) {
        (Some(a), Some(b)) if b > a => Duration::from_nanos((b - a) as u64),
        _ => Duration::ZERO,
    }
}

impl Engine {
    /// After the exit of the run whose init was `pid` is recorded: restarts
    /// the container when its policy says so, after the back-off (this
    /// call sleeps through it). Returns whether it started it again.
    pub fn restart_if_due(&self, id: &str, pid: i32) -> Result<bool> {
        let Some(rec) = self.db.get(id)? else {
            return Ok(false);
        };
        if rec.status != Status::Exited || rec.pid != pid || rec.restarts.stopped_by_user {
            return Ok(false);
        }
        let cfg = Config::parse(&rec)?;
        if cfg.auto_remove || !cfg.restart.wants_restart(rec.exit_code, rec.restarts.count) {
            return Ok(false);
        }
        let (delay, streak) = back_off(
            rec.restarts.streak,
            ran_for(&rec.started_at, &rec.finished_at),
        );
        let me = std::process::id() as i32;
        let my_start = berth_runtime::state::process_start_time(me).unwrap_or(0);
        if !self
            .db
            .plan_restart(id, (pid, rec.pid_start), (me, my_start), streak)?
        {
            return Ok(false);
        }
        std::thread::sleep(delay);
        // The start is claimed with the restart, atomically: a stop or kill
        // from here on waits for it and stops what it starts.
        if !self.db.take_restart(id, (me, my_start))? {
            return Ok(false);
        }
        let Some(rec) = self.db.get(id)? else {
            return Ok(false);
        };
        self.start_claimed(&rec)?;
        Ok(true)
    }

    /// `stop`, `kill` or `rm -f` by the user: the policy leaves the
    /// container stopped, and a restart waiting out its delay is called off.
    pub fn mark_stopped_by_user(&self, id: &str) -> Result<()> {
        Ok(self.db.set_stopped_by_user(id)?)
    }

    /// A start by the user: count and back-off start over.
    pub fn reset_restarts(&self, id: &str) -> Result<()> {
        Ok(self.db.reset_restarts(id)?)
    }
}

/// Is a restart of `rec` waiting out its delay (its planner alive, in this
/// boot)?
pub fn is_restarting(rec: &Record) -> bool {
    rec.status == Status::Exited
        && rec.restarts.pending
        && super::pid_alive(rec.monitor_pid, rec.monitor_start)
        && rec.boot_id == super::boot_id()
}

/// The state as Docker names it: `restarting` during a restart's delay,
/// else the stored status.
pub fn state_name(rec: &Record) -> &'static str {
    if is_restarting(rec) {
        "restarting"
    } else {
        rec.status.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_values() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            RestartPolicy::parse("unless-stopped").unwrap(),
            RestartPolicy::UnlessStopped
        );
        assert_eq!(
            RestartPolicy::parse("on-failure").unwrap(),
            RestartPolicy::OnFailure(0)
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure(3)
        );
        for bad in [
            "sometimes",
            "always:3",
            "no:1",
            "on-failure:-1",
            "on-failure:x",
            "on-failure:",
            "Always",
        ] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decides_like_docker() {
        assert!(!RestartPolicy::No.wants_restart(1, 0));
        assert!(RestartPolicy::Always.wants_restart(0, 100));
        assert!(RestartPolicy::UnlessStopped.wants_restart(0, 100));
        assert!(!RestartPolicy::OnFailure(0).wants_restart(0, 0));
        assert!(RestartPolicy::OnFailure(0).wants_restart(1, 1000));
        assert!(RestartPolicy::OnFailure(2).wants_restart(1, 1));
        assert!(!RestartPolicy::OnFailure(2).wants_restart(1, 2));
    }

    #[test]
    fn back_off_doubles_and_resets_after_a_steady_run() {
        let quick = Duration::from_secs(1);
        assert_eq!(back_off(0, quick), (Duration::from_millis(100), 1));
        assert_eq!(back_off(1, quick), (Duration::from_millis(200), 2));
        assert_eq!(back_off(3, quick), (Duration::from_millis(800), 4));
        assert_eq!(back_off(10, quick), (MAX_DELAY, 11));
        assert_eq!(back_off(40, quick), (MAX_DELAY, 41));
        assert_eq!(
            back_off(5, Duration::from_secs(10)),
            (Duration::from_millis(100), 1)
        );
    }

    #[test]
    fn stored_as_docker_shapes_it() {
        let j = serde_json::to_value(RestartPolicy::OnFailure(3)).unwrap();
        assert_eq!(j["Name"], "on-failure");
        assert_eq!(j["MaximumRetryCount"], 3);
        let back: RestartPolicy = serde_json::from_value(j).unwrap();
        assert_eq!(back, RestartPolicy::OnFailure(3));
        let no: RestartPolicy = serde_json::from_str(r#"{"Name":"no"}"#).unwrap();
        assert_eq!(no, RestartPolicy::No);
    }

    #[test]
    fn run_time_from_the_record() {
        assert_eq!(
            ran_for("2026-01-01T00:00:00Z", "2026-01-01T00:00:12Z"),
            Duration::from_secs(12)
        );
        assert_eq!(ran_for("", "2026-01-01T00:00:12Z"), Duration::ZERO);
    }
}
