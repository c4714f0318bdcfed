pub mod attach;
pub mod cinspect;
pub mod commit;
pub mod container;
pub mod cp;
pub mod exec;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod login;
pub mod logs;
pub mod network;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod registry;
pub mod rmi;
pub mod run;
pub mod save;
pub mod stats;
pub mod system;
pub mod tag;
pub mod update;
pub mod volume;

use anyhow::Context;
use berth_image::db::Db;
use berth_image::Store;
use std::path::Path;

/// The store and its database, created on first use.
pub fn open(root: &Path) -> anyhow::Result<(Store, Db)> {
    let store = Store::open(root).with_context(|| format!("open store {}", root.display()))?;
    let db = Db::open(root).with_context(|| format!("open database in {}", root.display()))?;
    Ok((store, db))
}
