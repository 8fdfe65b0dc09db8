//! `cargo xtask libtorch`: a CPU libtorch 2.9.0 for `--features tch`, taken from PyPI.
//!
//! download.pytorch.org may be unreachable, so this unpacks the PyPI `torch==2.9.0` wheel (plus the
//! two small CUDA runtime wheels its `libtorch_cpu.so` links) and keeps only `torch/include`, the CPU
//! libraries in `torch/lib` and `nvidia/*/lib`. The CUDA libraries are left out: if
//! `libtorch_cuda.so` were present, torch-sys would link it and then ~3 GB of CUDA libraries would
//! be needed at run time even on the CPU. About 0.9 GB download, 519 MB on disk.
//! Build with `LIBTORCH=<dest>/torch`; crates with the rpath build script need no `LD_LIBRARY_PATH`.
//!
//! `--torch-version 2.11.0 --with-cuda` instead unpacks the CUDA build that the GPU machine has
//! (2.11.0+cu130) with its CUDA libraries, for `scripts/gpu-check.sh`: build with
//! `LIBTORCH_BYPASS_VERSION_CHECK=1` and run there against that machine's own torch/lib.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::pip::{Wheel, pip_download};

/// The libtorch version torch-sys 0.22 (tch 0.22, burn-tch 0.22.1) requires.
const TORCH_VERSION: &str = "2.9.0";
/// Only torch's Python bindings are skipped in a `--with-cuda` unpack.
const PYTHON_ONLY: [&str; 1] = ["libtorch_python"];
/// CUDA runtime wheels that the CUDA build of `libtorch_cpu.so` links (they load without a GPU).
const NVIDIA_WHEELS: [&str; 2] = ["nvidia-cuda-runtime-cu12==12.8.90", "nvidia-cuda-cupti-cu12==12.8.90"];
/// Library-name prefixes that belong to the CUDA or Python side of torch and are skipped.
const CUDA_ONLY: [&str; 5] = ["libtorch_cuda", "libc10_cuda", "libcaffe2_nvrtc", "libtorch_nvshmem", "libtorch_python"];

/// Arguments of `cargo xtask libtorch`.
#[derive(clap::Args)]
pub struct LibtorchArgs {
    /// Destination (default: `~/.cache/hybrid-ir/libtorch-<version>[-cuda]`); LIBTORCH is `<dest>/torch`.
    #[arg(long)]
    dest: Option<PathBuf>,
    /// torch version from PyPI. Anything but 2.9.0 needs `LIBTORCH_BYPASS_VERSION_CHECK=1` to build.
    #[arg(long, default_value = TORCH_VERSION)]
    torch_version: String,
    /// Keep the CUDA libraries (for a binary that runs on a GPU machine with the same torch).
    #[arg(long)]
    with_cuda: bool,
}

/// Runs the task.
pub fn run(args: &LibtorchArgs) -> Result<()> {
    let version = args.torch_version.as_str();
    let suffix = if args.with_cuda { "-cuda" } else { "" };
    let dest = args.dest.clone().unwrap_or_else(|| crate::cache_root().join(format!("libtorch-{version}{suffix}")));
    let version_file = dest.join("torch").join("build-version");
    if std::fs::read_to_string(&version_file).is_ok_and(|v| v.trim() == version) {
        eprintln!("libtorch {version} already at {}", dest.display());
        println!("LIBTORCH={}", dest.join("torch").display());
        return Ok(());
    }
    let download = crate::cache_root().join(format!("libtorch-{version}{suffix}-wheels"));
    let mut requirements = vec![format!("torch=={version}")];
    if !args.with_cuda {
        // The CUDA build's libtorch_cpu.so links cudart and cupti; they load without a GPU.
        // (2.9.0's runtime wheels; other versions need their own pins.)
        anyhow::ensure!(version == TORCH_VERSION, "a CPU-only unpack is pinned to torch {TORCH_VERSION}; use --with-cuda for {version}");
        requirements.extend(NVIDIA_WHEELS.iter().map(|s| s.to_string()));
    }
    pip_download(&requirements, &download, None)?;
    let keep: fn(&str) -> bool = if args.with_cuda { keep_member_cuda } else { keep_member };
    std::fs::create_dir_all(&dest)?;
    for entry in std::fs::read_dir(&download)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "whl") {
            continue;
        }
        eprintln!("  unpacking {}", path.display());
        let mut wheel = Wheel::open(&path)?;
        wheel.extract_prefix("", &dest, keep)?;
    }
    // The wheel has no build-version file; writing it turns torch-sys's version check back on.
    std::fs::write(&version_file, format!("{version}\n")).with_context(|| format!("writing {}", version_file.display()))?;
    std::fs::remove_dir_all(&download).ok();
    println!("LIBTORCH={}", dest.join("torch").display());
    Ok(())
}

/// Which wheel members the lite libtorch keeps.
fn keep_member(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    name.starts_with("torch/include/")
        || (name.starts_with("torch/lib/") && !CUDA_ONLY.iter().any(|p| base.starts_with(p)))
        || (name.starts_with("nvidia/") && name.contains("/lib/") && base.contains(".so"))
}

/// Members kept by a `--with-cuda` unpack: headers and every library but the Python bindings.
fn keep_member_cuda(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    name.starts_with("torch/include/") || (name.starts_with("torch/lib/") && !PYTHON_ONLY.iter().any(|p| base.starts_with(p)))
}
