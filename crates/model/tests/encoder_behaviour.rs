//! Behaviour of the encoder on every compiled-in device: padding and batching do not change
//! embeddings, outputs are L2-normalised, dropout is active only on autodiff devices, XLM-R
//! position offsets follow the config.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use hybrid_ir_model::{BertConfig, TextKind, TokenBatch, test_device};

test_device!(fn padding_and_batch_order_do_not_change_embeddings(device) {
    let model = common::load("all-MiniLM-L6-v2", &device);
    let texts = ["short", "a considerably longer sentence that forces padding on the short one", "mid length text here"];
    let together = model.encode(&texts, TextKind::Raw, 3, |_| {}).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let alone = model.encode(&[*text], TextKind::Raw, 1, |_| {}).unwrap();
        let diff = common::max_abs_diff(&alone[0], &together[i]);
        assert!(diff < 1e-5, "row {i}: padded vs unpadded differ by {diff}");
        let norm: f32 = together[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i}: norm {norm}");
    }
});

test_device!(fn dropout_is_active_on_autodiff_devices_only(device) {
    let model = common::load("all-MiniLM-L6-v2", &device);
    let batch = model.pipeline.passage_tokenizer.batch(&["dropout check sentence"]).unwrap();
    let run = |dev: &burn::tensor::Device, encoder: &hybrid_ir_model::BertEncoder| {
        let (ids, mask) = batch.to_tensors(dev);
        encoder.embed_with(ids, mask, model.info.pooling()).into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    };
    let bert = model.encoder.as_bert().unwrap();
    let plain = (run(&device, bert), run(&device, bert));
    assert_eq!(plain.0, plain.1, "inference must be deterministic");
    let ad = device.clone().autodiff();
    let train = hybrid_ir_model::load_weights(model.info.bert().unwrap(), &ad).unwrap().0;
    let (a, b) = (run(&ad, &train), run(&ad, &train));
    assert!(common::max_abs_diff(&a, &b) > 1e-4, "dropout should make two training forwards differ");
});

test_device!(fn gradients_reach_the_word_embeddings(device) {
    let model = common::load("all-MiniLM-L6-v2", &device);
    let ad = device.clone().autodiff();
    let encoder = hybrid_ir_model::load_weights(model.info.bert().unwrap(), &ad).unwrap().0;
    let batch = model.pipeline.passage_tokenizer.batch(&["gradient", "flows back"]).unwrap();
    let (ids, mask) = batch.to_tensors(&ad);
    let loss = encoder.embed_with(ids, mask, model.info.pooling()).sum();
    let grads = loss.backward();
    let g = encoder.embeddings.word_embeddings.weight.grad(&grads).expect("word embeddings get a gradient");
    let g_sum: f32 = g.abs().sum().into_scalar::<f32>();
    assert!(g_sum > 0.0);
});

test_device!(fn xlmr_config_offsets_positions_past_the_padding_index(device) {
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "model_type": "xlm-roberta", "vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 514,
        "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1
    })).unwrap();
    assert_eq!(config.position_offset(), 2);
    assert_eq!(config.max_sequence_length(), 512);
    let encoder = hybrid_ir_model::BertEncoder::new(&config, false, &device);
    assert_eq!(encoder.embeddings.position_offset, 2);
    // Position 511 + offset 2 = row 513, the last row: a full-length input must run.
    let batch = TokenBatch::from_sequences(&[vec![0; 512]], 1);
    let (ids, mask) = batch.to_tensors(&device);
    let states = encoder.forward(ids, mask);
    assert_eq!(states.dims(), [1, 512, 4]);
});

#[test]
fn token_batch_pads_with_the_pad_id_and_masks() {
    let batch = TokenBatch::from_sequences(&[vec![5, 6, 7], vec![8]], 1);
    assert_eq!(batch.input_ids, vec![5, 6, 7, 8, 1, 1]);
    assert_eq!(batch.attention_mask, vec![1, 1, 1, 1, 0, 0]);
    let device = hybrid_ir_model::DeviceSpec::Flex.device();
    let (ids, _) = batch.to_tensors(&device);
    let back: Tensor<2, Int> = Tensor::from_data(TensorData::new(vec![5i64, 6, 7, 8, 1, 1], [2, 3]), &device);
    assert!(ids.equal(back).all().into_scalar::<bool>());
}

#[test]
fn length_sorted_batches_cover_every_index_once() {
    let lengths = [3, 9, 1, 9, 4];
    let batches = hybrid_ir_model::length_sorted_batches(&lengths, 2);
    assert_eq!(batches, vec![vec![1, 3], vec![4, 0], vec![2]]);
}
