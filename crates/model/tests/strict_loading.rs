//! The loader refuses incomplete or inconsistent checkpoints and names the offending tensor;
//! it accepts `bert.`-prefixed checkpoints and restores the prefix on export.

mod common;

use std::collections::HashMap;
use std::path::Path;

use hybrid_ir_model::hf::hf_parameter_shapes;
use hybrid_ir_model::{BertConfig, DeviceSpec, LoadOptions, ModelError, PoolingConfig, PoolingMode, SentenceEncoder};
use safetensors::tensor::{Dtype, TensorView};

/// A tiny BERT config over the all-MiniLM tokenizer's vocabulary.
fn tiny_config() -> serde_json::Value {
    serde_json::json!({
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": 30522, "hidden_size": 8,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
        "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu", "pad_token_id": 0
    })
}

/// Writes a synthetic checkpoint: `edit` may drop or reshape tensors before writing.
fn write_dir(dir: &Path, prefix: &str, edit: impl Fn(&mut Vec<(String, Vec<usize>)>)) {
    let config_json = tiny_config();
    std::fs::write(dir.join("config.json"), config_json.to_string()).unwrap();
    let config: BertConfig = serde_json::from_value(config_json).unwrap();
    let mut shapes = hf_parameter_shapes(&config, false);
    edit(&mut shapes);
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| (0..s.iter().product::<usize>()).flat_map(|k| ((k % 7) as f32 * 0.01).to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = shapes
        .iter()
        .zip(&data)
        .map(|((n, s), d)| (format!("{prefix}{n}"), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, Some(HashMap::new()), &dir.join("model.safetensors")).unwrap();
    let tok = common::model_dir("all-MiniLM-L6-v2").join("tokenizer.json");
    std::fs::copy(tok, dir.join("tokenizer.json")).unwrap();
}

fn load(dir: &Path) -> Result<SentenceEncoder, ModelError> {
    SentenceEncoder::load(dir, &DeviceSpec::Flex.device(), &LoadOptions::default())
}

#[test]
fn complete_synthetic_checkpoint_loads() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), "", |_| {});
    let (model, report) =
        SentenceEncoder::load_with_report(dir.path(), &DeviceSpec::Flex.device(), &LoadOptions::default()).unwrap();
    assert_eq!(report.applied, hf_parameter_shapes(&model.info.bert().unwrap().config, false).len());
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    assert!(model.encoder.as_bert().unwrap().pooler.is_none());
}

#[test]
fn missing_tensor_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = "encoder.layer.1.attention.self.key.weight";
    write_dir(dir.path(), "", |shapes| shapes.retain(|(n, _)| n != victim));
    match load(dir.path()) {
        Err(ModelError::MissingTensor { tensor, .. }) => assert_eq!(tensor, victim),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn shape_mismatch_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = "encoder.layer.0.intermediate.dense.weight";
    write_dir(dir.path(), "", |shapes| {
        for (n, s) in shapes.iter_mut() {
            if n == victim {
                *s = vec![8, 16]; // transposed: [in, out] instead of torch's [out, in]
            }
        }
    });
    match load(dir.path()) {
        Err(ModelError::ShapeMismatch { tensor, expected, found, .. }) => {
            assert_eq!(tensor, victim);
            assert_eq!((expected, found), (vec![16, 8], vec![8, 16]));
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn tokenizer_larger_than_the_embedding_matrix_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), "", |_| {});
    let mut config = tiny_config();
    config["vocab_size"] = serde_json::json!(1000);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    // Re-write weights for the smaller vocabulary so only the tokenizer disagrees.
    let small: BertConfig = serde_json::from_value(config).unwrap();
    let shapes = hf_parameter_shapes(&small, false);
    let data: Vec<Vec<u8>> = shapes.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
    let views: Vec<(String, TensorView)> =
        shapes.iter().zip(&data).map(|((n, s), d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    match load(dir.path()) {
        Err(ModelError::Tokenizer { message, .. }) => {
            assert!(message.contains("embedding table has only 1000 rows"), "{message}")
        }
        other => panic!("expected a tokenizer error, got {other:?}"),
    }
}

#[test]
fn pooler_pooling_without_pooler_weights_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), "", |_| {});
    let options =
        LoadOptions { pooling: Some(PoolingConfig { mode: PoolingMode::Pooler, normalize: false }), ..Default::default() };
    match SentenceEncoder::load(dir.path(), &DeviceSpec::Flex.device(), &options) {
        Err(ModelError::MissingTensor { tensor, .. }) => assert_eq!(tensor, "pooler.dense.weight"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn bert_prefixed_checkpoint_loads_and_exports_with_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), "bert.", |_| {});
    let model = load(dir.path()).unwrap();
    assert_eq!(model.info.bert().unwrap().weight_prefix, "bert.");
    let out = tempfile::tempdir().unwrap();
    model.export(out.path()).unwrap();
    let a = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let b = std::fs::read(out.path().join("model.safetensors")).unwrap();
    let (a, b) = (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
    let mut names_a = a.names();
    let mut names_b = b.names();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b);
    for name in names_a {
        assert_eq!(a.tensor(name).unwrap().data(), b.tensor(name).unwrap().data(), "{name}");
    }
}

#[test]
fn missing_model_directory_tells_how_to_fetch() {
    let err = load(Path::new("/nonexistent/model")).unwrap_err().to_string();
    assert!(err.contains("cargo xtask fetch-models"), "{err}");
}
