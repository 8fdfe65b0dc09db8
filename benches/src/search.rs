//! `speed search`: exact top-k search of hybrid-ir against FAISS `IndexFlatIP`, same embeddings,
//! same machine, same run.
//!
//! Synthetic unit vectors (seeded) are written once as an index (`hybrid_ir_search`'s shard
//! layout); then our search runs in a child process (`speed search-run`, so its peak RSS is its
//! own) and FAISS in `benches/faiss_search.py`, both on all threads. Reported: queries/s of each
//! and the ratio, our time against the bare products over the same blocks (the GEMM bound: what
//! search would take if the top-k selection and the shard reading were free), peak RSS, and
//! whether the top-k lists agree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use hybrid_ir_search::search::{DOC_BLOCK, QUERY_BLOCK};
use hybrid_ir_search::shard::{CorpusRecord, FORMAT_VERSION, Manifest, write_shard};
use hybrid_ir_search::{DocumentTemplate, Index, SearchOptions};
use ndarray::Array2;
use rayon::prelude::*;
use serde_json::{Value, json};

/// `speed search`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Queries.
    #[arg(long, default_value_t = 13_000)]
    pub queries: usize,
    /// Documents.
    #[arg(long, default_value_t = 100_000)]
    pub docs: usize,
    /// Dimension.
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 100)]
    pub top_k: usize,
    /// Documents per shard.
    #[arg(long, default_value_t = 50_000)]
    pub shard_size: usize,
    /// Where the synthetic index and the outputs go.
    #[arg(long, default_value = "target/speed-search")]
    pub dir: PathBuf,
    /// Python with faiss-cpu and pyarrow.
    #[arg(long, default_value = "~/.cache/hybrid-ir/torch-venv/bin/python")]
    pub python: String,
    /// Skip FAISS.
    #[arg(long)]
    pub no_faiss: bool,
}

/// `speed search-run` (the child): our search on an index, one JSON line.
#[derive(Args, Debug)]
pub struct SearchRunArgs {
    #[arg(long)]
    pub index: PathBuf,
    #[arg(long)]
    pub queries: usize,
    #[arg(long)]
    pub top_k: usize,
    #[arg(long)]
    pub out_prefix: PathBuf,
}

/// Seeded unit vectors (splitmix64 + Box–Muller), row-major.
fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f64> = (0..dim).map(|_| (-2.0 * (1.0 - next()).ln()).sqrt() * (std::f64::consts::TAU * next()).cos()).collect();
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        out.extend(row.iter().map(|x| (x / norm) as f32));
    }
    out
}

const DOC_SEED: u64 = 1;
const QUERY_SEED: u64 = 2;

