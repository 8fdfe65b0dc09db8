//! `hybrid-ir eval`: the paper's evaluation protocol on XQuAD-R / MLQA-R from embeddings
//! (mono / cross / multi mAP, R@1, R@10, MRR@10, rank distance), or TREC qrels + run scoring.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hybrid_ir_collective::{Collective, DistributedChoice};
use hybrid_ir_data::{LareqaBenchmark, RetrievalBenchmark};
use hybrid_ir_eval::{CandidateText, EvalError, TokenizedBenchmark, load_benchmark};
use hybrid_ir_metrics::heatmap::{heatmap_png, heatmap_svg};
use hybrid_ir_metrics::{
    BenchmarkEmbeddings, EvalOptions, Metric, Qrels, Run, ScoreFunction, TrecReport, evaluate_benchmark, evaluate_run,
    read_embeddings, table, write_embeddings,
};
use hybrid_ir_model::{DeviceSpec, LoadOptions, ModelInfo, PrefixConfig, PrefixStyle, TextPipeline};
use hybrid_ir_train::Progress;

use crate::usage::{UsageError, flag_value, input_dir, input_file, usage};

/// Arguments of `hybrid-ir eval`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    /// `compare`: a paired significance test between two saved reports.
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    /// Benchmark: `xquad-r` or `mlqa-r` (needs --embeddings or --model).
    #[arg(long)]
    pub benchmark: Option<String>,
    /// Data root holding xquad-r/ and mlqa-r/ (default: $HYBRID_IR_DATA, then ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Parquet file with columns kind (query|candidate), lang, id, embedding (list of float32).
    #[arg(long)]
    pub embeddings: Option<PathBuf>,
    /// Hugging Face model directory to encode the benchmark with (config.json,
    /// model.safetensors, tokenizer.json): queries get its query prefix, candidates its
    /// passage prefix, in length-sorted batches.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Candidate text when encoding with --model: `sentence` (the answer sentence alone) or
    /// `sentence+context` (the sentence, a space, then its paragraph, truncated at --max-len).
    /// LAReQA encoded each sentence with its paragraph; the paper does not say.
    #[arg(long, default_value = "sentence")]
    pub candidate_text: CandidateText,
    /// Truncation length in tokens (special tokens included) when encoding with --model.
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    /// Prefixes with --model: `model` (what the directory says; e5: `query: `/`passage: `),
    /// `paper` (`Query: `/`Passage: `), `e5`, `none`.
    #[arg(long, default_value = "model")]
    pub prefixes: PrefixStyle,
    /// Texts per forward pass with --model.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Device with --model: `cpu` (burn Flex), `tch-cpu`, `tch-cuda:N` (the latter need a `tch` build).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// With --model under `mpiexec -n N` (a build with the `mpi` feature): each rank encodes every
    /// N-th batch and rank 0 reports, the same report as one process (auto | off | mpi).
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = DistributedChoice::parse)]
    pub distributed: DistributedChoice,
    /// Evaluate only these languages (comma-separated codes); default all.
    #[arg(long, value_delimiter = ',')]
    pub languages: Vec<String>,
    /// Write the embeddings computed with --model to this Parquet file (the --embeddings format).
    #[arg(long)]
    pub save_embeddings: Option<PathBuf>,
    /// Score function: `cosine` (default) or `dot`. Ties: the earlier candidate ranks first.
    #[arg(long, default_value = "cosine")]
    pub score: String,
    /// Write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the language × language mAP heatmap here: `.png` for PNG, anything else SVG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// TREC qrels file (`qid iter docid rel`), with --run.
    #[arg(long)]
    pub qrels: Option<PathBuf>,
    /// TREC run file (`qid Q0 docid rank score tag`), with --qrels.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Metrics for --qrels/--run (default: map, mrr@10, ndcg@10, recall@100).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Keep every query's value of the headline metrics (and its weight in the macro average)
    /// in the --out report: what `hybrid-ir eval compare` tests. About 2.5 MB more on XQuAD-R.
    #[arg(long)]
    pub per_query: bool,
    /// Replace --out, --plot or --save-embeddings if they exist.
    #[arg(long)]
    pub force: bool,
}

