//! Which library's tokenization a model's texts get: the one its users run it with.
//!
//! A `tokenizer.json` is not the whole story. sentence-transformers loads a transformer's
//! tokenizer through transformers, and transformers 5 rebuilds the pipeline of some tokenizer
//! classes from the class instead of reading it from the file: `XLMRobertaTokenizer` (XLM-R,
//! multilingual-e5, BGE-M3 …) keeps the file's vocabulary and SentencePiece character map but
//! splits on whitespace first (`WhitespaceSplit` + `Metaspace(prepend_scheme="always",
//! split=true)`) and drops the file's extra normalisers. The file's own pipeline (a lone
//! `Metaspace` after a whitespace-collapsing `Replace`) keeps a final "▁" for a trailing space
//! and reads tabs, no-break spaces and other Unicode spaces differently; the rebuilt one drops
//! them, as SentencePiece does. A model trained and evaluated on the file's pipeline would score
//! such texts differently than it does in production, so a transformer directory gets what
//! transformers 5.24 builds for its class ([`TokenizerReference::for_transformer_dir`]).
//! A static-embedding model keeps the file's pipeline: sentence-transformers' `StaticEmbedding`
//! loads it with `tokenizers.Tokenizer.from_file`, as written.
//!
//! `tests/tokenizer_parity.rs` checks the ids against transformers 5.24 on texts in 12 scripts
//! with leading, trailing, repeated, tab, newline and Unicode whitespace.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{ModelError, Result};

/// The transformers release whose tokenizer classes [`TokenizerReference`] follows.
pub const TRANSFORMERS_VERSION: &str = "5.24.0";

/// Whose pipeline turns a model's texts into token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerReference {
    /// `tokenizer.json` as written, which is what the `tokenizers` library runs (and
    /// sentence-transformers' `StaticEmbedding`, text-embeddings-inference, candle). For the
    /// named transformers class (e.g. `BertTokenizer`, checked equal for all-MiniLM-L6-v2) the
    /// file's pipeline is also what transformers builds.
    File {
        /// `tokenizer_class` of `tokenizer_config.json`, when the directory has one.
        class: Option<String>,
    },
    /// transformers' `XLMRobertaTokenizer`: the file's vocabulary, special tokens and
    /// post-processor, SentencePiece's character map as the only normaliser, whitespace split
    /// then `Metaspace` (a "▁" prepended to every word unless `add_prefix_space` is false).
    XlmRoberta {
        /// `add_prefix_space` of `tokenizer_config.json` (default true).
        add_prefix_space: bool,
    },
}

impl TokenizerReference {
    /// What transformers builds for the transformer directory `dir`: its class from
    /// `tokenizer_config.json` (`tokenizer_class`), else from `config.json`'s `model_type`, as
    /// `AutoTokenizer` picks it.
    pub fn for_transformer_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<Option<Value>> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            let text = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
            serde_json::from_slice(&text).map(Some).map_err(|e| ModelError::json(&path, e))
        };
        let tokenizer_config = read("tokenizer_config.json")?.unwrap_or(Value::Null);
        let class = tokenizer_config["tokenizer_class"].as_str().map(str::to_string);
        let model_type = read("config.json")?.and_then(|c| c["model_type"].as_str().map(str::to_string));
        let xlm_roberta = match &class {
            Some(class) => matches!(class.as_str(), "XLMRobertaTokenizer" | "XLMRobertaTokenizerFast"),
            None => model_type.as_deref() == Some("xlm-roberta"),
        };
        Ok(if xlm_roberta {
            TokenizerReference::XlmRoberta { add_prefix_space: tokenizer_config["add_prefix_space"].as_bool().unwrap_or(true) }
        } else {
            TokenizerReference::File { class }
        })
    }

    /// One line for logs and model cards.
    pub fn describe(&self) -> String {
        match self {
            TokenizerReference::File { class: Some(class) } => {
                format!("tokenizer.json as written (the pipeline transformers {TRANSFORMERS_VERSION}'s {class} reads from it)")
            }
            TokenizerReference::File { class: None } => "tokenizer.json as written (the tokenizers library's pipeline)".into(),
            TokenizerReference::XlmRoberta { add_prefix_space } => format!(
                "transformers {TRANSFORMERS_VERSION}'s XLMRobertaTokenizer pipeline over tokenizer.json's vocabulary \
                 (SentencePiece normaliser, WhitespaceSplit + Metaspace{})",
                if *add_prefix_space { "" } else { ", no prefix space" }
            ),
        }
    }

    /// The `tokenizer.json` bytes `file` with this reference's pipeline, or `None` when the file
    /// is used as written.
    pub(crate) fn rewrite(&self, file: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
        let TokenizerReference::XlmRoberta { add_prefix_space } = self else {
            return Ok(None);
        };
        let mut json: Value = serde_json::from_slice(file).map_err(|e| format!("malformed JSON: {e}"))?;
        as_xlm_roberta(&mut json, *add_prefix_space)?;
        serde_json::to_vec(&json).map(Some).map_err(|e| e.to_string())
    }
}

