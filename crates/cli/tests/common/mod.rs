//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Runs the `hybrid-ir` binary in the workspace root (no colour codes in its output).
pub fn hybrid_ir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-ir")).args(args).current_dir(workspace()).env("NO_COLOR", "1").output().expect("run hybrid-ir")
}

/// Training steps logged in `run`'s metrics.jsonl.
pub fn train_events(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().filter(|l| l.contains("\"train\"")).count())
}

/// The step of `run`'s `last` checkpoint.
pub fn last_checkpoint_step(run: &Path) -> u64 {
    let last = std::fs::read_to_string(run.join("checkpoints/last")).unwrap();
    last.trim().trim_start_matches("step-").parse().unwrap()
}

/// `hybrid-ir train --resume` of `run` on one process for one more step after `step`; asserts
/// that it stopped there.
pub fn resume_one_more_step(run: &Path, step: u64) {
    let next = (step + 1).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-ir"))
        .args(["train", "--config", run.join("config.toml").to_str().unwrap(), "--resume", "--stop-after", &next, "--no-progress"])
        .current_dir(workspace())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("stopped at step {next}")), "{stdout}");
}
