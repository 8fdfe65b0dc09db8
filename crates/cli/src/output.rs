//! Checks on output paths, done before any work: an output never replaces one of the command's
//! inputs, and never an existing file unless `--force` is given. Each is a usage error (exit 2).

use std::path::Path;

use anyhow::Result;

use crate::usage::usage;

/// Refuses `out` (named by `flag`) when it is one of `inputs`, or exists and `force` is off.
pub fn check_output(flag: &str, out: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if let Some(input) = inputs.iter().find(|i| same(out, i)) {
        usage!("{flag} {} is an input of this command ({}); choose another output", out.display(), input.display());
    }
    if out.is_dir() {
        usage!("{flag} {} is a directory; give a file name", out.display());
    }
    if out.exists() && !force {
        usage!("{flag} {} already exists; pass --force to replace it", out.display());
    }
    Ok(())
}
