//! Which part of a training step is running, for an external profiler.
//!
//! The step code calls [`enter`] at each boundary (forward, backward, optimizer, idle); nothing
//! happens unless a program installed an observer with [`set_observer`]. The `speed op-count`
//! benchmark installs one that forwards the phase to an operator counter loaded into the
//! process, so the operators of each phase are counted the same way in PyTorch and here.

use std::sync::OnceLock;

/// A part of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPhase {
    /// Embedding and loss (in the cached step: the embedding pass without graph and the loss).
    Forward,
    /// Gradients (in the cached step: the chunk replays with graph and their backward passes).
    Backward,
    /// Gradient accumulation, norm and clipping, and the parameter update.
    Optimizer,
    /// Outside a step.
    Idle,
}

impl StepPhase {
    /// Lower-case name: "forward", "backward", "optimizer", "idle".
    pub fn name(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Backward => "backward",
            Self::Optimizer => "optimizer",
            Self::Idle => "idle",
        }
    }
}

static OBSERVER: OnceLock<fn(StepPhase)> = OnceLock::new();

/// Installs the process-wide observer; `false` if one was installed before (it stays).
pub fn set_observer(observer: fn(StepPhase)) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// Tells the observer, if any, that `phase` starts now.
pub fn enter(phase: StepPhase) {
    if let Some(observer) = OBSERVER.get() {
        observer(phase);
    }
}