/// Writes the synthetic index (skipped when one of the same shape is there).
fn prepare(args: &SearchArgs, index: &Path, queries: &Path) -> Result<()> {
    if let Ok(Some(m)) = Manifest::read(index)
        && m.documents == args.docs
        && m.dim == args.dim
        && m.shard_size == args.shard_size
        && m.complete
        && queries.join("shard-00000.parquet").exists()
    {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(index);
    let _ = std::fs::remove_dir_all(queries);
    std::fs::create_dir_all(index)?;
    std::fs::create_dir_all(queries)?;
    eprintln!("writing {} synthetic documents (dim {}) to {}", args.docs, args.dim, index.display());
    let mut manifest = Manifest {
        format: FORMAT_VERSION,
        encoder: format!("synthetic unit vectors (seed {DOC_SEED})"),
        dim: args.dim,
        query_prefix: String::new(),
        passage_prefix: String::new(),
        passage_max_tokens: None,
        template: DocumentTemplate::default(),
        corpus: CorpusRecord { path: "synthetic".into(), bytes: 0 },
        shard_size: args.shard_size,
        probes: Vec::new(),
        shards: Vec::new(),
        documents: 0,
        complete: false,
    };
    let all = unit_vectors(args.docs, args.dim, DOC_SEED);
    for (s, rows) in all.chunks(args.shard_size * args.dim).enumerate() {
        let first = s * args.shard_size;
        let ids: Vec<String> = (first..first + rows.len() / args.dim).map(|i| format!("d{i}")).collect();
        let record = write_shard(index, s, &ids, rows, args.dim)?;
        manifest.documents += record.rows;
        manifest.shards.push(record);
    }
    manifest.complete = true;
    manifest.write(index)?;
    let q = unit_vectors(args.queries, args.dim, QUERY_SEED);
    let ids: Vec<String> = (0..args.queries).map(|i| format!("q{i}")).collect();
    write_shard(queries, 0, &ids, &q, args.dim)?;
    Ok(())
}

/// The child: our search, then the bare products over the same blocks.
pub fn search_run(args: &SearchRunArgs) -> Result<()> {
    let index = Index::open(&args.index)?;
    let dim = index.manifest().dim;
    let queries = Array2::from_shape_vec((args.queries, dim), unit_vectors(args.queries, dim, QUERY_SEED))?;
    let started = Instant::now();
    let hits = index.search(&queries, &SearchOptions { top_k: args.top_k, score: hybrid_ir_metrics::ScoreFunction::Dot }, |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    let mut ids: Vec<u8> = Vec::new();
    let mut scores: Vec<u8> = Vec::new();
    for list in &hits {
        for h in list {
            let position: u32 = h.docid[1..].parse()?;
            ids.extend(position.to_le_bytes());
            scores.extend(h.score.to_le_bytes());
        }
    }
    std::fs::write(args.out_prefix.with_extension("ids"), ids)?;
    std::fs::write(args.out_prefix.with_extension("scores"), scores)?;
    let peak = crate::runs::peak_rss_bytes();

    // The GEMM bound: the same products, block by block on all threads, nothing else.
    let q = queries.as_slice().expect("standard layout");
    let read_started = Instant::now();
    let shards: Vec<Vec<f32>> = (0..index.manifest().shards.len()).map(|i| index.shard(i).map(|s| s.rows)).collect::<Result<_, _>>()?;
    let read_seconds = read_started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut checksum = 0.0f64;
    for docs in &shards {
        checksum += q
            .par_chunks(QUERY_BLOCK * dim)
            .map(|qb| {
                let m = qb.len() / dim;
                let mut out = vec![0.0f32; m * DOC_BLOCK];
                let mut acc = 0.0f64;
                for db in docs.chunks(DOC_BLOCK * dim) {
                    let n = db.len() / dim;
                    hybrid_ir_search::product::scores_into(&mut out[..m * n], qb, m, db, n, dim);
                    acc += f64::from(out[0]);
                }
                acc
            })
            .sum::<f64>();
    }
    let gemm_seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"engine": "hybrid-ir search", "seconds": seconds, "queries_per_s": args.queries as f64 / seconds,
               "gemm_seconds": gemm_seconds, "read_seconds": read_seconds, "threads": rayon::current_num_threads(), "peak_rss_bytes": peak,
               "checksum": checksum})
    );
    Ok(())
}

fn last_json(out: &std::process::Output, what: &str) -> Result<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{what} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).with_context(|| format!("{what} printed no JSON"))?;
    Ok(serde_json::from_str(line)?)
}

