//! Full XQuAD-R-sized evaluation from embeddings (13,090 queries × 13,014 candidates, dim 384,
//! the real benchmark's relevance) — mono, cross and multi settings, all metrics — against:
//! - the bare blocked GEMM of the same shapes (the bound: what any exact method must compute),
//! - a straightforward numpy implementation (`numpy_reference.py`), timed in the same run.
//!
//! Run: `cargo bench -p hybrid-ir-metrics --bench xquad_scale`. The numpy part uses
//! `$HYBRID_IR_PYTHON`, else `~/.cache/hybrid-ir/metrics-venv/bin/python`, else `python3`
//! (see the crate README to install numpy). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed for
//! that subprocess only, and the BLAS kernel it then used is printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use hybrid_ir_data::{LareqaBenchmark, RetrievalBenchmark};
use hybrid_ir_metrics::{evaluate_benchmark, BenchmarkEmbeddings, EngineOptions, EvalOptions, LareqaReport};
use ndarray::{Array2, Axis, Slice};
use rayon::prelude::*;

const DIM: usize = 384;

fn data_root() -> PathBuf {
    let root = hybrid_ir_data::resolve_data_dir(None);
    if root.join("xquad-r").is_dir() { root } else { hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data") }
}

/// Deterministic pseudo-random embeddings in [-1, 1).
fn random_matrix(rows: usize, seed: u64) -> Array2<f32> {
    let mut s = seed;
    Array2::from_shape_simple_fn((rows, DIM), || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// The GEMM alone, blocked and parallel exactly like the engine (scores computed, then dropped).
fn gemm_only(q: &Array2<f32>, c: &Array2<f32>, opts: EngineOptions) -> f32 {
    let starts: Vec<usize> = (0..q.nrows()).step_by(opts.query_block).collect();
    starts
        .par_iter()
        .map(|&q0| {
            let qb = q.slice_axis(Axis(0), Slice::from(q0..(q0 + opts.query_block).min(q.nrows())));
            let mut buf = Array2::<f32>::zeros((qb.nrows(), opts.candidate_block));
            let mut acc = 0.0;
            for c0 in (0..c.nrows()).step_by(opts.candidate_block) {
                let c1 = (c0 + opts.candidate_block).min(c.nrows());
                let cb = c.slice_axis(Axis(0), Slice::from(c0..c1));
                let mut out = buf.slice_axis_mut(Axis(1), Slice::from(0..c1 - c0));
                ndarray::linalg::general_mat_mul(1.0, &qb, &cb.t(), 0.0, &mut out);
                acc += out[[0, 0]];
            }
            acc
        })
        .sum()
}

fn write_npy<T: Copy>(path: &Path, descr: &str, shape: &[usize], data: &[T], to_bytes: impl Fn(T) -> Vec<u8>) {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    for &x in data {
        f.write_all(&to_bytes(x)).unwrap();
    }
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HYBRID_IR_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hybrid-ir/metrics-venv/bin/python"));
    venv.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs the numpy reference on the same inputs; prints its time, kernel and the agreement.
fn compare_with_numpy(bench: &RetrievalBenchmark, emb: &BenchmarkEmbeddings, report: &LareqaReport, rust_s: f64, gemm_s: f64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f32_bytes = |x: f32| x.to_le_bytes().to_vec();
    write_npy(&d.join("queries.npy"), "<f4", &[emb.queries.nrows(), DIM], emb.queries.as_slice().unwrap(), f32_bytes);
    write_npy(&d.join("candidates.npy"), "<f4", &[emb.candidates.nrows(), DIM], emb.candidates.as_slice().unwrap(), f32_bytes);
    let nl = bench.languages.len();
    let qlang: Vec<i32> = (0..nl).flat_map(|l| bench.query_range(l).map(move |_| l as i32)).collect();
    write_npy(&d.join("query_lang.npy"), "<i4", &[qlang.len()], &qlang, |x: i32| x.to_le_bytes().to_vec());
    let mut starts: Vec<i64> = (0..nl).map(|l| bench.candidate_range(l).start as i64).collect();
    starts.push(bench.candidates.len() as i64);
    write_npy(&d.join("cand_start.npy"), "<i8", &[starts.len()], &starts, |x: i64| x.to_le_bytes().to_vec());
    let width = bench.queries.iter().map(|q| q.relevant.len()).max().unwrap_or(1);
    let rel: Vec<i32> = bench
        .queries
        .iter()
        .flat_map(|q| (0..width).map(|i| q.relevant.get(i).map_or(-1, |&c| c as i32)))
        .collect();
    write_npy(&d.join("relevant.npy"), "<i4", &[bench.queries.len(), width], &rel, |x: i32| x.to_le_bytes().to_vec());

    let script = hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("benches/numpy_reference.py");
    let py = python();
    let out = Command::new(&py)
        .arg(&script)
        .arg(d)
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!("numpy reference failed ({}): {}", py.display(), String::from_utf8_lossy(&o.stderr));
            println!("install: python3 -m venv ~/.cache/hybrid-ir/metrics-venv && ~/.cache/hybrid-ir/metrics-venv/bin/pip install numpy threadpoolctl");
            return;
        }
        Err(e) => {
            println!("could not run {}: {e}", py.display());
            return;
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("numpy script prints JSON");
    let np_s = v["time_s"].as_f64().unwrap();
    let s = &report.settings;
    let pairs = [
        ("mono_map", s.mono.map),
        ("cross_map", s.cross.map),
        ("multi_map", s.multi.map),
        ("mono_r1", s.mono.recall_at_1),
        ("cross_r1", s.cross.recall_at_1),
        ("multi_r10", s.multi.recall_at_10),
        ("rank_distance", s.multi.rank_distance.unwrap()),
    ];
    println!("\n=== XQuAD-R-sized full evaluation (13,090 x 13,014, dim {DIM}, cosine) ===");
    println!("rust  (hybrid-ir-metrics, all settings + metrics): {rust_s:8.3} s  (median of 3)");
    println!("rust  bare blocked GEMM (matrixmultiply, same blocks): {gemm_s:8.3} s  -> eval/GEMM = {:.2}", rust_s / gemm_s);
    println!("numpy straightforward (argsort per pool):       {np_s:8.3} s  (its GEMM alone: {:.3} s)", v["gemm_time_s"].as_f64().unwrap());
    println!("speed-up over numpy: {:.1}x", np_s / rust_s);
    println!("numpy {} / BLAS: {}", v["numpy"], v["blas"]);
    for (k, ours) in pairs {
        let theirs = v[k].as_f64().unwrap();
        println!("  {k:14} rust {ours:.9}  numpy {theirs:.9}  |diff| {:.2e}", (ours - theirs).abs());
        assert!((ours - theirs).abs() < 1e-3 * ours.abs().max(1.0), "{k} disagrees with numpy");
    }
}

fn bench_xquad(c: &mut Criterion) {
    let ds = LareqaBenchmark::XquadR.load(&data_root()).expect("XQuAD-R data (set HYBRID_IR_DATA)");
    let bench = RetrievalBenchmark::from_lareqa(&ds);
    let emb = BenchmarkEmbeddings {
        queries: random_matrix(bench.queries.len(), 0x1234_5678),
        candidates: random_matrix(bench.candidates.len(), 0x8765_4321),
    };
    let opts = EvalOptions::default();
    let mut group = c.benchmark_group("xquad_r_scale");
    group.sample_size(10);
    group.bench_function("full_eval_cosine", |b| b.iter(|| evaluate_benchmark(&bench, &emb, &opts).unwrap()));
    let (qn, cn) = {
        let mut q = emb.queries.clone();
        let mut c = emb.candidates.clone();
        hybrid_ir_metrics::rank::normalize_rows(&mut q);
        hybrid_ir_metrics::rank::normalize_rows(&mut c);
        (q, c)
    };
    group.bench_function("bare_gemm", |b| b.iter(|| gemm_only(&qn, &cn, opts.engine)));
    group.finish();

    let median = |f: &dyn Fn()| {
        let mut t: Vec<f64> = (0..3)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[1]
    };
    let report = evaluate_benchmark(&bench, &emb, &opts).unwrap();
    let rust_s = median(&|| {
        evaluate_benchmark(&bench, &emb, &opts).unwrap();
    });
    let gemm_s = median(&|| {
        gemm_only(&qn, &cn, opts.engine);
    });
    compare_with_numpy(&bench, &emb, &report, rust_s, gemm_s);
}

criterion_group!(benches, bench_xquad);
criterion_main!(benches);
