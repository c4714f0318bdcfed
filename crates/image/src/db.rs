//! Image metadata in SQLite (`<root>/berth.db`): images, their layers, tags
//! and repo digests.
//!
//! Many berth processes share one database: WAL mode, a 10 s busy timeout,
//! and every write in a `BEGIN IMMEDIATE` transaction (so a reader never
//! has to upgrade to a writer and fail with `SQLITE_BUSY`). The schema has
//! numbered migrations per component in `schema_version`; other crates
//! (containers, volumes) add their own component with [`migrate`].

use crate::digest::Digest;
use crate::reference::Reference;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DB_FILE: &str = "berth.db";
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest image id prefix accepted.
pub const MIN_ID_PREFIX: usize = 4;

/// The image store's migrations; entry `i` takes the schema to version `i+1`.
/// Never edit a released entry: append a new one.
const IMAGE_MIGRATIONS: &[&str] = &[r#"
CREATE TABLE images (
    id                  TEXT PRIMARY KEY,   -- config digest
    manifest_digest     TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created             TEXT,
    size                INTEGER NOT NULL,
    architecture        TEXT NOT NULL,
    os                  TEXT NOT NULL,
    config              TEXT NOT NULL,      -- the config JSON as pulled
    added               TEXT NOT NULL
);
CREATE TABLE image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    chain_id    TEXT NOT NULL,
    diff_id     TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (image_id, idx)
);
CREATE INDEX image_layers_chain_id ON image_layers(chain_id);
CREATE INDEX image_layers_blob ON image_layers(blob_digest);
CREATE TABLE tags (
    name     TEXT PRIMARY KEY,              -- docker.io/library/busybox:latest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX tags_image_id ON tags(image_id);
CREATE TABLE repo_digests (
    name     TEXT PRIMARY KEY,              -- docker.io/library/busybox@sha256:...
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX repo_digests_image_id ON repo_digests(image_id);
"#];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image database {}: {op}: {source}", path.display())]
    Sql {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },
    #[error("image database {}: schema version {found} of {component} is newer than this berth supports ({supported}): upgrade berth", path.display())]
    NewerSchema {
        path: PathBuf,
        component: String,
        found: u32,
        supported: u32,
    },
    #[error("image database {}: corrupt {what}: {value:?}", path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        value: String,
    },
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("image id prefix {prefix} is ambiguous: it matches several images; give more digits")]
    Ambiguous { prefix: String },
    #[error("invalid tag {name:?}: {reason}")]
    InvalidTag { name: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// One layer of an image, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    /// The compressed blob as pulled.
    pub blob_digest: Digest,
    pub media_type: String,
    /// Size of the blob.
    pub size: u64,
}

/// An image as stored: keyed by its config digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    /// The config's `created` (RFC 3339), empty when it had none.
    pub created: String,
    /// Config plus compressed layers, in bytes.
    pub size: u64,
    pub architecture: String,
    pub os: String,
    /// The config JSON, byte for byte as pulled.
    pub config: String,
    pub layers: Vec<LayerRecord>,
}

/// An image with what points at it, for `images` and `inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub image: ImageRecord,
    /// When it was first stored here (RFC 3339, UTC).
    pub added: String,
    pub tags: Vec<String>,
    pub repo_digests: Vec<String>,
}