fn read_u32(path: &Path) -> Result<Vec<u32>> {
    Ok(std::fs::read(path)?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    Ok(std::fs::read(path)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// `speed search`.
pub fn search(args: &SearchArgs) -> Result<()> {
    let machine = crate::machine::describe();
    println!("{}", crate::machine::summary(&machine));
    let index = args.dir.join(format!("index-{}x{}", args.docs, args.dim));
    let queries = args.dir.join(format!("queries-{}x{}", args.queries, args.dim));
    prepare(args, &index, &queries)?;
    let disk: u64 = std::fs::read_dir(&index)?.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum();

    let ours_prefix = args.dir.join("ours");
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(["search-run", "--index"])
        .arg(&index)
        .args(["--queries", &args.queries.to_string(), "--top-k", &args.top_k.to_string(), "--out-prefix"])
        .arg(&ours_prefix)
        .output()?;
    let ours = last_json(&out, "speed search-run")?;

    let faiss = if args.no_faiss {
        None
    } else {
        let python = args.python.replacen('~', &std::env::var("HOME").unwrap_or_default(), 1);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("faiss_search.py");
        let prefix = args.dir.join("faiss");
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let out = Command::new(&python)
            .arg(&script)
            .arg("--index")
            .arg(&index)
            .arg("--queries")
            .arg(queries.join("shard-00000.parquet"))
            .args(["--top-k", &args.top_k.to_string(), "--threads", &threads.to_string(), "--out-prefix"])
            .arg(&prefix)
            .output()
            .with_context(|| format!("running {python} (pip install faiss-cpu pyarrow into it, or pass --no-faiss)"))?;
        let record = last_json(&out, "faiss_search.py")?;
        Some((record, prefix))
    };

    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let (nq, nd, k) = (args.queries, args.docs, args.top_k);
    let flops = 2.0 * nq as f64 * nd as f64 * args.dim as f64;
    println!("\n{nq} queries x {nd} documents x dim {}, top-{k}, exact inner product; index on disk {:.1} MiB", args.dim, disk as f64 / 1048576.0);
    println!("| engine | seconds | queries/s | GFLOP/s (products) | peak RSS MiB | vs FAISS |");
    println!("|---|---:|---:|---:|---:|---:|");
    let faiss_qps = faiss.as_ref().map(|(r, _)| f(r, "queries_per_s"));
    let row = |name: &str, v: &Value| {
        let ratio = faiss_qps.map_or("-".to_string(), |fq| format!("{:.2}x", f(v, "queries_per_s") / fq));
        println!(
            "| {name} | {:.2} | {:.0} | {:.0} | {:.0} | {ratio} |",
            f(v, "seconds"),
            f(v, "queries_per_s"),
            flops / f(v, "seconds") / 1e9,
            f(v, "peak_rss_bytes") / 1048576.0
        );
    };
    row("hybrid-ir search (reads + verifies shards)", &ours);
    if let Some((r, _)) = &faiss {
        row(r.get("engine").and_then(Value::as_str).unwrap_or("faiss"), r);
    }
    println!(
        "GEMM bound (the same products alone, in memory): {:.2} s ({:.0} GFLOP/s); search / bound = {:.2}; reading and \
         verifying the shards alone (one thread): {:.2} s",
        f(&ours, "gemm_seconds"),
        flops / f(&ours, "gemm_seconds") / 1e9,
        f(&ours, "seconds") / f(&ours, "gemm_seconds"),
        f(&ours, "read_seconds")
    );
    if let Some((_, prefix)) = &faiss {
        let (a, sa) = (read_u32(&ours_prefix.with_extension("ids"))?, read_f32(&ours_prefix.with_extension("scores"))?);
        let (b, sb) = (read_u32(&prefix.with_extension("ids"))?, read_f32(&prefix.with_extension("scores"))?);
        let (mut identical, mut same_but_ties, mut differ, mut max_diff) = (0, 0, 0, 0.0f32);
        for q in 0..nq {
            let (x, y) = (&a[q * k..(q + 1) * k], &b[q * k..(q + 1) * k]);
            for r in 0..k {
                max_diff = max_diff.max((sa[q * k + r] - sb[q * k + r]).abs());
            }
            if x == y {
                identical += 1;
                continue;
            }
            // Ties aside: every difference must sit where the two lists' scores agree within rounding.
            let explained = (0..k).filter(|&r| x[r] != y[r]).all(|r| (sa[q * k + r] - sb[q * k + r]).abs() <= 1e-5);
            if explained { same_but_ties += 1 } else { differ += 1 }
        }
        println!(
            "top-{k} lists vs FAISS: {identical} identical, {same_but_ties} differing only among scores within 1e-5 (ties / \
             rounding), {differ} different; max |score difference| at equal rank {max_diff:.2e}"
        );
    }
    let record = json!({"machine": machine, "ours": ours, "faiss": faiss.map(|(r, _)| r), "queries": nq, "documents": nd,
                        "dim": args.dim, "top_k": k, "index_bytes": disk});
    std::fs::write(args.dir.join("search-results.json"), serde_json::to_vec_pretty(&record)?)?;
    Ok(())
}
