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
