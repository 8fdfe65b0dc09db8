//! `hybrid-ir index` and `hybrid-ir search`: a collection encoded once into a sharded index, then
//! exact top-k retrieval into a TREC run (the work is `hybrid_ir_search`; the encoding is the
//! workspace's one pipeline through `hybrid_ir_eval::PipelineTextEncoder`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use hybrid_ir_eval::PipelineTextEncoder;
use hybrid_ir_metrics::{Metric, Qrels, ScoreFunction};
use hybrid_ir_model::DeviceSpec;
use hybrid_ir_search::{DocumentTemplate, Index, IndexOptions, SearchOptions, Side, TextEncoder, build_index, read_queries, to_run};
use hybrid_ir_train::load_encoder;
use hybrid_ir_train::progress::Progress;

use crate::usage::{input_dir, input_file, usage};

fn parse_score(s: &str) -> Result<ScoreFunction, String> {
    ScoreFunction::parse(s).map_err(|e| e.to_string())
}

fn parse_template(s: &str) -> Result<DocumentTemplate, String> {
    DocumentTemplate::new(s).map_err(|e| e.to_string())
}

/// What both commands need to load a model.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Model: a model directory, or a run directory (its best checkpoint, trained prefixes and lengths).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Truncation in tokens (default: the model's max length, or the run's trained lengths).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// Texts per forward pass (each batch holds texts of similar length).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub batch_size: usize,
    /// Device: cpu | tch-cpu | tch-cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

/// `hybrid-ir index`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    hybrid-ir index --model models/multilingual-e5-small --corpus miracl-corpus-sw.jsonl --out index/sw\n  \
    hybrid-ir index --model runs/hybrid --corpus psgs_w100.tsv --out index/dpr --shard-size 50000 --device tch-cuda:0\n\n\
INPUT (--corpus), one document per line or row, `title` optional:\n  \
    .jsonl    {\"docid\": ..., \"title\": ..., \"text\": ...}  (MIRACL, BEIR: the id may be `_id` or `id`)\n  \
    .tsv      docid<TAB>text  or  docid<TAB>text<TAB>title  (DPR; its `id text title` header is skipped)\n  \
    .parquet  columns docid (or _id / id), text, title      (Hugging Face miracl/miracl-corpus)\n\
A document is encoded as --template with {title} and {text} filled in, trimmed, after the model's\n\
passage prefix (e.g. `passage: ` for E5).\n\n\
OUTPUT (--out DIR): shard-00000.parquet, ... (docid, embedding: --shard-size documents each, in\n\
collection order) and manifest.json (the model, its prefixes and truncation, the template, the\n\
corpus, each shard's SHA-256, and the embeddings of fixed probe texts that identify the model).\n\n\
INTERRUPTED? Run the same command again: finished shards are verified and kept, encoding goes on\n\
from the first missing one. A directory built with another model, prefix, template, truncation or\n\
corpus is refused rather than mixed. Memory: one shard of texts and embeddings, plus the set of\n\
document ids (to refuse duplicates).")]
pub struct IndexArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The collection: .jsonl, .tsv or .parquet (see INPUT).
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// The index directory (created; continued if it holds an interrupted build of the same settings).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Documents per shard: an interrupted build loses at most one shard of work.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub shard_size: usize,
    /// How a document becomes text: {title} and {text} are replaced, then whitespace is trimmed.
    #[arg(long, value_name = "TEMPLATE", default_value = "{title} {text}", value_parser = parse_template)]
    pub template: DocumentTemplate,
}

/// `hybrid-ir search`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    hybrid-ir search --model models/multilingual-e5-small --index index/sw \\\n      \
    --queries ../shared/data/miracl/topics.miracl-v1.0-sw-dev.tsv --out runs/sw.trec \\\n      \
    --qrels ../shared/data/miracl/qrels.miracl-v1.0-sw-dev.tsv\n\n\
QUERIES (--queries): TSV `qid<TAB>query` (MIRACL / TREC topics) or JSONL with `query_id` (or `qid`,\n\
`_id`, `id`) and `query` (or `text`). Queries get the model's query prefix.\n\n\
WHAT IT DOES: checks that --model is the model the index was built with (same embeddings of the\n\
manifest's probe texts, same prefixes), embeds the queries, and scores them against every\n\
document, shard by shard: exact top-k, no approximation. Cosine normalises the rows; dot takes\n\
the raw inner product. Equal scores rank the document earlier in the collection first. Memory:\n\
the queries, --top-k hits each and one shard, whatever the collection size; all cores are used.\n\n\
OUTPUT: a TREC run `qid Q0 docid rank score tag` (--out), written atomically. With --qrels it also\n\
prints nDCG@10, Recall@100, MRR@10 and MAP (trec_eval's conventions; queries without qrels are\n\
counted and left out) and writes them as JSON to --report (default: the run's name + .eval.json).")]
pub struct SearchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The index directory written by `hybrid-ir index`.
    #[arg(long, value_name = "DIR")]
    pub index: PathBuf,
    /// The queries: .tsv or .jsonl (see QUERIES).
    #[arg(long, value_name = "FILE")]
    pub queries: PathBuf,
    /// The run file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace --out (and --report) if they exist.
    #[arg(long)]
    pub force: bool,
    /// Documents retrieved per query.
    #[arg(long, value_name = "K", default_value_t = 100)]
    pub top_k: usize,
    /// Score: cosine or dot.
    #[arg(long, default_value = "cosine", value_parser = parse_score)]
    pub score: ScoreFunction,
    /// The run's tag (last column).
    #[arg(long, default_value = "hybrid-ir")]
    pub tag: String,
    /// TREC qrels to score the run against.
    #[arg(long, value_name = "FILE")]
    pub qrels: Option<PathBuf>,
    /// Where to write the scores as JSON (with --qrels).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// Loads the model of `args` and calls `f` with it as a [`TextEncoder`].
