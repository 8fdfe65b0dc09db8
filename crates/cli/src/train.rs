//! `hybrid-ir train`, `hybrid-ir export` and `hybrid-ir reproduce`: thin wrappers over the
//! `hybrid-ir-train` crate.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use hybrid_ir_collective::{Collective, DistributedChoice};
use hybrid_ir_data::sampler::SamplerKind;
use hybrid_ir_metrics::PairedTestOptions;
use hybrid_ir_train::reproduce::{ReproduceLoss, ReproduceOptions, reproduce_across};
use hybrid_ir_train::{
    BackboneChoice, ExportOptions, RunOptions, StaticInitChoice, StopReason, TrainConfig, TrainError, export_run_with,
    install_ctrlc_handler, train,
};

use crate::usage::{UsageError, flag_value, input_dir, input_file, usage};

fn parse_backbone(s: &str) -> Result<BackboneChoice, String> {
    match s {
        "transformer" => Ok(BackboneChoice::Transformer),
        "static" => Ok(BackboneChoice::Static),
        other => Err(format!("unknown backbone {other:?}: expected transformer or static")),
    }
}

fn parse_static_init(s: &str) -> Result<StaticInitChoice, String> {
    match s {
        "model" => Ok(StaticInitChoice::Model),
        "random" => Ok(StaticInitChoice::Random),
        other => Err(format!("unknown static init {other:?}: expected model or random")),
    }
}

/// `hybrid-ir train`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    hybrid-ir train --config crates/train/configs/reference.toml\n  \
    hybrid-ir train --config my.toml --sampler cross --steps 500 --set optim.warmup_steps=50\n  \
    hybrid-ir train --config runs/my-run/config.toml --resume\n  \
    hybrid-ir train --config my.toml --tensorboard   # then: tensorboard --logdir runs/\n  \
    mpiexec -n 4 hybrid-ir train --config my.toml    # 4 ranks, same model as 1 process\n\n\
    DISTRIBUTED: started by mpiexec or srun (a build with the `mpi` feature), the ranks split every\n\
    batch of sampler.batch_size pairs between them, share their embeddings so every query sees the\n\
    whole batch's negatives, and sum their gradients: the same config trains the same model on 1 or N\n\
    processes. Only rank 0 writes; --resume works with any number of ranks. See docs/distributed.md.\n\n\
    Every config field is documented in crates/train/configs/reference.toml. Ctrl-C saves a\n\
    checkpoint and exits; --resume continues exactly where the run stopped.")]
pub struct TrainArgs {
    /// Training config (TOML). To resume, pass the run directory's config.toml (or the original).
    #[arg(long, value_name = "FILE.toml")]
    pub config: PathBuf,
    /// Override a config field with a dotted key, e.g. --set optim.lr=1e-4 --set data.languages='["en","de"]'.
    /// Repeatable; checked exactly like the file (unknown keys are refused).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Shortcut for --set sampler.kind=KIND (mono | cross | mixed | hybrid).
    #[arg(long, value_name = "KIND")]
    pub sampler: Option<String>,
    /// Shortcut for --set sampler.alpha=A.
    #[arg(long, value_name = "A")]
    pub alpha: Option<f64>,
    /// Shortcut for --set schedule.steps=N.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Shortcut for --set optim.lr=LR.
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Shortcut for --set sampler.batch_size=B.
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Shortcut for --set model.dir=DIR.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Shortcut for --set output_dir=DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Shortcut for --set model.device=DEV (cpu | tch-cpu | tch-cuda:N).
    #[arg(long, value_name = "DEV")]
    pub device: Option<String>,
    /// Shortcut for --set seed=S.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Continue the run in output_dir from its last checkpoint (same config required).
    #[arg(long)]
    pub resume: bool,
    /// With --resume: if the `last` checkpoint is corrupt, continue from the newest intact one
    /// (it is named in the log). Without it, a corrupt `last` stops with an error naming it.
    #[arg(long, requires = "resume")]
    pub resume_intact: bool,
    /// Stop after this optimizer step (saving a checkpoint); resume later with --resume.
    #[arg(long, value_name = "STEP")]
    pub stop_after: Option<u64>,
    /// Validate the config and print it resolved, without training.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also write the metrics.jsonl scalars (train loss, lr, val loss, eval metrics) as TensorBoard
    /// event files in OUTPUT_DIR/tensorboard/ (shortcut for --set log.tensorboard=true).
    #[arg(long)]
    pub tensorboard: bool,
    /// How the processes of a run are joined: auto (MPI ranks when started by mpiexec / srun,
    /// else one process), mpi (MPI even for one rank), nccl (MPI ranks whose gradient sums and
    /// embedding gathers run through NCCL, one GPU per rank; a build with the `nccl` feature) or
    /// off (one process; a multi-rank launch is refused).
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = DistributedChoice::parse)]
    pub distributed: DistributedChoice,
}

