//! Builds `init/berth-init.rs` (the PID 1 of `run --init`) with plain
//! rustc as a static, size-optimised binary; the engine embeds it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/berth-init.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("berth-init");
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
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .status()
        .expect("run rustc for berth-init");
    assert!(st.success(), "building {src} failed");
}