/// Opens a connection with berth's settings: WAL, busy timeout, foreign keys.
pub fn open_connection(path: &Path) -> Result<Connection> {
    let err = |op| {
        let path = path.to_path_buf();
        move |source| Error::Sql { path, op, source }
    };
    let conn = Connection::open(path).map_err(err("open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("set busy timeout"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(err("enable foreign keys"))?;
    enable_wal(&conn).map_err(err("enable WAL"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err("set synchronous"))?;
    Ok(conn)
}

/// WAL mode is persistent in the file, so only the first opener sets it.
/// Switching takes an exclusive lock that the busy handler does not wait
/// for, so concurrent first opens retry here.
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let r = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(mode)
                } else {
                    conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                }
            });
        match r {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(format!("journal mode is {mode}, not wal")),
                ))
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Brings `component`'s tables to the latest of `migrations` (entry `i`
/// makes version `i+1`), in one immediate transaction. Returns the version.
pub fn migrate(
    conn: &Connection,
    path: &Path,
    component: &str,
    migrations: &[&str],
) -> Result<u32> {
    let err = |op| {
        let path = path.to_path_buf();
        move |source| Error::Sql { path, op, source }
    };
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(err("begin migration"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            component TEXT PRIMARY KEY,
            version   INTEGER NOT NULL
        )",
    )
    .map_err(err("create schema_version"))?;
    let current: u32 = tx
        .query_row(
            "SELECT version FROM schema_version WHERE component = ?1",
            [component],
            |r| r.get(0),
        )
        .optional()
        .map_err(err("read schema version"))?
        .unwrap_or(0);
    let supported = migrations.len() as u32;
    if current > supported {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            component: component.to_string(),
            found: current,
            supported,
        });
    }
    for sql in &migrations[current as usize..] {
        tx.execute_batch(sql).map_err(err("apply migration"))?;
    }
    if current < supported {
        tx.execute(
            "INSERT INTO schema_version (component, version) VALUES (?1, ?2)
             ON CONFLICT(component) DO UPDATE SET version = excluded.version",
            params![component, supported],
        )
        .map_err(err("record schema version"))?;
    }
    tx.commit().map_err(err("commit migration"))?;
    Ok(supported)
}

