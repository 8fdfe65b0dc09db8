//! GradCache-style cached contrastive step (Gao et al. 2021, "Scaling Deep Contrastive Learning
//! Batch Size under Memory Limited Setup"): the same loss and the same parameter gradients as one
//! big forward/backward, with activation memory bounded by one chunk.
//!
//! Steps, for a model on an autodiff device:
//! 1. For every chunk of every role, seed the backend RNG with [`chunk_seed`], run the forward
//!    with a `no_grad()` copy of the model (dropout stays active, no graph is recorded) and keep
//!    only the embeddings.
//! 2. Concatenate the embeddings, mark them `require_grad`, compute the loss, backward, and read
//!    `∂L/∂embeddings` (this graph is only `O(B²)` logits).
//! 3. For every chunk, re-seed with the *same* seed (so dropout draws the same masks), re-run the
//!    forward with graph, backprop the surrogate `Σ (emb ⊙ stopgrad(∂L/∂emb))` and accumulate the
//!    parameter gradients. By the chain rule the sum over chunks equals the full gradient.
//!
//! Replaying dropout matters: without it step 3 differentiates a different network than the one
//! that produced the loss (sentence-transformers' `CachedMultipleNegativesRankingLoss` first
//! shipped without RNG-state replay and so gave silently wrong gradients with dropout on).
//!
//! **Chunk order.** An encoder may ask for its rows to be chunked in another order
//! ([`ChunkedEncoder::chunk_order`]), e.g. sorted by length so each chunk pads only to similar
//! lengths. Embeddings are put back in batch order before the loss and gradients are taken back
//! to chunk order for the replay, so the loss and gradients are those of the batch as given.
//!
//! **Across processes** ([`CachedLoss::step_across`]): each process holds a contiguous slice of
//! the global batch. Step 1 embeds only the local rows; a [`RowExchange`] gathers every
//! process's rows (in process order = batch order) before step 2, so every process computes the
//! *global* loss and its gradient with respect to *all* embeddings; it keeps the gradient of its
//! own rows for step 3. The parameter gradients of the processes then add up (an all-reduce
//! *sum*, done by the caller) to the gradient of the global loss: no process differentiates a
//! local loss, so no world-size factor enters (see docs/distributed.md).
//!
//! **RNG caveat.** burn's `Device::seed` is process-global on Flex (and LibTorch). Another thread
//! drawing random numbers from the same backend during a step would shift the dropout masks.

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::LossError;
use crate::losses::{ContrastiveBatch, ContrastiveLoss};

/// Which embedding tensor of a contrastive batch a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddingRole {
    /// Query rows `[B, D]`.
    Query,
    /// Positive passage rows `[B, D]`.
    Positive,
    /// Hard negative rows `[B * k, D]` (query-major).
    Negative,
}

impl EmbeddingRole {
    /// All roles in the fixed processing order (which also fixes the seed order).
    pub const ALL: [EmbeddingRole; 3] = [Self::Query, Self::Positive, Self::Negative];

    /// Lower-case name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Query => "queries",
            Self::Positive => "positives",
            Self::Negative => "negatives",
        }
    }

    fn index(self) -> u64 {
        match self {
            Self::Query => 0,
            Self::Positive => 1,
            Self::Negative => 2,
        }
    }
}

/// What the cached step needs from the caller: embed an arbitrary row range of one role.
///
/// The implementation owns the (tokenised) inputs of one batch; the model is passed in so that the
/// wrapper can run it once without graph (a `no_grad()` copy) and once with graph.
/// `embed` must be a pure function of the model, the rows and the backend RNG state (dropout).
pub trait ChunkedEncoder<M: Module> {
    /// Rows of `role` in this batch (0 for [`EmbeddingRole::Negative`] when there are none).
    fn rows(&self, role: EmbeddingRole) -> usize;
    /// Embeds the rows at positions `rows` of the chunk order of `role` (batch rows
    /// `chunk_order[rows]`, or `rows` itself without one) with `model`, giving `[rows.len(), D]`
    /// on the model's device.
    fn embed(&self, model: &M, role: EmbeddingRole, rows: Range<usize>) -> Tensor<2>;
    /// The order in which rows of `role` are chunked: a permutation of `0..rows(role)`, or `None`
    /// for batch order. Sorting rows by length makes each chunk pad only to similar lengths
    /// (fewer wasted FLOPs); the loss and gradients do not depend on it.
    fn chunk_order(&self, role: EmbeddingRole) -> Option<&[usize]> {
        let _ = role;
        None
    }
}

