//! The cached (GradCache) step gives the same loss and parameter gradients as the uncached
//! computation, with and without dropout, on a small burn module (Embedding → Dropout → Linear →
//! mean pool). The model crate's real encoder can be plugged in the same way once it exists.
//!
//! Tolerance: for every parameter, max |g_cached − g_ref| ≤ 1e-5 · max |g_ref| (+1e-9), loss to
//! 1e-5 relative. The two differ only in f32 summation order (per-chunk accumulation).
//!
//! The backend RNG is process-global on Flex, so these tests hold `RNG_LOCK` while they run.

#[macro_use]
mod common;

use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::*;
use hybrid_ir_loss::{
    CachedLoss, ChunkedEncoder, ContrastiveBatch, EmbeddingRole, LossConfig, LossError, LossKind, Reduction, ScoreFn,
    chunk_ranges, chunk_seed,
};
use rand::Rng;

static RNG_LOCK: Mutex<()> = Mutex::new(());

fn rng_lock() -> MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const VOCAB: usize = 50;
const SEQ: usize = 5;

#[derive(Module, Debug)]
struct TinyEncoder {
    embedding: Embedding,
    dropout: Dropout,
    linear: Linear,
}

impl TinyEncoder {
    fn new(dropout: f64, device: &Device) -> Self {
        Self {
            embedding: EmbeddingConfig::new(VOCAB, 8).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            linear: LinearConfig::new(8, 6).init(device),
        }
    }

    fn forward(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let x = self.dropout.forward(self.embedding.forward(ids));
        self.linear.forward(x).mean_dim(1).squeeze_dim::<2>(1)
    }

    /// Every float parameter's gradient, flattened, in a fixed order.
    fn grads(&self, grads: &GradientsParams) -> Vec<(&'static str, Vec<f64>)> {
        let bias = self.linear.bias.as_ref().expect("linear has a bias");
        vec![
            ("embedding.weight", values(grads.get::<2>(self.embedding.weight.id).expect("embedding grad"))),
            ("linear.weight", values(grads.get::<2>(self.linear.weight.id).expect("linear weight grad"))),
            ("linear.bias", values(grads.get::<1>(bias.id).expect("linear bias grad"))),
        ]
    }
}

/// Token ids of one batch, per role.
struct TokenBatch {
    ids: [Vec<Vec<i64>>; 3],
    device: Device,
}

impl TokenBatch {
    fn random(seed: u64, rows: usize, negatives_per_row: usize, device: &Device) -> Self {
        let mut rng = rng(seed);
        let mut draw = |n: usize| -> Vec<Vec<i64>> {
            (0..n).map(|_| (0..SEQ).map(|_| rng.random_range(0..VOCAB as i64)).collect()).collect()
        };
        Self { ids: [draw(rows), draw(rows), draw(rows * negatives_per_row)], device: device.clone() }
    }

    fn role(role: EmbeddingRole) -> usize {
        EmbeddingRole::ALL.iter().position(|&r| r == role).unwrap()
    }
}

impl ChunkedEncoder<TinyEncoder> for TokenBatch {
    fn rows(&self, role: EmbeddingRole) -> usize {
        self.ids[Self::role(role)].len()
    }

    fn embed(&self, model: &TinyEncoder, role: EmbeddingRole, rows: Range<usize>) -> Tensor<2> {
        let n = rows.len();
        let flat: Vec<i64> = self.ids[Self::role(role)][rows].iter().flatten().copied().collect();
        model.forward(Tensor::<2, Int>::from_data(TensorData::new(flat, [n, SEQ]), &self.device))
    }
}

