//! The `blindspot` binary as a user runs it.
#![allow(dead_code)]

use std::process::Command;

/// Runs `blindspot` with `args`: (exit code, stdout, stderr).
pub fn blindspot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_blindspot"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs `blindspot collide MODEL IMAGE --count 1` into `out` and returns its report, after
/// checking what every collision must show: the outputs unchanged (relative 1e-5) where the
/// control of the same L2 moves them at least 100 times as much.
pub fn collide_verified(model: &std::path::Path, image: &std::path::Path, out: &std::path::Path) -> serde_json::Value {
    collide_verified_with(model, image, out, &[])
}

/// [`collide_verified`] with further arguments (`--hold NAME=FILE`, preprocessing).
pub fn collide_verified_with(
    model: &std::path::Path,
    image: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let (model, image, dir) = (model.to_str().unwrap(), image.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["collide", model, image, "--count", "1", "--quiet", "--out", dir];
    args.extend_from_slice(extra);
    let (code, _, err) = blindspot(&args);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let c = &report["collisions"][0];
    let output = c["outputs"][0]["rel_diff"].as_f64().unwrap();
    let control = c["control"]["outputs"][0]["rel_diff"].as_f64().unwrap();
    assert!(output < 1e-5 && control > 100.0 * output, "{c}");
    report
}
