//! Checkpoints: one directory per saved step, written atomically and verified on load.
//!
//! ```text
//! <run>/checkpoints/
//!   step-000200/            model.bpk  optimizer.bpk  state.json  manifest.json
//!   step-000150/            (the best one, if it is not the last)
//!   last                    "step-000200\n"   pointer file
//!   best                    "step-000150\n"   pointer file (lowest validation loss)
//! ```
//!
//! Writing: all files go to a hidden temporary directory, are fsynced, then `manifest.json`
//! (size and SHA-256 of every other file) is written last, and the directory is renamed into
//! place. Pointer files are replaced by write-temp + fsync + rename. A crash at any point leaves
//! the previous `last` checkpoint intact and referenced. Directories no pointer refers to are
//! removed after the pointers move.
//!
//! Loading verifies every file against the manifest first: a missing, truncated or modified
//! file is refused with an error naming it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hybrid_ir_data::sampler::SamplerState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};

/// Model weights file (burnpack, keeps parameter ids so the optimizer state lines up).
pub const MODEL_FILE: &str = "model.bpk";
/// AdamW state (burnpack).
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// [`TrainState`] as JSON.
pub const STATE_FILE: &str = "state.json";
/// Sizes and hashes of the other files.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Format version written to `state.json`.
pub const FORMAT_VERSION: u32 = 1;

/// Which checkpoint a pointer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointer {
    /// The most recent checkpoint.
    Last,
    /// The checkpoint with the lowest validation loss.
    Best,
}

impl Pointer {
    /// File name of the pointer.
    pub fn file_name(self) -> &'static str {
        match self {
            Pointer::Last => "last",
            Pointer::Best => "best",
        }
    }
}

/// RNG bookkeeping. Dropout masks are seeded per step and chunk from `(seed, step)`, so the
/// seed and the step are the whole RNG state; it is stored for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngRecord {
    /// How the per-step seeds are derived.
    pub scheme: String,
    /// Master seed.
    pub seed: u64,
    /// Seed the next optimizer step will use for its first micro-batch.
    pub next_step_seed: u64,
}

/// Everything of a run besides weights and optimizer moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Optimizer steps done.
    pub step: u64,
    /// Training pairs seen.
    pub examples_seen: u64,
    /// Learning rate of the last step taken.
    pub lr: f64,
    /// Scheduler description (pure function of the step; stored for the record).
    pub scheduler: crate::schedule::LrSchedule,
    /// Opaque sampler state (data crate), restoring the exact batch stream.
    pub sampler: SamplerState,
    /// RNG bookkeeping.
    pub rng: RngRecord,
    /// Lowest validation loss so far and its step.
    pub best_val: Option<(u64, f64)>,
    /// Fingerprint of the config that wrote it ([`crate::TrainConfig::fingerprint`]).
    pub config_fingerprint: String,
    /// Name of the base model.
    pub model_name: String,
}

/// One file's entry in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// File name inside the checkpoint directory.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Every file of the checkpoint except the manifest itself.
    pub files: Vec<ManifestEntry>,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

fn fsync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| TrainError::io(path, e))
}

/// Writes `bytes` to `path` atomically ([`hybrid_ir_data::fs::write_atomic`]: temp file in the
/// same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    hybrid_ir_data::fs::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Name of the checkpoint directory of `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// The `checkpoints/` directory of a run.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
}

