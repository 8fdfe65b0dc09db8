//! `hybrid-ir`: train and evaluate multilingual dense retrievers with hybrid batch training.

mod compare;
mod data;
mod encode;
mod eval;
mod mine;
mod output;
mod search;
mod train;
mod usage;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

const ABOUT: &str = "Train and evaluate multilingual dense retrievers with hybrid batch training.";

const LONG_ABOUT: &str = "\
Train and evaluate multilingual dense retrievers with hybrid batch training.

A shared-weight dual encoder is fine-tuned with a contrastive loss over in-batch negatives. What
changes is how batches are built from parallel QA data (the same question and answer in several
languages, sharing one id):
  X-X-mono  the whole batch in one language, picked uniformly      (--sampler mono)
  X-Y       every pair has query language != passage language      (--sampler cross)
  Hybrid    X-X-mono with probability alpha, else X-Y              (--sampler hybrid --alpha 0.5)
Evaluation follows LAReQA on XQuAD-R and MLQA-R: mAP in the monolingual, cross-lingual and
multilingual settings, recall, and language bias (rank distance).

DATA: commands that read the benchmarks look for them in --data DIR, else in $HYBRID_IR_DATA,
else in ../shared/data (searched upwards from the current directory). DIR holds xquad-r/ and
mlqa-r/ with one <lang>.json file per language (the LAReQA files).

LOGGING: set RUST_LOG (e.g. RUST_LOG=debug) for more detail; logs go to stderr, results to
stdout.";

#[derive(Parser)]
#[command(name = "hybrid-ir", version, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect the corpora and audit the batch samplers.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Embed texts from a JSONL or Parquet file with a model directory; writes Parquet.
    Encode(encode::EncodeArgs),
    /// Evaluate retrieval: LAReQA mono / cross / multilingual mAP, recall and language bias from
    /// a model or from precomputed embeddings, or TREC qrels + run files (MIRACL-style).
    Eval(eval::EvalArgs),
    /// Fine-tune a dual encoder with X-X-mono, X-Y or hybrid batches from a TOML config.
    Train(train::TrainArgs),
    /// Mine hard negatives with a model: for every (id, language) of a corpus, the passages of its
    /// language the model ranks highest, never one of the same id or answer cluster; writes a
    /// corpus with a `negative` column for `train` / `reproduce --loss paper`.
    Mine(mine::MineArgs),
    /// Encode a document collection (JSONL, TSV or Parquet) once into a sharded, resumable index
    /// of Parquet embeddings for `search`.
    Index(search::IndexArgs),
    /// Exact top-k retrieval from an index for a topics file: writes a TREC run, and with --qrels
    /// scores it (nDCG@10, Recall@100, MRR@10, MAP).
    Search(search::SearchArgs),
    /// Write a trained run's model as a Hugging Face + sentence-transformers directory.
    Export(train::ExportArgs),
    /// The paper's experiment: one model per sampler from the same start, evaluated zero-shot,
    /// with Table-1/Table-2 style tables and language x language heatmaps.
    Reproduce(train::ReproduceArgs),
}

/// Lets every flag that takes a value take a negative number (`--lr -1`): clap would otherwise read
/// `-1` as an unknown flag, and its error would name neither the flag nor a valid range.
fn negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| if a.get_action().takes_values() { a.allow_negative_numbers(true) } else { a })
        .mut_subcommands(negative_numbers)
}

fn main() -> std::process::ExitCode {
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org): a log file
    // must not fill with escape codes.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Ranks other than 0 of a distributed run log warnings and errors only (rank 0's log is the
    // run's); RUST_LOG still decides when set.
    let rank = hybrid_ir_collective::LaunchEnv::detect().map_or(0, |e| e.rank);
    let default_level = if rank == 0 { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    let matches = negative_numbers(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match &cli.command {
        Command::Data(cmd) => data::run(cmd),
        Command::Encode(args) => encode::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Train(args) => train::run_train(args),
        Command::Mine(args) => mine::run(args),
        Command::Index(args) => search::run_index(args),
        Command::Search(args) => search::run_search(args),
        Command::Export(args) => train::run_export(args),
        Command::Reproduce(args) => train::run_reproduce(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`hybrid-ir data stats | head`) is the reader's choice, not a failure.
        Err(err) if err.chain().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) => {
            std::process::ExitCode::SUCCESS
        }
        // 2 for a command line to fix (clap uses 2 for its own parse errors), 1 for a failure.
        Err(err) if usage::is_usage(&err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (they otherwise fire only when a
    /// user runs the broken subcommand).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::negative_numbers(super::Cli::command()).debug_assert();
    }
}
