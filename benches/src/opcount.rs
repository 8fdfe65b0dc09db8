//! `speed op-count`: ATen operators per training step, PyTorch and hybrid-ir counted by the same
//! code, and the host time of a tiny step (see docs/benchmarks.md, "Operators per step").
//!
//! The counter is `benches/opcount/op_counter.cpp`: a global RecordFunction callback, compiled
//! here against each engine's own libtorch and loaded with `LD_PRELOAD` into the PyTorch step
//! (`benches/pytorch_bench.py train-step`) and into ours (`speed train-step`, tch device). Both
//! mark the phases of a step through the counter's C functions; on our side the phases come from
//! the trainer's own step code ([`hybrid_ir_loss::phase`]). Why operators: on a GPU, a small
//! encoder's step time is set by kernel launches and the host work per launch, and the number
//! of operators a step dispatches is the same on a CPU as on a GPU, so it can be measured on
//! any machine.

use std::collections::BTreeMap;
use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use hybrid_ir_loss::phase::{self, StepPhase};
use hybrid_ir_model::DeviceSpec;
use serde_json::{Value, json};

use crate::runs::{BatchesFile, PairBatch, read_json};

/// The counter's source, carried in the binary so it runs from any directory.
const COUNTER_SOURCE: &str = include_str!("../opcount/op_counter.cpp");
/// Where the counter writes its tables; set by `op-count` for both engines.
pub const OUT_ENV: &str = "HYBRID_IR_OPCOUNT_OUT";
/// The phases a step is split into, in order.
const PHASES: [&str; 3] = ["forward", "backward", "optimizer"];

/// Arguments of `speed op-count`.
#[derive(clap::Args, Debug, Clone)]
pub struct OpCountArgs {
    /// Hugging Face model directory (the PyTorch side loads the same one).
    #[arg(long, default_value = "models/multilingual-e5-small")]
    pub model: PathBuf,
    /// Batches written by `speed prepare` (the paper's setting: `--batch 100`).
    #[arg(long)]
    pub batches: PathBuf,
    /// Our device: `tch-cpu` or `tch-cuda:N` (PyTorch runs on `cpu` or `cuda` to match).
    #[arg(long, default_value = "tch-cpu")]
    pub device: DeviceSpec,
    /// Output directory: the compiled counters, each engine's tables, op-count.json.
    #[arg(long, default_value = "target/speed/op-count")]
    pub out: PathBuf,
    /// Python interpreter with torch + transformers (default: ~/.cache/hybrid-ir/torch-venv, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// A counter library built before (`op-counter.so` of an earlier run, built against the
    /// libtorch both engines load), for machines without a C++ compiler.
    #[arg(long)]
    pub counter: Option<PathBuf>,
    /// Counted steps (after one uncounted step); the tables are per step.
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Timed steps of the tiny step (batch 2 x 8 tokens, word embeddings frozen), after 10
    /// warm-up steps; 0 skips it.
    #[arg(long, default_value_t = 200)]
    pub tiny_steps: usize,
    /// Also count the tiny step's instructions with valgrind's callgrind (slow: minutes).
    #[arg(long)]
    pub callgrind: bool,
    /// Count our engine only (no Python with torch needed; no ratios then).
    #[arg(long)]
    pub no_pytorch: bool,
    /// Threads for both engines (default: all cores).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    pub threads: usize,
}

