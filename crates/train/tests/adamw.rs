//! The trainer's AdamW (in place; on LibTorch also deferred to one fused update per step) against
//! burn's `AdamW` on every compiled-in device: same parameters after several steps on the same
//! gradients, and a model clone that shares the starting weights is left untouched (in-place
//! updates must never reach shared storage).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Tensor};
use hybrid_ir_model::{BertConfig, BertEncoder, test_device};
use hybrid_ir_model::kernels::AdamWBatch;
use hybrid_ir_train::adamw::InPlaceAdamW;

const STEPS: usize = 4;
const LR: f64 = 1e-2;

fn tiny_encoder(device: &Device) -> BertEncoder {
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 16,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0
    }))
    .unwrap();
    BertEncoder::new(&config, false, device)
}

fn values(model: &BertEncoder) -> Vec<Vec<f32>> {
    struct Values(Vec<Vec<f32>>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
        }
    }
    let mut v = Values(Vec::new());
    model.visit(&mut v);
    v.0
}

/// Gradients for every parameter of `model`: random, the same for the same `step` (the
/// optimizers are compared on identical gradients; real ones would let rounding differences
/// feed back, and Adam turns the noise-only gradients of e.g. key biases into full steps).
fn synthetic_gradients(model: &BertEncoder, step: u64, device: &Device) -> GradientsParams {
    struct Random<'a>(GradientsParams, &'a Device);
    impl ModuleVisitor for Random<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = Tensor::<D>::random(param.shape(), Distribution::Normal(0.0, 1.0), self.1);
            self.0.register::<D>(param.id, g);
        }
    }
    let plain = device.clone().without_autodiff();
    plain.seed(100 + step);
    let mut visitor = Random(GradientsParams::new(), &plain);
    model.visit(&mut visitor);
    visitor.0
}

/// `STEPS` optimizer steps with the same gradients (applying `batch` after each, if given).
fn train(mut model: BertEncoder, mut optim: ModuleOptimizer, batch: Option<&AdamWBatch>, device: &Device) -> BertEncoder {
    for step in 0..STEPS as u64 {
        let grads = synthetic_gradients(&model, step, device);
        model = optim.step(LR, model, grads);
        if let Some(batch) = batch {
            batch.apply().unwrap();
        }
    }
    model
}

test_device!(fn in_place_adamw_matches_burns_adamw_and_spares_shared_weights(device) {
    let ad = device.clone().autodiff();
    let start = tiny_encoder(&ad);
    let before = values(&start);
    let (b1, b2, eps, wd) = (0.9, 0.999, 1e-8, 0.01);
    let burns = train(
        start.clone(),
        AdamWConfig::new().with_beta_1(b1).with_beta_2(b2).with_epsilon(eps).with_weight_decay(wd).init(),
        None,
        &ad,
    );
    let burns = values(&burns);
    let per_tensor = train(start.clone(), ModuleOptimizer::from(InPlaceAdamW::new(b1, b2, eps, wd)), None, &ad);
    let (deferring, batch) = InPlaceAdamW::new(b1, b2, eps, wd).deferring();
    let fused = train(start.clone(), ModuleOptimizer::from(deferring), Some(&batch), &ad);
    assert_eq!(values(&start), before, "the shared starting weights changed");
    for (i, (o, b)) in values(&per_tensor).iter().zip(&burns).chain(values(&fused).iter().zip(&burns)).enumerate() {
        let i = i % burns.len();
        let moved = o.iter().zip(&before[i]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(moved > 1e-3, "parameter {i} barely moved ({moved}): the test would prove nothing");
        let diff = o.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "parameter {i}: ours and burn's AdamW differ by {diff}");
        // On Flex the fused update replays burn's f32 arithmetic: identical to the last bit, so
        // runs (and the main job's tables) do not change.
        if device == Device::flex() {
            assert_eq!(o, b, "parameter {i}: the Flex update must equal burn's bit for bit");
        }
    }
});
