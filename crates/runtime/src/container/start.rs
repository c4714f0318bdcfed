//! `start`: release a created container's init from exec.fifo.

use super::{oci_state, Error, Result, Runtime};
use crate::hooks;
use crate::state::Status;
use nix::fcntl::OFlag;
use std::os::fd::AsFd;
use std::time::Duration;

pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    let mut c = rt.load(id)?;
    if c.status != Status::Created {
        return Err(Error::WrongState {
            id: id.into(),
            status: c.status,
            what: "only a created container can be started",
        });
    }
    let fifo = c.dir.fifo();
    // Non-blocking open for reading always succeeds; it releases the init's
    // blocking open for writing, and then its byte arrives.
    let fd = nix::fcntl::open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(super::sys(format!("open {}", fifo.display())))?;
    let mut buf = [0u8; 1];
    let t0 = std::time::Instant::now();
    loop {
        let mut pfd = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16));
        match nix::unistd::read(&fd, &mut buf) {
            Ok(1) => break,
            Ok(_) | Err(nix::Error::EAGAIN) => {
                if !crate::state::alive(&c.rec) {
                    return Err(Error::Child(format!(
                        "container {id:?} init exited before start"
                    )));
                }
                if t0.elapsed() > Duration::from_secs(30) {
                    return Err(Error::Child(format!(
                        "container {id:?} did not answer start in 30s"
                    )));
                }
            }
            Err(e) => return Err(super::sys("read exec.fifo")(e)),
        }
    }
    let _ = std::fs::remove_file(&fifo);
    c.rec.started = true;
    c.dir.save(&c.rec)?;
    let spec = c.dir.load_config()?;
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().clone()) {
        let state = oci_state(&c.rec, Status::Running).to_string();
        // Spec: a failing poststart hook is logged and does not stop the container.
        if let Err(e) = hooks::run_all("poststart", &h, &state) {
            crate::log::warn(&e.to_string());
        }
    }
    Ok(())
}
