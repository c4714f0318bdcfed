//! `run`: create + start, then (unless detached) wait, forwarding signals,
//! delete, and exit with the container's code.

use super::create::{create, CreateOpts};
use super::wait::{supervise, Signals};
use super::{Error, Result, Runtime};
use std::os::fd::OwnedFd;

pub struct RunOpts {
    pub create: CreateOpts,
    pub detach: bool,
    pub keep: bool,
}

/// Returns the container's exit code (0 when detached).
pub fn run(rt: &Runtime, mut opts: RunOpts) -> Result<i32> {
    let id = opts.create.id.clone();
    // Parsed once: create takes it from here.
    let bundle = crate::spec::load(&opts.create.bundle)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    opts.create.loaded = Some(bundle);
    // A terminal without a console socket in the foreground: we hold the pty.
    let mut our_console: Option<OwnedFd> = None;
    if terminal && opts.create.console_socket.is_none() {
        if opts.detach {
            return Err(Error::Invalid(
                "cannot allocate a tty for a detached container without --console-socket".into(),
            ));
        }
        let (a, b) = std::os::unix::net::UnixStream::pair().map_err(|source| Error::Io {
            path: "socketpair".into(),
            source,
        })?;
        our_console = Some(OwnedFd::from(a));
        opts.create.console_fd = Some(OwnedFd::from(b));
    }
    let sigs = if opts.detach {
        None
    } else {
        Some(Signals::block()?)
    };
    let created = create(rt, opts.create)?;
    let master = match &our_console {
        Some(s) => {
            use std::os::fd::AsRawFd;
            match crate::console::recv_fd(s.as_raw_fd()) {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = super::delete::delete(rt, &id, true);
                    return Err(e.into());
                }
            }
        }
        None => None,
    };
    // Size the pty from our terminal before the process runs: a shell or
    // editor reads its size at startup (supervise only tracks later changes).
    if let (Some(m), Some((r, c))) = (&master, crate::console::get_size(0)) {
        use std::os::fd::AsRawFd;
        crate::console::set_size(m.as_raw_fd(), r, c);
    }
    if let Err(e) = super::start::start(rt, &id) {
        let _ = super::delete::delete(rt, &id, true);
        return Err(e);
    }
    let Some(sigs) = sigs else {
        return Ok(0);
    };
    let code = supervise(&sigs, created.pid, master);
    drop(sigs);
    if !opts.keep {
        super::delete::delete(rt, &id, true)?;
    }
    code
}