/// Independent reference written here (not the library's `uncached_step`): seed per chunk exactly
/// as the cached step does, forward every chunk with graph, concatenate, one loss, one backward.
fn reference_step(
    cfg: &LossConfig,
    model: &TinyEncoder,
    batch: &TokenBatch,
    keys: &[u64],
    chunk: usize,
    step_seed: u64,
) -> (f64, Vec<(&'static str, Vec<f64>)>) {
    let mut embeddings = Vec::new();
    for role in EmbeddingRole::ALL {
        let parts: Vec<Tensor<2>> = chunk_ranges(batch.rows(role), chunk)
            .enumerate()
            .map(|(c, rows)| {
                batch.device.seed(chunk_seed(step_seed, role, c));
                batch.embed(model, role, rows)
            })
            .collect();
        embeddings.push((!parts.is_empty()).then(|| Tensor::cat(parts, 0)));
    }
    let [q, p, n] = <[_; 3]>::try_from(embeddings).ok().unwrap();
    let input = ContrastiveBatch { queries: q.unwrap(), positives: p.unwrap(), negatives: n, group_keys: Some(keys) };
    let loss = cfg.build().unwrap().forward(input).unwrap();
    let value = values(loss.clone())[0];
    let grads = GradientsParams::from_grads(loss.backward(), model);
    (value, model.grads(&grads))
}

fn assert_grads_close(what: &str, got: &[(&str, Vec<f64>)], want: &[(&str, Vec<f64>)], rel: f64) {
    for ((name, g), (_, w)) in got.iter().zip(want) {
        let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let diff = g.iter().zip(w).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0, "{what}: reference gradient of {name} is all zero");
        assert!(diff <= rel * scale + 1e-9, "{what}: {name} max|diff| {diff:e} > {rel:e} · max|g| {scale:e}");
    }
}

fn configs() -> Vec<LossConfig> {
    vec![
        LossConfig { kind: LossKind::InBatch, ..LossConfig::default() },
        LossConfig { kind: LossKind::Paper, reduction: Reduction::Sum, ..LossConfig::default() },
        LossConfig { kind: LossKind::Symmetric, score: ScoreFn::Dot, temperature: 0.5, ..LossConfig::default() },
    ]
}

/// B = 7 with chunk sizes that do not divide it, one and two hard negatives per query, and a
/// translation group {0, 3, 5}.
fn cached_matches_reference(device: Device, dropout: f64) {
    let _guard = rng_lock();
    let ad = device.autodiff();
    let keys = [0, 1, 2, 0, 4, 0, 6];
    for (i, cfg) in configs().into_iter().enumerate() {
        for (chunk, negatives) in [(3, 1), (2, 2), (7, 1), (1, 1)] {
            let model = TinyEncoder::new(dropout, &ad);
            let batch = TokenBatch::random(100 + i as u64, keys.len(), negatives, &ad);
            let what = format!("{} chunk={chunk} k={negatives} dropout={dropout}", cfg.build().unwrap().name());
            let cached = CachedLoss::new(cfg.build().unwrap(), chunk).unwrap();
            let step_seed = 42 + chunk as u64;

            let got = cached.step(&model, &batch, Some(&keys), step_seed).unwrap();
            let (want_loss, want_grads) = reference_step(&cfg, &model, &batch, &keys, chunk, step_seed);
            assert_close(&format!("{what}: loss"), got.loss, want_loss, 1e-5);
            assert_grads_close(&what, &model.grads(&got.grads), &want_grads, 1e-5);

            // The library's own uncached path agrees as well.
            let uncached = cached.uncached_step(&model, &batch, Some(&keys), step_seed).unwrap();
            assert_close(&format!("{what}: uncached loss"), uncached.loss, want_loss, 1e-6);
            assert_grads_close(&format!("{what} (uncached)"), &model.grads(&uncached.grads), &want_grads, 1e-6);
        }
    }
}

fn cached_matches_reference_without_dropout(device: Device) {
    cached_matches_reference(device, 0.0);
}

fn cached_matches_reference_with_dropout(device: Device) {
    cached_matches_reference(device, 0.3);
}

