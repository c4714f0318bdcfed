//! The few libc items berth-monitor uses, declared here for its static
//! build: crates/engine/build.rs compiles main.rs with plain rustc (no
//! crates) and `--cfg berth_static`, where this module stands in for the
//! libc crate. Linux with glibc; the values are the same on x86_64 and
//! aarch64. The cargo build of the bin uses the libc crate itself.
#![allow(non_camel_case_types, non_snake_case, dead_code)]

pub use std::ffi::{c_char, c_int, c_short, c_ulong, c_ushort, c_void};

pub type nfds_t = c_ulong;
pub type pid_t = i32;

#[repr(C)]
pub struct pollfd {
    pub fd: c_int,
    pub events: c_short,
    pub revents: c_short,
}

#[repr(C)]
pub struct winsize {
    pub ws_row: c_ushort,
    pub ws_col: c_ushort,
    pub ws_xpixel: c_ushort,
    pub ws_ypixel: c_ushort,
}

pub const POLLIN: c_short = 0x1;
pub const POLLOUT: c_short = 0x4;
pub const POLLERR: c_short = 0x8;
pub const POLLHUP: c_short = 0x10;
pub const EINTR: c_int = 4;
pub const EAGAIN: c_int = 11;
pub const F_GETFL: c_int = 3;
pub const F_SETFL: c_int = 4;
pub const O_NONBLOCK: c_int = 0o4000;
pub const SOCK_CLOEXEC: c_int = 0o2000000;
pub const TIOCSWINSZ: c_ulong = 0x5414;

extern "C" {
    pub fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize;
    pub fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
    pub fn close(fd: c_int) -> c_int;
    pub fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int;
    pub fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    pub fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    pub fn accept4(fd: c_int, addr: *mut c_void, len: *mut u32, flags: c_int) -> c_int;
    pub fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t;
    pub fn execv(path: *const c_char, argv: *const *const c_char) -> c_int;
}

// The wait status macros of <sys/wait.h>.
pub const fn WIFEXITED(status: c_int) -> bool {
    status & 0x7f == 0
}

pub const fn WEXITSTATUS(status: c_int) -> c_int {
    (status >> 8) & 0xff
}

pub const fn WIFSIGNALED(status: c_int) -> bool {
    ((status & 0x7f) + 1) as i8 >= 2
}

pub const fn WTERMSIG(status: c_int) -> c_int {
    status & 0x7f
}