/// The image database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating and migrating) `<root>/berth.db`.
    pub fn open(root: impl AsRef<Path>) -> Result<Db> {
        Db::open_path(root.as_ref().join(DB_FILE))
    }

    pub fn open_path(path: impl Into<PathBuf>) -> Result<Db> {
        let path = path.into();
        let conn = open_connection(&path)?;
        migrate(&conn, &path, "image", IMAGE_MIGRATIONS)?;
        Ok(Db { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for other components' tables in the same file.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn err(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |source| Error::Sql {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn write_tx(&self, op: &'static str) -> Result<Transaction<'_>> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(self.err(op))
    }

    fn digest(&self, what: &'static str, s: String) -> Result<Digest> {
        s.parse().map_err(|_| Error::Corrupt {
            path: self.path.clone(),
            what,
            value: s,
        })
    }

    /// Stores (or replaces) an image and its layers.
    pub fn put_image(&self, rec: &ImageRecord) -> Result<()> {
        let tx = self.write_tx("begin put image")?;
        put_image_tx(&tx, rec).map_err(self.err("put image"))?;
        tx.commit().map_err(self.err("commit put image"))
    }

    /// Points tag `name` (normalised, e.g. `busybox` ->
    /// `docker.io/library/busybox:latest`) at `image_id`; returns the image
    /// it pointed at before, if another.
    pub fn set_tag(&self, name: &str, image_id: &Digest) -> Result<Option<Digest>> {
        let name = tag_key(name)?;
        let tx = self.write_tx("begin tag")?;
        let old = set_tag_tx(&tx, &name, image_id).map_err(self.err("tag"))?;
        tx.commit().map_err(self.err("commit tag"))?;
        old.map(|o| self.digest("tag target", o)).transpose()
    }

    /// Records a pulled image in one transaction: the image, the
    /// reference's tag (if any), and `name@digest` as a repo digest (the
    /// reference's digest when it has one, else the manifest's). Returns
    /// the image the tag pointed at before, if another.
    pub fn record_pull(&self, rec: &ImageRecord, reference: &Reference) -> Result<Option<Digest>> {
        let repo_digest = reference
            .with_digest(
                reference
                    .digest
                    .clone()
                    .unwrap_or_else(|| rec.manifest_digest.clone()),
            )
            .digested_name()
            .unwrap_or_default();
        let tx = self.write_tx("begin record pull")?;
        let run = || -> rusqlite::Result<Option<String>> {
            put_image_tx(&tx, rec)?;
            tx.execute(
                "INSERT INTO repo_digests (name, image_id) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                params![repo_digest, rec.id.as_str()],
            )?;
            match reference.tagged_name() {
                Some(tag) => set_tag_tx(&tx, &tag, &rec.id),
                None => Ok(None),
            }
        };
        let old = run().map_err(self.err("record pull"))?;
        tx.commit().map_err(self.err("commit record pull"))?;
        old.map(|o| self.digest("tag target", o)).transpose()
    }

    /// Records repo digest `name` (`domain/path@sha256:…`, e.g. after a
    /// push) for `image_id`, moving it from another image if need be.
    pub fn add_repo_digest(&self, name: &str, image_id: &Digest) -> Result<()> {
        let tx = self.write_tx("begin add repo digest")?;
        tx.execute(
            "INSERT INTO repo_digests (name, image_id) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            params![name, image_id.as_str()],
        )
        .map_err(self.err("add repo digest"))?;
        tx.commit().map_err(self.err("commit add repo digest"))
    }

    /// Removes tag `name` (normalised); returns the image it pointed at.
    pub fn untag(&self, name: &str) -> Result<Option<Digest>> {
        let name = tag_key(name)?;
        let tx = self.write_tx("begin untag")?;
        let old: Option<String> = tx
            .query_row(
                "DELETE FROM tags WHERE name = ?1 RETURNING image_id",
                [&name],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("untag"))?;
        tx.commit().map_err(self.err("commit untag"))?;
        old.map(|o| self.digest("tag target", o)).transpose()
    }

    /// The image with config digest `id`.
    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, manifest_digest, manifest_media_type, created, size,
                        architecture, os, config
                 FROM images WHERE id = ?1",
                [id.as_str()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err("read image"))?;
        let Some((id, md, mmt, created, size, arch, os, config)) = row else {
            return Ok(None);
        };
        let id = self.digest("image id", id)?;
        let layers = self.layers(&id)?;
        Ok(Some(ImageRecord {
            manifest_digest: self.digest("manifest digest", md)?,
            id,
            manifest_media_type: mmt,
            created: created.unwrap_or_default(),
            size: size.max(0) as u64,
            architecture: arch,
            os,
            config,
            layers,
        }))
    }

    fn layers(&self, id: &Digest) -> Result<Vec<LayerRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT chain_id, diff_id, blob_digest, media_type, size
                 FROM image_layers WHERE image_id = ?1 ORDER BY idx",
            )
            .map_err(self.err("read layers"))?;
        let rows = stmt
            .query_map([id.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(self.err("read layers"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err("read layers"))?;
        rows.into_iter()
            .map(|(c, d, b, mt, size)| {
                Ok(LayerRecord {
                    chain_id: self.digest("chain id", c)?,
                    diff_id: self.digest("diff id", d)?,
                    blob_digest: self.digest("blob digest", b)?,
                    media_type: mt,
                    size: size.max(0) as u64,
                })
            })
            .collect()
    }

    fn strings(&self, sql: &str, arg: &str, op: &'static str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err(op))?;
        let rows = stmt
            .query_map([arg], |r| r.get::<_, String>(0))
            .map_err(self.err(op))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err(op));
        rows
    }

    /// Finds an image the way `docker` does: a tag (`busybox`,
    /// `busybox:1.36`), `name@digest`, a full id (`sha256:…`), or an id
    /// prefix of at least 4 hex digits (with or without `sha256:`).
    pub fn image_by_ref(&self, s: &str) -> Result<Option<ImageRecord>> {
        let s = s.trim();
        if let Ok(d) = s.parse::<Digest>() {
            return self.image(&d);
        }
        if let Ok(r) = Reference::parse(s) {
            let (sql, key) = match (r.digested_name(), r.tagged_name()) {
                (Some(n), _) => ("SELECT image_id FROM repo_digests WHERE name = ?1", n),
                (None, Some(n)) => ("SELECT image_id FROM tags WHERE name = ?1", n),
                (None, None) => unreachable!("parse adds latest"),
            };
            if let Some(id) = self.strings(sql, &key, "look up reference")?.pop() {
                let id = self.digest("image id", id)?;
                return self.image(&id);
            }
        }
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() < MIN_ID_PREFIX
            || hex.len() > 64
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(None);
        }
        let ids = self.strings(
            "SELECT id FROM images WHERE id GLOB 'sha256:' || ?1 || '*' LIMIT 2",
            hex,
            "look up image id prefix",
        )?;
        match ids.as_slice() {
            [] => Ok(None),
            [one] => {
                let id = self.digest("image id", one.clone())?;
                self.image(&id)
            }
            _ => Err(Error::Ambiguous {
                prefix: s.to_string(),
            }),
        }
    }

    /// Tags pointing at `image_id`, sorted.
    pub fn tags_of(&self, image_id: &Digest) -> Result<Vec<String>> {
        self.strings(
            "SELECT name FROM tags WHERE image_id = ?1 ORDER BY name",
            image_id.as_str(),
            "read tags",
        )
    }

    /// Repo digests (`name@digest`) of `image_id`, sorted.
    pub fn repo_digests_of(&self, image_id: &Digest) -> Result<Vec<String>> {
        self.strings(
            "SELECT name FROM repo_digests WHERE image_id = ?1 ORDER BY name",
            image_id.as_str(),
            "read repo digests",
        )
    }

    /// Every image, newest first, with its tags and repo digests.
    pub fn list_images(&self) -> Result<Vec<ImageEntry>> {
        let rows = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id, added FROM images ORDER BY created DESC, added DESC, id",
                )
                .map_err(self.err("list images"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(self.err("list images"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.err("list images"))?;
            rows
        };
        let mut out = Vec::with_capacity(rows.len());
        for (id, added) in rows {
            let id = self.digest("image id", id)?;
            // Removed by another process since the list was read.
            let Some(image) = self.image(&id)? else {
                continue;
            };
            out.push(ImageEntry {
                tags: self.tags_of(&id)?,
                repo_digests: self.repo_digests_of(&id)?,
                image,
                added,
            });
        }
        Ok(out)
    }

    /// Image ids using layer `chain_id`.
    pub fn layer_users(&self, chain_id: &Digest) -> Result<Vec<Digest>> {
        self.strings(
            "SELECT DISTINCT image_id FROM image_layers WHERE chain_id = ?1 ORDER BY image_id",
            chain_id.as_str(),
            "read layer users",
        )?
        .into_iter()
        .map(|s| self.digest("image id", s))
        .collect()
    }

    /// Whether any image references blob `digest` (as a layer, config or
    /// manifest), for blob garbage collection.
    pub fn blob_in_use(&self, digest: &Digest) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM image_layers WHERE blob_digest = ?1)
                     OR EXISTS(SELECT 1 FROM images WHERE id = ?1 OR manifest_digest = ?1)
                     OR EXISTS(SELECT 1 FROM repo_digests WHERE substr(name, -length(?1)) = ?1)",
                [digest.as_str()],
                |r| r.get(0),
            )
            .map_err(self.err("check blob use"))
    }

    /// Deletes an image with its tags and repo digests; returns the chain
    /// ids it used that no other image uses now (the caller removes those
    /// layers once no container uses them either).
    pub fn remove_image(&self, id: &Digest) -> Result<Vec<Digest>> {
        let tx = self.write_tx("begin remove image")?;
        let chains: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT DISTINCT chain_id FROM image_layers WHERE image_id = ?1")
                .map_err(self.err("remove image"))?;
            let rows = stmt
                .query_map([id.as_str()], |r| r.get(0))
                .map_err(self.err("remove image"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.err("remove image"))?;
            rows
        };
        let n = tx
            .execute("DELETE FROM images WHERE id = ?1", [id.as_str()])
            .map_err(self.err("remove image"))?;
        if n == 0 {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        let mut unused = Vec::new();
        for c in chains {
            let used: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM image_layers WHERE chain_id = ?1)",
                    [&c],
                    |r| r.get(0),
                )
                .map_err(self.err("remove image"))?;
            if !used {
                unused.push(self.digest("chain id", c)?);
            }
        }
        tx.commit().map_err(self.err("commit remove image"))?;
        Ok(unused)
    }
}