/// Runs the comparison and prints the tables.
pub fn op_count(args: &OpCountArgs) -> Result<()> {
    if matches!(args.device, DeviceSpec::Flex) {
        bail!("--device cpu: the counter sees LibTorch operators only; use tch-cpu or tch-cuda:N");
    }
    args.device.try_device().with_context(|| format!("--device {}", args.device))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let exe = std::env::current_exe().context("locating the speed binary")?;
    let python = args.python.clone().unwrap_or_else(crate::default_python);
    let script = hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("pytorch_bench.py");
    let torch_device = if matches!(args.device, DeviceSpec::TchCuda(_)) { "cuda" } else { "cpu" };
    let torch_side = TorchSide { python: &python, script: &script, device: torch_device };
    let machine = crate::machine::describe();
    eprintln!("{}", crate::machine::summary(&machine));

    let ours_lib = match &args.counter {
        Some(lib) => lib.clone(),
        None => compile_counter(&libtorch_dir()?, true, &args.out.join("op-counter-hybrid-ir.so"))?,
    };
    let steps = args.steps.max(1);
    let mut engines = Vec::new();
    if !args.no_pytorch {
        let lib = match &args.counter {
            Some(lib) => lib.clone(),
            None => {
                let (dir, abi) = python_torch(&python)?;
                compile_counter(&dir, abi, &args.out.join("op-counter-pytorch.so"))?
            }
        };
        let out = args.out.join("ops-pytorch.json");
        let mut torch = torch_step(Command::new(&python), &torch_side, &args.model, &args.batches, 1, steps, args.threads);
        torch.env("LD_PRELOAD", &lib).env(OUT_ENV, &out);
        let run = crate::configs::run_json(&mut torch, "pytorch train-step (counted)")?;
        engines.push(Engine { name: "PyTorch", run, tables: read_json(&out)? });
    }
    let out = args.out.join("ops-hybrid-ir.json");
    let mut ours = our_step(Command::new(&exe), args, &args.model, &args.batches, 1, steps, args.threads);
    ours.env("LD_PRELOAD", &ours_lib).env(OUT_ENV, &out);
    let run = crate::configs::run_json(&mut ours, "hybrid-ir train-step (counted)")?;
    engines.push(Engine { name: "hybrid-ir", run, tables: read_json(&out)? });

    let per_step = args.steps.max(1) as f64;
    let summary = summarize(&engines, per_step)?;
    print_op_tables(&summary, &engines, per_step, &machine);
    let tiny = if args.tiny_steps > 0 { Some(tiny_steps(args, &exe, &torch_side)?) } else { None };
    let report = json!({
        "machine": machine,
        "device": args.device.to_string(),
        "batch_size": engines[0].run["batch_size"],
        "counted_steps": args.steps.max(1),
        "per_step": summary,
        "metadata_ops": engines[0].tables["metadata_ops"],
        "host_read_ops": engines[0].tables["host_read_ops"],
        "tiny_step": tiny,
    });
    let path = args.out.join("op-count.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n").with_context(|| format!("writing {}", path.display()))?;
    eprintln!("written: {}", path.display());
    Ok(())
}

/// `cmd` (`speed`, or valgrind before it) with the arguments of our `speed train-step` run.
/// `threads`: OpenMP and rayon threads (both engines use the same number).
fn our_step(mut cmd: Command, args: &OpCountArgs, model: &Path, batches: &Path, warmup: usize, steps: usize, threads: usize) -> Command {
    cmd.args(["train-step", "--device", &args.device.to_string(), "--warmup", &warmup.to_string(), "--steps", &steps.to_string()]);
    cmd.arg("--model").arg(model).arg("--batches").arg(batches);
    cmd.env("RAYON_NUM_THREADS", threads.to_string()).env("OMP_NUM_THREADS", threads.to_string());
    cmd
}

/// `cmd` (python, or valgrind before it) with the arguments of PyTorch's matching run.
/// How the PyTorch side runs: interpreter, `pytorch_bench.py`, and its device name.
struct TorchSide<'a> {
    python: &'a Path,
    script: &'a Path,
    device: &'a str,
}

fn torch_step(mut cmd: Command, torch: &TorchSide, model: &Path, batches: &Path, warmup: usize, steps: usize, threads: usize) -> Command {
    cmd.arg(torch.script).args(["train-step", "--device", torch.device, "--warmup", &warmup.to_string(), "--steps", &steps.to_string()]);
    cmd.arg("--model").arg(model).arg("--batches").arg(batches).args(["--threads", &threads.to_string()]);
    cmd
}

/// One counted engine: its train-step record and the counter's tables.
struct Engine {
    name: &'static str,
    run: Value,
    tables: Value,
}

/// libtorch's lib directory this binary was linked against (the model crate's build script
/// records it from torch-sys).
fn libtorch_dir() -> Result<PathBuf> {
    match option_env!("HYBRID_IR_LIBTORCH_LIB") {
        Some(lib) => Ok(PathBuf::from(lib).parent().map(Path::to_path_buf).unwrap_or_default()),
        None => bail!("this speed binary was built without `--features tch`: there are no LibTorch operators to count"),
    }
}

