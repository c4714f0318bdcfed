//! berth-engine: containers. Turns an image plus `run` options into an OCI
//! bundle (config.json + an overlay rootfs), runs it with the runtime
//! library in-process (attached, or under a per-container monitor), and
//! keeps container state in the store's SQLite database.

pub mod container;
pub mod db;
pub mod network;
pub mod rootfs;
pub mod spec_gen;
pub mod volume;

pub use container::{Config, Engine, Error};
