//! berth-engine: containers. Turns an image plus `run` options into an OCI
//! bundle (config.json + an overlay rootfs) and runs it with the runtime
//! library in-process.

pub mod rootfs;
pub mod run;
pub mod spec_gen;

pub use run::{run_image, Error, RunOptions};