/// The ranks of this launch joined as `choice` says. With NCCL every rank trains on its own GPU,
/// so `device` (named `device_name` in messages) becomes `tch-cuda:<rank's GPU>`.
fn join_ranks(choice: DistributedChoice, device: &mut String, device_name: &str) -> anyhow::Result<Arc<dyn Collective>> {
    if choice == DistributedChoice::Nccl {
        if !device.starts_with("tch-cuda") {
            usage!("--distributed nccl needs a CUDA device ({device_name} tch-cuda:0), not {device:?}; use --distributed mpi on CPUs");
        }
        *device = format!("tch-cuda:{}", hybrid_ir_collective::rank_gpu());
    }
    Ok(Arc::from(choice.connect().map_err(|e| UsageError(format!("--distributed: {e}")))?))
}

/// `result` on rank 0; on another rank of a multi-rank run an error ends every rank (they wait
/// in their next collective), after saying which rank failed and in what.
fn end_ranks_on_error<T>(collective: &dyn Collective, what: &str, result: Result<T, TrainError>) -> Result<T, TrainError> {
    match result {
        Err(err) if collective.world_size() > 1 => {
            eprintln!("error: rank {}: {what}: {err}", collective.rank());
            collective.abort(1)
        }
        other => other,
    }
}

impl TrainArgs {
    /// `err`, which the command-line flags caused (the file alone is fine), as a usage error.
    fn flags_error(&self, err: &TrainError) -> UsageError {
        UsageError(format!(
            "{err}\n(from the command line: {}; {} alone is valid)",
            self.flags_given().join(" "),
            self.config.display()
        ))
    }

    /// The flags that change the config file's values, as typed (for error messages).
    fn flags_given(&self) -> Vec<String> {
        let mut flags: Vec<String> = self.set.iter().map(|s| format!("--set {s}")).collect();
        let shortcut = |flag: &str, v: Option<String>| v.map(|v| format!("{flag} {v}"));
        flags.extend(
            [
                shortcut("--sampler", self.sampler.clone()),
                shortcut("--alpha", self.alpha.map(|v| v.to_string())),
                shortcut("--steps", self.steps.map(|v| v.to_string())),
                shortcut("--lr", self.lr.map(|v| v.to_string())),
                shortcut("--batch-size", self.batch_size.map(|v| v.to_string())),
                shortcut("--model", self.model.as_ref().map(|v| v.display().to_string())),
                shortcut("--out", self.out.as_ref().map(|v| format!("{:?}", v.display().to_string()))),
                shortcut("--device", self.device.clone()),
                shortcut("--seed", self.seed.map(|v| v.to_string())),
            ]
            .into_iter()
            .flatten(),
        );
        flags
    }

    /// The config file with `--set` overrides, then the shortcut flags applied as typed values
    /// (never pasted into TOML text, so any path or string arrives exactly as given).
    fn config(&self) -> anyhow::Result<TrainConfig> {
        input_file("--config", &self.config)?;
        if let Some(model) = &self.model {
            input_dir("--model", model, "a model directory")?;
        }
        let mut config = match TrainConfig::load(&self.config, &self.set) {
            Ok(config) => config,
            // The file loading alone means a `--set` (malformed, an unknown key, a wrong type) is
            // at fault: a usage error.
            Err(err) if TrainConfig::load(&self.config, &[]).is_ok() => return Err(self.flags_error(&err).into()),
            Err(err) => return Err(err.into()),
        };
        if let Some(v) = &self.sampler {
            config.sampler.kind = flag_value("--sampler", v, SamplerKind::parse(v))?;
        }
        if let Some(v) = self.alpha {
            config.sampler.alpha = v;
        }
        if let Some(v) = self.steps {
            config.schedule.steps = v;
        }
        if let Some(v) = self.lr {
            config.optim.lr = v;
        }
        if let Some(v) = self.batch_size {
            config.sampler.batch_size = v;
        }
        if let Some(v) = &self.model {
            config.model.dir = v.clone();
        }
        if let Some(v) = &self.out {
            config.output_dir = v.clone();
        }
        if let Some(v) = &self.device {
            config.model.device = v.clone();
        }
        if let Some(v) = self.seed {
            config.seed = v;
        }
        if self.tensorboard {
            config.log.tensorboard = true;
        }
        Ok(config)
    }
}