/// The torch directory and C++ ABI of `python`'s torch.
fn python_torch(python: &Path) -> Result<(PathBuf, bool)> {
    let out = Command::new(python)
        .args(["-c", "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch.compiled_with_cxx11_abi()))"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{}: cannot import torch: {}", python.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let (Some(dir), Some(abi)) = (lines.next(), lines.next()) else { bail!("{}: unexpected answer {text:?}", python.display()) };
    Ok((PathBuf::from(dir), abi.trim() == "1"))
}

/// Compiles the counter against the torch directory `torch` (its `include` and `lib`) into `out`.
fn compile_counter(torch: &Path, cxx11_abi: bool, out: &Path) -> Result<PathBuf> {
    let source = out.with_extension("cpp");
    std::fs::write(&source, COUNTER_SOURCE).with_context(|| format!("writing {}", source.display()))?;
    let (include, lib) = (torch.join("include"), torch.join("lib"));
    let compiler = std::env::var_os("CXX").unwrap_or_else(|| "c++".into());
    eprintln!("compiling the operator counter against {}", torch.display());
    let status = Command::new(&compiler)
        .args(["-O2", "-std=c++17", "-shared", "-fPIC", &format!("-D_GLIBCXX_USE_CXX11_ABI={}", u8::from(cxx11_abi))])
        .arg("-I")
        .arg(&include)
        .arg("-I")
        .arg(include.join("torch/csrc/api/include"))
        .arg(&source)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lc10", "-ltorch_cpu", "-o"])
        .arg(out)
        .status()
        .with_context(|| format!("running the C++ compiler {compiler:?} (set CXX, or pass --counter)"))?;
    if !status.success() {
        bail!("compiling {} failed ({status})", source.display());
    }
    Ok(out.to_path_buf())
}

/// Per phase and in total: all, launching and host-read operators of each engine per step.
fn summarize(engines: &[Engine], per_step: f64) -> Result<Value> {
    let mut rows = serde_json::Map::new();
    for phase in PHASES.iter().copied().chain(["total"]) {
        let mut row = serde_json::Map::new();
        for engine in engines {
            let mut cell = serde_json::Map::new();
            for kind in ["all", "launching", "host_reads"] {
                let total: u64 = phase_tables(&engine.tables, phase, kind)?.values().sum();
                cell.insert(kind.into(), json!(total as f64 / per_step));
            }
            row.insert(engine.name.into(), Value::Object(cell));
        }
        rows.insert(phase.into(), Value::Object(row));
    }
    Ok(Value::Object(rows))
}

/// One table (`all`, `launching`, `host_reads`) of `phase` ("total": summed over the phases).
fn phase_tables(tables: &Value, phase: &str, kind: &str) -> Result<BTreeMap<String, u64>> {
    let mut merged = BTreeMap::new();
    for p in PHASES {
        if phase != "total" && phase != p {
            continue;
        }
        let Some(table) = tables["phases"][p][kind].as_object() else {
            bail!("the counter recorded no {p:?} phase: did the step mark its phases?");
        };
        for (name, calls) in table {
            *merged.entry(name.clone()).or_insert(0) += calls.as_u64().unwrap_or(0);
        }
    }
    Ok(merged)
}

fn print_op_tables(summary: &Value, engines: &[Engine], per_step: f64, machine: &Value) {
    println!("\n{}", crate::machine::summary(machine));
    let devices: Vec<String> = engines.iter().map(|e| format!("{} on {}", e.name, e.run["device"])).collect();
    println!(
        "ATen operators per training step, batch {}, all parameters trained, AdamW ({})\n",
        engines[0].run["batch_size"],
        devices.join(", ")
    );
    let names: Vec<&str> = engines.iter().map(|e| e.name).collect();
    let mut header = String::from("| phase |");
    for kind in ["all", "launching", "host reads"] {
        for name in &names {
            header += &format!(" {name} {kind} |");
        }
    }
    let ratio = names.len() == 2;
    if ratio {
        header += " launching, ours / PyTorch |";
    }
    println!("{header}\n|---|{}", "---:|".repeat(3 * names.len() + usize::from(ratio)));
    for phase in PHASES.iter().copied().chain(["total"]) {
        let cell = |engine: &str, kind: &str| summary[phase][engine][kind].as_f64().unwrap_or(0.0);
        let mut line = format!("| {phase} |");
        for kind in ["all", "launching", "host_reads"] {
            for name in &names {
                line += &format!(" {:.0} |", cell(name, kind));
            }
        }
        if ratio {
            line += &format!(" {:.2}x |", cell(names[1], "launching") / cell(names[0], "launching").max(1.0));
        }
        println!("{line}");
    }
    let tables: Vec<BTreeMap<String, u64>> =
        engines.iter().map(|e| phase_tables(&e.tables, "total", "launching").unwrap_or_default()).collect();
    let mut ops: Vec<&String> = tables.iter().flat_map(BTreeMap::keys).collect();
    ops.sort();
    ops.dedup();
    ops.sort_by_key(|op| std::cmp::Reverse(tables.iter().map(|t| t.get(*op).copied().unwrap_or(0)).max()));
    println!("\nTop 20 launching operators per step (by the larger count)\n");
    println!("| operator |{}\n|---|{}", names.iter().map(|n| format!(" {n} |")).collect::<String>(), "---:|".repeat(names.len()));
    for op in ops.into_iter().take(20) {
        let counts: String = tables.iter().map(|t| format!(" {:.0} |", t.get(op).map_or(0.0, |&c| c as f64 / per_step))).collect();
        println!("| `{op}` |{counts}");
    }
}

/// The training step at batch 2 x 8 tokens, where compute is negligible: host time per step of
/// both engines (median), on the model and on its one-head copy ([`crate::narrow`]), and with
/// `--callgrind` the copy's instructions per step. The word-embedding matrix is frozen in both:
/// AdamW over its 96M values (multilingual-e5-small) would otherwise be most of the step, memory
/// traffic rather than host overhead. On a CPU the full model's step is still mostly AdamW over
/// the other 21.6M values; the one-head copy leaves the host's work per operator.
fn tiny_steps(args: &OpCountArgs, exe: &Path, torch: &TorchSide) -> Result<Value> {
    let file: BatchesFile = read_json(&args.batches)?;
    let Some(first) = file.batches.first() else { bail!("{}: no batches", args.batches.display()) };
    if first.queries.len() < 2 {
        bail!("{}: the tiny step needs batches of 2 pairs or more", args.batches.display());
    }
    // The first 7 tokens and the last one (the end-of-sequence token): 8 real tokens, no padding.
    let cut = |s: &Vec<u32>| if s.len() <= 8 { s.clone() } else { s[..7].iter().chain(s.last()).copied().collect() };
    let tiny = BatchesFile {
        pad_id: file.pad_id,
        batches: vec![PairBatch { queries: first.queries[..2].iter().map(cut).collect(), passages: first.passages[..2].iter().map(cut).collect() }],
    };
    let batches = args.out.join("tiny-batches.json");
    std::fs::write(&batches, serde_json::to_string(&tiny)?).with_context(|| format!("writing {}", batches.display()))?;
    let narrow = crate::narrow::narrow_copy(&args.model, &args.out.join("one-head-model"))?;

    // One run of each engine on `model`; under callgrind when `prefix` is given (PREFIX.<engine>.out),
    // then on one thread: callgrind runs threads one at a time, and a waiting OpenMP thread spins,
    // so with more threads the count would include spinning that depends on timing.
    let run = |model: &Path, warmup: usize, steps: usize, prefix: Option<&Path>| -> Result<(Option<Value>, Value)> {
        let threads = if prefix.is_some() { 1 } else { args.threads };
        let start = |program: &Path, engine: &str| -> Command {
            let Some(prefix) = prefix else { return Command::new(program) };
            let mut c = Command::new("valgrind");
            c.args(["--tool=callgrind", "--dump-instr=no"]);
            c.arg(format!("--callgrind-out-file={}.{engine}.out", prefix.display())).arg(program);
            c
        };
        let pytorch = if args.no_pytorch {
            None
        } else {
            let mut cmd = torch_step(start(torch.python, "pytorch"), torch, model, &batches, warmup, steps, threads);
            cmd.arg("--freeze-embeddings");
            Some(crate::configs::run_json(&mut cmd, "pytorch tiny step")?)
        };
        let mut ours = our_step(start(exe, "hybrid-ir"), args, model, &batches, warmup, steps, threads);
        ours.arg("--freeze-embeddings");
        Ok((pytorch, crate::configs::run_json(&mut ours, "hybrid-ir tiny step")?))
    };
    let median = |v: &Value| v["step_s_median"].as_f64().unwrap_or(f64::NAN);
    println!("\nTiny step (batch 2 x 8 tokens, word embeddings frozen, median of {} steps)\n", args.tiny_steps);
    println!("| model | PyTorch ms per step | hybrid-ir ms per step | speed vs PyTorch |");
    println!("|---|---:|---:|---:|");
    let mut report = json!({"steps": args.tiny_steps});
    for (key, model, label) in [("model", args.model.as_path(), "the model"), ("one_head", narrow.as_path(), "its one-head copy")] {
        let (pytorch, ours) = run(model, 10, args.tiny_steps, None)?;
        let (t, o) = (pytorch.as_ref().map(median), median(&ours));
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{:.2}", v * 1e3));
        let vs = t.map_or_else(|| "-".to_string(), |t| format!("{:.2}x", t / o));
        println!("| {label} | {} | {} | {vs} |", ms(t), ms(Some(o)));
        report[key] = json!({"pytorch_step_s_median": t, "hybrid_ir_step_s_median": o, "speed_ratio": t.map(|t| t / o)});
    }
    if args.callgrind {
        if args.no_pytorch {
            bail!("--callgrind compares with PyTorch: drop --no-pytorch");
        }
        report["one_head"]["instructions_per_step"] =
            callgrind_per_step(&args.out, &|warmup, steps, prefix| run(&narrow, warmup, steps, prefix))?;
    }
    Ok(report)
}

/// One tiny-step run of both engines: (warm-up steps, counted steps, callgrind output prefix)
/// to (PyTorch's record unless `--no-pytorch`, ours).
type TinyRun<'a> = dyn Fn(usize, usize, Option<&Path>) -> Result<(Option<Value>, Value)> + 'a;

/// Instructions per tiny step from two callgrind runs (2 and 6 counted steps after 1 warm-up):
/// their difference divided by 4, so loading and start-up cancel out. Instruction counts are
/// repeatable on a busy machine, unlike times.
fn callgrind_per_step(out: &Path, run: &TinyRun) -> Result<Value> {
    let (few, many) = (2u64, 6u64);
    let mut totals = [[0u64; 2]; 2];
    for (i, steps) in [few, many].into_iter().enumerate() {
        let prefix = out.join(format!("callgrind-{steps}-steps"));
        eprintln!("callgrind: {steps} counted steps per engine (slow)");
        run(1, steps as usize, Some(&prefix))?;
        for (e, engine) in ["pytorch", "hybrid-ir"].into_iter().enumerate() {
            totals[e][i] = callgrind_total(&out.join(format!("callgrind-{steps}-steps.{engine}.out")))?;
        }
    }
    let per = |e: usize| totals[e][1].saturating_sub(totals[e][0]) as f64 / (many - few) as f64;
    let (t, o) = (per(0), per(1));
    println!("\nOne-head tiny step under callgrind, one thread: instructions per step\n");
    println!("| engine | instructions per step | ours / PyTorch |");
    println!("|---|---:|---:|");
    println!("| PyTorch | {t:.0} | 1.00x |");
    println!("| hybrid-ir | {o:.0} | {:.2}x |", o / t);
    Ok(json!({"pytorch": t, "hybrid_ir": o, "ratio_ours_over_pytorch": o / t}))
}

/// The `summary:` (or `totals:`) instruction count of a callgrind output file.
fn callgrind_total(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{}: no summary line", path.display()))
}

// ---- the counted process's side ---------------------------------------------------------------

type PhaseFn = unsafe extern "C" fn(*const c_char);
type WriteFn = unsafe extern "C" fn(*const c_char) -> c_int;

#[allow(unsafe_code)] // glibc's dlsym; its calls are audited where they happen
unsafe extern "C" {
    // glibc's dlsym (in libc.so.6 since glibc 2.34); RTLD_DEFAULT is the null handle.
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The counter's two functions, when a counter is loaded into this process.
struct Counter {
    phase: PhaseFn,
    write: WriteFn,
}

static COUNTER: OnceLock<Option<Counter>> = OnceLock::new();
/// Whether the current step is counted (the timed steps, not the warm-up).
static COUNTING: AtomicBool = AtomicBool::new(false);

#[allow(unsafe_code)] // calls into the preloaded counter (see the SAFETY notes)
fn counter() -> Option<&'static Counter> {
    COUNTER
        .get_or_init(|| {
            // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names; a non-null result is
            // the address of the C function of that name in op_counter.cpp, whose signature the
            // two types above repeat.
            unsafe {
                let phase = dlsym(std::ptr::null_mut(), c"hybrid_ir_opcount_phase".as_ptr());
                let write = dlsym(std::ptr::null_mut(), c"hybrid_ir_opcount_write".as_ptr());
                (!phase.is_null() && !write.is_null()).then(|| Counter {
                    phase: std::mem::transmute::<*mut c_void, PhaseFn>(phase),
                    write: std::mem::transmute::<*mut c_void, WriteFn>(write),
                })
            }
        })
        .as_ref()
}

/// Tells the counter that phase `name` starts ("" stops counting).
#[allow(unsafe_code)] // calls into the preloaded counter (see the SAFETY note)
fn set_phase(c: &Counter, name: &std::ffi::CStr) {
    // SAFETY: the counter's phase function takes a NUL-terminated string (or "") and keeps a copy.
    unsafe { (c.phase)(name.as_ptr()) }
}

fn observe(step_phase: StepPhase) {
    let Some(c) = counter() else { return };
    let name: &'static std::ffi::CStr = match step_phase {
        StepPhase::Forward if COUNTING.load(Ordering::Relaxed) => c"forward",
        StepPhase::Backward if COUNTING.load(Ordering::Relaxed) => c"backward",
        StepPhase::Optimizer if COUNTING.load(Ordering::Relaxed) => c"optimizer",
        _ => c"",
    };
    set_phase(c, name);
}

/// In `speed train-step`: when `HYBRID_IR_OPCOUNT_OUT` is set, the counter must be loaded; the
/// step's phases go to it. Returns where to write the tables at the end ([`finish_counting`]).
pub fn start_counting() -> Result<Option<PathBuf>> {
    let Some(out) = std::env::var_os(OUT_ENV) else { return Ok(None) };
    if counter().is_none() {
        bail!("{OUT_ENV} is set but the operator counter is not loaded (LD_PRELOAD=op-counter.so; see `speed op-count`)");
    }
    phase::set_observer(observe);
    Ok(Some(PathBuf::from(out)))
}

/// Counts the next step (`true`) or not.
pub fn count_step(counted: bool) {
    COUNTING.store(counted, Ordering::Relaxed);
}

/// Writes the counter's tables to `out`.
#[allow(unsafe_code)] // calls into the preloaded counter (see the SAFETY notes)
pub fn finish_counting(out: &Path) -> Result<()> {
    let c = counter().context("the operator counter is not loaded")?;
    let path = CString::new(out.as_os_str().as_encoded_bytes()).context("the output path contains a NUL byte")?;
    // SAFETY: a NUL-terminated path; the function writes the file and returns 0 or -1.
    if unsafe { (c.write)(path.as_ptr()) } != 0 {
        bail!("{}: the operator counter could not write its tables", out.display());
    }
    Ok(())
}

/// `speed op-count-probe --out DIR`: a known operator sequence under the counter, for the smoke
/// test (`tests/op_count.rs`). Compiles the counter into DIR, runs itself under it, and prints
/// the counter's tables; the child runs three times mm, view, relu and add on small CPU tensors.
#[cfg(feature = "tch")]
pub fn probe(out: &Path) -> Result<()> {
    let Some(tables) = start_counting()? else {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let lib = compile_counter(&libtorch_dir()?, true, &out.join("op-counter-hybrid-ir.so"))?;
        let tables = out.join("probe.json");
        let exe = std::env::current_exe().context("locating the speed binary")?;
        let status = Command::new(exe).arg("op-count-probe").arg("--out").arg(out).env("LD_PRELOAD", &lib).env(OUT_ENV, &tables).status()?;
        if !status.success() {
            bail!("the counted probe failed ({status})");
        }
        println!("{}", std::fs::read_to_string(&tables).with_context(|| format!("reading {}", tables.display()))?);
        return Ok(());
    };
    let c = counter().context("the operator counter is not loaded")?;
    let options = (tch::Kind::Float, tch::Device::Cpu);
    let (a, b) = (tch::Tensor::ones([4, 5], options), tch::Tensor::ones([5, 3], options));
    set_phase(c, c"probe");
    for _ in 0..3 {
        let product = a.mm(&b);
        let _ = product.view([-1]).relu();
        let _ = &product + &product;
    }
    set_phase(c, c"");
    finish_counting(&tables)
}
