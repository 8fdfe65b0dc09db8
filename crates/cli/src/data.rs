//! `hybrid-ir data ...`: corpus statistics and sampler audits.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use hybrid_ir_data::sampler::{CrossPairing, SamplerConfig, SamplerKind};
use hybrid_ir_data::{
    CorpusSource, LareqaBenchmark, LareqaDataset, NegativePolicy, ParallelCorpus, RetrievalBenchmark, load_user_corpus,
    resolve_data_dir,
};

use crate::usage::{UsageError, flag_value, input_dir, usage};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Print the counts of a benchmark: queries, candidates, relevant per query, ids per language
    /// count, and per-language queries / candidates / paragraphs / articles.
    #[command(after_help = "EXAMPLE:\n  hybrid-ir data stats --benchmark mlqa-r --json")]
    Stats(StatsArgs),
    /// Print the batches a sampler would produce, one JSON object per line:
    /// {"step":i,"kind":"mono"|"cross"|"mixed","corpus":..,"pairs":[{"id","query_lang","passage_lang"}]}.
    /// Use it to audit the mixture (alpha), languages and distinct ids.
    #[command(after_help = "EXAMPLES:\n  \
        hybrid-ir data sample --corpus mlqa-r --sampler hybrid --alpha 0.5 --batch-size 100 --batches 1000 --seed 7\n  \
        hybrid-ir data sample --corpus my_pairs.jsonl --sampler cross --pairing per-batch --batches 5")]
    Sample(SampleArgs),
}

#[derive(Args)]
pub struct StatsArgs {
    /// Benchmark: xquad-r or mlqa-r.
    #[arg(long, default_value = "xquad-r")]
    benchmark: String,
    /// Data root holding xquad-r/ and mlqa-r/ (default: $HYBRID_IR_DATA, then ../shared/data).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SampleArgs {
    /// Training corpus: xquad-r, mlqa-r (from the data root) or a .jsonl / .parquet / .arrow file
    /// with columns id, lang, query, positive[, negative, context]. Repeat to mix corpora (one
    /// corpus per batch, chosen in proportion to its size).
    #[arg(long, required = true)]
    corpus: Vec<String>,
    /// Data root (see `hybrid-ir --help`).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Batching scheme: mono (X-X-mono), cross (X-Y), mixed (LAReQA X-X) or hybrid.
    #[arg(long, default_value = "hybrid")]
    sampler: String,
    /// Probability of a monolingual batch for --sampler hybrid (paper: 0.5).
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Pairs per batch (paper: 100).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Number of batches to print.
    #[arg(long, default_value_t = 10)]
    batches: usize,
    /// Seed of the batch stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// X-Y language choice: per-pair (each pair its own languages) or per-batch (one pair of
    /// languages for the whole batch).
    #[arg(long, default_value = "per-pair")]
    pairing: String,
}

pub fn run(cmd: &DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Stats(args) => stats(args),
        DataCommand::Sample(args) => sample(args),
    }
}

fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    let benchmark = flag_value("--benchmark", &args.benchmark, LareqaBenchmark::parse(&args.benchmark))?;
    let dataset = load_benchmark(benchmark, &data_root(args.data.as_deref())?)?;
    let bench = RetrievalBenchmark::from_lareqa(&dataset);
    let stats = bench.stats(&dataset);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &stats)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} queries, {} candidates, {} distinct ids",
        stats.benchmark, stats.queries, stats.candidates, stats.distinct_ids
    )?;
    writeln!(out, "relevant candidates per query: {:?}", stats.relevant_per_query)?;
    writeln!(out, "ids by number of languages:    {:?}", stats.ids_by_language_count)?;
    writeln!(out, "{:<6}{:>10}{:>12}{:>12}{:>10}", "lang", "queries", "candidates", "paragraphs", "articles")?;
    for (lang, l) in &stats.per_language {
        writeln!(out, "{lang:<6}{:>10}{:>12}{:>12}{:>10}", l.queries, l.candidates, l.paragraphs, l.articles)?;
    }
    Ok(())
}

/// The data root: `--data` must be an existing directory; the default one is checked by the loader.
pub fn data_root(flag: Option<&std::path::Path>) -> Result<std::path::PathBuf, UsageError> {
    if let Some(dir) = flag {
        input_dir("--data", dir, "the data root (the directory holding xquad-r/ and mlqa-r/)")?;
    }
    Ok(resolve_data_dir(flag))
}

/// Loads a benchmark's files: the one path of `data stats` and `data sample`, so that both accept
/// and refuse the same files (the loader checks everything the training view relies on).
fn load_benchmark(benchmark: LareqaBenchmark, root: &std::path::Path) -> anyhow::Result<LareqaDataset> {
    benchmark.load(root).with_context(|| format!("loading {benchmark} from {}", root.display()))
}

/// Loads a named benchmark's training view or a user corpus file; a name that is neither is a
/// usage error naming `--corpus`.
fn load_corpus(name: &str, root: &std::path::Path) -> anyhow::Result<ParallelCorpus> {
    match CorpusSource::parse(name).map_err(|e| UsageError(format!("--corpus: {e}")))? {
        CorpusSource::Benchmark(benchmark) => {
            Ok(ParallelCorpus::from_lareqa(&load_benchmark(benchmark, root)?, NegativePolicy::None)?)
        }
        CorpusSource::File(path) => Ok(load_user_corpus(&path)?),
    }
}

fn sample(args: &SampleArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.alpha) {
        usage!("--alpha {}: give a probability in [0, 1]", args.alpha);
    }
    if args.batch_size == 0 {
        usage!("--batch-size 0: give at least 1");
    }
    let mut config = SamplerConfig::new(flag_value("--sampler", &args.sampler, SamplerKind::parse(&args.sampler))?);
    config.alpha = args.alpha;
    config.batch_size = args.batch_size;
    config.seed = args.seed;
    config.cross_pairing = match args.pairing.as_str() {
        "per-pair" => CrossPairing::PerPair,
        "per-batch" => CrossPairing::PerBatch,
        other => usage!("unknown --pairing `{other}` (expected per-pair or per-batch)"),
    };
    let root = data_root(args.data.as_deref())?;
    let corpora = args.corpus.iter().map(|c| load_corpus(c, &root).map(Arc::new)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut sampler =
        config.build_multi(corpora).with_context(|| format!("a {} sampler over {}", args.sampler, args.corpus.join(", ")))?;
    tracing::info!("sampler: {}", sampler.describe());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for step in 0..args.batches {
        let batch = sampler.next_batch();
        let line = BatchLine {
            step,
            kind: batch.kind.label(),
            corpus: &batch.corpus,
            pairs: batch
                .pairs
                .iter()
                .map(|p| PairLine { id: &p.id, query_lang: &p.query_lang, passage_lang: &p.passage_lang })
                .collect(),
        };
        let line = serde_json::to_string(&line)?;
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// One line of `data sample` output (a struct, so the keys keep this order).
#[derive(serde::Serialize)]
struct BatchLine<'a> {
    step: usize,
    kind: &'a str,
    corpus: &'a str,
    pairs: Vec<PairLine<'a>>,
}

#[derive(serde::Serialize)]
struct PairLine<'a> {
    id: &'a str,
    query_lang: &'a str,
    passage_lang: &'a str,
}