/// Runs `hybrid-ir train`.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    if let Err(err) = config.validate() {
        // The file alone being valid means the flags (--set and the shortcuts) made it invalid: a
        // usage error. Otherwise the file is at fault (exit 1), whatever the flags add.
        if TrainConfig::load(&args.config, &[]).is_ok_and(|c| c.validate().is_ok()) {
            return Err(args.flags_error(&err).into());
        }
        return Err(anyhow::Error::new(err).context(args.config.display().to_string()));
    }
    if args.dry_run {
        // Load the data and the model as a real run would (a missing corpus or a broken model
        // fails here), without writing anything.
        let checking = || format!("checking {}", args.config.display());
        hybrid_ir_train::load_corpora(&config.data).with_context(checking)?;
        let info = hybrid_ir_train::from_config::model_info(&config).with_context(checking)?;
        hybrid_ir_train::from_config::check_model_settings(&config, &info).with_context(checking)?;
        hybrid_ir_train::from_config::pipeline(&config, &info).with_context(checking)?;
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let mut config = config;
    let collective = join_ranks(args.distributed, &mut config.model.device, "model.device")?;
    let stop_flag = Some(install_ctrlc_handler()?);
    let options = RunOptions {
        resume: args.resume,
        resume_intact: args.resume_intact,
        stop_after_step: args.stop_after,
        stop_flag,
        progress: !args.no_progress,
        collective: Some(collective.clone()),
    };
    let what = format!("training run {}", config.output_dir.display());
    let summary = end_ranks_on_error(collective.as_ref(), &what, train(&config, &options)).context(what)?;
    if collective.rank() != 0 {
        return Ok(());
    }
    match summary.stop {
        StopReason::Completed => println!("finished {} steps", summary.step),
        StopReason::StopAfter | StopReason::Interrupted => println!(
            "stopped at step {} ({:?}); continue with: hybrid-ir train --config {} --resume",
            summary.step,
            summary.stop,
            summary.run_dir.join("config.toml").display()
        ),
    }
    if let Some((step, loss)) = summary.best_val {
        println!("best validation loss {loss:.4} at step {step}");
    }
    if let Some(r) = &summary.final_eval {
        let s = &r.settings;
        println!(
            "{}: mAP mono {:.4}, cross {:.4}, multi {:.4}; rank distance {:.1}",
            r.benchmark,
            s.mono.map,
            s.cross.map,
            s.multi.map,
            s.multi.rank_distance.unwrap_or(f64::NAN)
        );
    }
    println!("run card: {}", summary.run_dir.join("run.md").display());
    Ok(())
}

/// `hybrid-ir export`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLE:\n  hybrid-ir export --run runs/my-run --out exported/my-model\n\n\
    The output loads with sentence-transformers (SentenceTransformer(DIR)) and transformers\n\
    (AutoModel.from_pretrained(DIR)), with the trained prefixes, pooling and max length. It holds\n\
    a model card (README.md: base model, data, sampler, loss, hyperparameters, evaluation, usage,\n\
    citation) and, when the run was evaluated, the mAP heatmap (heatmap.svg).")]
pub struct ExportArgs {
    /// Run directory (holds config.toml and checkpoints/).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Output directory (Hugging Face + sentence-transformers layout).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Export the last checkpoint instead of the best (lowest validation loss).
    #[arg(long)]
    pub last: bool,
    /// Hugging Face id of the base model for the card's `base_model` field (e.g.
    /// intfloat/multilingual-e5-small); known for the models `cargo xtask fetch-models` provides.
    #[arg(long, value_name = "OWNER/NAME")]
    pub base_model: Option<String>,
    /// Write no model card (README.md, heatmap.svg).
    #[arg(long)]
    pub no_card: bool,
}

