//! Where the datasets live. The project never copies them (MLQA-R is CC BY-NC): it reads them in place.

use std::path::{Path, PathBuf};

/// Environment variable that points at the data root (the folder holding `xquad-r/`, `mlqa-r/`, ...).
pub const DATA_ENV: &str = "HYBRID_IR_DATA";

/// Resolves the data root: an explicit flag wins, then `$HYBRID_IR_DATA`, then the first
/// `../shared/data` found from the current directory upwards (so the CLI works from any folder
/// of the checkout). Returns the flag / env value even when it does not exist, so that the
/// loader's error names the path the user asked for.
pub fn resolve_data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for ancestor in cwd.ancestors() {
        let candidate = ancestor.join("../shared/data");
        if candidate.is_dir() {
            return candidate;
        }
    }
    PathBuf::from("../shared/data")
}

/// The data root for code that cannot take a flag (tests, benches, examples): the
/// [`resolve_data_dir`] answer if it holds `xquad-r/`, else the first of `fallbacks` that does.
/// The error names every place looked at and how to point at the right one.
pub fn locate_data_root(fallbacks: &[PathBuf]) -> Result<PathBuf, String> {
    let first = resolve_data_dir(None);
    let mut tried = Vec::new();
    for candidate in std::iter::once(first).chain(fallbacks.iter().cloned()) {
        if candidate.join("xquad-r").is_dir() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(format!(
        "no data root with xquad-r/ found (looked in {}): set {DATA_ENV} to the folder holding xquad-r/ and mlqa-r/",
        tried.join(", ")
    ))
}

/// The directory of the package being built, run or tested: `$CARGO_MANIFEST_DIR` of the running
/// process (cargo sets it for `cargo run|test|bench`), else `compiled` (pass
/// `env!("CARGO_MANIFEST_DIR")`). For tests, benches and tools that find fixtures or scripts
/// beside their sources.
///
/// Why not `env!` alone: a target dir shared by two checkouts at different paths (a CI cache
/// under `~/.cache`) reuses binaries across them, and a compiled-in path would point into the
/// other checkout.
pub fn package_dir(compiled: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(compiled), PathBuf::from)
}
