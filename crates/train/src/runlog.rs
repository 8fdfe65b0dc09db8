//! What a run leaves besides checkpoints: `metrics.jsonl` (one JSON object per event), the
//! loss curve `loss.svg`, and the run card `run.md`.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

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

/// Appends events to `metrics.jsonl`, flushing each line.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    events: Vec<MetricsEvent>,
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
        Ok(Self { path, events })
    }

    /// Appends one event.
    pub fn push(&mut self, event: MetricsEvent) -> Result<()> {
        let mut file =
            OpenOptions::new().append(true).create(true).open(&self.path).map_err(|e| TrainError::io(&self.path, e))?;
        let line = serde_json::to_string(&event).expect("event serialises");
        writeln!(file, "{line}").map_err(|e| TrainError::io(&self.path, e))?;
        self.events.push(event);
        Ok(())
    }

    /// All events so far.
    pub fn events(&self) -> &[MetricsEvent] {
        &self.events
    }

    /// Writes the loss curve to `path`.
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
        crate::checkpoint::write_atomic(path, loss_svg(&train, &val).as_bytes())
    }
}

/// Exponential moving average (what the smooth training line shows).
fn ema(points: &[(f64, f64)], alpha: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len());
    let mut acc = None;
    for &(x, y) in points {
        let v = match acc {
            None => y,
            Some(a) => alpha * y + (1.0 - alpha) * a,
        };
        acc = Some(v);
        out.push((x, v));
    }
    out
}

/// A self-contained SVG: raw training loss (light), its EMA (dark), validation loss (points).
pub fn loss_svg(train: &[(f64, f64)], val: &[(f64, f64)]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 400.0, 60.0, 20.0, 30.0, 40.0);
    let all = train.iter().chain(val);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    (y0, y1) = (y0 - pad, y1 + pad);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let sy = |y: f64| top + (y1 - y) / (y1 - y0) * (h - top - bottom);
    let poly = |pts: &[(f64, f64)]| pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect::<Vec<_>>().join(" ");
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\">loss vs optimizer step (train: thin = raw, thick = EMA 0.1; val: dots)</text>\n"
    );
    for k in 0..=4 {
        let y = y0 + (y1 - y0) * k as f64 / 4.0;
        let py = sy(y);
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{:.1}\">{y:.3}</text>\n",
            w - right,
            py + 4.0
        );
        let x = x0 + (x1 - x0) * k as f64 / 4.0;
        s += &format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{x:.0}</text>\n", sx(x), h - bottom + 16.0);
    }
    if !train.is_empty() {
        s += &format!("<polyline fill=\"none\" stroke=\"#9bc\" stroke-width=\"1\" points=\"{}\"/>\n", poly(train));
        s += &format!("<polyline fill=\"none\" stroke=\"#137\" stroke-width=\"2\" points=\"{}\"/>\n", poly(&ema(train, 0.1)));
    }
    if !val.is_empty() {
        s += &format!("<polyline fill=\"none\" stroke=\"#c52\" stroke-width=\"1.5\" points=\"{}\"/>\n", poly(val));
        for &(x, y) in val {
            s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#c52\"/>\n", sx(x), sy(y));
        }
    }
    s += "</svg>\n";
    s
}

/// The project commit this binary was built from (recorded at build time by `build.rs`; no git
/// process runs in the user's directory).
pub fn git_commit() -> String {
    env!("HYBRID_IR_GIT_COMMIT").to_string()
}
