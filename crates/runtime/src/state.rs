//! The runtime's own record of a container: `<root>/<id>/state.json`, plus a
//! copy of the config it was created with and the `exec.fifo` that holds a
//! created container until `start`.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/run/berth-runtime";
pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container id {0:?} is invalid: use letters, digits, '_', '+', '-' and '.', at most 1024 characters")]
    InvalidId(String),
    #[error("container with id {0:?} already exists")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt state: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What we persist. `pid == 0` means the init process does not exist yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat), to tell a reused pid apart.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub cgroup_path: String,
    /// `linux.cgroupsPath` as the config gave it.
    #[serde(default)]
    pub cgroup_spec: Option<String>,
    /// /proc/self/cgroup of the process that created the container.
    #[serde(default)]
    pub creator_cgroup: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub owner: String,
    /// Set once `start` has released the init process.
    #[serde(default)]
    pub started: bool,
}

/// A container directory under the runtime root.
#[derive(Debug, Clone)]
pub struct Dir {
    pub path: PathBuf,
    pub id: String,
}

pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

impl Dir {
    /// Creates `<root>/<id>` exclusively: a second create of the same id fails.
    pub fn create(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        std::fs::create_dir_all(root).map_err(io(root))?;
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()))
            }
            Err(e) => return Err(io(&path)(e)),
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711))
            .map_err(io(&path))?;
        Ok(Dir {
            path,
            id: id.to_string(),
        })
    }

    pub fn open(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.is_dir() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(Dir {
            path,
            id: id.to_string(),
        })
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn has_record(&self) -> bool {
        self.path.join(STATE_FILE).exists()
    }

    pub fn load(&self) -> Result<Record> {
        let p = self.path.join(STATE_FILE);
        let data = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(self.id.clone()))
            }
            Err(e) => return Err(io(&p)(e)),
        };
        serde_json::from_slice(&data).map_err(|source| Error::Corrupt { path: p, source })
    }

    pub fn save(&self, rec: &Record) -> Result<()> {
        let data = serde_json::to_vec(rec).expect("state serializes");
        write_atomic(&self.path.join(STATE_FILE), &data)
    }

    pub fn load_config(&self) -> Result<oci_spec::runtime::Spec> {
        let p = self.path.join(CONFIG_FILE);
        let data = std::fs::read(&p).map_err(io(&p))?;
        serde_json::from_slice(&data).map_err(|source| Error::Corrupt { path: p, source })
    }

    pub fn save_config(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        let data = serde_json::to_vec(spec).expect("spec serializes");
        write_atomic(&self.path.join(CONFIG_FILE), &data)
    }

    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.path)(e)),
        }
    }
}

/// Temp file in the same directory, then rename: readers see the old or
/// the new content, never a torn write. No fsync: this is runtime state
/// (tmpfs under /run by default) that does not outlive a reboot.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The ids of every container dir under root.
pub fn list(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io(root)(e)),
    };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if let Some(name) = e.file_name().to_str() {
                if validate_id(name).is_ok() {
                    ids.push(name.to_string());
                }
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// Start time of a process (clock ticks since boot), or None if it is gone or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parens: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is starttime.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Is the recorded init process still the same live process?
pub fn alive(rec: &Record) -> bool {
    rec.pid > 0 && process_start_time(rec.pid) == Some(rec.pid_start)
}

/// The current time as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_3+x", &"x".repeat(1024)] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(1025)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_is_exclusive() {
        let t = tempfile::tempdir().unwrap();
        Dir::create(t.path(), "c1").unwrap();
        assert!(matches!(Dir::create(t.path(), "c1"), Err(Error::Exists(_))));
        assert_eq!(list(t.path()).unwrap(), vec!["c1".to_string()]);
    }

    #[test]
    fn record_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::create(t.path(), "c1").unwrap();
        let rec = Record {
            id: "c1".into(),
            pid: std::process::id() as i32,
            pid_start: process_start_time(std::process::id() as i32).unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            cgroup_path: "/berth/c1".into(),
            cgroup_spec: None,
            creator_cgroup: String::new(),
            annotations: HashMap::new(),
            owner: "root".into(),
            started: false,
        };
        d.save(&rec).unwrap();
        let back = d.load().unwrap();
        assert_eq!(back.pid, rec.pid);
        assert!(alive(&back));
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951782400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1796000000, 0), "2026-11-30T00:53:20.000000000Z");
    }
}
