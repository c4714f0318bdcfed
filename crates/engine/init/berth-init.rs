//! berth-init: the tiny PID 1 of `berth run --init`. It starts the
//! container's command as its child, forwards every signal it receives to
//! it, reaps every zombie (orphans are re-parented to PID 1), and exits
//! with the command's code (128+N for a signal) once the command is gone.
//!
//! Built by crates/engine/build.rs with plain `rustc` as a static binary
//! (no crates, only std and a few libc calls), so it runs in any image.
//! Usage: berth-init -- CMD [ARG...]

use std::ffi::CString;
use std::os::raw::{c_char, c_int};

/// glibc's sigset_t and siginfo_t sizes on Linux.
#[repr(C)]
struct SigSet([u64; 16]);
#[repr(C)]
struct SigInfo {
    signo: c_int,
    _rest: [u8; 124],
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn fork() -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
    fn signal(sig: c_int, handler: usize) -> usize;
    fn __errno_location() -> *mut c_int;
}

const SIG_BLOCK: c_int = 0;
const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;
const SIGCHLD: c_int = 17;
const ENOENT: c_int = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let start = match args.iter().position(|a| a == "--") {
        Some(i) => i + 1,
        None => 1,
    };
    if start >= args.len() {
        eprintln!("berth-init: usage: berth-init -- CMD [ARG...]");
        std::process::exit(2);
    }
    let cargs: Vec<CString> = args[start..]
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_default())
        .collect();
    let mut argv: Vec<*const c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());

    let mut all = SigSet([0; 16]);
    let mut old = SigSet([0; 16]);
    // SAFETY: plain libc calls on local, correctly sized structures.
    unsafe {
        sigfillset(&mut all);
        sigprocmask(SIG_BLOCK, &all, &mut old);
    }
    // SAFETY: fork in a single-threaded process.
    let child = unsafe { fork() };
    if child < 0 {
        eprintln!("berth-init: fork: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    if child == 0 {
        // SAFETY: back to the original mask, then exec; on failure report
        // and leave with Docker's codes (127 not found, 126 cannot run).
        unsafe {
            // Rust's runtime ignores SIGPIPE; the command gets defaults.
            for sig in 1..65 {
                if sig != 9 && sig != 19 {
                    signal(sig, 0);
                }
            }
            sigprocmask(SIG_SETMASK, &old, std::ptr::null_mut());
            execvp(argv[0], argv.as_ptr());
            let e = *__errno_location();
            eprintln!(
                "berth-init: exec {:?}: {}",
                args[start],
                std::io::Error::from_raw_os_error(e)
            );
            _exit(if e == ENOENT { 127 } else { 126 });
        }
    }
    let mut code: Option<c_int> = None;
    loop {
        let mut info = SigInfo {
            signo: 0,
            _rest: [0; 124],
        };
        // SAFETY: waits for one of the blocked signals.
        let sig = unsafe { sigwaitinfo(&all, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig != SIGCHLD {
            // SAFETY: forwards the signal to our one direct child.
            unsafe { kill(child, sig) };
            continue;
        }
        loop {
            let mut st: c_int = 0;
            // SAFETY: reaps any exited child without blocking.
            let pid = unsafe { waitpid(-1, &mut st, WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                code = Some(if st & 0x7f == 0 {
                    (st >> 8) & 0xff
                } else {
                    128 + (st & 0x7f)
                });
            }
        }
        if let Some(c) = code {
            std::process::exit(c);
        }
    }
}
