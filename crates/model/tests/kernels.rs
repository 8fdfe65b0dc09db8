//! `hybrid_ir_model::kernels` against burn's own ops: on every compiled-in device the encoder's
//! embeddings and every parameter gradient agree with the fused kernels on and off (on Flex
//! both are burn's ops; on LibTorch the fused path is libtorch's kernels and autograd), and
//! seeded dropout repeats exactly. Its own test binary: the kernel switch is process-wide.

mod common;

use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Tensor};
use hybrid_ir_model::kernels::{set_libtorch_kernels, sum_of_squares};
use hybrid_ir_model::{BertEncoder, test_device};

/// Serialises the tests of this binary around the process-wide switch.
static SWITCH: Mutex<()> = Mutex::new(());

const TEXTS: [&str; 3] =
    ["short", "a considerably longer sentence so that the batch needs padding", "¿Cuántas personas viven en Berlín?"];

/// Every dropout probability of `encoder` set to `prob`.
fn with_dropout(mut encoder: BertEncoder, prob: f64) -> BertEncoder {
    encoder.embeddings.dropout.prob = prob;
    for layer in &mut encoder.encoder.layer {
        layer.attention.self_attention.dropout.prob = prob;
        layer.attention.output.dropout.prob = prob;
        layer.output.dropout.prob = prob;
    }
    encoder
}

/// Embeddings of [`TEXTS`] and the gradient of every parameter (in visiting order) of the loss
/// `sum(embeddings * w)` for a fixed random `w`.
fn embeddings_and_gradients(
    encoder: &BertEncoder,
    model: &hybrid_ir_model::SentenceEncoder,
    ad: &Device,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    struct Grads<'a>(&'a burn::tensor::Gradients, Vec<Vec<f32>>);
    impl ModuleVisitor for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            // Parameters the loss does not reach (the unused pooler) have none; recorded empty.
            let g = param.val().grad(self.0).map(|g| g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
            self.1.push(g.unwrap_or_default());
        }
    }
    let batch = model.pipeline.passage_tokenizer.batch(&TEXTS).unwrap();
    let (ids, mask) = batch.to_tensors(ad);
    let emb = encoder.embed_with(ids, mask, model.info.pooling());
    ad.seed(7);
    let weights = Tensor::<2>::random(emb.dims(), Distribution::Normal(0.0, 1.0), ad);
    let values = emb.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let grads = (emb * weights).sum().backward();
    let mut visitor = Grads(&grads, Vec::new());
    encoder.visit(&mut visitor);
    (values, visitor.1)
}

/// Largest |x| of a tensor.
fn scale(t: &[f32]) -> f32 {
    t.iter().fold(0.0, |m, x| m.max(x.abs()))
}

test_device!(fn fused_kernels_give_burns_embeddings_and_gradients(device) {
    let _guard = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let model = common::load("all-MiniLM-L6-v2", &device);
    let ad = device.clone().autodiff();
    let encoder = with_dropout(hybrid_ir_model::load_weights(model.info.bert().unwrap(), &ad).unwrap().0, 0.0);

    set_libtorch_kernels(true);
    let fused = embeddings_and_gradients(&encoder, &model, &ad);
    set_libtorch_kernels(false);
    let reference = embeddings_and_gradients(&encoder, &model, &ad);
    set_libtorch_kernels(true);

    let diff = common::max_abs_diff(&fused.0, &reference.0);
    assert!(diff < 1e-5, "embeddings differ by {diff}");
    assert_eq!(fused.1.len(), reference.1.len());
    let reached = reference.1.iter().filter(|g| !g.is_empty()).count();
    assert!(reached > 90, "only {reached} parameters got a gradient");
    // Differences relative to each gradient's own scale, floored at 1e-3 of the largest one:
    // the key biases' gradients are 0 analytically (softmax ignores a per-query constant), so
    // both paths give ~1e-8 of rounding noise there.
    let floor = 1e-3 * reference.1.iter().map(|g| scale(g)).fold(0.0, f32::max);
    for (i, (f, r)) in fused.1.iter().zip(&reference.1).enumerate() {
        assert_eq!(f.len(), r.len(), "parameter {i}: gradient present on one path only");
        let rel = common::max_abs_diff(f, r) / scale(r).max(floor);
        assert!(rel < 1e-4, "gradient of parameter {i} differs by {rel} (relative)");
    }
});

