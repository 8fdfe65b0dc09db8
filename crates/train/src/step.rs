//! One optimizer step, shared by the trainer and the speed benchmarks (so what is benchmarked is
//! what trains): loss and gradients of each micro-batch (cached or plain), accumulation,
//! global-norm clipping, AdamW update.

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use hybrid_ir_loss::phase::{self, StepPhase};
use hybrid_ir_loss::{CachedLoss, ContrastiveLoss};
use hybrid_ir_model::Backbone;
use hybrid_ir_model::kernels::{AdamWBatch, GlobalNorm};

use hybrid_ir_collective::{Collective, SingleProcess};

use crate::adamw::InPlaceAdamW;
use crate::distributed::{CollectiveRows, check_same_batch, rank_pairs, sum_gradients};
use crate::config::{LossSection, OptimSection};
use crate::encode::TokenizedBatch;
use crate::error::{Result, TrainError};

/// Optimizer state plus the settings that shape a step.
pub struct StepRunner {
    /// AdamW over the encoder ([`InPlaceAdamW`]: burn's rule and state, which checkpoints save).
    pub optim: ModuleOptimizer,
    /// The LibTorch updates `optim` defers to one fused call, applied in [`StepRunner::apply`].
    adamw_batch: AdamWBatch,
    /// The loss, with its chunking.
    pub cached: CachedLoss,
    /// GradCache (`true`) or one forward with graph over the whole batch.
    pub use_cache: bool,
    /// Global gradient-norm clipping threshold.
    pub grad_clip_norm: Option<f64>,
    /// Run seed; dropout seeds derive from it, the step and the micro-batch ([`step_seed`]).
    pub seed: u64,
    /// The ranks this step is split over ([`SingleProcess`] unless set with
    /// [`StepRunner::with_collective`]).
    collective: Arc<dyn Collective>,
}

/// How the loss of one batch is computed: the `[loss]` settings that are not the loss itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepSettings {
    /// Rows embedded at a time in the cached step.
    pub chunk_size: usize,
    /// GradCache (`true`) or one forward with graph over the whole batch.
    pub cached: bool,
    /// Chunk each role's rows longest first.
    pub sort_by_length: bool,
}

impl Default for StepSettings {
    fn default() -> Self {
        Self::from(&LossSection::default())
    }
}

impl From<&LossSection> for StepSettings {
    fn from(l: &LossSection) -> Self {
        Self { chunk_size: l.chunk_size, cached: l.cached, sort_by_length: l.sort_by_length }
    }
}

/// Gradients of one optimizer step, before the update.
pub struct StepGradients {
    /// Averaged over the micro-batches, clipped.
    pub grads: GradientsParams,
    /// Loss of each micro-batch.
    pub losses: Vec<f64>,
    /// Global L2 norm before clipping.
    pub norm: f64,
}

impl StepRunner {
    /// AdamW as `optim` says around `loss`, chunked and cached as `step` says; dropout seeds
    /// derive from `seed`.
    pub fn new(optim: &OptimSection, loss: Box<dyn ContrastiveLoss>, step: &StepSettings, seed: u64) -> Result<Self> {
        let (adamw, adamw_batch) =
            InPlaceAdamW::new(optim.beta1 as f32, optim.beta2 as f32, optim.eps as f32, optim.weight_decay as f32).deferring();
        Ok(Self {
            optim: ModuleOptimizer::from(adamw),
            adamw_batch,
            cached: CachedLoss::new(loss, step.chunk_size)?,
            use_cache: step.cached,
            grad_clip_norm: optim.grad_clip_norm,
            seed,
            collective: Arc::new(SingleProcess),
        })
    }

