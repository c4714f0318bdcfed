pub mod images;
pub mod inspect;
pub mod pull;
pub mod rmi;
pub mod tag;

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
