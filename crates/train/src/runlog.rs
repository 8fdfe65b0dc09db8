//! What a run leaves besides checkpoints: `metrics.jsonl` (one JSON object per event), the
//! loss curve `loss.svg` (drawn by the metrics crate's [`hybrid_ir_metrics::plot`]), and the run
//! card `run.md`.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use hybrid_ir_metrics::plot::{LossCurves, Plot};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::tensorboard::EventWriter;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricsEvent {
    /// One optimizer step.
    Train {
        /// Optimizer step (1-based).
        step: u64,
        /// Mean loss over the step's micro-batches.
        loss: f64,
        /// Learning rate used.
        lr: f64,
        /// Global gradient norm before clipping.
        grad_norm: f64,
        /// Sampler label(s) of the step's batches (`mono`, `cross`, …).
        batch_kind: String,
        /// Training pairs per second over this step.
        examples_per_s: f64,
    },
    /// Validation loss on the fixed held-out batches.
    Val {
        /// Optimizer step.
        step: u64,
        /// Mean loss over the validation batches.
        loss: f64,
        /// Whether this is the best so far (the `best` checkpoint moved here).
        best: bool,
    },
    /// Retrieval evaluation (macro mAP and rank distance).
    Eval {
        /// Optimizer step.
        step: u64,
        /// Benchmark name.
        benchmark: String,
        /// Monolingual mAP.
        map_mono: f64,
        /// Cross-lingual mAP.
        map_cross: f64,
        /// Multilingual mAP.
        map_multi: f64,
        /// Mean rank distance in the multilingual setting.
        rank_distance: Option<f64>,
    },
}

impl MetricsEvent {
    /// Step of the event.
    pub fn step(&self) -> u64 {
        match self {
            Self::Train { step, .. } | Self::Val { step, .. } | Self::Eval { step, .. } => *step,
        }
    }
}

impl MetricsEvent {
    /// The event's numbers as TensorBoard scalars `(tag, value)`: `train/loss`, `train/lr`,
    /// `train/grad_norm`, `train/examples_per_s`; `val/loss`; `eval/<benchmark>/map_mono`,
    /// `map_cross`, `map_multi`, `rank_distance`.
    pub fn scalars(&self) -> Vec<(String, f64)> {
        match self {
            Self::Train { loss, lr, grad_norm, examples_per_s, .. } => vec![
                ("train/loss".into(), *loss),
                ("train/lr".into(), *lr),
                ("train/grad_norm".into(), *grad_norm),
                ("train/examples_per_s".into(), *examples_per_s),
            ],
            Self::Val { loss, .. } => vec![("val/loss".into(), *loss)],
            Self::Eval { benchmark, map_mono, map_cross, map_multi, rank_distance, .. } => {
                let mut v = vec![
                    (format!("eval/{benchmark}/map_mono"), *map_mono),
                    (format!("eval/{benchmark}/map_cross"), *map_cross),
                    (format!("eval/{benchmark}/map_multi"), *map_multi),
                ];
                v.extend(rank_distance.map(|r| (format!("eval/{benchmark}/rank_distance"), r)));
                v
            }
        }
    }
}

/// Appends events to `metrics.jsonl`, flushing each line, and, once
/// [`enable_tensorboard`](Self::enable_tensorboard) was called, to a TensorBoard event file.
#[derive(Debug)]
pub struct MetricsLog {
    /// `None`: kept in memory only (the ranks of a distributed run other than rank 0).
    path: Option<PathBuf>,
    events: Vec<MetricsEvent>,
    tensorboard: Option<EventWriter>,
}

