//! Token ids equal to transformers 5.24's (`AutoTokenizer`, what sentence-transformers runs) on
//! texts in 14 languages with leading, trailing, repeated, tab, newline, no-break, ideographic,
//! en and zero-width spaces, for an XLM-R-vocabulary model (multilingual-e5-small, and the
//! pruned e5-small-enpt) and a BERT WordPiece model (all-MiniLM-L6-v2). The fixture is written by
//! `fixtures/make_tokenizer_parity.py`.

mod common;

use hybrid_ir_model::{LoadOptions, ModelInfo, TokenizerReference};

#[test]
fn token_ids_equal_transformers_on_unusual_whitespace() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/tokenizer_parity.json")).expect("tokenizer_parity.json parses");
    assert_eq!(fixture["transformers"], hybrid_ir_model::TRANSFORMERS_VERSION);
    let texts: Vec<&str> = fixture["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(texts.len() > 300);
    for (model, expected) in fixture["models"].as_object().unwrap() {
        let info = ModelInfo::read(&common::model_dir(model), &LoadOptions::default()).unwrap();
        let tokenizer = info.tokenizer(512).unwrap();
        let xlm_roberta = expected["class"] == "XLMRobertaTokenizer";
        assert_eq!(matches!(tokenizer.reference(), TokenizerReference::XlmRoberta { .. }), xlm_roberta, "{model}");
        let mut differ = Vec::new();
        for (text, ids) in texts.iter().zip(expected["ids"].as_array().unwrap()) {
            let ids: Vec<u32> = ids.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
            let ours = tokenizer.encode(text).unwrap();
            if ours != ids {
                differ.push(format!("{text:?}: ours {ours:?}, transformers {ids:?}"));
            }
        }
        assert!(differ.is_empty(), "{model}: {} of {} texts differ:\n{}", differ.len(), texts.len(), differ.join("\n"));
    }
}

/// The file's own pipeline (what `TextTokenizer::from_file` reads, and a static model keeps)
/// differs from transformers on these texts: the test above would fail without the rebuild.
#[test]
fn the_file_pipeline_alone_differs_on_trailing_space() {
    let dir = common::model_dir("multilingual-e5-small");
    let file = hybrid_ir_model::TextTokenizer::from_file(&dir.join("tokenizer.json"), 1, 512).unwrap();
    let rebuilt = ModelInfo::read(&dir, &LoadOptions::default()).unwrap().tokenizer(512).unwrap();
    let text = " ¿La presencia? ";
    assert_ne!(file.encode(text).unwrap(), rebuilt.encode(text).unwrap());
    assert_eq!(file.encode("plain words").unwrap(), rebuilt.encode("plain words").unwrap());
}
