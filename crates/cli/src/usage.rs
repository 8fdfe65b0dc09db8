//! Usage errors: how the command was called, not what the files hold. A bad flag value or flag
//! combination, an input path on the command line that does not exist, an output that would be
//! replaced. `main` exits with 2 for them (as clap does for the errors it finds itself) and with
//! 1 for failures, so a script can tell "fix the command" from "fix the data".

use std::path::Path;

/// An error in the command line; its message names the flag and the value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns early with a [`UsageError`] (as `anyhow::bail!` does with a plain error).
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::usage::UsageError(format!($($arg)*)).into())
    };
}
pub(crate) use usage;

/// Whether `err` or anything it wraps is a [`UsageError`].
pub fn is_usage(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<UsageError>())
}

/// Marks an error of a library parser of a flag's value (`--sampler`, `--score`, a benchmark
/// name) as a usage error naming the flag.
pub fn flag_value<T, E: std::fmt::Display>(flag: &str, value: &str, parsed: Result<T, E>) -> Result<T, UsageError> {
    parsed.map_err(|e| UsageError(format!("{flag} {value}: {e}")))
}

/// `path`, given with `flag`, must be an existing file.
pub fn input_file(flag: &str, path: &Path) -> Result<(), UsageError> {
    if path.is_dir() {
        return Err(UsageError(format!("{flag} {}: is a directory; give a file", path.display())));
    }
    if !path.exists() {
        return Err(UsageError(format!("{flag} {}: no such file", path.display())));
    }
    Ok(())
}

/// `path`, given with `flag`, must be an existing directory (`what` says which kind).
pub fn input_dir(flag: &str, path: &Path, what: &str) -> Result<(), UsageError> {
    if path.is_file() {
        return Err(UsageError(format!("{flag} {}: is a file; {flag} takes {what}", path.display())));
    }
    if !path.exists() {
        return Err(UsageError(format!("{flag} {}: no such directory", path.display())));
    }
    Ok(())
}
