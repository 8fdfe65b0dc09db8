//! Export round trip: load -> export -> load gives bit-identical tensors, and the exported
//! directory has the original's config.json, tensor names, dtypes and shapes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use hybrid_ir_model::{DeviceSpec, LoadOptions, SentenceEncoder, TextKind};

/// name -> (dtype, shape, bytes) of every tensor in a safetensors file.
fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, (format!("{:?}", view.dtype()), view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn minilm_export_is_identical_to_the_hugging_face_original() {
    let device = DeviceSpec::Flex.device();
    let original = common::model_dir("all-MiniLM-L6-v2");
    let model = common::load("all-MiniLM-L6-v2", &device);
    let out = tempfile::tempdir().unwrap();
    model.export(out.path()).unwrap();

    let src = tensors(&original.join("model.safetensors"));
    let exp = tensors(&out.path().join("model.safetensors"));
    assert_eq!(src.keys().collect::<Vec<_>>(), exp.keys().collect::<Vec<_>>(), "tensor names");
    for (name, (dtype, shape, bytes)) in &src {
        let (e_dtype, e_shape, e_bytes) = &exp[name];
        assert_eq!((dtype, shape), (e_dtype, e_shape), "{name}: dtype/shape");
        // Untouched weights survive load (transpose, rename) and export (transpose back) bit for bit.
        assert!(bytes == e_bytes, "{name}: bytes differ after load -> export");
    }
    assert_eq!(json(&original.join("config.json")), json(&out.path().join("config.json")));
    assert_eq!(
        std::fs::read(original.join("tokenizer.json")).unwrap(),
        std::fs::read(out.path().join("tokenizer.json")).unwrap()
    );

    // The exported directory loads again with the same settings and gives the same embeddings.
    let reloaded = SentenceEncoder::load(out.path(), &device, &LoadOptions::default()).unwrap();
    assert_eq!(reloaded.info.pooling(), model.info.pooling());
    assert_eq!(reloaded.info.prefixes, model.info.prefixes);
    assert_eq!(reloaded.info.max_len, model.info.max_len);
    let texts = ["A man is eating food.", "Someone is playing a guitar in the park."];
    let a = model.encode(&texts, TextKind::Raw, 2, |_| {}).unwrap();
    let b = reloaded.encode(&texts, TextKind::Raw, 2, |_| {}).unwrap();
    assert_eq!(a, b, "embeddings after the round trip");

    // And a second export of the reloaded model is byte-identical to the first.
    let out2 = tempfile::tempdir().unwrap();
    reloaded.export(out2.path()).unwrap();
    assert_eq!(tensors(&out.path().join("model.safetensors")), tensors(&out2.path().join("model.safetensors")));
}

#[test]
fn module_burnpack_save_and_load_keeps_weights() {
    let device = DeviceSpec::Flex.device();
    let model = common::load("all-MiniLM-L6-v2", &device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encoder.bpk");
    hybrid_ir_model::save_module(&model.encoder, &path).unwrap();
    let restored = model.clone().with_module_file(&path).unwrap();
    let texts = ["burnpack keeps every parameter"];
    assert_eq!(
        model.encode(&texts, TextKind::Raw, 1, |_| {}).unwrap(),
        restored.encode(&texts, TextKind::Raw, 1, |_| {}).unwrap()
    );
}
