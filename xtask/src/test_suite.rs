//! `cargo xtask test`: the project's whole test suite, set up from nothing.
//!
//! 1. fetch the real models the tests use (`fetch-models`, idempotent);
//! 2. `cargo test --workspace` on the default flex (pure-Rust CPU) backend;
//! 3. unpack libtorch 2.9.0 from PyPI (`libtorch`, idempotent) and run the tests of the crates
//!    whose tests are written per device (`test_device!` or a loop over the compiled-in devices:
//!    model, loss, train — train's in-place AdamW and exact resume have a LibTorch path of their
//!    own — and the facade `hybrid-ir`, whose `swap_backend` example trains on every device)
//!    again with `tch` on, so the same device tests also run on tch-cpu; with them the benches'
//!    smoke test of `speed op-count` (the operator counter needs LibTorch). The other crates'
//!    tests do not depend on the backend (data, metrics) or reach it only through the model and
//!    train crates (cli), so a second pass would repeat them on flex.
//!    This pass uses its own target dir (`<cache>/target-tch`): toggling burn's `tch` feature in
//!    one target dir would rebuild burn on every switch.
//!
//! Both passes build with MPI (feature `mpi` of the CLI, train and collective crates), so the
//! data-parallel tests run `mpiexec -n 2` against one process on flex and on tch-cpu; the MPI
//! library, its launcher and libclang (for the bindings) are installed from Debian first when
//! missing (`ensure_mpi`).
//!
//! Nothing is skipped silently: `--no-tch` is a developer shortcut that says what it leaves out.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Crates whose tests run once per compiled-in device, and the benches (see the module docs).
const DEVICE_TESTED: [&str; 5] = ["hybrid-ir", "hybrid-ir-benches", "hybrid-ir-loss", "hybrid-ir-model", "hybrid-ir-train"];

/// Features that build the data-parallel code with MPI in the flex pass (the tch pass adds
/// `hybrid-ir-train/mpi`, the crate whose device tests include the MPI ones).
/// `hybrid-ir-collective/nccl` builds the NCCL path too (it needs no GPU or CUDA to build).
const MPI_FEATURES: &str = "hybrid-ir-cli/mpi,hybrid-ir-train/mpi,hybrid-ir-collective/nccl,hybrid-ir-benches/mpi";

/// Debian packages of the MPI build and launcher.
const MPI_PACKAGES: [&str; 3] = ["mpich", "libmpich-dev", "libclang-dev"];

/// Arguments of `cargo xtask test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip the LibTorch (tch-cpu) pass. CI never sets this.
    #[arg(long)]
    no_tch: bool,
    /// Build tests in release mode (slower to build, faster to run).
    #[arg(long)]
    release: bool,
    /// Extra arguments passed to every `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    test_args: Vec<String>,
}

/// Runs the task.
pub fn run(args: &TestArgs) -> Result<()> {
    let root = crate::workspace_root();
    let this = std::env::current_exe().context("locating the xtask binary")?;

    step("fetch models");
    run_cmd(Command::new(&this).arg("fetch-models").current_dir(&root))?;

    step("MPI (mpich, libclang for the bindings)");
    ensure_mpi()?;

    step("cargo test --workspace (flex)");
    let mut flex = cargo_test(&root, args);
    flex.arg("--workspace").arg("--features").arg(MPI_FEATURES);
    run_cmd(&mut flex)?;

    if args.no_tch {
        eprintln!("\nxtask test: --no-tch given: the tch-cpu pass was NOT run.");
        return Ok(());
    }
    step("libtorch 2.9.0 (CPU, from PyPI)");
    let libtorch = crate::cache_root().join("libtorch-2.9.0");
    run_cmd(Command::new(&this).arg("libtorch").arg("--dest").arg(&libtorch).current_dir(&root))?;

    let packages = packages_with_feature(&root, "tch")?;
    for needed in DEVICE_TESTED {
        if !packages.iter().any(|p| p == needed) {
            bail!("{needed} has no `tch` feature: its device tests cannot run on tch-cpu");
        }
    }
    let packages: Vec<String> = DEVICE_TESTED.iter().map(|p| p.to_string()).collect();
    step(&format!("cargo test --features tch ({})", packages.join(", ")));
    let mut tch = cargo_test(&root, args);
    for p in &packages {
        tch.arg("-p").arg(p);
    }
    let mut features: Vec<String> = packages.iter().map(|p| format!("{p}/tch")).collect();
    features.push("hybrid-ir-train/mpi".into());
    tch.arg("--features").arg(features.join(","));
    tch.env("LIBTORCH", libtorch.join("torch"));
    // Test binaries of crates without the rpath build script still need to find libtorch.
    tch.env("LD_LIBRARY_PATH", libtorch.join("torch/lib"));
    // The tch pass gets its own target dir next to the main one (see the module docs).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).with_extension("tch"))
        .unwrap_or_else(|| crate::cache_root().join("target-tch"));
    tch.env("CARGO_TARGET_DIR", target);
    run_cmd(&mut tch)?;
    eprintln!("\nxtask test: all passes succeeded (flex and tch-cpu).");
    Ok(())
}

fn cargo_test(root: &Path, args: &TestArgs) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).arg("test");
    if args.release {
        cmd.arg("--release");
    }
    if !args.test_args.is_empty() {
        cmd.arg("--").args(&args.test_args);
    }
    cmd
}

/// Workspace packages that declare `feature` (read from `cargo metadata`).
fn packages_with_feature(root: &Path, feature: &str) -> Result<Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut names: Vec<String> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["features"].get(feature).is_some())
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Installs [`MPI_PACKAGES`] with apt-get when `mpiexec`, `mpicc` or libclang is missing.
fn ensure_mpi() -> Result<()> {
    let found = |program: &str| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    let libclang = ["/usr/lib/llvm-14/lib", "/usr/lib/llvm-15/lib", "/usr/lib/llvm-16/lib", "/usr/lib/x86_64-linux-gnu"]
        .iter()
        .any(|dir| std::fs::read_dir(dir).is_ok_and(|d| d.flatten().any(|e| is_libclang(&e.file_name().to_string_lossy()))));
    if found("mpiexec") && found("mpicc") && libclang {
        eprintln!("mpiexec, mpicc and libclang present");
        return Ok(());
    }
    if !found("apt-get") {
        bail!("MPI is missing and this is not a Debian system: install MPICH or Open MPI (with mpicc and mpiexec) and libclang");
    }
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends"]).args(MPI_PACKAGES).env("DEBIAN_FRONTEND", "noninteractive"))
        .context("installing MPI (as root: apt-get install mpich libmpich-dev libclang-dev)")
}

/// `libclang.so*` or `libclang-14.so*` (what bindgen loads), not `libclang-cpp` (another library).
fn is_libclang(name: &str) -> bool {
    name.starts_with("libclang.so") || (name.starts_with("libclang-") && !name.starts_with("libclang-cpp"))
}

fn step(what: &str) {
    eprintln!("\n==> xtask test: {what}");
}

fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
