//! `hybrid-ir mine`: hard negatives mined with a model, written as a user corpus that `train`
//! and `reproduce --train FILE` read (the mining itself is `hybrid_ir_train::mine`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use hybrid_ir_data::{LareqaBenchmark, ParallelCorpus, RetrievalBenchmark, resolve_data_dir, write_user_corpus};
use hybrid_ir_metrics::ScoreFunction;
use hybrid_ir_model::DeviceSpec;
use hybrid_ir_train::mine::ScoreSummary;
use hybrid_ir_train::progress::Progress;
use hybrid_ir_train::{CandidatePool, MineOptions, NegativeChoice, load_encoder, mine_negatives};

use crate::usage::{flag_value, input_dir, usage};

/// `--range-max`: a count or `all` (a newtype: clap reads a bare `Option` field as "flag may be absent").
#[derive(Debug, Clone, Copy)]
pub struct RangeMax(Option<usize>);

fn parse_range_max(s: &str) -> Result<RangeMax, String> {
    if s == "all" {
        return Ok(RangeMax(None));
    }
    s.parse::<usize>().map(|n| RangeMax(Some(n))).map_err(|_| format!("`{s}` is not a count: give a whole number or `all`"))
}

fn parse_choice(s: &str) -> Result<NegativeChoice, String> {
    match s {
        "top" => Ok(NegativeChoice::Top),
        "random" => Ok(NegativeChoice::Random),
        other => Err(format!("`{other}`: expected top or random")),
    }
}

fn parse_score(s: &str) -> Result<ScoreFunction, String> {
    ScoreFunction::parse(s).map_err(|e| e.to_string())
}

/// `hybrid-ir mine`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    hybrid-ir mine --model models/multilingual-e5-small --corpus mlqa-r --out runs/mlqa-r-mined.jsonl \\\n      \
    --max-len 64 --relative-margin 0.05   # docs/results.md; 12 CPU-minutes on 2 vCPUs\n  \
    hybrid-ir mine --model runs/my-run --corpus pairs.parquet --out mined.parquet --range-min 3 --margin 0.05 \\\n      \
    --num-negatives 4 --choice random\n  \
    hybrid-ir reproduce --train runs/mlqa-r-mined.jsonl --one-way --loss paper\n\n\
WHAT IT DOES: for every (id, language) row of --corpus, embeds the row's query and every passage of\n\
the candidate pool in the row's language, ranks the passages by score (exact search, ties in pool\n\
order) and keeps the hardest ones that pass the filters. Never a negative of the row's own parallel\n\
id or answer cluster (ids sharing an answer text): such a passage is a correct answer, not a negative.\n\
Negatives stay in the row's language, so in an X-Y batch the negative is in the passage's language.\n\n\
THE POOL: for mlqa-r / xquad-r, every sentence of every paragraph (the LAReQA candidates); for a\n\
file, its distinct positives per language.\n\n\
THE FILTERS (sentence-transformers' names): ranks are counted among eligible passages, best first;\n\
--range-min skips the first N (likely unlabelled positives), --range-max looks no further than N;\n\
a negative must score at most positive - --margin, at most positive x (1 - --relative-margin),\n\
at most --max-score and at least --min-score.\n\n\
OUTPUT: the corpus's rows with `negative` (the first chosen: what the trainer uses), `negative_2`...\n\
for --num-negatives > 1, and `positive_score`, `negative_score`... (the mining model's scores).\n\
Rows where no passage passes are left out and counted. A summary of the score distributions is\n\
printed at the end.")]
pub struct MineArgs {
    /// Model to mine with: a model directory, or a run directory (its best checkpoint).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Corpus: mlqa-r, xquad-r, or a user corpus file (.jsonl / .parquet / .arrow).
    #[arg(long, value_name = "NAME|FILE")]
    pub corpus: String,
    /// Output corpus: .jsonl or .parquet.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Skip the N highest-scoring eligible passages.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub range_min: usize,
    /// Consider only the N highest-scoring eligible passages (`all`: no limit, as in
    /// sentence-transformers; with a margin a short window leaves many rows without a negative).
    #[arg(long, value_name = "N|all", default_value = "all", value_parser = parse_range_max)]
    pub range_max: RangeMax,
    /// A negative scores at most positive - MARGIN.
    #[arg(long)]
    pub margin: Option<f64>,
    /// A negative scores at most positive x (1 - M), M in [0, 1).
    #[arg(long, value_name = "M")]
    pub relative_margin: Option<f64>,
    /// A negative scores at most this.
    #[arg(long)]
    pub max_score: Option<f64>,
    /// A negative scores at least this.
    #[arg(long)]
    pub min_score: Option<f64>,
    /// Negatives per row.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub num_negatives: usize,
    /// `top` (hardest first) or `random` (a seeded sample of those that pass).
    #[arg(long, default_value = "top", value_parser = parse_choice)]
    pub choice: NegativeChoice,
    /// Seed of --choice random.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Score: cosine or dot.
    #[arg(long, default_value = "cosine", value_parser = parse_score)]
    pub score: ScoreFunction,
    /// Truncation in tokens (default: the model's max length, or the run's trained lengths).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Device: cpu | tch-cpu | tch-cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Data root for the benchmarks (see `hybrid-ir --help`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl MineArgs {
    fn options(&self) -> MineOptions {
        MineOptions {
            range_min: self.range_min,
            range_max: self.range_max.0,
            margin: self.margin,
            relative_margin: self.relative_margin,
            max_score: self.max_score,
            min_score: self.min_score,
            num_negatives: self.num_negatives,
            choice: self.choice,
            seed: self.seed,
            score: self.score,
            batch_size: self.batch_size,
        }
    }
}

