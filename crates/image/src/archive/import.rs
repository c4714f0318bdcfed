//! `import`: a rootfs tarball (plain, gzip or zstd) becomes a one-layer
//! image, as `docker import` makes it: the layer blob is the gzip of the
//! tar, the diff id the sha256 of the uncompressed tar, the config has
//! this host's os/architecture, one history entry, and `--change`
//! instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER,
//! VOLUME, WORKDIR) in Dockerfile syntax, JSON or shell form.

use super::{
    commit, io_err, oci_manifest, unpack_options, Error, ImagePlan, LayerPlan, Loaded, Plan,
    Result, WorkDir,
};
use crate::db::Db;
use crate::digest::{Digest, Sha256Writer};
use crate::manifest::{media_type as mt, Platform};
use crate::reference::Reference;
use crate::store::Store;
use crate::unpack;
use serde_json::{json, Map, Value};
use std::fs::{self, File};
use std::io::{self, BufRead, Read, Write};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `--change` instructions, applied in order.
    pub changes: Vec<String>,
    /// `-m`: the commit message (the history comment and config comment).
    pub message: Option<String>,
    /// What the tarball came from (a path or `-`), for the history entry.
    pub source_name: String,
    /// The name to tag the image with.
    pub reference: Option<Reference>,
}

/// Reads a rootfs tar from `r` and stores it as a one-layer image.
pub fn import(store: &Store, db: &Db, r: impl Read, opts: &ImportOptions) -> Result<Loaded> {
    let mut container_config = Map::new();
    for c in &opts.changes {
        apply_change(&mut container_config, c)?;
    }
    let mut br = io::BufReader::with_capacity(1 << 20, r);
    let head = br.fill_buf().map_err(Error::Read)?;
    let comp = unpack::sniff(head);
    let reader = unpack::decompress(br, comp).map_err(|source| Error::Unpack {
        name: opts.source_name.clone(),
        source,
    })?;
    let work = WorkDir::new(store)?;
    let blob_path = work.path.join("layer.tar.gz");
    let out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&blob_path)
        .map_err(io_err("create", &blob_path))?;
    let gz = flate2::write::GzEncoder::new(
        Sha256Writer::new(io::BufWriter::with_capacity(1 << 20, out)),
        flate2::Compression::default(),
    );
    let mut tee = Tee {
        r: reader,
        w: gz,
        err: None,
    };
    let staging = store.layer_staging()?;
    let unpacked = unpack::unpack_layer(&mut tee, staging.path(), &unpack_options());
    if let Some(e) = tee.err.take() {
        return Err(io_err("write", &blob_path)(e));
    }
    let unpacked = unpacked.map_err(|source| Error::Unpack {
        name: opts.source_name.clone(),
        source,
    })?;
    let hashed = tee.w.finish().map_err(io_err("write", &blob_path))?;
    let size = hashed.bytes_written();
    let (blob, mut w) = hashed.finish();
    w.flush().map_err(io_err("write", &blob_path))?;
    drop(w);
    let diff_id: Digest = unpacked.diff_id.parse()?;

    let now = rfc3339_now();
    let host = Platform::host();
    let comment = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("imported from {}", opts.source_name));
    let mut config = json!({
        "created": now,
        "architecture": host.architecture,
        "os": host.os,
        "config": Value::Object(container_config),
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": now, "comment": comment}],
    });
    if let Some(v) = &host.variant {
        config["variant"] = json!(v);
    }
    if let Some(m) = &opts.message {
        config["comment"] = json!(m);
    }
    let config = serde_json::to_vec(&config).map_err(Error::Config)?;
    let config_digest = Digest::sha256_of(&config);
    let manifest = oci_manifest(&config, &[(mt::OCI_LAYER_GZIP, &blob, size)]);
    let plan = Plan {
        layers: vec![LayerPlan {
            file: blob_path,
            blob,
            media_type: mt::OCI_LAYER_GZIP.to_string(),
            size,
            chain_id: diff_id.clone(),
            diff_id,
            parent: None,
            staging: Some(staging),
        }],
        images: vec![ImagePlan {
            config,
            config_digest,
            manifest_digest: Digest::sha256_of(&manifest),
            manifest,
            manifest_media_type: mt::OCI_MANIFEST.to_string(),
            base: Vec::new(),
            layers: vec![0],
            tags: opts.reference.clone().into_iter().collect(),
        }],
    };
    let mut loaded = commit(store, db, plan)?;
    drop(work);
    Ok(loaded.remove(0))
}

/// Copies everything read from `r` into `w`; a write error is kept (and
/// reported as the end of input to the reader).
pub(crate) struct Tee<R, W> {
    pub r: R,
    pub w: W,
    pub err: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        if let Err(e) = self.w.write_all(&buf[..n]) {
            let kind = e.kind();
            self.err = Some(e);
            return Err(io::Error::new(kind, "writing the layer blob failed"));
        }
        Ok(n)
    }
}