/// Without dropout the result must also equal one whole-batch forward (no chunking at all).
fn cached_matches_whole_batch_without_dropout(device: Device) {
    let _guard = rng_lock();
    let ad = device.autodiff();
    let keys = [5, 6, 5, 7, 8];
    let cfg = LossConfig::default();
    let model = TinyEncoder::new(0.0, &ad);
    let batch = TokenBatch::random(7, keys.len(), 1, &ad);
    let got = CachedLoss::new(cfg.build().unwrap(), 2).unwrap().step(&model, &batch, Some(&keys), 1).unwrap();

    let all = |role| batch.embed(&model, role, 0..batch.rows(role));
    let input = ContrastiveBatch {
        queries: all(EmbeddingRole::Query),
        positives: all(EmbeddingRole::Positive),
        negatives: Some(all(EmbeddingRole::Negative)),
        group_keys: Some(&keys),
    };
    let loss = cfg.build().unwrap().forward(input).unwrap();
    let want_loss = values(loss.clone())[0];
    let want = model.grads(&GradientsParams::from_grads(loss.backward(), &model));
    assert_close("loss", got.loss, want_loss, 1e-5);
    assert_grads_close("whole batch", &model.grads(&got.grads), &want, 1e-5);
}

/// Re-seeding replays dropout masks exactly; another seed draws other masks. Without this the
/// "with dropout" comparison above would be meaningless.
fn dropout_masks_replay_after_reseeding(device: Device) {
    let _guard = rng_lock();
    let ad = device.autodiff();
    let model = TinyEncoder::new(0.5, &ad);
    let batch = TokenBatch::random(9, 4, 1, &ad);
    // Parameters are lazy: their random init would consume the seeded RNG on first use and
    // shift the first run's masks (the cached step materialises them for the same reason).
    let _ = batch.embed(&model, EmbeddingRole::Query, 0..1);
    let run = |seed: u64| {
        ad.seed(seed);
        values(batch.embed(&model, EmbeddingRole::Query, 0..4))
    };
    let (a, b, c) = (run(17), run(17), run(18));
    assert_eq!(a, b, "same seed must give identical dropout masks");
    assert_ne!(a, c, "different seeds must give different dropout masks (is dropout active?)");
    // And the no-grad copy used by pass 1 draws the same masks as the tracked model.
    let frozen = model.clone().no_grad();
    ad.seed(17);
    assert_eq!(values(batch.embed(&frozen, EmbeddingRole::Query, 0..4)), a);
}

/// With dropout, the gradients for another step seed differ by far more than the tolerance, so
/// a cached step that did not replay masks would fail `cached_matches_reference_with_dropout`.
fn dropout_changes_gradients_beyond_tolerance(device: Device) {
    let _guard = rng_lock();
    let ad = device.autodiff();
    let keys = [0, 1, 2, 3];
    let cfg = LossConfig::default();
    let model = TinyEncoder::new(0.3, &ad);
    let batch = TokenBatch::random(3, keys.len(), 1, &ad);
    let cached = CachedLoss::new(cfg.build().unwrap(), 2).unwrap();
    let a = cached.step(&model, &batch, Some(&keys), 1).unwrap();
    let (_, other) = reference_step(&cfg, &model, &batch, &keys, 2, 2);
    let got = model.grads(&a.grads);
    let (_, g) = &got[1];
    let (_, w) = &other[1];
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = g.iter().zip(w).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff > 1e-2 * scale, "masks of another seed changed the gradient by only {diff:e}");
}

/// The batch above chunked in a fixed non-trivial order per role (as length sorting does).
struct Reordered<'a> {
    batch: &'a TokenBatch,
    orders: [Vec<usize>; 3],
}

impl ChunkedEncoder<TinyEncoder> for Reordered<'_> {
    fn rows(&self, role: EmbeddingRole) -> usize {
        self.batch.rows(role)
    }

    fn embed(&self, model: &TinyEncoder, role: EmbeddingRole, rows: Range<usize>) -> Tensor<2> {
        let order = &self.orders[TokenBatch::role(role)];
        let ids = &self.batch.ids[TokenBatch::role(role)];
        let flat: Vec<i64> = order[rows.clone()].iter().flat_map(|&i| ids[i].iter().copied()).collect();
        model.forward(Tensor::<2, Int>::from_data(TensorData::new(flat, [rows.len(), SEQ]), &self.batch.device))
    }

    fn chunk_order(&self, role: EmbeddingRole) -> Option<&[usize]> {
        Some(&self.orders[TokenBatch::role(role)])
    }
}