/// Runs `hybrid-ir export`.
pub fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    input_dir("--run", &args.run, "a run directory")?;
    let options = ExportOptions { prefer_last: args.last, base_model_id: args.base_model.clone(), no_card: args.no_card };
    export_run_with(&args.run, &args.out, &options).with_context(|| format!("exporting {}", args.run.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// `hybrid-ir reproduce`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    hybrid-ir reproduce --one-way      # the CPU budget run of the README: 9-14 min on 2 cores\n  \
    hybrid-ir reproduce                # both directions: 17-27 min (docs/results.md)\n  \
    hybrid-ir reproduce --model DIR --steps 2000 --batch-size 100 --trainable-layers 0 --device tch-cuda:0\n\n\
    Trains one model per alpha (1 = X-X-mono, 0 = X-Y, 0.5 = Hybrid) from the same start on --train,\n\
    evaluates each and the start model on --eval (and the reverse direction unless --one-way), and\n\
    prints Table-1 (mAP mono/cross/multi) and Table-2 (rank distance) style tables and the\n\
    language x language mAP matrices (also as SVG heatmaps in --out, with difference heatmaps: each\n\
    model minus the start model, Hybrid minus X-X-mono and minus X-Y). Re-running the same command\n\
    reuses or resumes finished runs.\n\n\
SEEDS AND SIGNIFICANCE:\n  \
    hybrid-ir reproduce --backbone static --one-way --steps 40 --lr 1e-2 --seeds 3 --out runs/static-seeds\n\
    --seeds N trains N models per sampler (seeds --seed, --seed+1, ...: sampler order and dropout\n\
    change, start model and validation batches do not) and adds mean, sd and a 95% t interval per\n\
    column. Every pair of samplers is compared on every headline metric with a paired randomisation\n\
    test over the evaluation queries (--resamples sign flips, bootstrap interval of the difference,\n\
    Holm over the comparisons). Cost: N times the training; evaluation grows by N models.\n\
    Measured on 2 vCPUs (Intel Xeon): the example above (9 static models + evaluation) took 43 min\n\
    with other jobs beside it (15 CPU-minutes); the transformer main job costs ~4 min per model and\n\
    seed idle, so --one-way --seeds 3 is ~40 min. The paired tests add ~1 min per direction.\n\n\
HARD NEGATIVES:\n  \
    hybrid-ir mine --model models/multilingual-e5-small --corpus mlqa-r --out runs/mlqa-r-mined.jsonl\n  \
    hybrid-ir reproduce --train runs/mlqa-r-mined.jsonl --one-way --loss paper --out runs/paper\n\
    --loss in-batch (default) trains on in-batch negatives and drops any a corpus carries;\n\
    in-batch+negatives adds each pair's hard negative to the candidates; paper is Eq. (1) of the\n\
    paper: the own positive against the batch's hard negatives only.\n\n\
DISTRIBUTED:\n  \
    mpiexec -n 2 hybrid-ir reproduce --one-way      # a build with the `mpi` feature\n\
    Every model trains over the ranks (batch --batch-size in all, split between them) and every\n\
    evaluation encoding is split by batch; rank 0 writes --out and prints the tables, the same as\n\
    one process prints for the same runs. --out must be on a file system every rank sees.")]
pub struct ReproduceArgs {
    /// Start model directory (fetch with `cargo xtask fetch-models`).
    #[arg(long, value_name = "DIR", default_value = "models/multilingual-e5-small")]
    pub model: PathBuf,
    /// Training corpus: a benchmark (mlqa-r, xquad-r) or a user corpus file (e.g. one written by
    /// `hybrid-ir mine`; needs --one-way, since the reverse direction evaluates on it).
    #[arg(long, default_value = "mlqa-r")]
    pub train: String,
    /// Evaluation benchmark.
    #[arg(long, default_value = "xquad-r")]
    pub eval: String,
    /// Only train on --train / evaluate on --eval (skip the reverse direction).
    #[arg(long)]
    pub one_way: bool,
    /// Sampler alphas, one model each (1 = X-X-mono, 0 = X-Y).
    #[arg(long, value_delimiter = ',', default_value = "1,0,0.5")]
    pub alphas: Vec<f64>,
    /// Optimizer steps per model.
    #[arg(long, default_value_t = 40)]
    pub steps: u64,
    /// Pairs per batch (paper: 100).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Train only the top N layers; 0 trains everything (ignored with --backbone static).
    #[arg(long, default_value_t = 2)]
    pub trainable_layers: usize,
    /// `transformer` (fine-tune --model) or `static` (a token-embedding table with mean pooling
    /// over --model's tokenizer, started from its word embeddings: trains in seconds).
    #[arg(long, default_value = "transformer", value_parser = parse_backbone)]
    pub backbone: BackboneChoice,
    /// Start of a static table: `model` (the word embeddings of --model) or `random`.
    #[arg(long, default_value = "model", value_parser = parse_static_init)]
    pub static_init: StaticInitChoice,
    /// Query max length in tokens.
    #[arg(long, default_value_t = 32)]
    pub query_max_len: usize,
    /// Passage max length in tokens.
    #[arg(long, default_value_t = 64)]
    pub passage_max_len: usize,
    /// Evaluate only these languages (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub eval_languages: Vec<String>,
    /// Output directory (runs, results.md, results.json).
    #[arg(long, value_name = "DIR", default_value = "runs/reproduce")]
    pub out: PathBuf,
    /// Seed (the first one with --seeds).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Training seeds per sampler (see SEEDS AND SIGNIFICANCE below).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seeds: usize,
    /// Objective: in-batch | in-batch+negatives | paper (see HARD NEGATIVES below).
    #[arg(long, default_value = "in-batch")]
    pub loss: ReproduceLoss,
    /// Sign flips of the randomisation test and bootstrap draws of its interval.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub resamples: usize,
    /// Data root (see `hybrid-ir --help`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Device: cpu | tch-cpu | tch-cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Texts per encoder batch at evaluation.
    #[arg(long, default_value_t = 64)]
    pub eval_batch_size: usize,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
    /// How the processes are joined (auto | off | mpi | nccl, as for `train`): under `mpiexec -n N`
    /// every model trains data-parallel over the N ranks and every evaluation encoding is split
    /// over them; rank 0 writes and prints the same tables as one process.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = DistributedChoice::parse)]
    pub distributed: DistributedChoice,
}

/// Runs `hybrid-ir reproduce`.
pub fn run_reproduce(args: &ReproduceArgs) -> anyhow::Result<()> {
    if !args.model.join("config.json").is_file()
        && !args.model.join(hybrid_ir_model::static_embed::STATIC_SETTINGS_FILE).is_file()
    {
        usage!("--model {} is not a model directory; run `cargo xtask fetch-models` first", args.model.display());
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        usage!("--lr {}: give a finite learning rate > 0", args.lr);
    }
    // Checked before anything is trained: a bad --eval or --eval-batch-size would otherwise stop
    // the command only after the first training run.
    flag_value("--eval", &args.eval, hybrid_ir_data::LareqaBenchmark::parse(&args.eval))?;
    if std::path::Path::new(&args.train).is_file() {
        if !args.one_way {
            usage!("--train {}: a corpus file trains one direction only; add --one-way (the reverse evaluates on --train)", args.train);
        }
    } else {
        flag_value("--train", &args.train, hybrid_ir_data::LareqaBenchmark::parse(&args.train))?;
    }
    if let Some(a) = args.alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        usage!("--alphas {a}: each alpha is a probability in [0, 1]");
    }
    for (flag, value, least) in [
        ("--steps", args.steps as usize, 1),
        ("--batch-size", args.batch_size, 2),
        ("--query-max-len", args.query_max_len, 2),
        ("--passage-max-len", args.passage_max_len, 2),
        ("--eval-batch-size", args.eval_batch_size, 1),
        ("--seeds", args.seeds, 1),
        ("--resamples", args.resamples, 1),
    ] {
        if value < least {
            usage!("{flag} {value}: give at least {least}");
        }
    }
    let mut device = args.device.clone();
    let collective = join_ranks(args.distributed, &mut device, "--device")?;
    let options = ReproduceOptions {
        model_dir: args.model.clone(),
        train: args.train.clone(),
        eval: args.eval.clone(),
        reverse: !args.one_way,
        alphas: args.alphas.clone(),
        steps: args.steps,
        batch_size: args.batch_size,
        lr: args.lr,
        trainable_layers: (args.trainable_layers > 0 && args.backbone == BackboneChoice::Transformer)
            .then_some(args.trainable_layers),
        backbone: args.backbone,
        static_init: args.static_init,
        query_max_len: args.query_max_len,
        passage_max_len: args.passage_max_len,
        eval_languages: args.eval_languages.clone(),
        out_dir: args.out.clone(),
        seed: args.seed,
        seeds: args.seeds,
        loss: args.loss,
        significance: PairedTestOptions { resamples: args.resamples, ..PairedTestOptions::default() },
        data_dir: args.data.clone(),
        device,
        eval_batch_size: args.eval_batch_size,
        progress: !args.no_progress,
    };
    let stop = Some(install_ctrlc_handler()?);
    let what = format!("reproduce into {}", args.out.display());
    let result = end_ranks_on_error(collective.as_ref(), &what, reproduce_across(&options, stop, collective.clone()));
    let (_, markdown) = result.map_err(|e| match e {
        // Every training config of `reproduce` is built from its flags.
        TrainError::ConfigInvalid { .. } => anyhow::Error::new(UsageError(format!(
            "{e}\n(set by the flags: --steps is schedule.steps, --batch-size sampler.batch_size, --lr optim.lr, \
             --trainable-layers model.trainable_layers, --query-max-len / --passage-max-len model.*_max_len)"
        ))),
        e => e.into(),
    })?;
    if collective.rank() != 0 {
        return Ok(());
    }
    println!("{markdown}");
    println!("written to {}", args.out.join("results.md").display());
    Ok(())
}