/// `tokenizer_json` (a parsed `tokenizer.json`) with transformers' `XLMRobertaTokenizer` pipeline.
fn as_xlm_roberta(tokenizer_json: &mut Value, add_prefix_space: bool) -> std::result::Result<(), String> {
    let Some(object) = tokenizer_json.as_object_mut() else {
        return Err("tokenizer.json is not a JSON object".into());
    };
    // transformers takes the first `Precompiled` normaliser, alone or inside a `Sequence`,
    // and drops the rest; without one there is no normaliser.
    let normalizer = object.get("normalizer").cloned().unwrap_or(Value::Null);
    let candidates = match normalizer["type"].as_str() {
        Some("Sequence") => normalizer["normalizers"].as_array().cloned().unwrap_or_default(),
        _ => vec![normalizer],
    };
    let precompiled = candidates
        .into_iter()
        .find(|n| n["type"] == "Precompiled" && n.get("precompiled_charsmap").is_some())
        .unwrap_or(Value::Null);
    let scheme = if add_prefix_space { "always" } else { "never" };
    let metaspace = json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": scheme, "split": true});
    object.insert("normalizer".into(), precompiled);
    object.insert(
        "pre_tokenizer".into(),
        json!({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace.clone()]}),
    );
    object.insert("decoder".into(), metaspace);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_decides_and_model_type_stands_in_for_a_missing_class() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        assert_eq!(TokenizerReference::for_transformer_dir(dir.path()).unwrap(), TokenizerReference::File { class: None });
        write("config.json", r#"{"model_type": "xlm-roberta"}"#);
        assert_eq!(
            TokenizerReference::for_transformer_dir(dir.path()).unwrap(),
            TokenizerReference::XlmRoberta { add_prefix_space: true }
        );
        write("tokenizer_config.json", r#"{"tokenizer_class": "BertTokenizer"}"#);
        let bert = TokenizerReference::for_transformer_dir(dir.path()).unwrap();
        assert_eq!(bert, TokenizerReference::File { class: Some("BertTokenizer".into()) });
        assert!(bert.describe().contains("BertTokenizer"), "{}", bert.describe());
        write("tokenizer_config.json", r#"{"tokenizer_class": "XLMRobertaTokenizer", "add_prefix_space": false}"#);
        let xlmr = TokenizerReference::for_transformer_dir(dir.path()).unwrap();
        assert_eq!(xlmr, TokenizerReference::XlmRoberta { add_prefix_space: false });
        assert!(xlmr.describe().contains(TRANSFORMERS_VERSION));
        write("tokenizer_config.json", "{not json");
        let err = TokenizerReference::for_transformer_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer_config.json"), "{err}");
    }

    #[test]
    fn the_xlm_roberta_pipeline_keeps_only_the_precompiled_normaliser() {
        let mut file = json!({
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Precompiled", "precompiled_charsmap": "AAAA"},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
            ]},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "add_prefix_space": true},
        });
        as_xlm_roberta(&mut file, true).unwrap();
        assert_eq!(file["normalizer"], json!({"type": "Precompiled", "precompiled_charsmap": "AAAA"}));
        assert_eq!(file["pre_tokenizer"]["pretokenizers"][0]["type"], "WhitespaceSplit");
        assert_eq!(file["pre_tokenizer"]["pretokenizers"][1]["prepend_scheme"], "always");
        let mut plain = json!({"normalizer": {"type": "NFC"}});
        as_xlm_roberta(&mut plain, false).unwrap();
        assert!(plain["normalizer"].is_null());
        assert_eq!(plain["decoder"]["prepend_scheme"], "never");
        let bytes = serde_json::to_vec(&file).unwrap();
        assert_eq!(TokenizerReference::File { class: None }.rewrite(&bytes).unwrap(), None, "the file is used as written");
        let rewritten = TokenizerReference::XlmRoberta { add_prefix_space: true }.rewrite(&bytes).unwrap().unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&rewritten).unwrap(), file, "rewriting twice changes nothing more");
    }
}