/// `busybox` -> `docker.io/library/busybox:latest`; digests are refused.
fn tag_key(name: &str) -> Result<String> {
    let r = Reference::parse(name).map_err(|e| Error::InvalidTag {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    if r.digest.is_some() {
        return Err(Error::InvalidTag {
            name: name.to_string(),
            reason: "a tag cannot contain a digest".into(),
        });
    }
    Ok(r.tagged_name().unwrap_or_default())
}

fn put_image_tx(tx: &Transaction<'_>, rec: &ImageRecord) -> rusqlite::Result<()> {
    let created = (!rec.created.is_empty()).then_some(rec.created.as_str());
    tx.execute(
        "INSERT INTO images (id, manifest_digest, manifest_media_type, created, size,
                             architecture, os, config, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         ON CONFLICT(id) DO UPDATE SET
             manifest_digest = excluded.manifest_digest,
             manifest_media_type = excluded.manifest_media_type,
             created = excluded.created,
             size = excluded.size,
             architecture = excluded.architecture,
             os = excluded.os,
             config = excluded.config",
        params![
            rec.id.as_str(),
            rec.manifest_digest.as_str(),
            rec.manifest_media_type,
            created,
            rec.size as i64,
            rec.architecture,
            rec.os,
            rec.config,
        ],
    )?;
    tx.execute(
        "DELETE FROM image_layers WHERE image_id = ?1",
        [rec.id.as_str()],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO image_layers (image_id, idx, chain_id, diff_id, blob_digest, media_type, size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (i, l) in rec.layers.iter().enumerate() {
        stmt.execute(params![
            rec.id.as_str(),
            i as i64,
            l.chain_id.as_str(),
            l.diff_id.as_str(),
            l.blob_digest.as_str(),
            l.media_type,
            l.size as i64,
        ])?;
    }
    Ok(())
}

/// Returns the previous image id when the tag moved.
fn set_tag_tx(
    tx: &Transaction<'_>,
    name: &str,
    image_id: &Digest,
) -> rusqlite::Result<Option<String>> {
    let old: Option<String> = tx
        .query_row("SELECT image_id FROM tags WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    tx.execute(
        "INSERT INTO tags (name, image_id) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
        params![name, image_id.as_str()],
    )?;
    Ok(old.filter(|o| o != image_id.as_str()))
}

impl Db {
    /// Ids of the images no tag points at (Docker's "dangling" images; a
    /// repo digest alone does not keep an image), oldest first.
    pub fn dangling_images(&self) -> Result<Vec<Digest>> {
        self.image_ids(
            "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM tags) ORDER BY added, id",
        )
    }

    /// Ids of every image, oldest first.
    pub fn all_image_ids(&self) -> Result<Vec<Digest>> {
        self.image_ids("SELECT id FROM images ORDER BY added, id")
    }

    fn image_ids(&self, sql: &str) -> Result<Vec<Digest>> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(self.err("list image ids"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err("list image ids"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err("list image ids"))?;
        rows.into_iter()
            .map(|s| self.digest("image id", s))
            .collect()
    }

    /// Removes repo digest `name` (`host/repo@sha256:…`, as stored);
    /// whether it was there.
    pub fn remove_repo_digest(&self, name: &str) -> Result<bool> {
        let tx = self.write_tx("begin remove repo digest")?;
        let n = tx
            .execute("DELETE FROM repo_digests WHERE name = ?1", [name])
            .map_err(self.err("remove repo digest"))?;
        tx.commit().map_err(self.err("commit remove repo digest"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
