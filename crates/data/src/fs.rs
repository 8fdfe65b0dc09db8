//! Writing files so that a reader never sees half of one: every file the workspace produces
//! (corpora, checkpoints, reports, run logs) goes through [`write_atomic`].

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Makes renames inside `dir` durable (on Linux a rename is persisted by syncing its directory);
/// platforms that cannot open a directory skip it.
pub fn fsync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (`.<name>.tmp-<pid>`), fsync,
/// rename over `path`, fsync of the directory. On failure the temporary file is removed and
/// `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    fsync_dir(dir);
    Ok(())
}
