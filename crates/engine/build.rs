//! Builds two small static binaries with plain rustc, size-optimised, that
//! the engine embeds and writes into the store on first use:
//! `init/berth-init.rs` (the PID 1 of `run --init`) and berth-monitor
//! (crates/monitor/src/main.rs with `--cfg berth_static`: it then takes its
//! log writer and its few libc items as modules, needing no crates). A
//! static, non-PIE monitor holds 56 KiB of anonymous memory per idle
//! container where the dynamic one held 128 (no ld.so, relocations or
//! shared-library data), with 12 KiB less of page tables.

use std::path::{Path, PathBuf};
use std::process::Command;

fn build(src: &str, out: &Path, extra: &[&str]) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let st = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--target",
            &target,
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
        ])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("run rustc for {src}: {e}"));
    assert!(st.success(), "building {src} failed");
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let init = "init/berth-init.rs";
    println!("cargo:rerun-if-changed={init}");
    build(init, &out.join("berth-init"), &[]);
    for f in ["main.rs", "lib.rs", "sys.rs"] {
        println!("cargo:rerun-if-changed=../monitor/src/{f}");
    }
    let monitor = out.join("berth-monitor");
    build(
        "../monitor/src/main.rs",
        &monitor,
        &[
            "--cfg",
            "berth_static",
            "-C",
            "relocation-model=static",
            "-C",
            "lto=fat",
            "-C",
            "codegen-units=1",
        ],
    );
    // Names the copy in the store, so a new build writes a new file (no
    // hashing of a megabyte on every `run -d`).
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(&monitor)
        .expect("read berth-monitor")
        .hash(&mut h);
    println!("cargo:rustc-env=BERTH_MONITOR_TAG={:016x}", h.finish());
}