/// The corpus to mine for and its pool.
fn corpus_and_pool(args: &MineArgs) -> Result<(ParallelCorpus, CandidatePool)> {
    let root = resolve_data_dir(args.data.as_deref());
    if Path::new(&args.corpus).is_file() {
        let corpus = hybrid_ir_data::load_user_corpus(Path::new(&args.corpus))?;
        let pool = CandidatePool::of_corpus(&corpus);
        return Ok((corpus, pool));
    }
    let benchmark = flag_value("--corpus", &args.corpus, LareqaBenchmark::parse(&args.corpus))?;
    let dataset = benchmark.load(&root)?;
    let corpus = ParallelCorpus::from_lareqa(&dataset, hybrid_ir_data::NegativePolicy::None)?;
    let mut pool = CandidatePool::of_corpus(&corpus);
    pool.add_benchmark_sentences(&corpus, &RetrievalBenchmark::from_lareqa(&dataset))?;
    Ok((corpus, pool))
}

/// Runs `hybrid-ir mine`.
pub fn run(args: &MineArgs) -> Result<()> {
    input_dir("--model", &args.model, "a model directory or a run directory")?;
    crate::output::check_output("--out", &args.out, &[&args.model, Path::new(&args.corpus)], args.force)?;
    let problems = args.options().problems();
    if !problems.is_empty() {
        usage!("{}", problems.into_iter().map(|p| format!("--{}", p.replace('_', "-"))).collect::<Vec<_>>().join("; "));
    }
    if args.max_len.is_some_and(|n| n < 2) {
        usage!("--max-len {}: give at least 2 (the special tokens)", args.max_len.unwrap_or(0));
    }
    let ext = args.out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if !matches!(ext.as_str(), "jsonl" | "ndjson" | "parquet") {
        usage!("--out {}: give a .jsonl or .parquet file", args.out.display());
    }

    let (corpus, pool) = corpus_and_pool(args)?;
    let device = args.device.try_device()?;
    let (model, pipeline, what) = load_encoder(&args.model, args.max_len, &device)
        .with_context(|| format!("loading --model {}", args.model.display()))?;
    if let Some(bad) = hybrid_ir_model::first_non_finite_parameter(&model) {
        bail!("{}: the model's weights hold a NaN or infinite value ({bad}); refusing to mine with it", args.model.display());
    }
    let stats = corpus.stats();
    tracing::info!(
        "mining for {} rows of `{}` ({} languages) from a pool of {} passages with {what} on {}",
        stats.examples,
        corpus.name(),
        stats.languages.len(),
        pool.len(),
        args.device
    );
    let bar = Progress::new(true, "mining: embedding queries and pool", "texts", (corpus.num_examples() + pool.len()) as u64);
    let started = std::time::Instant::now();
    let mined = mine_negatives(&model, &pipeline, &corpus, &pool, &args.options(), |n| bar.set_position(n as u64))?;
    bar.finish();
    tracing::info!("mined in {:.1} s", started.elapsed().as_secs_f64());
    if mined.rows.is_empty() {
        bail!("no row of `{}` has a passage that passes the filters; nothing written (loosen --range-*, --margin, --*-score)", corpus.name());
    }
    write_user_corpus(&args.out, &mined.rows)?;

    println!(
        "{} of {} rows got a negative ({} left out: no passage passed; {} with fewer than {}); wrote {}",
        mined.rows.len(),
        mined.queries,
        mined.without_negative,
        mined.short,
        args.num_negatives,
        args.out.display()
    );
    let pools: Vec<String> = mined.pool_sizes.iter().map(|(l, n)| format!("{l} {n}")).collect();
    println!("pool passages per language: {}", pools.join(", "));
    println!("\nscores ({}) | count | mean | min | p10 | p25 | median | p75 | p90 | max", args.score.name());
    println!("---|---:|---:|---:|---:|---:|---:|---:|---:|---:");
    for (name, summary) in mined.summaries() {
        if let Some(ScoreSummary { count, mean, quantiles }) = summary {
            let q: Vec<String> = quantiles.iter().map(|v| format!("{v:.4}")).collect();
            println!("{name} | {count} | {mean:.4} | {}", q.join(" | "));
        }
    }
    Ok(())
}
