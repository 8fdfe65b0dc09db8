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

test_device!(fn sum_of_squares_repeats_exactly_and_rounds_once(device) {
    // 3M values: far above burn-flex's 64K parallel-sum threshold, so a reduction whose order
    // follows rayon's work stealing would differ between the repeats in its last bits.
    let t = Tensor::<1>::random([3_000_001], Distribution::Normal(0.0, 1.0), &device);
    let values = t.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let exact: f64 = values.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let first = sum_of_squares(t.clone()).into_scalar::<f32>();
    for _ in 0..20 {
        assert_eq!(sum_of_squares(t.clone()).into_scalar::<f32>().to_bits(), first.to_bits(), "the sum changed between runs");
    }
    // On Flex one f32 rounding of an (almost) exact sum, not 3M accumulated ones. LibTorch's dot
    // accumulates in f32 blocks whose size follows the CPU's kernel: measured relative errors
    // below 1e-5 on an Intel Xeon (AVX-512) and 1.4e-5 on an AMD EPYC (Zen 5).
    let tolerance = if device == Device::flex() { 2.0 * f64::from(f32::EPSILON) } else { 1e-4 };
    assert!(((f64::from(first) - exact) / exact).abs() <= tolerance, "{first} vs exact {exact}");
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
    // Values: on Flex bit for bit (the vectorised erf is libm's, and 3·70·33 values leave a
    // scalar tail after the 16-lane blocks); on LibTorch both are libtorch's `gelu`. Gradients:
    // burn's backward is its own decomposition of the derivative, so equal to rounding only.
    let values_equal = |a: &[f32], b: &[f32], what: &str| {
        if device == Device::flex() {
            let differing = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differing, 0, "{what}: {differing} of {} values differ in their bits", a.len());
        } else {
            assert!(common::max_abs_diff(a, b) <= 1e-6, "{what} differ");
        }
    };
    values_equal(&ours.0, &burns.0, "values");
    assert!(common::max_abs_diff(&ours.1, &burns.1) <= 1e-6, "gradients differ");
    // Plain (inference) devices take the same path.
    let plain = hybrid_ir_model::kernels::gelu(x.clone().inner()).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    values_equal(&plain, &burns.0, "inference values");
});

// On Flex the kernel is burn's arithmetic, bit for bit. On LibTorch it is libtorch's `addmm`
// (PyTorch's nn.Linear), which adds the bias inside the product: equal to rounding.
test_device!(fn linear_kernel_matches_burns_linear(device) {
    use burn::nn::{Linear, LinearConfig};
    let ad = device.clone().autodiff();
    ad.seed(9);
    let values = |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    // (tokens, in, out): the encoder's shapes, an inner size above gemm's 512 block, a product
    // small enough to run on one thread, and a transposed (strided) weight.
    for (tokens, d_in, d_out, transposed) in [(37, 384, 1536, false), (128, 1536, 384, false), (9, 24, 40, false), (61, 384, 384, true)] {
        let mut layer: Linear = LinearConfig::new(d_in, d_out).init(&ad);
        if transposed {
            let w = Tensor::<2>::random([d_out, d_in], Distribution::Normal(0.0, 0.05), &ad).transpose();
            layer.weight = Param::from_tensor(w);
        }
        let x = Tensor::<2>::random([tokens, d_in], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let upstream = Tensor::<2>::random([tokens, d_out], Distribution::Normal(0.0, 1.0), &ad);
        let run = |y: Tensor<2>| {
            let out = values(y.clone());
            let grads = (y * upstream.clone()).sum().backward();
            let gx = values(x.grad(&grads).unwrap());
            let gw = values(layer.weight.grad(&grads).unwrap());
            let gb = layer.bias.as_ref().unwrap().grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            (out, gx, gw, gb)
        };
        let ours = run(hybrid_ir_model::kernels::linear(&layer, x.clone()));
        let burns = run(layer.forward(x.clone()));
        let shape = format!("[{tokens}, {d_in}] x [{d_in}, {d_out}]");
        let same = |a: &[f32], b: &[f32], what: &str| {
            if device == Device::flex() {
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(a), bits(b), "{shape}: {what} differ");
            } else {
                let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                assert!(common::max_abs_diff(a, b) <= 1e-5 * scale, "{shape}: {what} differ beyond rounding");
            }
        };
        same(&ours.0, &burns.0, "outputs");
        same(&ours.1, &burns.1, "input gradients");
        same(&ours.2, &burns.2, "weight gradients");
        same(&ours.3, &burns.3, "bias gradients");
        // Plain (inference) devices take the same path.
        let plain = values(hybrid_ir_model::kernels::linear(&layer.valid(), x.clone().inner()));
        same(&plain, &ours.0, "inference outputs");
    }
});