/// Subcommands of `hybrid-ir eval`.
#[derive(clap::Subcommand, Debug)]
pub enum EvalCommand {
    /// Is model B really better than model A? For each headline metric (mAP mono / cross /
    /// multi, rank distance, R@1 mono / cross, R@10 multi): B − A, its bootstrap confidence
    /// interval, a paired sign-flip test over the queries and Holm's correction over the seven
    /// metrics. Takes reports written by `hybrid-ir eval --per-query --out FILE` on the same
    /// benchmark; several comma-separated reports per side (seeds) are averaged per query.
    Compare(crate::compare::CompareArgs),
}

impl EvalArgs {
    /// Checks every output before any work: not an input, not an existing file without --force,
    /// and a plot that is `.svg`.
    fn check_outputs(&self) -> Result<()> {
        let mut inputs: Vec<&Path> = Vec::new();
        for p in [&self.embeddings, &self.model, &self.qrels, &self.run, &self.data].into_iter().flatten() {
            inputs.push(p);
        }
        for (flag, out) in [("--out", &self.out), ("--plot", &self.plot), ("--save-embeddings", &self.save_embeddings)] {
            if let Some(out) = out {
                crate::output::check_output(flag, out, &inputs, self.force)?;
            }
        }
        if let Some(plot) = &self.plot
            && plot.extension().and_then(|e| e.to_str()) != Some("svg")
        {
            usage!("--plot {}: only .svg is supported (convert with e.g. rsvg-convert for PNG)", plot.display());
        }
        Ok(())
    }

    /// Checks the flag values and that every input named on the command line exists.
    fn check_inputs(&self) -> Result<()> {
        // Flag combinations first: they are wrong whatever the files hold.
        if self.embeddings.is_some() && self.model.is_none() && self.save_embeddings.is_some() {
            usage!("--save-embeddings only applies with --model");
        }
        if self.batch_size == 0 {
            usage!("--batch-size 0: give at least 1");
        }
        if self.max_len == 0 {
            usage!("--max-len 0: give at least 1 token");
        }
        if !self.metrics.is_empty() && self.qrels.is_none() {
            usage!("--metrics {}: only for --qrels/--run scoring (the benchmark protocol has its own)", self.metrics.join(","));
        }
        for (flag, path) in [("--embeddings", &self.embeddings), ("--qrels", &self.qrels), ("--run", &self.run)] {
            if let Some(path) = path {
                input_file(flag, path)?;
            }
        }
        if let Some(model) = &self.model {
            input_dir("--model", model, "a model directory")?;
        }
        Ok(())
    }
}

