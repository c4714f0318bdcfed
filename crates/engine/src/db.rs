//! Container state in the store's SQLite database (`berth.db`, WAL), next
//! to the image tables: one row per container, written by the CLI and by the
//! container's monitor. Every write is one short transaction, so many
//! `berth` processes can work on one store at once.

use berth_image::db::{migrate, open_connection};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Open(#[from] berth_image::db::Error),
    #[error("{path}: {op}: {source}")]
    Sql {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },
    #[error("the container name \"/{name}\" is already in use by container \"{id}\"; remove or rename that container to be able to reuse that name")]
    NameInUse { name: String, id: String },
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container reference {0:?} is ambiguous: it is the prefix of several ids")]
    Ambiguous(String),
}

pub type Result<T> = std::result::Result<T, Error>;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE containers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    image_id      TEXT NOT NULL,
    image_ref     TEXT NOT NULL,
    created       TEXT NOT NULL,
    options       TEXT NOT NULL,
    status        TEXT NOT NULL,
    pid           INTEGER NOT NULL DEFAULT 0,
    pid_start     INTEGER NOT NULL DEFAULT 0,
    monitor_pid   INTEGER NOT NULL DEFAULT 0,
    monitor_start INTEGER NOT NULL DEFAULT 0,
    boot_id       TEXT NOT NULL DEFAULT '',
    exit_code     INTEGER NOT NULL DEFAULT 0,
    oom_killed    INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    started_at    TEXT NOT NULL DEFAULT '',
    finished_at   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX containers_image ON containers(image_id);
"#,
    r#"
CREATE TABLE exits (
    id          TEXT PRIMARY KEY,
    exit_code   INTEGER NOT NULL,
    oom_killed  INTEGER NOT NULL,
    finished_at TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE networks (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    bridge   TEXT NOT NULL UNIQUE,
    subnet   TEXT NOT NULL,
    gateway  TEXT NOT NULL,
    subnet6  TEXT NOT NULL DEFAULT '',
    gateway6 TEXT NOT NULL DEFAULT '',
    internal INTEGER NOT NULL DEFAULT 0,
    labels   TEXT NOT NULL DEFAULT '{}',
    created  TEXT NOT NULL
);
CREATE TABLE endpoints (
    network   TEXT NOT NULL REFERENCES networks(id),
    container TEXT NOT NULL,
    ip        TEXT NOT NULL,
    ip6       TEXT NOT NULL DEFAULT '',
    mac       TEXT NOT NULL,
    names     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (network, container),
    UNIQUE (network, ip)
);
CREATE INDEX endpoints_container ON endpoints(container);
CREATE TABLE ports (
    container TEXT NOT NULL,
    proto     TEXT NOT NULL,
    host_ip   TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    ip        TEXT NOT NULL,
    port      INTEGER NOT NULL
);
CREATE INDEX ports_container ON ports(container);
"#,
    r#"
ALTER TABLE containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE containers ADD COLUMN restart_streak INTEGER NOT NULL DEFAULT 0;
ALTER TABLE containers ADD COLUMN stopped_by_user INTEGER NOT NULL DEFAULT 0;
ALTER TABLE containers ADD COLUMN restart_pending INTEGER NOT NULL DEFAULT 0;
"#,
];

/// A container's lifecycle state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    /// Claimed by one `start`; others wait for it (see [`ContainerDb::claim_start`]).
    Starting,
    /// Claimed by one `rm` (see [`ContainerDb::claim_remove`]).
    Removing,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Starting => "starting",
            Status::Removing => "removing",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "starting" => Status::Starting,
            "removing" => Status::Removing,
            "exited" => Status::Exited,
            _ => Status::Created,
        }
    }
}

/// One row of `containers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image_id: String,
    /// What the user asked for (`busybox`, an id, ...).
    pub image_ref: String,
    pub created: String,
    /// The create options as JSON (`container::Config`).
    pub options: String,
    pub status: Status,
    /// The container's init on the host, and its start time (pid reuse).
    pub pid: i32,
    pub pid_start: u64,
    /// The process that records the exit: the monitor, or the attached CLI.
    pub monitor_pid: i32,
    pub monitor_start: u64,
    /// The kernel boot the pids belong to.
    pub boot_id: String,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub restarts: Restarts,
}

