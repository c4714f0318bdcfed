//! berth image store: references, digests, the content store (blobs,
//! resumable ingests, layer dirs by chain id), manifests and image
//! configs, and the image database.

pub mod archive;
pub mod commit;
pub mod db;
pub mod digest;
mod ingest;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
pub mod store;
pub mod topdir;
pub mod unpack;
mod writeback;

pub use digest::Digest;
pub use reference::Reference;
pub use store::{chain_ids, Store};