/// Runs `hybrid-ir eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    if let Some(EvalCommand::Compare(compare)) = &args.command {
        return crate::compare::run(compare);
    }
    if args.per_query && args.out.is_none() {
        usage!("--per-query keeps per-query values in the --out report; give --out FILE");
    }
    args.check_outputs()?;
    args.check_inputs()?;
    match (&args.qrels, &args.run) {
        (Some(qrels), Some(run)) => {
            if args.benchmark.is_some() || args.embeddings.is_some() || args.model.is_some() {
                usage!("--qrels/--run score a TREC run; do not combine them with --benchmark/--embeddings/--model");
            }
            return run_trec(args, qrels, run);
        }
        (Some(_), None) | (None, Some(_)) => usage!("--qrels and --run go together"),
        (None, None) => {}
    }
    let Some(name) = &args.benchmark else {
        usage!("give --benchmark xquad-r|mlqa-r with --embeddings FILE, or --qrels FILE --run FILE");
    };
    let which = flag_value("--benchmark", name, LareqaBenchmark::parse(name))?;
    let score = flag_value("--score", &args.score, ScoreFunction::parse(&args.score))?;
    match (&args.embeddings, &args.model) {
        (Some(_), Some(_)) => usage!("give either --embeddings or --model, not both"),
        (None, None) => usage!("--benchmark needs --embeddings FILE.parquet or --model DIR"),
        (Some(_), None) if args.save_embeddings.is_some() => usage!("--save-embeddings only applies with --model"),
        _ => {}
    }
    if args.model.is_some() && args.prefixes == PrefixStyle::Custom {
        usage!("--prefixes custom is for training configs (query_prefix / passage_prefix); use model, paper, e5 or none");
    }
    let root = crate::data::data_root(args.data.as_deref())?;
    let benchmark = load_benchmark(name, Some(&root), &args.languages).map_err(|e| match e {
        // A language code that could name a file outside the benchmark: the flag's value.
        EvalError::Language(_) => anyhow::Error::new(UsageError(format!("--languages: {e}"))),
        e => anyhow::Error::new(e).context(format!("loading {which} from {}", root.display())),
    })?;

    // Exactly one of --embeddings / --model is given (checked above, before the benchmark loaded).
    if let Some(model) = &args.model {
        let collective = args.distributed.connect().map_err(|e| UsageError(format!("--distributed: {e}")))?;
        let (benchmark_back, embeddings) = encode_with_model(args, model, benchmark, collective.as_ref())?;
        if collective.rank() != 0 {
            // Rank 0 reports and writes; the others only encoded their share.
            return Ok(());
        }
        if let Some(path) = &args.save_embeddings {
            write_embeddings(path, &benchmark_back, &embeddings)?;
            tracing::info!("wrote embeddings to {}", path.display());
        }
        return report(args, &benchmark_back, &embeddings, score, which);
    }
    let path = args.embeddings.as_deref().context("--benchmark needs --embeddings FILE.parquet or --model DIR")?;
    tracing::info!("reading embeddings from {}", path.display());
    let embeddings = read_embeddings(path)?.align(&benchmark)?;
    report(args, &benchmark, &embeddings, score, which)
}

/// Encodes the benchmark with the model directory; gives the benchmark back with the embeddings.
fn encode_with_model(
    args: &EvalArgs,
    model_dir: &Path,
    benchmark: RetrievalBenchmark,
    collective: &dyn Collective,
) -> Result<(RetrievalBenchmark, BenchmarkEmbeddings)> {
    let info = ModelInfo::read(model_dir, &LoadOptions::default()).with_context(|| format!("reading {}", model_dir.display()))?;
    let prefixes = args.prefixes.resolve(&info.prefixes, PrefixConfig::none());
    let pipeline = TextPipeline::new(&info, prefixes.clone(), args.max_len, args.max_len)?;
    let device = args.device.try_device()?;
    let encoder = info.load(&device).with_context(|| format!("loading {}", model_dir.display()))?;
    if let Some(bad) = hybrid_ir_model::first_non_finite_parameter(&encoder) {
        bail!("{}: the model's weights hold a NaN or infinite value ({bad}); refusing to evaluate it", model_dir.display());
    }
    let tokenized = TokenizedBenchmark::with_candidate_text(benchmark, &pipeline, args.candidate_text)?;
    tracing::info!(
        "encoding {} queries and {} candidates with {} on {} (prefixes {:?} / {:?}, max_len {}, candidates: {:?})",
        tokenized.queries.len(),
        tokenized.candidates.len(),
        info.name,
        args.device,
        prefixes.query,
        prefixes.passage,
        args.max_len,
        args.candidate_text
    );
    let (rank, world) = (collective.rank(), collective.world_size());
    let what = if world > 1 { format!("encoding {} (rank {rank}: every {world}th batch)", info.name) } else { format!("encoding {}", info.name) };
    let share = tokenized.num_texts().div_ceil(world) as u64;
    let bar = Progress::new(rank == 0, &what, "texts", share);
    let started = std::time::Instant::now();
    let embeddings = tokenized.encode_across(&encoder, &pipeline, args.batch_size, collective, |n| bar.set_position(n as u64))?;
    bar.finish();
    tracing::info!("encoded {} texts in {:.1} s", tokenized.num_texts(), started.elapsed().as_secs_f64());
    Ok((tokenized.benchmark, embeddings))
}

