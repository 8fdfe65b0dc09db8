//! `speed`: hybrid-ir's engines side by side with PyTorch on the same model, data and algorithm.
//!
//! `speed all` prepares one set of tokenized inputs (real MLQA-R batches, real XQuAD-R
//! candidates), then runs every configuration in its own process (so peak RSS is per
//! configuration) for each engine — burn Flex (`cpu`), LibTorch through burn (`tch-cpu`, with
//! `--features tch`) and PyTorch (`benches/pytorch_bench.py`) — and prints a table with ratios
//! against PyTorch measured in the same run. The other subcommands are those single runs; each
//! prints one JSON line. See docs/benchmarks.md for the numbers and how to read them.

mod configs;
mod machine;
mod narrow;
mod opcount;
mod report;
mod runs;
mod search;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "speed", about = "hybrid-ir vs PyTorch: training step, encoding, evaluation (see docs/benchmarks.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything: prepare inputs, run each engine and configuration in its own process, print
    /// the table with ratios against PyTorch, write the JSON results.
    All(configs::AllArgs),
    /// Write tokenized training batches (MLQA-R) and encoding sequences (XQuAD-R candidates).
    Prepare(runs::PrepareArgs),
    /// Time optimizer steps on prepared batches (one JSON line).
    TrainStep(runs::TrainStepArgs),
    /// Time encoding of prepared sequences (one JSON line).
    Encode(runs::EncodeArgs),
    /// Full XQuAD-R encode + evaluation with a model (one JSON line).
    Eval(runs::EvalArgs),
    /// Embeddings on two devices compared: max |difference| (one JSON line).
    CompareDevices(runs::CompareArgs),
    /// Matrix-product throughput of a burn device (one JSON line).
    Gemm(runs::GemmArgs),
    /// ATen operators per training step, PyTorch vs ours, counted by one RecordFunction callback
    /// loaded into both (LD_PRELOAD), per phase, plus the host time of a tiny step (tables).
    OpCount(opcount::OpCountArgs),
    /// A known operator sequence under the counter (the smoke test's child process).
    #[cfg(feature = "tch")]
    #[command(hide = true)]
    OpCountProbe {
        /// Where the counter is compiled and its tables written.
        #[arg(long)]
        out: PathBuf,
    },
    /// Exact top-k search vs FAISS IndexFlatIP on the same synthetic embeddings (a table).
    Search(search::SearchArgs),
    /// Our search alone on an index written by `speed search` (one JSON line; its child process).
    #[command(hide = true)]
    SearchRun(search::SearchRunArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::All(a) => configs::run_all(&a),
        Command::Prepare(a) => runs::prepare(&a),
        Command::TrainStep(a) => runs::train_step(&a),
        Command::Encode(a) => runs::encode(&a),
        Command::Eval(a) => runs::eval(&a),
        Command::CompareDevices(a) => runs::compare_devices(&a),
        Command::Gemm(a) => runs::gemm(&a),
        Command::OpCount(a) => opcount::op_count(&a),
        #[cfg(feature = "tch")]
        Command::OpCountProbe { out } => opcount::probe(&out),
        Command::Search(a) => search::search(&a),
        Command::SearchRun(a) => search::search_run(&a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Default PyTorch interpreter: the bench venv if present, else `python3`.
pub(crate) fn default_python() -> PathBuf {
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/hybrid-ir/torch-venv/bin/python"))
        .filter(|p| p.exists());
    venv.unwrap_or_else(|| PathBuf::from("python3"))
}