test_device!(fn layer_norm_and_softmax_nodes_match_burns_decomposition(device) {
    use burn::nn::{DropoutConfig, LayerNormConfig};
    let ad = device.clone().autodiff();
    ad.seed(11);
    let no_dropout = DropoutConfig::new(0.0).init();
    let floats = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let close = |ours: &[f32], burns: &[f32], what: &str| {
        let rel = common::max_abs_diff(ours, burns) / scale(burns).max(1e-12);
        assert!(rel < 2e-5, "{what} differs by {rel} (relative)");
    };

    // LayerNorm (eps 1e-12 as BERT): outputs and the gradients of input, gamma and beta.
    let mut norm = LayerNormConfig::new(48).with_epsilon(1e-12).init(&ad);
    norm.gamma = Param::from_tensor(Tensor::random([48], Distribution::Normal(1.0, 0.2), &ad));
    norm.beta = Some(Param::from_tensor(Tensor::random([48], Distribution::Normal(0.0, 0.2), &ad)));
    let x = Tensor::<3>::random([5, 70, 48], Distribution::Normal(0.3, 2.0), &ad).require_grad();
    let upstream = Tensor::<3>::random([5, 70, 48], Distribution::Normal(0.0, 1.0), &ad);
    let run = |y: Tensor<3>| {
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let beta = norm.beta.as_ref().unwrap();
        [floats(y.flatten(0, 2)), floats(x.grad(&grads).unwrap().flatten(0, 2)), floats(norm.gamma.grad(&grads).unwrap()), floats(beta.grad(&grads).unwrap())]
    };
    let ours = run(hybrid_ir_model::kernels::layer_norm_dropout(x.clone(), &norm, 1e-12, &no_dropout));
    let burns = run(norm.forward(x.clone()));
    for (what, (o, b)) in ["output", "input gradient", "gamma gradient", "beta gradient"].iter().zip(ours.iter().zip(&burns)) {
        close(o, b, &format!("layer norm {what}"));
    }

    // The attention core (softmax inside) against the same formula with burn's softmax.
    let shape = [2, 3, 17, 8];
    let q = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let k = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let v = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let bias = Tensor::<4>::random([2, 1, 1, 17], Distribution::Normal(0.0, 1.0), &ad);
    let upstream = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
    let run = |y: Tensor<4>| {
        let grads = (y.clone() * upstream.clone()).sum().backward();
        [floats(y.flatten(0, 3)), floats(q.grad(&grads).unwrap().flatten(0, 3)), floats(k.grad(&grads).unwrap().flatten(0, 3)), floats(v.grad(&grads).unwrap().flatten(0, 3))]
    };
    let ours = run(hybrid_ir_model::kernels::attention(q.clone(), k.clone(), v.clone(), bias.clone(), &no_dropout));
    let scores = q.clone().matmul(k.clone().swap_dims(2, 3)).mul_scalar(1.0 / 8f64.sqrt()) + bias.clone();
    let burns = run(burn::tensor::activation::softmax(scores, 3).matmul(v.clone()));
    for (what, (o, b)) in ["output", "q gradient", "k gradient", "v gradient"].iter().zip(ours.iter().zip(&burns)) {
        close(o, b, &format!("attention {what}"));
    }
});

test_device!(fn batched_matmul_is_bit_identical_to_burns_matmul(device) {
    let ad = device.clone().autodiff();
    ad.seed(13);
    let values = |t: Tensor<4>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    // Attention's two products on heads split by swap_dims (strided operands), and one product
    // large enough to run on the whole pool.
    for (batch, heads, len, head_dim) in [(3, 4, 37, 16), (2, 2, 300, 96)] {
        let split = |t: Tensor<4>| t.swap_dims(1, 2);
        let q = split(Tensor::<4>::random([batch, len, heads, head_dim], Distribution::Normal(0.0, 1.0), &ad)).require_grad();
        let k = split(Tensor::<4>::random([batch, len, heads, head_dim], Distribution::Normal(0.0, 1.0), &ad)).require_grad();
        let upstream = Tensor::<4>::random([batch, heads, len, len], Distribution::Normal(0.0, 1.0), &ad);
        let run = |y: Tensor<4>| {
            let out = values(y.clone());
            let grads = (y * upstream.clone()).sum().backward();
            (out, values(q.grad(&grads).unwrap()), values(k.grad(&grads).unwrap()))
        };
        let ours = run(hybrid_ir_model::kernels::batched_matmul(q.clone(), k.clone().swap_dims(2, 3)));
        let burns = run(q.clone().matmul(k.clone().swap_dims(2, 3)));
        let shape = format!("[{batch}, {heads}, {len}, {head_dim}]");
        assert_eq!(bits(&ours.0), bits(&burns.0), "{shape}: outputs differ");
        assert_eq!(bits(&ours.1), bits(&burns.1), "{shape}: lhs gradients differ");
        assert_eq!(bits(&ours.2), bits(&burns.2), "{shape}: rhs gradients differ");
        let plain = values(hybrid_ir_model::kernels::batched_matmul(q.clone().inner(), k.clone().inner().swap_dims(2, 3)));
        assert_eq!(bits(&plain), bits(&burns.0), "{shape}: inference output differs");
    }
});

test_device!(fn dropout_keeps_its_share_scales_and_masks_the_gradient_alike(device) {
    use burn::nn::DropoutConfig;
    let ad = device.clone().autodiff();
    let dropout = DropoutConfig::new(0.1).init();
    let x = Tensor::<2>::ones([1000, 1000], &ad).require_grad();
    let run = |seed: u64| {
        ad.seed(seed);
        let y = hybrid_ir_model::kernels::dropout(x.clone(), &dropout);
        let grads = (y.clone() * 3.0).sum().backward();
        let y = y.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let g = x.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        (y, g)
    };
    let (y, g) = run(21);
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
    assert!((kept - 0.9).abs() < 0.002, "kept share {kept}");
    for (v, d) in y.iter().zip(&g) {
        // Kept elements are scaled by 1/0.9; the gradient is masked and scaled the same way.
        assert!(*v == 0.0 && *d == 0.0 || ((v - 1.0 / 0.9).abs() < 1e-6 && (d - 3.0 / 0.9).abs() < 1e-5), "{v} / {d}");
    }
    assert_eq!(run(21).0, y, "the same seed must give the same mask");
    assert_ne!(run(22).0, y, "another seed must give another mask");
});