/// Evaluates, prints Tables 1 and 2, writes the report and the heatmap if asked.
fn report(
    args: &EvalArgs,
    benchmark: &RetrievalBenchmark,
    embeddings: &BenchmarkEmbeddings,
    score: ScoreFunction,
    which: LareqaBenchmark,
) -> Result<()> {
    tracing::info!(
        "evaluating {which}: {} queries x {} candidates, dim {}, {} scores",
        benchmark.queries.len(),
        benchmark.candidates.len(),
        embeddings.queries.ncols(),
        score.name()
    );
    let started = std::time::Instant::now();
    let source = match (&args.embeddings, &args.model) {
        (Some(path), _) => path.display().to_string(),
        (None, Some(model)) => format!("the embeddings of --model {}", model.display()),
        (None, None) => "the embeddings".to_string(),
    };
    let report = evaluate_benchmark(benchmark, embeddings, &EvalOptions { score, per_query: args.per_query, ..Default::default() })
        .with_context(|| format!("scoring {source} with --score {}", score.name()))?;
    tracing::info!("evaluated in {:.2} s", started.elapsed().as_secs_f64());

    println!("{}", table::table_1(&report));
    println!("{}", table::table_2(&report));
    if let Some(out) = &args.out {
        write_json(out, &report)?;
    }
    if let Some(plot) = &args.plot {
        let title = format!("{which}: mAP by query and candidate language");
        let png = plot.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let bytes = if png {
            heatmap_png(&title, &report.languages, &report.map_matrix())
        } else {
            heatmap_svg(&title, &report.languages, &report.map_matrix()).into_bytes()
        };
        std::fs::write(plot, bytes).with_context(|| format!("writing {}", plot.display()))?;
        tracing::info!("wrote {}", plot.display());
    }
    Ok(())
}

fn run_trec(args: &EvalArgs, qrels_path: &Path, run_path: &Path) -> Result<()> {
    let metrics: Vec<Metric> = if args.metrics.is_empty() {
        Metric::TREC_DEFAULT.to_vec()
    } else {
        args.metrics.iter().map(|m| flag_value("--metrics", m, m.parse::<Metric>())).collect::<Result<Vec<_>, _>>()?
    };
    let qrels = Qrels::read(qrels_path)?;
    let run = Run::read(run_path)?;
    let report = score_run(&qrels, qrels_path, &run, run_path, &metrics)?;
    if let Some(out) = &args.out {
        write_json(out, &report)?;
    }
    Ok(())
}

/// Scores `run` against `qrels` (trec_eval's conventions), prints the table and the counts of
/// queries left out, and returns the report. Used by `eval --qrels --run` and `search --qrels`.
pub(crate) fn score_run(qrels: &Qrels, qrels_path: &Path, run: &Run, run_path: &Path, metrics: &[Metric]) -> Result<TrecReport> {
    let mut report = evaluate_run(qrels, run, metrics);
    // Nothing in common (an empty run, or one for other queries) would score 0 on every query.
    if report.queries == 0 || report.queries_missing_from_run == report.queries {
        bail!(
            "{} and {} share no query with a relevant document: nothing to score (qrels queries without relevant \
             documents: {}, run queries without qrels: {}, qrels queries missing from the run: {})",
            qrels_path.display(),
            run_path.display(),
            report.queries_without_relevant,
            report.run_queries_without_qrels,
            report.queries_missing_from_run
        );
    }
    report.qrels = Some(qrels_path.to_path_buf());
    report.run = Some(run_path.to_path_buf());
    println!("| metric | value |");
    println!("|---|---:|");
    for (name, value) in &report.metrics {
        println!("| {name} | {value:.4} |");
    }
    println!(
        "{} queries ({} missing from the run, scored 0); {} qrels queries without relevant documents and {} run \
         queries without qrels left out",
        report.queries, report.queries_missing_from_run, report.queries_without_relevant, report.run_queries_without_qrels
    );
    if report.run_queries_without_qrels > 0 {
        tracing::warn!(
            "{} queries of {} have no qrels in {} and are left out of the averages (trec_eval's convention)",
            report.run_queries_without_qrels,
            run_path.display(),
            qrels_path.display()
        );
    }
    Ok(report)
}

pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    hybrid_ir_data::fs::write_atomic(path, (text + "\n").as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!("wrote {}", path.display());
    Ok(())
}
