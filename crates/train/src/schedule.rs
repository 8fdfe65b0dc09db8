//! Learning-rate schedule: linear warm-up, then linear decay (or constant). A pure function of
//! the step, so a resumed run needs nothing but the step to continue the schedule exactly.

use serde::{Deserialize, Serialize};

use crate::config::{Decay, OptimSection};

/// Warm-up + decay schedule over `total_steps` optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Total optimizer steps.
    pub total_steps: u64,
    /// Decay after warm-up.
    pub decay: Decay,
    /// Final lr / peak for linear decay.
    pub min_lr_ratio: f64,
}

impl LrSchedule {
    /// The schedule of an `[optim]` table for a run of `total_steps`.
    pub fn new(optim: &OptimSection, total_steps: u64) -> Self {
        Self {
            peak: optim.lr,
            warmup_steps: optim.warmup_steps,
            total_steps,
            decay: optim.decay,
            min_lr_ratio: optim.min_lr_ratio,
        }
    }

    /// Learning rate of optimizer step `step` (1-based: the first update is step 1).
    ///
    /// Warm-up: `peak * step / warmup` for `step <= warmup`. Linear decay: from `peak` right
    /// after warm-up to `peak * min_lr_ratio` at `total_steps` (Hugging Face's
    /// `get_linear_schedule_with_warmup` with a floor).
    pub fn lr_at(&self, step: u64) -> f64 {
        let step = step.max(1);
        if self.warmup_steps > 0 && step <= self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            Decay::Constant => self.peak,
            Decay::Linear => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let done = (step - self.warmup_steps) as f64;
                // Step warmup+1 gets (nearly) the peak, the last step the floor.
                let frac = ((done - 1.0) / (span - 1.0).max(1.0)).clamp(0.0, 1.0);
                let floor = self.peak * self.min_lr_ratio;
                self.peak - (self.peak - floor) * frac
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(warmup: u64, total: u64, decay: Decay) -> LrSchedule {
        LrSchedule { peak: 1.0, warmup_steps: warmup, total_steps: total, decay, min_lr_ratio: 0.0 }
    }

    #[test]
    fn warmup_then_linear_decay_to_zero() {
        let s = schedule(4, 14, Decay::Linear);
        let lrs: Vec<f64> = (1..=14).map(|k| s.lr_at(k)).collect();
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert_eq!(lrs[4], 1.0);
        assert_eq!(lrs[13], 0.0);
        assert!(lrs[4..].windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn constant_after_warmup_and_no_warmup() {
        let s = schedule(2, 10, Decay::Constant);
        assert_eq!(s.lr_at(1), 0.5);
        assert_eq!(s.lr_at(7), 1.0);
        let s = schedule(0, 3, Decay::Linear);
        assert_eq!([s.lr_at(1), s.lr_at(2), s.lr_at(3)], [1.0, 0.5, 0.0]);
    }
}
