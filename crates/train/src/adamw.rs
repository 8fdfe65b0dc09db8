//! The AdamW the trainer uses: burn's update rule and burn's state type ([`AdamWState`], so a
//! checkpoint's optimizer file is exactly what burn's `AdamW` writes and reads), with the update
//! itself run in place, per tensor ([`hybrid_ir_model::kernels::adamw_in_place`]) or, made with
//! [`InPlaceAdamW::deferring`] (as the trainer's step does), on LibTorch devices as one fused
//! multi-tensor update per step ([`AdamWBatch`], which the caller applies after burn's module
//! walk).
//!
//! Why: burn's AdamW builds each step out of whole-tensor ops that allocate ~6 new tensors the
//! size of the parameter; on e5's 96M-value embedding matrix that is ~2 GB of fresh memory per
//! step, most of the optimizer's time on a CPU. PyTorch's AdamW updates in place, and on a GPU
//! its multi-tensor form launches a handful of kernels per step instead of ~9 per tensor. With
//! the fused kernels switched off this is burn's `AdamW`, unchanged.

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};
use hybrid_ir_model::kernels::{AdamWBatch, AdamWUpdate, adamw_in_place, adamw_in_place_applies};

/// AdamW with PyTorch's defaults where the caller sets nothing (betas 0.9 / 0.999).
#[derive(Clone)]
pub struct InPlaceAdamW {
    burn: AdamW,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// Where LibTorch updates are queued instead of run, when made by [`InPlaceAdamW::deferring`].
    batch: Option<AdamWBatch>,
}

impl InPlaceAdamW {
    /// The optimizer for these hyper-parameters (no AMSGrad, no cautious weight decay).
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        let burn = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self { burn, beta_1, beta_2, epsilon, weight_decay, batch: None }
    }

    /// This optimizer with its LibTorch updates queued, and the queue: call
    /// [`AdamWBatch::apply`] after every `ModuleOptimizer::step`, before the parameters are read
    /// (until then they hold their old values). One fused operator per step instead of ~9 per
    /// parameter tensor. Flex updates still run at once.
    pub fn deferring(mut self) -> (Self, AdamWBatch) {
        let batch = AdamWBatch::default();
        self.batch = Some(batch.clone());
        (self, batch)
    }
}

impl Optimizer for InPlaceAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        let applies = |test: &dyn Fn(&[&Tensor<D>]) -> bool| match &state {
            Some(s) => {
                s.momentum.max_moment_2.is_none() && test(&[&tensor, &grad, &s.momentum.moment_1, &s.momentum.moment_2])
            }
            None => test(&[&tensor, &grad]),
        };
        let deferred = self.batch.as_ref().is_some_and(|b| applies(&|t| b.accepts(t)));
        if !deferred && !applies(&|t| adamw_in_place_applies(t)) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        let moments = state.map(|s| (s.momentum.moment_1, s.momentum.moment_2));
        let update = AdamWUpdate {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time,
        };
        let (tensor, moment_1, moment_2) = if let Some(batch) = self.batch.as_ref().filter(|_| deferred) {
            batch.defer(tensor, grad, moments, &update)
        } else {
            adamw_in_place(tensor, grad, moments, &update)
        };
        (tensor, Some(AdamWState::new(AdaptiveMomentumState::new(time, moment_1, moment_2))))
    }

    fn to_device<const D: usize>(state: AdamWState<D>, device: &Device) -> AdamWState<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}