impl MetricsLog {
    /// Opens `run_dir/metrics.jsonl`, keeping only events up to `keep_until_step` (a resumed
    /// run drops what an interrupted run logged after its last checkpoint; a fresh run passes
    /// `None` and starts an empty log).
    pub fn open(run_dir: &Path, keep_until_step: Option<u64>) -> Result<Self> {
        let path = run_dir.join("metrics.jsonl");
        let mut events = Vec::new();
        if let Some(keep_until_step) = keep_until_step
            && path.exists()
        {
            let file = std::fs::File::open(&path).map_err(|e| TrainError::io(&path, e))?;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| TrainError::io(&path, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                let event: MetricsEvent =
                    serde_json::from_str(&line).map_err(|e| TrainError::Other(format!("{}:{}: {e}", path.display(), i + 1)))?;
                if event.step() <= keep_until_step {
                    events.push(event);
                }
            }
        }
        let mut text = String::new();
        for e in &events {
            text.push_str(&serde_json::to_string(e).expect("event serialises"));
            text.push('\n');
        }
        crate::checkpoint::write_atomic(&path, text.as_bytes())?;
        Ok(Self { path: Some(path), events, tensorboard: None })
    }

    /// A log that writes no file (a distributed run's ranks other than rank 0 log nothing).
    pub fn in_memory() -> Self {
        Self { path: None, events: Vec::new(), tensorboard: None }
    }

    /// From now on also writes every event's [`MetricsEvent::scalars`] to a new TensorBoard event
    /// file in `<run dir>/tensorboard/` and returns its path. Each invocation (a resumed run
    /// too) starts its own file; TensorBoard reads the directory's files, in name (time) order,
    /// as one run.
    pub fn enable_tensorboard(&mut self) -> Result<PathBuf> {
        let Some(path) = &self.path else {
            return Err(TrainError::Other("an in-memory metrics log cannot write TensorBoard files".into()));
        };
        let dir = path.parent().unwrap_or(Path::new(".")).join("tensorboard");
        let writer = EventWriter::create(&dir)?;
        let path = writer.path().to_path_buf();
        self.tensorboard = Some(writer);
        Ok(path)
    }

    /// Appends one event.
    pub fn push(&mut self, event: MetricsEvent) -> Result<()> {
        if let Some(path) = &self.path {
            let mut file = OpenOptions::new().append(true).create(true).open(path).map_err(|e| TrainError::io(path, e))?;
            let line = serde_json::to_string(&event).expect("event serialises");
            writeln!(file, "{line}").map_err(|e| TrainError::io(path, e))?;
        }
        if let Some(tb) = &mut self.tensorboard {
            tb.scalars(event.step(), &event.scalars())?;
        }
        self.events.push(event);
        Ok(())
    }

    /// All events so far.
    pub fn events(&self) -> &[MetricsEvent] {
        &self.events
    }

    /// Writes the loss curve to `path`: PNG if it ends in `.png`, else SVG.
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        let train: Vec<(f64, f64)> = self
            .events
            .iter()
            .filter_map(|e| match e {
                MetricsEvent::Train { step, loss, .. } => Some((*step as f64, *loss)),
                _ => None,
            })
            .collect();
        let val: Vec<(f64, f64)> = self
            .events
            .iter()
            .filter_map(|e| match e {
                MetricsEvent::Val { step, loss, .. } => Some((*step as f64, *loss)),
                _ => None,
            })
            .collect();
        let png = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let bytes = if png { loss_png(&train, &val) } else { loss_svg(&train, &val).into_bytes() };
        crate::checkpoint::write_atomic(path, &bytes)
    }
}

/// The loss curve as SVG: raw training loss, its bias-corrected moving average
/// ([`hybrid_ir_metrics::plot::smooth_debiased`]) and validation loss against the step, with
/// axis titles, round ticks and a legend ([`hybrid_ir_metrics::plot::LossCurves`]).
pub fn loss_svg(train: &[(f64, f64)], val: &[(f64, f64)]) -> String {
    LossCurves::new(train, val).svg()
}

/// The same loss curve as PNG.
pub fn loss_png(train: &[(f64, f64)], val: &[(f64, f64)]) -> Vec<u8> {
    LossCurves::new(train, val).png()
}

/// The project commit this binary was built from (recorded at build time by `build.rs`; no git
/// process runs in the user's directory).
pub fn git_commit() -> String {
    env!("HYBRID_IR_GIT_COMMIT").to_string()
}