fn with_encoder<T>(args: &ModelArgs, f: impl FnOnce(&mut dyn TextEncoder) -> Result<T>) -> Result<T> {
    input_dir("--model", &args.model, "a model directory or a run directory")?;
    if args.max_len.is_some_and(|n| n < 2) {
        usage!("--max-len {}: give at least 2 (the special tokens)", args.max_len.unwrap_or(0));
    }
    if args.batch_size == 0 {
        usage!("--batch-size 0: give at least 1");
    }
    let device = args.device.try_device()?;
    let (model, pipeline, description) =
        load_encoder(&args.model, args.max_len, &device).with_context(|| format!("loading --model {}", args.model.display()))?;
    if let Some(bad) = hybrid_ir_model::first_non_finite_parameter(&model) {
        bail!("{}: the model's weights hold a NaN or infinite value ({bad}); refusing to encode with it", args.model.display());
    }
    let mut encoder = PipelineTextEncoder { model: &model, pipeline: &pipeline, batch_size: args.batch_size, description };
    f(&mut encoder)
}

/// Runs `hybrid-ir index`.
pub fn run_index(args: &IndexArgs) -> Result<()> {
    input_file("--corpus", &args.corpus)?;
    if args.shard_size == 0 {
        usage!("--shard-size 0: give at least 1");
    }
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(&args.out, &args.model.model) || args.out.is_file() {
        usage!("--out {}: give a new directory (or an interrupted index to continue), not the model or a file", args.out.display());
    }
    let options = IndexOptions { shard_size: args.shard_size, template: args.template.clone() };
    with_encoder(&args.model, |encoder| {
        tracing::info!("indexing {} with {} into {}", args.corpus.display(), encoder.describe(), args.out.display());
        let started = std::time::Instant::now();
        let mut bar: Option<Progress> = None;
        let summary = build_index(&args.corpus, &args.out, encoder, &options, |p| {
            let bar = bar.get_or_insert_with(|| Progress::new(true, "indexing: encoding documents", "docs", p.total as u64));
            bar.set_position(p.done as u64);
        })?;
        if let Some(bar) = bar {
            bar.finish();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{} documents in {} shards in {} ({} encoded now in {seconds:.1} s{}, {} kept from an earlier run)",
            summary.documents,
            summary.shards,
            args.out.display(),
            summary.encoded,
            if summary.encoded > 0 { format!(", {:.1} docs/s", summary.encoded as f64 / seconds) } else { String::new() },
            summary.kept_shards
        );
        Ok(())
    })
}

/// Runs `hybrid-ir search`.
pub fn run_search(args: &SearchArgs) -> Result<()> {
    input_dir("--index", &args.index, "an index directory written by `hybrid-ir index`")?;
    input_file("--queries", &args.queries)?;
    if let Some(qrels) = &args.qrels {
        input_file("--qrels", qrels)?;
    }
    if args.top_k == 0 {
        usage!("--top-k 0: give at least 1");
    }
    if args.tag.is_empty() || args.tag.chars().any(char::is_whitespace) {
        usage!("--tag {:?}: give a tag without whitespace (it is a field of the run file)", args.tag);
    }
    let inputs: Vec<&Path> = [Some(args.queries.as_path()), args.qrels.as_deref(), Some(args.index.as_path())].into_iter().flatten().collect();
    crate::output::check_output("--out", &args.out, &inputs, args.force)?;
    let report_path = args.qrels.as_ref().map(|_| args.report.clone().unwrap_or_else(|| with_suffix(&args.out, ".eval.json")));
    if let Some(report) = &report_path {
        crate::output::check_output("--report", report, &inputs, args.force)?;
    }
    let index = Index::open(&args.index)?;
    let queries = read_queries(&args.queries)?;
    let qrels = args.qrels.as_deref().map(Qrels::read).transpose()?;
    let manifest = index.manifest();
    with_encoder(&args.model, |encoder| {
        index.check_encoder(encoder)?;
        tracing::info!(
            "searching {} documents ({} shards) of {} for {} queries with {}",
            manifest.documents,
            manifest.shards.len(),
            args.index.display(),
            queries.len(),
            encoder.describe()
        );
        let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        let bar = Progress::new(true, "search: embedding queries", "queries", texts.len() as u64);
        let embeddings = encoder.encode(&texts, Side::Query, &mut |n| bar.set_position(n as u64)).map_err(anyhow::Error::msg)?;
        bar.finish();
        let started = std::time::Instant::now();
        let bar = Progress::new(true, "search: scoring documents", "docs", manifest.documents as u64);
        let options = SearchOptions { top_k: args.top_k, score: args.score };
        let hits = index.search(&embeddings, &options, |n| bar.set_position(n as u64))?;
        bar.finish();
        let seconds = started.elapsed().as_secs_f64();
        let qids: Vec<String> = queries.iter().map(|q| q.qid.clone()).collect();
        let run = to_run(&qids, &hits);
        run.write(&args.out, &args.tag)?;
        println!(
            "{} queries x {} documents in {seconds:.2} s ({:.0} queries/s); wrote {}",
            queries.len(),
            manifest.documents,
            queries.len() as f64 / seconds.max(1e-9),
            args.out.display()
        );
        if let (Some(qrels), Some(qrels_path), Some(report_path)) = (&qrels, &args.qrels, &report_path) {
            let report = crate::eval::score_run(qrels, qrels_path, &run, &args.out, &Metric::TREC_DEFAULT)?;
            crate::eval::write_json(report_path, &report)?;
        }
        Ok(())
    })
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}