/// How the rows of one role on this process join the rows of the other processes before the loss.
///
/// [`LocalRows`] is the single-process case; the train crate implements it over a
/// `hybrid_ir_collective::Collective` (an all-gather).
pub trait RowExchange {
    /// Every process's rows of `role` concatenated in process order (= batch order), on the
    /// device of `local`, and the range this process's rows occupy in the result.
    fn gather(&self, role: EmbeddingRole, local: Tensor<2>) -> Result<(Tensor<2>, Range<usize>), LossError>;
    /// Global index of this process's first chunk of `role`, for the dropout seeds: the number
    /// of chunks the processes before it cut from their rows. Chunk ids are then unique over
    /// the processes, and when every slice is whole chunks each row gets the dropout mask it
    /// gets in one process.
    fn first_chunk(&self, role: EmbeddingRole, chunk_size: usize) -> usize {
        let _ = (role, chunk_size);
        0
    }
}

/// One process: its rows are all the rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalRows;

impl RowExchange for LocalRows {
    fn gather(&self, _role: EmbeddingRole, local: Tensor<2>) -> Result<(Tensor<2>, Range<usize>), LossError> {
        let rows = local.dims()[0];
        Ok((local, 0..rows))
    }
}

/// Dropout seed for chunk `chunk` of `role` in the step seeded with `step_seed` (SplitMix64 mix).
/// Public so that reference computations can replay exactly the same dropout masks.
pub fn chunk_seed(step_seed: u64, role: EmbeddingRole, chunk: usize) -> u64 {
    let mut z = step_seed
        ^ role.index().wrapping_mul(0xA076_1D64_78BD_642F)
        ^ (chunk as u64).wrapping_mul(0xE703_7ED1_A0B4_28DB);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Result of one training step's loss + gradient computation.
#[derive(Debug)]
pub struct LossStep {
    /// Loss value of the batch.
    pub loss: f64,
    /// Parameter gradients, ready for `optimizer.step(lr, model, grads)`.
    pub grads: GradientsParams,
}

/// Wraps a [`ContrastiveLoss`] and computes it chunk by chunk with bounded activation memory.
#[derive(Debug)]
pub struct CachedLoss {
    loss: Box<dyn ContrastiveLoss>,
    chunk_size: usize,
}

impl CachedLoss {
    /// `chunk_size` rows are embedded at a time (per role).
    pub fn new(loss: Box<dyn ContrastiveLoss>, chunk_size: usize) -> Result<Self, LossError> {
        if chunk_size == 0 {
            return Err(LossError::ChunkSize);
        }
        Ok(Self { loss, chunk_size })
    }

    /// The wrapped loss.
    pub fn loss(&self) -> &dyn ContrastiveLoss {
        self.loss.as_ref()
    }

    /// Rows per chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Cached step: same loss and gradients as [`CachedLoss::uncached_step`], activation memory
    /// of one chunk. `step_seed` selects the dropout masks (use a different one per step).
    pub fn step<M, E>(
        &self,
        model: &M,
        encoder: &E,
        group_keys: Option<&[u64]>,
        step_seed: u64,
    ) -> Result<LossStep, LossError>
    where
        M: Module,
        E: ChunkedEncoder<M>,
    {
        self.step_across(model, encoder, group_keys, step_seed, &LocalRows)
    }

    /// The cached step with `encoder` holding this process's slice of the batch and `exchange`
    /// joining the slices (see the module docs). `group_keys` are those of the whole batch. The
    /// loss is the global one, equal on every process; the gradients are this process's share:
    /// their sum over the processes is the gradient of the global loss.
    pub fn step_across<M, E>(
        &self,
        model: &M,
        encoder: &E,
        group_keys: Option<&[u64]>,
        step_seed: u64,
        exchange: &dyn RowExchange,
    ) -> Result<LossStep, LossError>
    where
        M: Module,
        E: ChunkedEncoder<M>,
    {
        let device = seed_device(model)?;
        let first_chunk = |role| exchange.first_chunk(role, self.chunk_size);

        // (1) Embeddings without graph; dropout still active because the device is autodiff.
        let frozen = model.clone().no_grad();
        let mut cache: Vec<Option<(Tensor<2>, Range<usize>)>> = Vec::with_capacity(3);
        for role in EmbeddingRole::ALL {
            let chunks = self.embed_role(&frozen, encoder, role, step_seed, first_chunk(role), &device)?;
            let in_chunk_order = chunks.map(|c| Tensor::cat(c.into_iter().map(Tensor::detach).collect(), 0));
            let local = in_chunk_order.map(|t| to_batch_order(t, encoder.chunk_order(role)));
            cache.push(local.map(|t| exchange.gather(role, t)).transpose()?);
        }
        drop(frozen);

        // (2) Loss on leaf embeddings of the whole batch, and its gradient w.r.t. them.
        let local_rows: Vec<Option<Range<usize>>> = cache.iter().map(|c| c.as_ref().map(|(_, r)| r.clone())).collect();
        let leaves: Vec<Option<Tensor<2>>> = cache.into_iter().map(|t| t.map(|(t, _)| t.require_grad())).collect();
        let [queries, positives, negatives] = <[_; 3]>::try_from(leaves).expect("three roles");
        let (queries, positives) = (queries.expect("queries"), positives.expect("positives"));
        let batch = ContrastiveBatch { queries: queries.clone(), positives: positives.clone(), negatives: negatives.clone(), group_keys };
        let loss = self.loss.forward(batch)?;
        crate::phase::enter(crate::phase::StepPhase::Backward);
        let emb_grads = loss.backward();
        let grad_of = |t: &Tensor<2>| t.grad(&emb_grads);
        let role_grads = [grad_of(&queries), grad_of(&positives), negatives.as_ref().and_then(grad_of)];
        drop((queries, positives, negatives));

        // (3) Replay each local chunk with graph and push its embedding gradient into the parameters.
        let mut accumulator = GradientsAccumulator::<M>::new();
        for ((role, grad), local) in EmbeddingRole::ALL.into_iter().zip(role_grads).zip(local_rows) {
            let (Some(grad), Some(local)) = (grad, local) else { continue };
            let grad = to_chunk_order(grad.slice(local), encoder.chunk_order(role));
            for (chunk, rows) in chunk_ranges(encoder.rows(role), self.chunk_size).enumerate() {
                device.seed(chunk_seed(step_seed, role, first_chunk(role) + chunk));
                let emb = encoder.embed(model, role, rows.clone());
                let upstream = grad.clone().slice(rows).autodiff();
                let surrogate = (emb * upstream).sum();
                let grads = GradientsParams::from_grads(surrogate.backward(), model);
                accumulator.accumulate(model, grads);
            }
        }
        // Read back last: a read is a sync on a GPU, and mid-step it would idle the device
        // while the host queues the rest of the step.
        Ok(LossStep { loss: scalar(&loss), grads: accumulator.grads() })
    }

    /// Reference without caching: same per-chunk dropout seeds, every chunk forwarded with graph,
    /// one loss and one backward. Memory grows with the batch; use it to check [`CachedLoss::step`]
    /// or when the batch fits anyway.
    pub fn uncached_step<M, E>(
        &self,
        model: &M,
        encoder: &E,
        group_keys: Option<&[u64]>,
        step_seed: u64,
    ) -> Result<LossStep, LossError>
    where
        M: Module,
        E: ChunkedEncoder<M>,
    {
        let device = seed_device(model)?;
        let mut full: Vec<Option<Tensor<2>>> = Vec::with_capacity(3);
        for role in EmbeddingRole::ALL {
            let chunks = self.embed_role(model, encoder, role, step_seed, 0, &device)?;
            full.push(chunks.map(|c| to_batch_order(Tensor::cat(c, 0), encoder.chunk_order(role))));
        }
        let [queries, positives, negatives] = <[_; 3]>::try_from(full).expect("three roles");
        let batch = ContrastiveBatch {
            queries: queries.expect("queries"),
            positives: positives.expect("positives"),
            negatives,
            group_keys,
        };
        let loss = self.loss.forward(batch)?;
        crate::phase::enter(crate::phase::StepPhase::Backward);
        let grads = GradientsParams::from_grads(loss.backward(), model);
        // Read back after the backward is queued (see `step`).
        Ok(LossStep { loss: scalar(&loss), grads })
    }

    /// Loss of a batch without gradients (validation): embeds chunk by chunk in the encoder's
    /// chunk order, puts the rows back in batch order and applies the loss. Use a model on a
    /// plain (non-autodiff) device, e.g. `model.valid()`, so no graph is recorded and dropout is off.
    pub fn evaluate<M, E>(&self, model: &M, encoder: &E, group_keys: Option<&[u64]>) -> Result<f64, LossError>
    where
        M: Module,
        E: ChunkedEncoder<M>,
    {
        let embed = |role: EmbeddingRole| -> Option<Tensor<2>> {
            let rows = encoder.rows(role);
            (rows > 0).then(|| {
                let parts = chunk_ranges(rows, self.chunk_size).map(|r| encoder.embed(model, role, r)).collect();
                to_batch_order(Tensor::cat(parts, 0), encoder.chunk_order(role))
            })
        };
        let queries = embed(EmbeddingRole::Query).ok_or(LossError::EmptyBatch)?;
        let positives = embed(EmbeddingRole::Positive).ok_or(LossError::EmptyBatch)?;
        let negatives = embed(EmbeddingRole::Negative);
        let loss = self.loss.forward(ContrastiveBatch { queries, positives, negatives, group_keys })?;
        Ok(scalar(&loss))
    }

    /// Embeds all chunks of `role` (each after seeding); `None` when the role has no rows.
    fn embed_role<M: Module, E: ChunkedEncoder<M>>(
        &self,
        model: &M,
        encoder: &E,
        role: EmbeddingRole,
        step_seed: u64,
        first_chunk: usize,
        device: &Device,
    ) -> Result<Option<Vec<Tensor<2>>>, LossError> {
        let total = encoder.rows(role);
        if total == 0 {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(total.div_ceil(self.chunk_size));
        let mut dim = 0;
        for (chunk, rows) in chunk_ranges(total, self.chunk_size).enumerate() {
            device.seed(chunk_seed(step_seed, role, first_chunk + chunk));
            let emb = encoder.embed(model, role, rows.clone());
            let [r, d] = emb.dims();
            if chunk == 0 {
                dim = d;
            }
            if r != rows.len() || d != dim {
                return Err(LossError::ChunkShape { role: role.name(), chunk, actual: vec![r, d], rows: rows.len(), dim });
            }
            if !emb.is_autodiff() {
                return Err(LossError::NotAutodiff { role: role.name(), chunk });
            }
            out.push(emb);
        }
        Ok(Some(out))
    }
}

/// `0..total` split into consecutive ranges of at most `chunk` rows.
pub fn chunk_ranges(total: usize, chunk: usize) -> impl Iterator<Item = Range<usize>> {
    (0..total).step_by(chunk.max(1)).map(move |start| start..(start + chunk).min(total))
}

/// Rows of `t` (in chunk order) put back in batch order: row `order[k]` of the result is row `k`.
fn to_batch_order(t: Tensor<2>, order: Option<&[usize]>) -> Tensor<2> {
    let Some(order) = order else { return t };
    let mut inverse = vec![0i64; order.len()];
    for (position, &row) in order.iter().enumerate() {
        inverse[row] = position as i64;
    }
    gather_rows(t, inverse)
}

/// Rows of `t` (in batch order) taken to chunk order: row `k` of the result is row `order[k]`.
fn to_chunk_order(t: Tensor<2>, order: Option<&[usize]>) -> Tensor<2> {
    let Some(order) = order else { return t };
    gather_rows(t, order.iter().map(|&r| r as i64).collect())
}

fn gather_rows(t: Tensor<2>, rows: Vec<i64>) -> Tensor<2> {
    let n = rows.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &t.device());
    t.select(0, index)
}

/// Forces lazy parameters to materialise (their random init would otherwise consume the seeded
/// RNG inside the first chunk and shift its dropout masks) and returns a device to seed.
fn seed_device<M: Module>(model: &M) -> Result<Device, LossError> {
    struct Materialise(Option<Device>);
    impl ModuleVisitor for Materialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            self.0.get_or_insert_with(|| value.device());
        }
    }
    let mut visitor = Materialise(None);
    model.visit(&mut visitor);
    visitor.0.ok_or(LossError::NoDevice)
}

fn scalar(loss: &Tensor<1>) -> f64 {
    loss.clone().into_scalar::<f64>()
}