/// Chunking rows in another order (what length sorting does) changes neither the loss nor the
/// gradients: embeddings go back to batch order before the loss, gradients back to chunk order
/// for the replay. Without dropout this must equal the batch-order result.
fn chunk_order_does_not_change_loss_or_gradients(device: Device) {
    let _guard = rng_lock();
    let ad = device.clone().autodiff();
    let keys = [0, 1, 2, 0, 4, 5, 6];
    for cfg in configs() {
        let model = TinyEncoder::new(0.0, &ad);
        let batch = TokenBatch::random(11, keys.len(), 1, &ad);
        let orders = [vec![6, 2, 4, 0, 1, 5, 3], vec![3, 5, 1, 0, 6, 4, 2], vec![1, 0, 2, 6, 5, 3, 4]];
        let reordered = Reordered { batch: &batch, orders };
        let cached = CachedLoss::new(cfg.build().unwrap(), 3).unwrap();
        let name = cfg.build().unwrap().name().to_string();
        let want = cached.step(&model, &batch, Some(&keys), 5).unwrap();
        let want_grads = model.grads(&want.grads);
        for (what, got) in [
            ("cached", cached.step(&model, &reordered, Some(&keys), 5).unwrap()),
            ("uncached", cached.uncached_step(&model, &reordered, Some(&keys), 5).unwrap()),
        ] {
            assert_close(&format!("{name} {what}: loss"), got.loss, want.loss, 1e-5);
            assert_grads_close(&format!("{name} {what}"), &model.grads(&got.grads), &want_grads, 1e-5);
        }
        // Validation path: a plain-device model and inputs on the plain device.
        let plain = model.valid();
        let plain_batch = TokenBatch { ids: batch.ids.clone(), device: device.clone() };
        let eval_sorted = cached.evaluate(&plain, &Reordered { batch: &plain_batch, orders: reordered.orders.clone() }, Some(&keys));
        let eval_plain = cached.evaluate(&plain, &plain_batch, Some(&keys)).unwrap();
        assert_close(&format!("{name} evaluate"), eval_sorted.unwrap(), eval_plain, 1e-5);
        assert_close(&format!("{name} evaluate vs step"), eval_plain, want.loss, 1e-5);
    }
}

fn plain_device_is_an_error(device: Device) {
    let _guard = rng_lock();
    let model = TinyEncoder::new(0.1, &device);
    let batch = TokenBatch::random(1, 3, 0, &device);
    let cached = CachedLoss::new(LossConfig::default().build().unwrap(), 2).unwrap();
    let err = cached.step(&model, &batch, None, 0).unwrap_err();
    assert_eq!(err, LossError::NotAutodiff { role: "queries", chunk: 0 });
}

device_tests!(
    cached_matches_reference_without_dropout,
    cached_matches_reference_with_dropout,
    cached_matches_whole_batch_without_dropout,
    dropout_masks_replay_after_reseeding,
    dropout_changes_gradients_beyond_tolerance,
    chunk_order_does_not_change_loss_or_gradients,
    plain_device_is_an_error,
);

#[test]
fn zero_chunk_size_is_an_error() {
    assert_eq!(CachedLoss::new(LossConfig::default().build().unwrap(), 0).unwrap_err(), LossError::ChunkSize);
}

#[test]
fn chunk_ranges_cover_rows_once() {
    let ranges: Vec<_> = chunk_ranges(7, 3).collect();
    assert_eq!(ranges, vec![0..3, 3..6, 6..7]);
    assert_eq!(chunk_ranges(0, 3).count(), 0);
}
