//! The DNS server of a user-defined network: `berth __dns ROOT-relative
//! NETWORK-ID`, one process per network, listening on the network's
//! gateway address (port 53, UDP and TCP) in the host's namespace. It
//! answers the names of the containers on the network (name, short id,
//! hostname, `--network-alias`) from the `endpoints` table, read on every
//! query, and forwards every other name to the host's resolvers.
//!
//! No daemon to manage: the first container start on the network that finds
//! no server starts one (and waits until it listens); the server exits by
//! itself once no container is left on the network, or the network is gone.
//! A lock file per network says whether one runs. Starting and the exit
//! decision both happen under the machine-wide network lock, so a starting
//! container never relies on a server that is just leaving. A server that
//! was killed comes back with the next `berth ps` (or container start on
//! the network); removing the network stops its server at once.

use super::Network;
use crate::container::{io, Engine, Error, Result};
use berth_net::dns::{self, Config, Records, Server};
use nix::fcntl::{Flock, FlockArg};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the server checks whether it is still needed.
const CHECK_EVERY: Duration = Duration::from_secs(2);

fn lock_path(net: &Network) -> PathBuf {
    Path::new("/run/berth/dns").join(format!("{}.lock", net.bridge))
}

fn open_lock(p: &Path) -> Result<std::fs::File> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(p)
        .map_err(io(p))
}

impl Engine {
    /// Makes sure the network's DNS server runs (starting it and waiting
    /// until it listens).
    pub(crate) fn ensure_dns(&self, net: &Network) -> Result<()> {
        let _net_lock = self.net_lock()?;
        let p = lock_path(net);
        let f = open_lock(&p)?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            // Held: a server runs (and sees our lease before it would leave).
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(()),
            Err((_, e)) => {
                return Err(Error::Io {
                    path: p,
                    source: e.into(),
                })
            }
            // Free: nobody serves; let go and start one.
            Ok(l) => drop(l),
        }
        let exe = std::env::current_exe().map_err(io(Path::new("/proc/self/exe")))?;
        let mut child = Command::new(exe)
            .arg("--root")
            .arg(&self.root)
            .args(["__dns", &net.id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io(Path::new("berth __dns")))?;
        let mut out = child.stdout.take().expect("piped");
        // The server writes one line once it listens (or why it cannot),
        // then closes its end; never wait forever for it.
        let mut answer = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut pfd = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&out),
                nix::poll::PollFlags::POLLIN,
            )];
            let n = nix::poll::poll(
                &mut pfd,
                nix::poll::PollTimeout::try_from(left.as_millis() as i32)
                    .unwrap_or(nix::poll::PollTimeout::ZERO),
            )
            .unwrap_or(0);
            if n == 0 {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Network("the DNS server did not start in 5 s".into()));
            }
            let mut buf = [0u8; 512];
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => answer.extend_from_slice(&buf[..k]),
            }
            if answer.contains(&b'\n') {
                break;
            }
        }
        // The first process only forks the server off; it exits at once.
        let _ = child.wait();
        let answer = String::from_utf8_lossy(&answer);
        match answer.trim() {
            "ok" => Ok(()),
            "" => Err(Error::Network("the DNS server exited".into())),
            why => Err(Error::Network(why.to_string())),
        }
    }
}

impl Engine {
    /// Brings back the DNS server of every user network a running container
    /// of `recs` is on, if it died (killed by hand, the OOM killer): `berth
    /// ps` calls this, so looking at the containers repairs their names.
    /// Checking costs a lock attempt per network; a live server is left be.
    pub fn revive_dns(&self, recs: &[crate::db::Record]) {
        let mut seen = std::collections::HashSet::new();
        for r in recs {
            if r.status != crate::db::Status::Running {
                continue;
            }
            // Containers with their own --dns never needed the server.
            if crate::Config::parse(r).is_ok_and(|c| !c.spec.dns.is_empty()) {
                continue;
            }
            let Ok(eps) = self.endpoints(&r.id) else {
                continue;
            };
            for ep in eps {
                let net = ep.network;
                if net.name == super::DEFAULT_NETWORK || !seen.insert(net.id.clone()) {
                    continue;
                }
                if server_pid(&net).is_some() {
                    continue;
                }
                if let Err(e) = self.ensure_dns(&net) {
                    berth_runtime::log::warn(&format!(
                        "network {}: its DNS server is gone and could not be restarted: {e}",
                        net.name
                    ));
                }
            }
        }
    }
}

/// Stops the network's DNS server, if one runs, and waits (2 s at most)
/// until it is gone, with its sockets.
pub(crate) fn stop_server(net: &Network) {
    let Some(pid) = server_pid(net) else {
        return;
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    // Gone, or a zombie (its sockets are closed by then).
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
            st.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pid of the network's live DNS server: the pid it wrote into its lock
/// file, if that is a `berth __dns` of this network. Read, not locked: a probe that
/// took the lock for a moment could make a server that is starting just
/// then believe another one serves. A wrong "no" only costs an
/// `ensure_dns`, which decides under the network lock.
fn server_pid(net: &Network) -> Option<u32> {
    let pid = std::fs::read_to_string(lock_path(net)).ok()?;
    let pid = pid.trim().parse::<u32>().ok()?;
    let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
        args.windows(2)
            .any(|w| w[0] == b"__dns" && w[1] == net.id.as_bytes())
    });
    ours.then_some(pid)
}

