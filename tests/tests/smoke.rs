//! The thinnest end-to-end slice: a busybox bundle runs, prints, exits 0.

use berth_integration::{Bundle, Runtime};

#[test]
fn run_busybox_echo() {
    let rt = Runtime::new();
    let b = Bundle::new(&["echo", "hello from berth"]);
    let (code, out, err) = rt.run(&b, &berth_integration::unique_id("smoke"));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "hello from berth\n");
}

#[test]
fn run_passes_exit_code() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "exit 42"]);
    let (code, _, _) = rt.run(&b, &berth_integration::unique_id("smoke"));
    assert_eq!(code, 42);
}
