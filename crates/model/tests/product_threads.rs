//! Regression guard for issue #19, without timing anything: on Flex, the encoder's dense-layer
//! products (forward and backward) go through the project's direct-`gemm` kernel, and at the
//! encoder's sizes that kernel splits each product over every thread of the pool it runs in.
//! (burn-flex's own path allocates, zero-fills and copies each output serially on the calling
//! thread, which left the second core of a 2-vCPU Xeon idle about half of the time.)
//! Its own test binary: the product counters are process-wide.

use burn::tensor::{Device, Int, Tensor, TensorData};
use hybrid_ir_model::kernels::{flex_product_counts, product_threads};
use hybrid_ir_model::{BertConfig, BertEncoder, PoolingConfig, PoolingMode};

#[test]
fn the_encoders_products_run_on_every_thread() {
    const THREADS: usize = 2;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(THREADS).build().unwrap();
    // BERT-small sizes (e5-small, MiniLM): hidden 384, FFN 1536; 16 sequences of 64 tokens.
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "model_type": "bert", "vocab_size": 100, "hidden_size": 384, "num_hidden_layers": 2,
        "num_attention_heads": 6, "intermediate_size": 1536, "max_position_embeddings": 128,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0
    }))
    .unwrap();
    let (batch, len, layers) = (16usize, 64usize, 2u64);
    let tokens = batch * len;
    for (m, n, k) in [(tokens, 384, 384), (tokens, 1536, 384), (tokens, 384, 1536)] {
        assert_eq!(pool.install(|| product_threads(m, n, k)), THREADS, "[{m}, {k}] x [{k}, {n}] must use the whole pool");
    }
    assert_eq!(pool.install(|| product_threads(8, 8, 8)), 1, "tiny products stay on one thread");

    let ids: Vec<i64> = (0..tokens as i64).map(|i| 1 + i % 99).collect();
    let pooling = PoolingConfig { mode: PoolingMode::Mean, normalize: true };
    let run = |device: &Device| {
        let encoder = BertEncoder::new(&config, false, device);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [batch, len]), device);
        let mask = Tensor::<2, Int>::ones([batch, len], device);
        let before = flex_product_counts();
        pool.install(|| {
            let pooled = encoder.embed_with(ids, mask, pooling);
            if device.is_autodiff() {
                let _ = pooled.sum().backward();
            } else {
                let _ = pooled.into_data();
            }
        });
        let after = flex_product_counts();
        (after.0 - before.0, after.1 - before.1)
    };
    // Inference: q, k, v, attention output, FFN in, FFN out per layer, all on the whole pool.
    assert_eq!(run(&Device::flex()), (0, 6 * layers), "(one-thread, whole-pool) products of an inference forward");
    // Training adds two products per dense layer in the backward (input and weight gradients).
    assert_eq!(run(&Device::flex().autodiff()), (0, 18 * layers), "(one-thread, whole-pool) products of a training step");
}