/// A container's restart bookkeeping (see `container::restart`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restarts {
    /// Restarts by the policy since the user last started it (Docker's
    /// `RestartCount`).
    pub count: u32,
    /// Restarts in a row of runs shorter than 10 s (the back-off doubles
    /// with each).
    pub streak: u32,
    /// `stop` or `kill` ended it: the policy does not restart it.
    pub stopped_by_user: bool,
    /// A restart is waiting out its delay, in the process whose pid is in
    /// `monitor_pid` (Docker's "Restarting" state).
    pub pending: bool,
}

const COLUMNS: &str = "id, name, image_id, image_ref, created, options, status, pid, pid_start, \
     monitor_pid, monitor_start, boot_id, exit_code, oom_killed, error, started_at, finished_at, \
     restart_count, restart_streak, stopped_by_user, restart_pending";

fn record(r: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        image_ref: r.get(3)?,
        created: r.get(4)?,
        options: r.get(5)?,
        status: Status::parse(&r.get::<_, String>(6)?),
        pid: r.get(7)?,
        pid_start: r.get::<_, i64>(8)? as u64,
        monitor_pid: r.get(9)?,
        monitor_start: r.get::<_, i64>(10)? as u64,
        boot_id: r.get(11)?,
        exit_code: r.get(12)?,
        oom_killed: r.get(13)?,
        error: r.get(14)?,
        started_at: r.get(15)?,
        finished_at: r.get(16)?,
        restarts: Restarts {
            count: r.get(17)?,
            streak: r.get(18)?,
            stopped_by_user: r.get(19)?,
            pending: r.get(20)?,
        },
    })
}

/// The exit of a container, as its monitor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub oom_killed: bool,
    pub error: String,
    pub finished_at: String,
}

/// The running state written when a container starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: i32,
    pub pid_start: u64,
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub boot_id: String,
    pub started_at: String,
}

pub struct ContainerDb {
    conn: Connection,
    path: PathBuf,
}

impl ContainerDb {
    /// Opens (creating and migrating) `<root>/berth.db`.
    pub fn open(root: &Path) -> Result<ContainerDb> {
        let path = root.join(berth_image::db::DB_FILE);
        let conn = open_connection(&path)?;
        migrate(&conn, &path, "container", MIGRATIONS)?;
        Ok(ContainerDb { conn, path })
    }