    /// Splits every batch over the ranks of `collective`: each rank embeds its slice, the loss
    /// is the global batch's on every rank and the gradients are summed over the ranks, so the
    /// update equals the one-process update on the whole batch (docs/distributed.md).
    pub fn with_collective(mut self, collective: Arc<dyn Collective>) -> Result<Self> {
        if !collective.is_identity() && !self.use_cache {
            return Err(TrainError::Other(format!(
                "loss.cached = false cannot be split over {} ranks: the ranks join their embeddings in the cached step; \
                 set loss.cached = true (same loss and gradients)",
                collective.world_size()
            )));
        }
        self.collective = collective;
        Ok(self)
    }

    /// The ranks this runner splits its batches over.
    pub fn collective(&self) -> &dyn Collective {
        self.collective.as_ref()
    }

    /// Loss and averaged, clipped gradients of optimizer step `step` over `batches` (one per
    /// micro-batch). Non-finite losses or norms are returned, not checked: the caller decides.
    pub fn gradients<B: Backbone>(&self, model: &B, step: u64, batches: &[TokenizedBatch]) -> Result<StepGradients> {
        let mut acc = GradientsAccumulator::<B>::new();
        let mut losses = Vec::with_capacity(batches.len());
        for (micro, tokens) in batches.iter().enumerate() {
            phase::enter(StepPhase::Forward);
            let seed = step_seed(self.seed, step, micro);
            let out = if !self.collective.is_identity() {
                check_same_batch(self.collective.as_ref(), tokens, step)?;
                let local = tokens.shard(rank_pairs(self.collective.as_ref(), tokens.len())?);
                let exchange = CollectiveRows::new(self.collective.as_ref(), tokens);
                self.cached.step_across(model, &local, Some(&tokens.group_keys), seed, &exchange)?
            } else if self.use_cache {
                self.cached.step(model, tokens, Some(&tokens.group_keys), seed)?
            } else {
                self.cached.uncached_step(model, tokens, Some(&tokens.group_keys), seed)?
            };
            losses.push(out.loss);
            phase::enter(StepPhase::Optimizer);
            acc.accumulate(model, out.grads);
        }
        let mut grads = acc.grads();
        sum_gradients(model, &mut grads, self.collective.as_ref())?;
        if batches.len() > 1 {
            scale_grads(model, &mut grads, 1.0 / batches.len() as f64);
        }
        let norm = grad_norm(model, &grads)?;
        if let Some(max) = self.grad_clip_norm
            && max > 0.0
            && norm.is_finite()
            && norm > max
        {
            scale_grads(model, &mut grads, max / (norm + 1e-6));
        }
        Ok(StepGradients { grads, losses, norm })
    }

    /// Applies the update with learning rate `lr`.
    pub fn apply<B: Backbone>(&mut self, model: B, grads: GradientsParams, lr: f64) -> Result<B> {
        phase::enter(StepPhase::Optimizer);
        let model = self.optim.step(lr, model, grads);
        self.adamw_batch.apply().map_err(TrainError::Optimizer)?;
        phase::enter(StepPhase::Idle);
        Ok(model)
    }
}

/// Dropout seed of micro-batch `micro` of optimizer step `step` (SplitMix64 of the three).
pub fn step_seed(seed: u64, step: u64, micro: usize) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (micro as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// L2 norm of all gradients of `model`'s parameters, read back once (one sync instead of one per
/// parameter: ~200 on e5, costly on CUDA); on LibTorch one multi-tensor norm ([`GlobalNorm`]).
fn grad_norm<M: Module>(model: &M, grads: &GradientsParams) -> Result<f64> {
    struct Norm<'a>(&'a GradientsParams, GlobalNorm);
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1.add(&g);
            }
        }
    }
    let mut v = Norm(grads, GlobalNorm::default());
    model.visit(&mut v);
    v.1.total().map_err(TrainError::Optimizer)
}

/// Multiplies every gradient by `factor`.
fn scale_grads<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a>(&'a mut GradientsParams, f64);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(param.id) {
                self.0.register::<D>(param.id, g.mul_scalar(self.1));
            }
        }
    }
    model.visit(&mut Scale(grads, factor));
}