/// The names of the network's containers, from the DB on every query.
struct NetRecords {
    eng: Mutex<Engine>,
    net_id: String,
}

impl NetRecords {
    fn rows(&self) -> Vec<(String, String, String)> {
        let Ok(eng) = self.eng.lock() else {
            return Vec::new();
        };
        let conn = eng.db.conn();
        let Ok(mut st) = conn.prepare_cached(
            "SELECT names, ip, ip6 FROM endpoints WHERE network = ?1 ORDER BY container",
        ) else {
            return Vec::new();
        };
        st.query_map([&self.net_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map(|it| it.filter_map(|r| r.ok()).collect())
            .unwrap_or_default()
    }
}

impl Records for NetRecords {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let mut out = Vec::new();
        for (names, ip, ip6) in self.rows() {
            if names.split(' ').any(|n| n == name) {
                out.extend(ip.parse::<IpAddr>().ok());
                out.extend(ip6.parse::<IpAddr>().ok());
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// The querying container's other networks count too: find it by its
    /// address on this network, then look on every network it is on.
    fn lookup_from(&self, client: IpAddr, name: &str) -> Option<Vec<IpAddr>> {
        if let Some(found) = self.lookup(name) {
            return Some(found);
        }
        let eng = self.eng.lock().ok()?;
        let conn = eng.db.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT names, ip, ip6 FROM endpoints
                 WHERE network != ?1 AND network IN (
                     SELECT network FROM endpoints WHERE container = (
                         SELECT container FROM endpoints
                         WHERE network = ?1 AND (ip = ?2 OR ip6 = ?2)))",
            )
            .ok()?;
        let rows: Vec<(String, String, String)> = st
            .query_map(rusqlite::params![self.net_id, client.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .ok()?
            .filter_map(|r| r.ok())
            .collect();
        let mut out = Vec::new();
        for (names, ip, ip6) in rows {
            if names.split(' ').any(|n| n == name) {
                out.extend(ip.parse::<IpAddr>().ok());
                out.extend(ip6.parse::<IpAddr>().ok());
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn reverse(&self, addr: IpAddr) -> Option<String> {
        let a = addr.to_string();
        self.rows()
            .into_iter()
            .find(|(_, ip, ip6)| *ip == a || *ip6 == a)
            .and_then(|(names, _, _)| names.split(' ').next().map(str::to_string))
    }
}

/// `berth __dns NETWORK-ID`: forks the server off (the caller waits only
/// for the first line on stdout: `ok`, or why it cannot serve).
pub fn dns_main(root: &Path, net_id: &str) -> i32 {
    // SAFETY: nothing else runs in this process yet (no threads).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            println!("fork the DNS server: {e}");
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    // Whatever the starting process had open (a monitor's report pipe, a
    // terminal) must not be held open by a long-lived server.
    // SAFETY: close_range on fds this process does not use past this point.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let say = |s: &str| {
        let mut o = std::io::stdout();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
        // Nothing more goes to the starter: let its read end see EOF.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = crate::container::monitor::dup_to(&null, 1);
        }
    };
    match serve(root, net_id, &say) {
        Ok(()) => 0,
        Err(e) => {
            say(&e.to_string());
            1
        }
    }
}

fn serve(root: &Path, net_id: &str, say: &dyn Fn(&str)) -> Result<()> {
    let eng = Engine::open(root)?;
    let net = eng.network(net_id)?;
    let f = open_lock(&lock_path(&net))?;
    let mut lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        // Another server took over meanwhile: it serves.
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            say("ok");
            return Ok(());
        }
        Err((_, e)) => {
            return Err(Error::Io {
                path: lock_path(&net),
                source: e.into(),
            })
        }
    };
    let _ = lock.set_len(0);
    let _ = write!(lock, "{}", std::process::id());
    let mut listen = vec![SocketAddr::new(net.gateway, 53)];
    if let Some(g6) = net.gateway6 {
        listen.push(SocketAddr::new(g6, 53));
    }
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let cfg = Config::new(listen, dns::parse_resolv_conf(&resolv));
    let records = Arc::new(NetRecords {
        eng: Mutex::new(Engine::open(root)?),
        net_id: net.id.clone(),
    });
    let server = Server::bind(cfg, records).map_err(|e| Error::Network(e.to_string()))?;
    say("ok");
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let runner = std::thread::spawn(move || server.run(st));
    loop {
        std::thread::sleep(CHECK_EVERY);
        if runner.is_finished() {
            break;
        }
        // Decide under the network lock: a container start holds it while
        // it checks that a server runs.
        let Ok(_net_lock) = eng.net_lock() else {
            continue;
        };
        let needed = eng
            .networks()
            .ok()
            .is_some_and(|all| all.iter().any(|n| n.id == net.id))
            && eng
                .db
                .conn()
                .query_row(
                    "SELECT count(*) FROM endpoints WHERE network = ?1",
                    [&net.id],
                    |r| r.get::<_, i64>(0),
                )
                .is_ok_and(|n| n > 0);
        if !needed {
            stop.store(true, Ordering::SeqCst);
            // Exiting releases the server's lock, then the network lock.
            std::process::exit(0);
        }
    }
    runner
        .join()
        .map_err(|_| Error::Network("the DNS server panicked".into()))?
        .map_err(|e| Error::Network(e.to_string()))?;
    Ok(())
}