    /// The connection, for the network tables (`crate::network`).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn err(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |source| Error::Sql {
            path: self.path.clone(),
            op,
            source,
        }
    }

    /// Adds a new container; a taken name is [`Error::NameInUse`].
    pub fn insert(&self, r: &Record) -> Result<()> {
        let res = self.conn.execute(
            "INSERT INTO containers (id, name, image_id, image_ref, created, options, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.id,
                r.name,
                r.image_id,
                r.image_ref,
                r.created,
                r.options,
                r.status.as_str()
            ],
        );
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let id = self
                    .by_name(&r.name)?
                    .map(|c| c.id)
                    .unwrap_or_else(|| r.id.clone());
                Err(Error::NameInUse {
                    name: r.name.clone(),
                    id,
                })
            }
            Err(e) => Err(self.err("insert container")(e)),
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
            .map_err(self.err("read container"))
    }

    fn by_name(&self, name: &str) -> Result<Option<Record>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE name = ?1"),
                [name],
                record,
            )
            .optional()
            .map_err(self.err("read container"))
    }

    /// Finds a container by full id, name (with or without a leading `/`)
    /// or unique id prefix, as Docker does.
    pub fn find(&self, s: &str) -> Result<Record> {
        if let Some(r) = self.get(s)? {
            return Ok(r);
        }
        if let Some(r) = self.by_name(s.strip_prefix('/').unwrap_or(s))? {
            return Ok(r);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut st = self
                .conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM containers WHERE id LIKE ?1 || '%' LIMIT 2"
                ))
                .map_err(self.err("find container"))?;
            let found: Vec<Record> = st
                .query_map([s.to_ascii_lowercase()], record)
                .and_then(|rows| rows.collect())
                .map_err(self.err("find container"))?;
            match found.len() {
                1 => return Ok(found.into_iter().next().expect("one")),
                0 => {}
                _ => return Err(Error::Ambiguous(s.to_string())),
            }
        }
        Err(Error::NotFound(s.to_string()))
    }

    /// All containers, newest first.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created DESC, rowid DESC"
            ))
            .map_err(self.err("list containers"))?;
        let rows = st
            .query_map([], record)
            .and_then(|rows| rows.collect())
            .map_err(self.err("list containers"));
        rows
    }

    /// Makes `id` ours to start: only one of several concurrent starts
    /// gets true. The claimer's pid is kept so a claim whose process died
    /// can be undone ([`ContainerDb::undo_start`]).
    pub fn claim_start(&self, id: &str, pid: i32, pid_start: u64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE containers SET status = 'starting', monitor_pid = ?2, monitor_start = ?3,
                   boot_id = ?4
                 WHERE id = ?1 AND status IN ('created', 'exited')",
                params![id, pid, pid_start as i64, crate::container::boot_id()],
            )
            .map_err(self.err("claim start"))?;
        Ok(n == 1)
    }

    /// Makes `id` ours to remove: false when it is running or being started
    /// (another berth got there first). A half-done removal can be claimed
    /// again: removing is idempotent.
    pub fn claim_remove(&self, id: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE containers SET status = 'removing'
                 WHERE id = ?1 AND status IN ('created', 'exited', 'removing')",
                [id],
            )
            .map_err(self.err("claim remove"))?;
        Ok(n == 1)
    }

    /// The monitor takes over a start its CLI claimed; false when the claim
    /// is gone (the CLI died and the start was undone).
    pub fn take_over_start(&self, id: &str, from: i32, pid: i32, pid_start: u64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE containers SET monitor_pid = ?3, monitor_start = ?4
                 WHERE id = ?1 AND status = 'starting' AND monitor_pid = ?2",
                params![id, from, pid, pid_start as i64],
            )
            .map_err(self.err("take over start"))?;
        Ok(n == 1)
    }

    /// A claimed start that did not happen: back to `created` (never ran)
    /// or `exited`, with the error kept.
    pub fn undo_start(&self, id: &str, error: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE containers SET status = CASE WHEN started_at = '' THEN 'created'
                   ELSE 'exited' END, error = ?2, monitor_pid = 0
                 WHERE id = ?1 AND status = 'starting'",
                params![id, error],
            )
            .map_err(self.err("undo start"))?;
        Ok(())
    }

    /// Keeps the exit of a container that removes itself (`--rm`), for a
    /// `wait` or `start -a` that asked before it was gone; an hour at most.
    pub fn record_exit(&self, id: &str, e: &Exit) -> Result<()> {
        let cutoff = berth_runtime::state::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64 - 3600)
                .unwrap_or(0),
            0,
        );
        self.conn
            .execute("DELETE FROM exits WHERE finished_at < ?1", [cutoff])
            .map_err(self.err("expire exits"))?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO exits (id, exit_code, oom_killed, finished_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, e.code, e.oom_killed, e.finished_at],
            )
            .map_err(self.err("record exit"))?;
        Ok(())
    }

    /// The exit of a removed `--rm` container, if it was recorded.
    pub fn removed_exit(&self, id: &str) -> Result<Option<Exit>> {
        self.conn
            .query_row(
                "SELECT exit_code, oom_killed, finished_at FROM exits WHERE id = ?1",
                [id],
                |r| {
                    Ok(Exit {
                        code: r.get(0)?,
                        oom_killed: r.get(1)?,
                        error: String::new(),
                        finished_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(self.err("read exit"))
    }

    /// Records a start; returns false when the row is gone.
    pub fn set_running(&self, id: &str, s: &Started) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE containers SET status = 'running', pid = ?2, pid_start = ?3,
                   monitor_pid = ?4, monitor_start = ?5, boot_id = ?6, started_at = ?7,
                   exit_code = 0, oom_killed = 0, error = '', finished_at = ''
                 WHERE id = ?1 AND status = 'starting' AND monitor_pid = ?4",
                params![
                    id,
                    s.pid,
                    s.pid_start as i64,
                    s.monitor_pid,
                    s.monitor_start as i64,
                    s.boot_id,
                    s.started_at
                ],
            )
            .map_err(self.err("record start"))?;
        Ok(n == 1)
    }

    /// Records the exit of the run whose init was `pid` (a later start of
    /// the same container is left alone).
    pub fn set_exited(&self, id: &str, pid: i32, e: &Exit) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE containers SET status = 'exited', exit_code = ?3, oom_killed = ?4,
                   error = ?5, finished_at = ?6, monitor_pid = 0
                 WHERE id = ?1 AND pid = ?2 AND status = 'running'",
                params![id, pid, e.code, e.oom_killed, e.error, e.finished_at],
            )
            .map_err(self.err("record exit"))?;
        Ok(n == 1)
    }

    /// `stop` or `kill` by the user: no restart by the policy, and one
    /// waiting out its delay is called off.
    pub fn set_stopped_by_user(&self, id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE containers SET stopped_by_user = 1, restart_pending = 0 WHERE id = ?1",
                [id],
            )
            .map_err(self.err("record stop"))?;
        Ok(())
    }

    /// A start by the user: the restart count and back-off start over
    /// (as `docker start` does), and a pending restart is called off.
    pub fn reset_restarts(&self, id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE containers SET restart_count = 0, restart_streak = 0,
                   stopped_by_user = 0, restart_pending = 0
                 WHERE id = ?1",
                [id],
            )
            .map_err(self.err("reset restarts"))?;
        Ok(())
    }

    /// Plans a restart of the run whose init was `run` (pid, start time),
    /// to be done by process `by` (pid, start time) after its delay; false
    /// when that run is no longer the container's last, was stopped by the
    /// user, or is gone.
    pub fn plan_restart(
        &self,
        id: &str,
        run: (i32, u64),
        by: (i32, u64),
        streak: u32,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE containers SET restart_pending = 1, monitor_pid = ?4, monitor_start = ?5,
                   restart_streak = ?6
                 WHERE id = ?1 AND pid = ?2 AND pid_start = ?3 AND status = 'exited'
                   AND stopped_by_user = 0",
                params![id, run.0, run.1 as i64, by.0, by.1 as i64, streak],
            )
            .map_err(self.err("plan restart"))?;
        Ok(n == 1)
    }

    /// Takes the restart process `by` planned, counting it, and claims the
    /// start for it in the same step (as [`ContainerDb::claim_start`]), so
    /// a `stop` or `kill` after this sees a container being started; false
    /// when it was called off meanwhile (stop, kill, start, rm).
    pub fn take_restart(&self, id: &str, by: (i32, u64)) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE containers SET restart_pending = 0, restart_count = restart_count + 1,
                   status = 'starting', boot_id = ?4
                 WHERE id = ?1 AND restart_pending = 1 AND monitor_pid = ?2
                   AND monitor_start = ?3 AND status = 'exited' AND stopped_by_user = 0",
                params![id, by.0, by.1 as i64, crate::container::boot_id()],
            )
            .map_err(self.err("take restart"))?;
        Ok(n == 1)
    }

    pub fn rename(&self, id: &str, name: &str) -> Result<()> {
        let res = self.conn.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, name],
        );
        match res {
            Ok(_) => {
                // The network DNS answers the new name at once: it is the
                // first of the endpoint's names.
                self.conn
                    .execute(
                        "UPDATE endpoints SET names = ?2 || substr(names, instr(names || ' ', ' '))
                         WHERE container = ?1",
                        params![id, name.to_lowercase()],
                    )
                    .map_err(self.err("rename endpoints"))?;
                Ok(())
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let other = self.by_name(name)?.map(|c| c.id).unwrap_or_default();
                Err(Error::NameInUse {
                    name: name.to_string(),
                    id: other,
                })
            }
            Err(e) => Err(self.err("rename container")(e)),
        }
    }

    /// Replaces a container's stored options (`network connect`).
    pub fn set_options(&self, id: &str, cfg: &crate::container::Config) -> Result<()> {
        let json = serde_json::to_string(cfg).map_err(|e| Error::Sql {
            path: self.path.clone(),
            op: "encode options",
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        self.conn
            .execute(
                "UPDATE containers SET options = ?2 WHERE id = ?1",
                params![id, json],
            )
            .map_err(self.err("update options"))?;
        Ok(())
    }

    pub fn remove(&self, id: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM containers WHERE id = ?1", [id])
            .map_err(self.err("remove container"))?;
        Ok(n == 1)
    }

    /// Containers made from `image_id`.
    pub fn users_of_image(&self, image_id: &str) -> Result<Vec<Record>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM containers WHERE image_id = ?1"
            ))
            .map_err(self.err("list containers of image"))?;
        let rows = st
            .query_map([image_id], record)
            .and_then(|rows| rows.collect())
            .map_err(self.err("list containers of image"));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, name: &str) -> Record {
        Record {
            id: id.into(),
            name: name.into(),
            image_id: "sha256:aa".into(),
            image_ref: "busybox".into(),
            created: "2026-01-01T00:00:00Z".into(),
            options: "{}".into(),
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            boot_id: String::new(),
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            restarts: Restarts::default(),
        }
    }

    #[test]
    fn names_ids_and_prefixes() {
        let d = tempfile::tempdir().unwrap();
        let db = ContainerDb::open(d.path()).unwrap();
        db.insert(&rec("abc123", "web")).unwrap();
        db.insert(&rec("abd456", "db")).unwrap();
        assert!(matches!(
            db.insert(&rec("ffff", "web")),
            Err(Error::NameInUse { id, .. }) if id == "abc123"
        ));
        assert_eq!(db.find("web").unwrap().id, "abc123");
        assert_eq!(db.find("/db").unwrap().id, "abd456");
        assert_eq!(db.find("abc").unwrap().id, "abc123");
        assert!(matches!(db.find("ab"), Err(Error::Ambiguous(_))));
        assert!(matches!(db.find("zz"), Err(Error::NotFound(_))));
        db.rename("abc123", "site").unwrap();
        assert!(matches!(
            db.rename("abd456", "site"),
            Err(Error::NameInUse { .. })
        ));
        assert_eq!(db.list().unwrap().len(), 2);
        assert_eq!(db.users_of_image("sha256:aa").unwrap().len(), 2);
        assert!(db.remove("abc123").unwrap());
        assert!(!db.remove("abc123").unwrap());
    }

    #[test]
    fn exit_only_for_the_recorded_run() {
        let d = tempfile::tempdir().unwrap();
        let db = ContainerDb::open(d.path()).unwrap();
        db.insert(&rec("c1", "x")).unwrap();
        assert!(db.claim_start("c1", 41, 6).unwrap());
        assert!(!db.claim_start("c1", 40, 5).unwrap(), "one claim at a time");
        assert!(!db.claim_remove("c1").unwrap(), "no rm while starting");
        let s = Started {
            pid: 42,
            pid_start: 7,
            monitor_pid: 41,
            monitor_start: 6,
            boot_id: "b".into(),
            started_at: "t".into(),
        };
        assert!(db.set_running("c1", &s).unwrap());
        let e = Exit {
            code: 3,
            oom_killed: true,
            error: String::new(),
            finished_at: "t2".into(),
        };
        assert!(!db.set_exited("c1", 43, &e).unwrap());
        assert!(db.set_exited("c1", 42, &e).unwrap());
        let r = db.get("c1").unwrap().unwrap();
        assert_eq!(r.status, Status::Exited);
        assert_eq!(r.exit_code, 3);
        assert!(r.oom_killed);
        assert!(!db.set_exited("c1", 42, &e).unwrap());
    }
}
