//! The backbone trait's second implementation (static embeddings) and the checks every model
//! load goes through: mean of token rows, save / load in sentence-transformers' layout, the
//! tokenizer-fits-the-table check, non-finite weights, and no export over the source model.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use hybrid_ir_model::{
    AnyEncoder, Backbone, LoadOptions, ModelInfo, ModelSource, SentenceEncoder, StaticEncoder, TextKind, TextPipeline, export_model,
    first_non_finite_parameter,
};

fn static_info() -> ModelInfo {
    let base = ModelInfo::read(&common::model_dir("all-MiniLM-L6-v2"), &LoadOptions::default()).unwrap();
    ModelInfo::static_from(base.bert().unwrap(), true, false)
}

#[test]
fn a_static_embedding_is_the_normalised_mean_of_its_token_rows() {
    let device = Device::flex();
    let info = static_info();
    let model = match info.load(&device).unwrap() {
        AnyEncoder::Static(s) => s,
        other => panic!("expected a static model, got {}", other.kind()),
    };
    let pipeline = TextPipeline::of_model(&info).unwrap();
    let ids = pipeline.tokenize(&["retrieval across languages"], TextKind::Raw).unwrap().remove(0);
    assert!(!ids.contains(&101) && !ids.contains(&102), "static models read no [CLS]/[SEP]: {ids:?}");
    let table: Vec<f32> = model.embedding.weight.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let dim = model.dim();
    let mut mean = vec![0f32; dim];
    for &id in &ids {
        for (m, v) in mean.iter_mut().zip(&table[id as usize * dim..(id as usize + 1) * dim]) {
            *m += v / ids.len() as f32;
        }
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
    let got = pipeline.encode(&model, &["retrieval across languages"], TextKind::Raw, 4, |_| {}).unwrap();
    for (g, m) in got.row(0).iter().zip(&mean) {
        assert!((g - m / norm).abs() < 1e-5, "{g} vs {}", m / norm);
    }
}

#[test]
fn static_models_save_and_load_in_sentence_transformers_layout() {
    let device = Device::flex();
    let info = static_info();
    let model = info.load(&device).unwrap();
    let pipeline = TextPipeline::of_model(&info).unwrap();
    let dir = tempfile::tempdir().unwrap();
    export_model(&model, &info, &pipeline, dir.path()).unwrap();
    for file in ["modules.json", "0_StaticEmbedding/model.safetensors", "0_StaticEmbedding/tokenizer.json", "hybrid_ir_static.json"] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let reloaded = SentenceEncoder::load(dir.path(), &device, &LoadOptions::default()).unwrap();
    assert!(matches!(reloaded.info.source, ModelSource::Static { .. }));
    let texts = ["one text", "eine andere"];
    let a = pipeline.encode(&model, &texts, TextKind::Query, 2, |_| {}).unwrap();
    let b = reloaded.encode(&texts, TextKind::Query, 2, |_| {}).unwrap();
    for (row, v) in b.iter().enumerate() {
        assert_eq!(a.row(row).to_vec(), *v, "row {row} changed through save + load");
    }
}

#[test]
fn a_tokenizer_larger_than_the_table_is_refused() {
    let mut info = static_info();
    if let ModelSource::Static { settings, .. } = &mut info.source {
        settings.vocab_size = 1000;
    }
    let err = info.tokenizer(32).unwrap_err().to_string();
    assert!(err.contains("only 1000 rows"), "{err}");
    assert!(TextPipeline::of_model(&info).is_err());
}

#[test]
fn non_finite_weights_are_found_and_exports_never_overwrite_the_source() {
    let device = Device::flex();
    let mut table = StaticEncoder::from_values(vec![0.5; 20], 5, 4, true, &device).unwrap();
    assert_eq!(first_non_finite_parameter(&table), None);
    let mut values = vec![0.5f32; 20];
    values[7] = f32::NAN;
    table.embedding.weight = Param::from_tensor(Tensor::<2>::from_data(TensorData::new(values, [5, 4]), &device));
    assert!(first_non_finite_parameter(&table).is_some());

    let source = common::model_dir("all-MiniLM-L6-v2");
    let model = SentenceEncoder::load(&source, &device, &LoadOptions::default()).unwrap();
    let err = model.export(&source).unwrap_err().to_string();
    assert!(err.contains("overwrite"), "{err}");
}