/// `docker import --change`: applies one Dockerfile instruction to an
/// image config's `config` object.
pub fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<()> {
    let bad = |reason: &str| Error::Change {
        change: change.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = change.trim();
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (trimmed, ""),
    };
    if word.is_empty() {
        return Err(bad("empty instruction"));
    }
    let instr = word.to_ascii_uppercase();
    if rest.is_empty() {
        return Err(bad(&format!("{instr} requires an argument")));
    }
    match instr.as_str() {
        "CMD" | "ENTRYPOINT" => {
            let args = json_array(rest)
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()]);
            let key = if instr == "CMD" { "Cmd" } else { "Entrypoint" };
            config.insert(key.into(), json!(args));
        }
        "ENV" => {
            let pairs = key_values(rest).map_err(|r| bad(&r))?;
            let env = config
                .entry("Env")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| bad("Env is not a list"))?;
            for (k, v) in pairs {
                let prefix = format!("{k}=");
                env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                env.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest).map_err(|r| bad(&r))?;
            let labels = config
                .entry("Labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| bad("Labels is not an object"))?;
            for (k, v) in pairs {
                labels.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = config
                .entry("ExposedPorts")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| bad("ExposedPorts is not an object"))?;
            for p in words(rest).map_err(|r| bad(&r))? {
                let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
                let proto = proto.to_ascii_lowercase();
                let valid_num = num.split('-').all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                if !valid_num || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(bad(&format!("invalid port {p:?}")));
                }
                ports.insert(format!("{num}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let list = match json_array(rest) {
                Some(v) => v,
                None => words(rest).map_err(|r| bad(&r))?,
            };
            let vols = config
                .entry("Volumes")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| bad("Volumes is not an object"))?;
            for v in list {
                if v.is_empty() {
                    return Err(bad("a volume needs a path"));
                }
                vols.insert(v, json!({}));
            }
        }
        "WORKDIR" => {
            let dir = words(rest).map_err(|r| bad(&r))?.join(" ");
            let dir = if dir.starts_with('/') {
                dir
            } else {
                let base = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/");
                format!("{}/{dir}", base.trim_end_matches('/'))
            };
            config.insert("WorkingDir".into(), json!(dir));
        }
        "USER" => {
            config.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(rest));
        }
        _ => {
            return Err(bad(
                "unsupported instruction: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR",
            ))
        }
    }
    Ok(())
}

/// `["a", "b"]` as a list of strings, or `None` (then it is shell form).
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Splits like the Dockerfile parser: whitespace separates words; quotes
/// group; a backslash escapes the next character (not inside '…').
fn words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' | '\'' => {
                in_word = true;
                let quote = c;
                loop {
                    match chars.next() {
                        None => return Err("unterminated quote".into()),
                        Some(q) if q == quote => break,
                        Some('\\') if quote == '"' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        Some(x) => cur.push(x),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"`, or the legacy `k value with spaces`.
fn key_values(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let ws = words(s)?;
    let first = ws.first().ok_or("missing key")?;
    if !first.contains('=') {
        let key = first.clone();
        let rest =
            s.trim_start()[s.trim_start().find(char::is_whitespace).unwrap_or(s.len())..].trim();
        let value = words(rest)?.join(" ");
        return Ok(vec![(key, value)]);
    }
    let mut out = Vec::new();
    for w in ws {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("{w:?} is not key=value"))?;
        if k.is_empty() {
            return Err(format!("{w:?} has an empty key"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Now as RFC 3339 in UTC with nanoseconds, as Go formats it.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Opens `path`, or stdin for `-`.
pub fn open_input(path: &str) -> Result<Box<dyn Read>> {
    if path == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let p = std::path::Path::new(path);
    Ok(Box::new(File::open(p).map_err(io_err("open", p))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Value {
        let mut m = Map::new();
        for c in changes {
            apply_change(&mut m, c).unwrap();
        }
        Value::Object(m)
    }

    #[test]
    fn changes_json_and_shell_form() {
        let c = apply(&[
            r#"CMD ["echo","hi"]"#,
            "ENTRYPOINT /bin/run --x",
            "ENV A=1 B=\"two words\"",
            "ENV C three words",
            "ENV A=9",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL a=b \"c d\"=e",
            r#"VOLUME ["/data"]"#,
            "VOLUME /x /y",
        ]);
        assert_eq!(c["Cmd"], json!(["echo", "hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/run --x"]));
        assert_eq!(c["Env"], json!(["B=two words", "C=three words", "A=9"]));
        assert_eq!(c["WorkingDir"], "/srv/app");
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/x": {}, "/y": {}}));
    }

    #[test]
    fn bad_changes() {
        for c in [
            "",
            "CMD",
            "RUN echo",
            "EXPOSE http",
            "ENV \"unterminated",
            "LABEL =x",
        ] {
            let mut m = Map::new();
            let e = apply_change(&mut m, c).unwrap_err();
            assert!(e.to_string().starts_with("invalid --change"), "{c}: {e}");
        }
    }

    #[test]
    fn rfc3339() {
        let s = rfc3339_now();
        assert_eq!(s.len(), 30, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z') && &s[10..11] == "T");
    }
}