test_device!(fn seeded_dropout_repeats_and_other_seeds_differ(device) {
    let _guard = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let model = common::load("all-MiniLM-L6-v2", &device);
    let ad = device.clone().autodiff();
    let encoder = hybrid_ir_model::load_weights(model.info.bert().unwrap(), &ad).unwrap().0;
    let batch = model.pipeline.passage_tokenizer.batch(&TEXTS).unwrap();
    let run = |seed: u64| {
        ad.seed(seed);
        let (ids, mask) = batch.to_tensors(&ad);
        encoder.embed_with(ids, mask, model.info.pooling()).into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    };
    let (a, b, c) = (run(3), run(3), run(4));
    assert_eq!(a, b, "the same seed must give the same dropout masks");
    assert!(common::max_abs_diff(&a, &c) > 1e-4, "another seed should give other masks");
});

test_device!(fn sum_of_squares_is_the_squared_norm(device) {
    let t = Tensor::<2>::from_floats([[1.0, -2.0, 3.0], [0.5, 0.0, -4.0]], &device);
    let s = sum_of_squares(t).into_scalar::<f32>();
    assert!((s - 30.25).abs() < 1e-5, "{s}");
});

test_device!(fn bf16_matmuls_stay_close_to_f32_and_train(device) {
    let _guard = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let model = common::load("all-MiniLM-L6-v2", &device);
    let batch = model.pipeline.passage_tokenizer.batch(&TEXTS).unwrap();
    let (ids, mask) = batch.to_tensors(&device);
    let f32_emb = model.encoder.as_bert().unwrap().embed_with(ids.clone(), mask.clone(), model.info.pooling());
    let mut mixed = model.encoder.as_bert().unwrap().clone();
    mixed.bf16_matmuls = true;
    let bf16_emb = mixed.embed_with(ids, mask, model.info.pooling());
    let (a, b) = (
        f32_emb.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
        bf16_emb.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
    );
    let dim = a.len() / TEXTS.len();
    for row in 0..TEXTS.len() {
        let cos = common::cosine(&a[row * dim..(row + 1) * dim], &b[row * dim..(row + 1) * dim]);
        assert!(cos > 0.995, "row {row}: bf16 matmuls moved the embedding too far (cosine {cos})");
    }
    assert!(common::max_abs_diff(&a, &b) > 0.0, "bf16_matmuls changed nothing");

    // Gradients reach the f32 weights through the bf16 products.
    let ad = device.clone().autodiff();
    let mut encoder = hybrid_ir_model::load_weights(model.info.bert().unwrap(), &ad).unwrap().0;
    encoder.bf16_matmuls = true;
    let (ids, mask) = batch.to_tensors(&ad);
    let grads = encoder.embed_with(ids, mask, model.info.pooling()).sum().backward();
    let g = encoder.encoder.layer[0].intermediate.dense.weight.grad(&grads).expect("a gradient");
    assert_eq!(g.dtype(), burn::tensor::DType::F32);
    assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
});

test_device!(fn gelu_kernel_equals_burns_gelu_with_gradients(device) {
    let ad = device.clone().autodiff();
    ad.seed(5);
    let x = Tensor::<3>::random([3, 70, 33], Distribution::Normal(0.0, 3.0), &ad).require_grad();
    let weights = Tensor::<3>::random([3, 70, 33], Distribution::Normal(0.0, 1.0), &ad);
    let run = |y: Tensor<3>| {
        let values = y.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let grads = (y * weights.clone()).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        (values, g)
    };
    let ours = run(hybrid_ir_model::kernels::gelu(x.clone()));
    let burns = run(burn::tensor::activation::gelu(x.clone()));
    assert!(common::max_abs_diff(&ours.0, &burns.0) <= 1e-6, "values differ");
    assert!(common::max_abs_diff(&ours.1, &burns.1) <= 1e-6, "gradients differ");
    // Plain (inference) devices take the same path.
    let plain = hybrid_ir_model::kernels::gelu(x.clone().inner()).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    assert!(common::max_abs_diff(&plain, &burns.0) <= 1e-6);
});
