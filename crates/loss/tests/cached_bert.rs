//! Cached == uncached on a small *real* encoder: the model crate's `BertEncoder` (2 layers,
//! hidden 16, dropout on embeddings, attention probabilities and residuals), padded inputs.
//!
//! Reference: same per-chunk dropout seeds, every chunk forwarded with graph, one loss, one
//! backward (`CachedLoss::uncached_step`, itself checked against an independent copy in
//! `tests/cached.rs`); without dropout additionally one whole-batch forward.
//! Tolerance: per parameter, max |g_cached − g_ref| ≤ 1e-5 · max |g_ref| + 1e-6 · G, where G is
//! the largest gradient entry of the whole model (a floor for parameters whose exact gradient is 0,
//! such as the attention key bias, which softmax is invariant to); loss 1e-5.

#[macro_use]
mod common;

use std::ops::Range;
use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::*;
use hybrid_ir_loss::{CachedLoss, ChunkedEncoder, ContrastiveBatch, EmbeddingRole, LossConfig, LossKind, Reduction};
use hybrid_ir_model::{BertConfig, BertEncoder, PoolingConfig};
use rand::Rng;

/// The backend RNG is process-global on Flex.
static RNG_LOCK: Mutex<()> = Mutex::new(());

const VOCAB: i64 = 40;
const MAX_LEN: usize = 7;

fn tiny_config(dropout: f64) -> BertConfig {
    serde_json::from_value(serde_json::json!({
        "model_type": "bert", "vocab_size": VOCAB, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16,
        "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout
    }))
    .expect("tiny BertConfig")
}

/// Padded token ids and masks per role; lengths vary so padding is exercised.
struct Texts {
    ids: [Vec<Vec<i64>>; 3],
    device: Device,
}

impl Texts {
    fn random(seed: u64, rows: usize, negatives: usize, device: &Device) -> Self {
        let mut rng = rng(seed);
        let mut draw = |n: usize| -> Vec<Vec<i64>> {
            (0..n)
                .map(|_| {
                    let len = rng.random_range(2..=MAX_LEN);
                    (0..len).map(|_| rng.random_range(1..VOCAB)).collect()
                })
                .collect()
        };
        Self { ids: [draw(rows), draw(rows), draw(rows * negatives)], device: device.clone() }
    }

    fn index(role: EmbeddingRole) -> usize {
        EmbeddingRole::ALL.iter().position(|&r| r == role).unwrap()
    }
}

impl ChunkedEncoder<BertEncoder> for Texts {
    fn rows(&self, role: EmbeddingRole) -> usize {
        self.ids[Self::index(role)].len()
    }

    fn embed(&self, model: &BertEncoder, role: EmbeddingRole, rows: Range<usize>) -> Tensor<2> {
        let texts = &self.ids[Self::index(role)][rows];
        let n = texts.len();
        let (mut ids, mut mask) = (Vec::with_capacity(n * MAX_LEN), Vec::with_capacity(n * MAX_LEN));
        for t in texts {
            for pos in 0..MAX_LEN {
                ids.push(t.get(pos).copied().unwrap_or(0));
                mask.push(i64::from(pos < t.len()));
            }
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, MAX_LEN]), &self.device);
        let mask = Tensor::<2, Int>::from_data(TensorData::new(mask, [n, MAX_LEN]), &self.device);
        model.embed_with(ids, mask, PoolingConfig::default())
    }
}

/// Every float parameter's gradient (flattened) by parameter id; `None` when it has none.
fn all_grads(model: &BertEncoder, grads: &GradientsParams) -> Vec<(ParamId, Option<Vec<f64>>)> {
    struct Collect<'a>(&'a GradientsParams, Vec<(ParamId, Option<Vec<f64>>)>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.push((param.id, self.0.get::<D>(param.id).map(values)));
        }
    }
    let mut c = Collect(grads, Vec::new());
    model.visit(&mut c);
    c.1
}

fn assert_same_grads(what: &str, model: &BertEncoder, got: &GradientsParams, want: &GradientsParams, rel: f64) {
    let (got, want) = (all_grads(model, got), all_grads(model, want));
    assert_eq!(got.len(), want.len());
    let global = want.iter().flat_map(|(_, w)| w.iter().flatten()).fold(0.0f64, |m, v| m.max(v.abs()));
    let mut compared = 0;
    for ((id, g), (_, w)) in got.iter().zip(&want) {
        match (g, w) {
            (None, None) => {}
            (Some(g), Some(w)) => {
                let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let diff = g.iter().zip(w).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    diff <= rel * scale + 1e-6 * global,
                    "{what}: param {id} max|diff| {diff:e} > {rel:e} · {scale:e} + 1e-6 · {global:e}"
                );
                compared += 1;
            }
            _ => panic!("{what}: param {id} has a gradient on one side only"),
        }
    }
    assert!(compared >= 20, "{what}: only {compared} parameters had gradients");
}

fn bert_cached_equals_uncached(device: Device, dropout: f64) {
    let _guard = RNG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let ad = device.autodiff();
    let keys = [1, 2, 1, 3, 4, 2];
    let configs =
        [LossConfig::default(), LossConfig { kind: LossKind::Paper, reduction: Reduction::Sum, ..LossConfig::default() }];
    for cfg in configs {
        let model = BertEncoder::new(&tiny_config(dropout), false, &ad);
        let texts = Texts::random(5, keys.len(), 1, &ad);
        let cached = CachedLoss::new(cfg.build().unwrap(), 4).unwrap();
        let what = format!("{} dropout={dropout}", cached.loss().name());
        let got = cached.step(&model, &texts, Some(&keys), 99).unwrap();
        let want = cached.uncached_step(&model, &texts, Some(&keys), 99).unwrap();
        assert_close(&format!("{what}: loss"), got.loss, want.loss, 1e-5);
        assert_same_grads(&what, &model, &got.grads, &want.grads, 1e-5);

        if dropout == 0.0 {
            // Also one whole-batch forward, no chunking, no seeds.
            let all = |role| texts.embed(&model, role, 0..texts.rows(role));
            let batch = ContrastiveBatch {
                queries: all(EmbeddingRole::Query),
                positives: all(EmbeddingRole::Positive),
                negatives: Some(all(EmbeddingRole::Negative)),
                group_keys: Some(&keys),
            };
            let loss = cfg.build().unwrap().forward(batch).unwrap();
            assert_close(&format!("{what}: whole-batch loss"), got.loss, values(loss.clone())[0], 1e-5);
            let whole = GradientsParams::from_grads(loss.backward(), &model);
            assert_same_grads(&format!("{what} (whole batch)"), &model, &got.grads, &whole, 1e-5);
        } else {
            // Dropout must really be on: another step seed gives another loss.
            let other = cached.uncached_step(&model, &texts, Some(&keys), 100).unwrap();
            assert!((other.loss - want.loss).abs() > 1e-4, "{what}: dropout seems inactive");
        }
    }
}

fn bert_cached_equals_uncached_without_dropout(device: Device) {
    bert_cached_equals_uncached(device, 0.0);
}

fn bert_cached_equals_uncached_with_dropout(device: Device) {
    bert_cached_equals_uncached(device, 0.1);
}

device_tests!(bert_cached_equals_uncached_without_dropout, bert_cached_equals_uncached_with_dropout);
