//! The data-parallel part of a step: which rows of the global batch this rank embeds, how the
//! ranks' embeddings meet before the loss, and how their parameter gradients are summed.
//! Semantics and sources: docs/distributed.md.
//!
//! Everything goes through a [`Collective`] on host buffers, so any burn backend trains on any
//! number of ranks; with [`hybrid_ir_collective::SingleProcess`] every function here is the
//! identity and a one-process run takes the same path.

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use hybrid_ir_collective::{Collective, shard_range};
use hybrid_ir_loss::{EmbeddingRole, LossError, RowExchange};

use crate::encode::TokenizedBatch;
use crate::error::{Result, TrainError};
use crate::step::step_seed;

/// A 2-D gradient with at least this many rows is summed as its non-zero rows only: a word
/// embedding matrix (250k rows for the XLM-R vocabulary) is touched by a few thousand tokens per
/// step, and a dense all-reduce of its ~96M values would dominate the step's traffic.
pub const ROW_SPARSE_MIN_ROWS: usize = 16_384;

/// This rank's contiguous slice of a global batch of `pairs` pairs.
pub fn rank_pairs(collective: &dyn Collective, pairs: usize) -> Result<Range<usize>> {
    let world = collective.world_size();
    if pairs < world {
        return Err(TrainError::Other(format!(
            "a batch of {pairs} pairs cannot be split over {world} ranks (each needs at least one pair): raise \
             sampler.batch_size or use fewer ranks"
        )));
    }
    Ok(shard_range(pairs, collective.rank(), world))
}

/// Errors unless every rank holds the same global batch at optimizer step `step`. The ranks
/// draw it from samplers with the same seed; a sampler that is not a function of its seed and
/// state alone (seeded from the clock, say) would give each rank its own batch and train on a
/// silent mix of slices from different batches.
pub fn check_same_batch(collective: &dyn Collective, batch: &TokenizedBatch, step: u64) -> Result<()> {
    let mut h = mix(0, batch.len() as u64);
    for rows in [&batch.queries, &batch.positives, &batch.negatives] {
        for row in rows {
            h = row.iter().fold(mix(h, row.len() as u64), |h, &t| mix(h, u64::from(t)));
        }
    }
    h = batch.group_keys.iter().fold(h, |h, &k| mix(h, k));
    let (all, _) = collective.all_gather_u64(&[h])?;
    match all.iter().position(|&other| other != h) {
        None => Ok(()),
        Some(rank) => Err(TrainError::Collective(hybrid_ir_collective::CollectiveError::Mismatch(format!(
            "step {step}: rank {rank} holds another global batch than rank {}: every rank must draw the same batches \
             from the same sampler seed (is the sampler seeded from anything but its config?)",
            collective.rank()
        )))),
    }
}

/// [`RowExchange`] over a [`Collective`]: an all-gather of the ranks' embedding rows.
pub struct CollectiveRows<'a> {
    collective: &'a dyn Collective,
    /// Pairs of the global batch.
    pairs: usize,
    /// Hard negatives per pair (0 without).
    negatives_per_pair: usize,
}

impl<'a> CollectiveRows<'a> {
    /// The exchange for a global batch like `global` (only its shape is used).
    pub fn new(collective: &'a dyn Collective, global: &TokenizedBatch) -> Self {
        let pairs = global.len();
        let negatives_per_pair = if pairs == 0 { 0 } else { global.negatives.len() / pairs };
        Self { collective, pairs, negatives_per_pair }
    }

    fn rows_per_pair(&self, role: EmbeddingRole) -> usize {
        match role {
            EmbeddingRole::Negative => self.negatives_per_pair,
            _ => 1,
        }
    }
}

impl RowExchange for CollectiveRows<'_> {
    fn gather(&self, role: EmbeddingRole, local: Tensor<2>) -> std::result::Result<(Tensor<2>, Range<usize>), LossError> {
        if self.collective.is_identity() {
            let rows = local.dims()[0];
            return Ok((local, 0..rows));
        }
        let fail = |message: String| LossError::Exchange { role: role.name(), message };
        let [_, dim] = local.dims();
        let (device, dtype) = (local.device(), local.dtype());
        let values = hybrid_ir_model::tensor_values(local).map_err(|e| fail(e.to_string()))?;
        let (all, ranges) = self.collective.all_gather(&values).map_err(|e| fail(e.to_string()))?;
        if dim == 0 || all.len() % dim != 0 || ranges.iter().any(|r| r.len() % dim != 0) {
            return Err(fail(format!("the ranks' rows are not all {dim} wide (gathered {} values)", all.len())));
        }
        let mine = &ranges[self.collective.rank()];
        let rows = all.len() / dim;
        let gathered = Tensor::<2>::from_data(TensorData::new(all, [rows, dim]), &device).cast(dtype);
        Ok((gathered, mine.start / dim..mine.end / dim))
    }

    fn first_chunk(&self, role: EmbeddingRole, chunk_size: usize) -> usize {
        let world = self.collective.world_size();
        (0..self.collective.rank())
            .map(|r| (shard_range(self.pairs, r, world).len() * self.rows_per_pair(role)).div_ceil(chunk_size.max(1)))
            .sum()
    }
}

