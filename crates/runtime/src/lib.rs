//! berth-runtime: an OCI runtime (runtime-spec 1.0–1.2) with runc's command
//! line. The library is used in-process by the berth engine; the binary
//! `berth-runtime` serves engines that call a runc-compatible CLI.

pub mod cgroups;
pub mod console;
pub mod container;
pub mod hooks;
pub mod init;
pub mod log;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sync;

pub use container::Runtime;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The newest runtime-spec version whose configs we accept.
pub const OCI_VERSION: &str = "1.2.0";
