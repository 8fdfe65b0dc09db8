//! `hybrid-ir eval compare A.json B.json`: is model B really better than model A? A paired test
//! over the benchmark's queries for every headline metric (mAP mono / cross / multi, rank
//! distance, R@1 mono / cross, R@10 multi): the difference B − A, its bootstrap confidence
//! interval, a sign-flip randomisation p-value and the Holm-corrected p over the seven metrics.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hybrid_ir_data::RetrievalBenchmark;
use hybrid_ir_metrics::{
    EvalOptions, HeadlineMetric, LareqaReport, PairedTestOptions, ReportComparison, compare_report_seeds, evaluate_benchmark,
    read_embeddings,
};

use crate::usage::{input_file, usage};

/// Arguments of `hybrid-ir eval compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Report(s) of system A: `eval --per-query --out A.json`, or embeddings files
    /// (`eval --save-embeddings A.parquet`, evaluated here on --benchmark). Several
    /// comma-separated ones (one per training seed) are averaged per query before the test.
    #[arg(value_name = "A.json|A.parquet[,A2...]")]
    pub a: String,
    /// Report(s) of system B, as for A (same benchmark, same queries).
    #[arg(value_name = "B.json|B.parquet[,B2...]")]
    pub b: String,
    /// Benchmark the embeddings files are evaluated on (xquad-r or mlqa-r); needed for .parquet inputs.
    #[arg(long)]
    pub benchmark: Option<String>,
    /// Only these languages of --benchmark (comma-separated), as the embeddings were saved.
    #[arg(long, value_delimiter = ',')]
    pub languages: Vec<String>,
    /// Data root holding xquad-r/ and mlqa-r/ (default: $HYBRID_IR_DATA, then ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Resamples of the randomisation test and of the bootstrap interval.
    #[arg(long, default_value_t = 10_000)]
    pub resamples: usize,
    /// Seed of the resampling (the result is bit-identical for the same seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Confidence level of the interval.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Significance level, applied to the Holm-corrected p-values.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Write the comparison as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

fn read_report(path: &Path) -> Result<LareqaReport> {
    input_file("report", path)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report: LareqaReport = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a LAReQA report (`hybrid-ir eval --out`)", path.display()))?;
    if report.per_query.is_none() {
        anyhow::bail!(
            "{}: the report has no per-query values; evaluate with `hybrid-ir eval --per-query --out {}`",
            path.display(),
            path.display()
        );
    }
    Ok(report)
}

/// An embeddings file (`eval --save-embeddings`) evaluated on `benchmark` with per-query values.
fn evaluate_embeddings_file(path: &Path, benchmark: &RetrievalBenchmark) -> Result<LareqaReport> {
    input_file("embeddings", path)?;
    let embeddings = read_embeddings(path)?.align(benchmark).with_context(|| format!("{}: aligning to {}", path.display(), benchmark.name))?;
    Ok(evaluate_benchmark(benchmark, &embeddings, &EvalOptions { per_query: true, ..EvalOptions::default() })?)
}

/// Runs `hybrid-ir eval compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    if args.resamples == 0 {
        usage!("--resamples 0: give at least 1 (10,000 is the usual choice)");
    }
    if !(args.confidence > 0.0 && args.confidence < 1.0) {
        usage!("--confidence {}: give a level strictly between 0 and 1, e.g. 0.95", args.confidence);
    }
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        usage!("--alpha {}: give a level strictly between 0 and 1, e.g. 0.05", args.alpha);
    }
    let (paths_a, paths_b) = (paths(&args.a), paths(&args.b));
    if paths_a.is_empty() || paths_b.is_empty() {
        usage!("give one or more reports for A and for B: `hybrid-ir eval compare A.json B.json`");
    }
    let inputs: Vec<&Path> = paths_a.iter().chain(&paths_b).map(PathBuf::as_path).collect();
    if let Some(out) = &args.out {
        crate::output::check_output("--out", out, &inputs, args.force)?;
    }
    let is_embeddings = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let benchmark = if inputs.iter().any(|p| is_embeddings(p)) {
        let Some(name) = &args.benchmark else {
            usage!("embeddings files (.parquet) are evaluated on a benchmark: add --benchmark xquad-r or mlqa-r");
        };
        let root = crate::data::data_root(args.data.as_deref())?;
        Some(hybrid_ir_eval::load_benchmark(name, Some(&root), &args.languages).with_context(|| format!("loading {name}"))?)
    } else {
        None
    };
    let read = |p: &PathBuf| match &benchmark {
        Some(bench) if is_embeddings(p) => evaluate_embeddings_file(p, bench),
        _ => read_report(p),
    };
    let a: Vec<LareqaReport> = paths_a.iter().map(read).collect::<Result<_>>()?;
    let b: Vec<LareqaReport> = paths_b.iter().map(read).collect::<Result<_>>()?;
    let options = PairedTestOptions { resamples: args.resamples, seed: args.seed, confidence: args.confidence, alpha: args.alpha };
    let comparison = compare_report_seeds(&a.iter().collect::<Vec<_>>(), &b.iter().collect::<Vec<_>>(), &options)
        .context("comparing the reports")?;
    print!("{}", table(&comparison, &paths_a, &paths_b));
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&comparison)? + "\n";
        std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// `a.json,b.json` as paths (empty pieces dropped).
fn paths(list: &str) -> Vec<PathBuf> {
    list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect()
}

fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// The comparison as a Markdown table, one row per headline metric.
fn table(c: &ReportComparison, a: &[PathBuf], b: &[PathBuf]) -> String {
    let o = &c.options;
    let mut s = format!(
        "{}: B − A over {} queries; A = {} ({} run(s)), B = {} ({} run(s))\n\
         paired sign-flip test and bootstrap {:.0}% interval, {} resamples, seed {}; Holm over the {} metrics, alpha {}\n\n",
        c.benchmark,
        c.metrics.first().map_or(0, |m| m.test.n),
        names(a),
        c.runs_a,
        names(b),
        c.runs_b,
        o.confidence * 100.0,
        o.resamples,
        o.seed,
        c.metrics.len(),
        o.alpha,
    );
    s.push_str("| metric | A | B | B − A | interval | p | p (Holm) | significant |\n|---|---:|---:|---:|---|---:|---:|---|\n");
    for m in &c.metrics {
        let t = &m.test;
        let digits = if m.metric == HeadlineMetric::RankDistance { 1 } else { 4 };
        let better = match (m.significant, (t.difference < 0.0) == m.metric.lower_is_better()) {
            (false, _) => "no",
            (true, true) => "yes, B better",
            (true, false) => "yes, A better",
        };
        s.push_str(&format!(
            "| {} | {:.d$} | {:.d$} | {:+.d$} | [{:+.d$}, {:+.d$}] | {:.4} | {:.4} | {} |\n",
            m.metric.name(),
            t.mean_a,
            t.mean_b,
            t.difference,
            t.ci_low,
            t.ci_high,
            t.p_value,
            m.p_holm,
            better,
            d = digits,
        ));
    }
    s
}