/// Replaces every gradient in `grads` by its sum over the ranks (the update then equals the
/// single-process update on the global batch: each rank's gradients are its share of the global
/// loss's gradient, see [`hybrid_ir_loss::CachedLoss::step_across`]). Large 2-D gradients are
/// summed over their non-zero rows only ([`ROW_SPARSE_MIN_ROWS`]).
pub fn sum_gradients<M: Module>(model: &M, grads: &mut GradientsParams, collective: &dyn Collective) -> Result<()> {
    if collective.is_identity() {
        return Ok(());
    }
    let mut host = HostGradients { grads, dense: Vec::new(), matrices: Vec::new(), shapes: Vec::new(), failed: None };
    model.visit(&mut host);
    if let Some(e) = host.failed {
        return Err(e);
    }
    let HostGradients { grads, mut dense, mut matrices, shapes, .. } = host;

    // The ranks must hold gradients of the same parameters in the same order, or the sums would
    // mix parameters: compare a signature first (cheap, and a clear error instead of garbage).
    let signature = shapes.iter().fold(shapes.len() as u64, |h, s| mix(h, s.numel as u64 ^ (s.sparse as u64) << 63));
    let (signatures, _) = collective.all_gather_u64(&[signature])?;
    if signatures.iter().any(|&s| s != signature) {
        return Err(TrainError::Collective(hybrid_ir_collective::CollectiveError::Mismatch(format!(
            "the ranks hold gradients of different parameters (signatures {signatures:x?}); every rank must train the same \
             model with the same frozen parts"
        ))));
    }
    collective.all_reduce_sum(&mut dense)?;
    for matrix in &mut matrices {
        sum_touched_rows(matrix, collective)?;
    }
    model.visit(&mut WriteBack { grads, shapes: shapes.into_iter(), dense: &dense, offset: 0, matrices: matrices.into_iter() });
    Ok(())
}

/// Sums a row-sparse gradient over the ranks: the union of the ranks' non-zero rows is gathered,
/// those rows are packed, summed, and scattered back (rows no rank touched stay zero).
fn sum_touched_rows(m: &mut RowMatrix, collective: &dyn Collective) -> Result<()> {
    let touched: Vec<u64> = (0..m.rows).filter(|&r| m.row(r).iter().any(|&v| v != 0.0)).map(|r| r as u64).collect();
    let (mut all, _) = collective.all_gather_u64(&touched)?;
    all.sort_unstable();
    all.dedup();
    let mut packed = Vec::with_capacity(all.len() * m.cols);
    for &r in &all {
        packed.extend_from_slice(m.row(r as usize));
    }
    collective.all_reduce_sum(&mut packed)?;
    for (k, &r) in all.iter().enumerate() {
        let r = r as usize;
        m.values[r * m.cols..(r + 1) * m.cols].copy_from_slice(&packed[k * m.cols..(k + 1) * m.cols]);
    }
    Ok(())
}

struct RowMatrix {
    values: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl RowMatrix {
    fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }
}

struct GradShape {
    dims: Vec<usize>,
    numel: usize,
    sparse: bool,
}

/// Pass 1: every gradient to host values, in the module's parameter order.
struct HostGradients<'a> {
    grads: &'a mut GradientsParams,
    dense: Vec<f32>,
    matrices: Vec<RowMatrix>,
    shapes: Vec<GradShape>,
    failed: Option<TrainError>,
}

impl ModuleVisitor for HostGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.grads.get::<D>(param.id) else { return };
        let dims = g.dims().to_vec();
        let numel = dims.iter().product();
        let values = match hybrid_ir_model::tensor_values(g) {
            Ok(v) => v,
            Err(e) => {
                self.failed.get_or_insert(TrainError::Other(format!("reading a gradient back: {e}")));
                return;
            }
        };
        let sparse = D == 2 && dims[0] >= ROW_SPARSE_MIN_ROWS;
        if sparse {
            self.matrices.push(RowMatrix { values, rows: dims[0], cols: dims[1] });
        } else {
            self.dense.extend_from_slice(&values);
        }
        self.shapes.push(GradShape { dims, numel, sparse });
    }
}

/// Pass 2: the summed values back into the gradients, same order, same dtype and device.
struct WriteBack<'a, S, R> {
    grads: &'a mut GradientsParams,
    shapes: S,
    dense: &'a [f32],
    offset: usize,
    matrices: R,
}

impl<S: Iterator<Item = GradShape>, R: Iterator<Item = RowMatrix>> ModuleVisitor for WriteBack<'_, S, R> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(old) = self.grads.remove::<D>(param.id) else { return };
        let shape = self.shapes.next().expect("one shape per gradient read in pass 1");
        let values = if shape.sparse {
            self.matrices.next().expect("one matrix per sparse gradient").values
        } else {
            let v = self.dense[self.offset..self.offset + shape.numel].to_vec();
            self.offset += shape.numel;
            v
        };
        let dims: [usize; D] = shape.dims.try_into().expect("rank D");
        let summed = Tensor::<D>::from_data(TensorData::new(values, dims), &old.device()).cast(old.dtype());
        self.grads.register::<D>(param.id, summed);
    }
}

/// Folds `v` into the running fingerprint `h` with the trainer's SplitMix64 mix ([`step_seed`]).
fn mix(h: u64, v: u64) -> u64 {
    step_seed(h, v, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_ir_collective::SingleProcess;

    #[test]
    fn one_process_takes_every_pair_and_starts_at_chunk_zero() {
        assert_eq!(rank_pairs(&SingleProcess, 5).unwrap(), 0..5);
        let batch = TokenizedBatch {
            queries: vec![vec![1]; 4],
            positives: vec![vec![2]; 4],
            negatives: vec![vec![3]; 4],
            group_keys: vec![0, 1, 2, 3],
            pad_id: 0,
            chunk_orders: Default::default(),
        };
        let rows = CollectiveRows::new(&SingleProcess, &batch);
        assert_eq!(rows.first_chunk(EmbeddingRole::Negative, 3), 0);
        assert_eq!(rows.negatives_per_pair, 1);
    }
}