impl CheckpointDir {
    /// `run_dir/checkpoints` (created on first save).
    pub fn of_run(run_dir: &Path) -> Self {
        Self { root: run_dir.join("checkpoints") }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Saves a checkpoint: `write_payload(tmp_dir)` writes the model and optimizer files, then
    /// `state.json` and the manifest are added and the directory is renamed into place.
    /// Returns the final directory.
    pub fn save(&self, state: &TrainState, write_payload: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.root).map_err(|e| TrainError::io(&self.root, e))?;
        let name = step_dir_name(state.step);
        let tmp = self.root.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        write_payload(&tmp)?;
        let state_json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Other(format!("serialising state: {e}")))?;
        std::fs::write(tmp.join(STATE_FILE), &state_json).map_err(|e| TrainError::io(tmp.join(STATE_FILE), e))?;
        let mut files = Vec::new();
        for file in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
            let path = tmp.join(file);
            fsync_file(&path)?;
            let (bytes, sha256) = hash_file(&path)?;
            files.push(ManifestEntry { file: file.to_string(), bytes, sha256 });
        }
        let manifest = serde_json::to_vec_pretty(&Manifest { files }).expect("manifest serialises");
        write_atomic(&tmp.join(MANIFEST_FILE), &manifest)?;
        hybrid_ir_data::fs::fsync_dir(&tmp);
        let dest = self.root.join(&name);
        if dest.exists() {
            // Re-saving the same step (e.g. resumed and stopped again at once): replace it. The
            // pointer still names it, so move the old one aside first and delete it afterwards.
            let old = self.root.join(format!(".old-{name}-{}", std::process::id()));
            std::fs::rename(&dest, &old).map_err(|e| TrainError::io(&dest, e))?;
            std::fs::rename(&tmp, &dest).map_err(|e| TrainError::io(&dest, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&tmp, &dest).map_err(|e| TrainError::io(&dest, e))?;
        }
        hybrid_ir_data::fs::fsync_dir(&self.root);
        Ok(dest)
    }

    /// Points `pointer` at checkpoint directory `name`, atomically.
    pub fn set_pointer(&self, pointer: Pointer, name: &str) -> Result<()> {
        write_atomic(&self.root.join(pointer.file_name()), format!("{name}\n").as_bytes())
    }

    /// The checkpoint directory a pointer names, if the pointer exists.
    pub fn resolve(&self, pointer: Pointer) -> Result<Option<PathBuf>> {
        let path = self.root.join(pointer.file_name());
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        let name = text.trim();
        if name.is_empty() || name.contains('/') || name.contains("..") {
            return Err(TrainError::checkpoint(&path, format!("pointer file holds {name:?}, not a checkpoint name")));
        }
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(TrainError::checkpoint(&path, format!("names {name}, which does not exist")));
        }
        Ok(Some(dir))
    }

    /// Removes temporaries a killed process left behind (`.tmp-*`, `.old-*`). Call it only while
    /// holding the run's [`RunDirLock`]: then no live process is writing them.
    pub fn remove_stale_temporaries(&self) -> Result<usize> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && (name.starts_with(".tmp-") || name.starts_with(".old-")) {
                std::fs::remove_dir_all(entry.path()).map_err(|e| TrainError::io(entry.path(), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes checkpoint directories (and stale temporaries) that no pointer names.
    pub fn prune(&self) -> Result<()> {
        let mut keep = Vec::new();
        for p in [Pointer::Last, Pointer::Best] {
            if let Ok(Some(dir)) = self.resolve(p) {
                keep.push(dir);
            }
        }
        let entries = std::fs::read_dir(&self.root).map_err(|e| TrainError::io(&self.root, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_ckpt = path.is_dir() && (name.starts_with("step-") || name.starts_with(".tmp-") || name.starts_with(".old-"));
            if is_ckpt && !keep.contains(&path) {
                std::fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// A checkpoint directory whose files all match its manifest.
#[derive(Debug, Clone)]
pub struct VerifiedCheckpoint {
    /// The directory.
    pub dir: PathBuf,
    /// Its state.
    pub state: TrainState,
}

impl VerifiedCheckpoint {
    /// Path of the model weights.
    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// Path of the optimizer state.
    pub fn optimizer_path(&self) -> PathBuf {
        self.dir.join(OPTIMIZER_FILE)
    }
}

/// Checks every file of a checkpoint directory against `manifest.json` (presence, size,
/// SHA-256) and parses `state.json`. Errors name the offending file.
pub fn verify(dir: &Path) -> Result<VerifiedCheckpoint> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read(&manifest_path).map_err(|e| TrainError::checkpoint(&manifest_path, format!("cannot read: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| TrainError::checkpoint(&manifest_path, format!("corrupt manifest ({e}); the checkpoint is unusable")))?;
    for required in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
        if !manifest.files.iter().any(|f| f.file == required) {
            return Err(TrainError::checkpoint(&manifest_path, format!("manifest does not list {required}")));
        }
    }
    // Entries are plain file names inside the checkpoint: `../x` or `/etc/x` would make
    // verification read (and hash) a file elsewhere. Checked for all before any file is read.
    for entry in &manifest.files {
        let mut parts = Path::new(&entry.file).components();
        let plain = matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None));
        if !plain {
            return Err(TrainError::checkpoint(
                &manifest_path,
                format!("lists {:?}, which is not a file name inside the checkpoint", entry.file),
            ));
        }
    }
    for entry in &manifest.files {
        let path = dir.join(&entry.file);
        let meta = std::fs::metadata(&path).map_err(|e| TrainError::checkpoint(&path, format!("missing: {e}")))?;
        if meta.len() != entry.bytes {
            return Err(TrainError::checkpoint(
                &path,
                format!("size {} bytes, the manifest says {} (truncated or overwritten)", meta.len(), entry.bytes),
            ));
        }
        let (_, sha) = hash_file(&path)?;
        if sha != entry.sha256 {
            return Err(TrainError::checkpoint(
                &path,
                format!("SHA-256 {sha} does not match the manifest ({}): corrupt", entry.sha256),
            ));
        }
    }
    let state_path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: TrainState =
        serde_json::from_slice(&bytes).map_err(|e| TrainError::checkpoint(&state_path, format!("invalid state: {e}")))?;
    if state.format_version != FORMAT_VERSION {
        return Err(TrainError::checkpoint(
            &state_path,
            format!("format version {}, this build reads {FORMAT_VERSION}", state.format_version),
        ));
    }
    Ok(VerifiedCheckpoint { dir: dir.to_path_buf(), state })
}

/// An exclusive OS lock on a run directory (`<run>/.lock`, holding the owner's PID): one writer
/// per output directory. The OS releases it when the process ends, however it ends, so a killed
/// run never leaves the directory locked.
#[derive(Debug)]
pub struct RunDirLock {
    _file: File,
    path: PathBuf,
}

impl RunDirLock {
    /// Takes the lock, or fails naming the process that holds it.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(|e| TrainError::io(&path, e))?;
                writeln!(file, "{}", std::process::id()).map_err(|e| TrainError::io(&path, e))?;
                Ok(Self { _file: file, path })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(TrainError::Other(format!(
                    "{} is in use by another run (process {}); wait for it to finish or choose another output directory",
                    run_dir.display(),
                    holder.trim()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(TrainError::io(&path, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last");
        write_atomic(&p, b"a\n").unwrap();
        write_atomic(&p, b"step-000002\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "step-000002\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
    }

    #[test]
    fn sha256_of_abc_is_the_standard_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
