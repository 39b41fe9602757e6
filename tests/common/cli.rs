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
