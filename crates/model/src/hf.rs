//! Loading a Hugging Face model directory as-is (`config.json`, `model.safetensors`,
//! `tokenizer.json`, sentence-transformers files) and exporting back to the same layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::config::BertConfig;
use crate::encoder::BertEncoder;
use crate::error::{ModelError, Result};
use crate::pooling::{PoolingConfig, PoolingMode};
use crate::prefix::PrefixConfig;
use crate::safetensors_header::{TensorInfo, read_header};
use crate::tokenize::TextTokenizer;

/// Hint appended to "missing file" errors for the models the project fetches.
const FETCH_HINT: &str = "; run `cargo xtask fetch-models` to download the project's models, or point --model at a \
                          Hugging Face BERT/XLM-R/LaBSE directory";

/// Checkpoint-name prefixes of task models (`BertForMaskedLM`, `XLMRobertaModel` saved from a
/// wrapper, …) that are stripped on load and restored on export.
const KNOWN_PREFIXES: [&str; 3] = ["bert.", "roberta.", "model."];

/// Everything about a loaded model except its weights: config, pooling, prefixes, tokenizer
/// settings and where it came from. Serde, so a training run can store it next to a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Directory name the model was loaded from (for logs and reports).
    pub name: String,
    /// The model directory.
    pub source_dir: PathBuf,
    /// Architecture fields of `config.json`.
    pub config: BertConfig,
    /// `config.json` exactly as read; the exporter writes it back unchanged.
    pub config_json: serde_json::Value,
    /// Pooling and normalisation.
    pub pooling: PoolingConfig,
    /// Query/passage prefixes.
    pub prefixes: PrefixConfig,
    /// Truncation length in tokens (special tokens included).
    pub max_len: usize,
    /// Prefix of the checkpoint's tensor names (`""`, `"bert."`, …).
    pub weight_prefix: String,
    /// Whether the checkpoint has BERT pooler weights.
    pub has_pooler: bool,
    /// Non-parameter tensors of the checkpoint (e.g. `embeddings.position_ids`), re-created on export.
    pub buffers: BTreeMap<String, TensorInfo>,
}

/// Choices that override what the model directory says.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Pooling (default: the sentence-transformers config, else mean + L2).
    pub pooling: Option<PoolingConfig>,
    /// Prefixes (default: the sentence-transformers `prompts`, else none).
    pub prefixes: Option<PrefixConfig>,
    /// Truncation length (default: `sentence_bert_config.json`'s `max_seq_length`, else the
    /// position table), capped at what the position table allows.
    pub max_len: Option<usize>,
}

/// What the loader did with the checkpoint's tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters loaded.
    pub applied: usize,
    /// Checkpoint tensors not used (buffers such as `position_ids`, task heads).
    pub unused: Vec<String>,
}

/// Hugging Face name and shape of every parameter the encoder has for `config`.
pub fn hf_parameter_shapes(config: &BertConfig, with_pooler: bool) -> Vec<(String, Vec<usize>)> {
    let (h, ff) = (config.hidden_size, config.intermediate_size);
    let mut out = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![config.vocab_size, h]),
        ("embeddings.position_embeddings.weight".to_string(), vec![config.max_position_embeddings, h]),
        ("embeddings.token_type_embeddings.weight".to_string(), vec![config.type_vocab_size, h]),
        ("embeddings.LayerNorm.weight".to_string(), vec![h]),
        ("embeddings.LayerNorm.bias".to_string(), vec![h]),
    ];
    for i in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{i}.");
        for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
            out.push((format!("{p}{name}.weight"), vec![h, h]));
            out.push((format!("{p}{name}.bias"), vec![h]));
        }
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            out.push((format!("{p}{ln}.weight"), vec![h]));
            out.push((format!("{p}{ln}.bias"), vec![h]));
        }
        out.push((format!("{p}intermediate.dense.weight"), vec![ff, h]));
        out.push((format!("{p}intermediate.dense.bias"), vec![ff]));
        out.push((format!("{p}output.dense.weight"), vec![h, ff]));
        out.push((format!("{p}output.dense.bias"), vec![h]));
    }
    if with_pooler {
        out.push(("pooler.dense.weight".to_string(), vec![h, h]));
        out.push(("pooler.dense.bias".to_string(), vec![h]));
    }
    out
}

/// burn module path of a Hugging Face parameter name (without checkpoint prefix).
pub fn hf_to_burn_name(name: &str) -> String {
    name.replace(".attention.self.", ".attention.self_attention.").replace("LayerNorm.", "layer_norm.")
}

/// Hugging Face parameter name of a burn module path.
pub fn burn_to_hf_name(path: &str) -> String {
    path.replace(".attention.self_attention.", ".attention.self.").replace("layer_norm.", "LayerNorm.")
}

fn require_file(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() { Ok(path) } else { Err(ModelError::MissingFile { path, hint: FETCH_HINT.to_string() }) }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    // Bytes, not `read_to_string`: serde_json then names the line and column of a byte that is not
    // UTF-8, where `read_to_string` says only "stream did not contain valid UTF-8".
    let text = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_slice(&text).map_err(|e| ModelError::json(path, e))
}

/// Treats names like `embeddings.position_ids` as buffers: not parameters, re-created on export.
fn is_buffer(name: &str) -> bool {
    name.ends_with("position_ids") || name.ends_with("token_type_ids")
}

/// Reads the sentence-transformers `prompts` (query/passage prefixes), if any.
fn st_prefixes(dir: &Path) -> Result<Option<PrefixConfig>> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok(None);
    }
    let json = read_json(&path)?;
    let prompt = |k: &str| json["prompts"][k].as_str().map(str::to_string);
    Ok(match (prompt("query"), prompt("passage")) {
        (None, None) => None,
        (q, p) => Some(PrefixConfig { query: q.unwrap_or_default(), passage: p.unwrap_or_default() }),
    })
}

fn st_max_len(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join("sentence_bert_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    Ok(read_json(&path)?["max_seq_length"].as_u64().map(|v| v as usize))
}

/// Reads the metadata of a model directory and checks the checkpoint against the config
/// (every parameter present with the right shape) before any weight is loaded.
pub fn read_meta(dir: &Path, options: &LoadOptions) -> Result<ModelMeta> {
    if !dir.is_dir() {
        return Err(ModelError::MissingFile { path: dir.to_path_buf(), hint: FETCH_HINT.to_string() });
    }
    let config_path = require_file(dir.join("config.json"))?;
    let config = BertConfig::from_file(&config_path)?;
    let config_json = read_json(&config_path)?;
    let weights_path = require_file(dir.join("model.safetensors"))?;
    let header = read_header(&weights_path)?;

    let weight_prefix = if header.contains_key("embeddings.word_embeddings.weight") {
        String::new()
    } else {
        KNOWN_PREFIXES
            .iter()
            .find(|p| header.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .map(|p| p.to_string())
            .unwrap_or_default()
    };
    let has_pooler = header.contains_key(&format!("{weight_prefix}pooler.dense.weight"));
    for (name, shape) in hf_parameter_shapes(&config, has_pooler) {
        let full = format!("{weight_prefix}{name}");
        let info =
            header.get(&full).ok_or_else(|| ModelError::MissingTensor { path: weights_path.clone(), tensor: full.clone() })?;
        if info.shape != shape {
            return Err(ModelError::ShapeMismatch {
                path: weights_path,
                tensor: full,
                expected: shape,
                found: info.shape.clone(),
            });
        }
        if !matches!(info.dtype.as_str(), "F32" | "F16" | "BF16" | "F64") {
            return Err(ModelError::BadTensor {
                path: weights_path,
                tensor: full,
                message: format!("dtype {} is not a float type", info.dtype),
            });
        }
    }
    let buffers = header
        .iter()
        .filter_map(|(name, info)| {
            name.strip_prefix(&weight_prefix).filter(|n| is_buffer(n)).map(|n| (n.to_string(), info.clone()))
        })
        .collect();

    let pooling = match options.pooling {
        Some(p) => p,
        None => PoolingConfig::from_sentence_transformers(dir)?.unwrap_or_default(),
    };
    if pooling.mode == PoolingMode::Pooler && !has_pooler {
        return Err(ModelError::MissingTensor { path: weights_path, tensor: format!("{weight_prefix}pooler.dense.weight") });
    }
    let prefixes = match &options.prefixes {
        Some(p) => p.clone(),
        None => st_prefixes(dir)?.unwrap_or_else(PrefixConfig::none),
    };
    let limit = config.max_sequence_length();
    if limit < 2 {
        return Err(ModelError::Unsupported {
            path: config_path.clone(),
            message: format!(
                "max_position_embeddings {} with the position offset {} leaves {limit} usable positions (pad_token_id sets \
                 the offset for XLM-R layouts); a model needs at least 2",
                config.max_position_embeddings,
                config.position_offset()
            ),
        });
    }
    let max_len = options.max_len.or(st_max_len(dir)?).unwrap_or(limit).min(limit);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(ModelMeta {
        name,
        source_dir: dir.to_path_buf(),
        config,
        config_json,
        pooling,
        prefixes,
        max_len,
        weight_prefix,
        has_pooler,
        buffers,
    })
}

/// Loads the weights of `meta.source_dir/model.safetensors` into a new encoder on `device`.
/// Any parameter left without a checkpoint tensor is an error naming it.
pub fn load_weights(meta: &ModelMeta, device: &Device) -> Result<(BertEncoder, LoadReport)> {
    let path = meta.source_dir.join("model.safetensors");
    let mut encoder = BertEncoder::for_meta(meta, device);
    let mut store = SafetensorsStore::from_file(&path)
        // Linear [out, in] -> [in, out], LayerNorm weight/bias -> gamma/beta, then any f16/bf16 -> f32.
        .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
        .with_key_remapping(r"\.attention\.self\.", ".attention.self_attention.")
        .with_key_remapping(r"LayerNorm\.", "layer_norm.")
        .allow_partial(true);
    if !meta.weight_prefix.is_empty() {
        store = store.with_key_remapping(format!("^{}", regex_escape(&meta.weight_prefix)), "");
    }
    let result =
        encoder.load_from(&mut store).map_err(|e| ModelError::Safetensors { path: path.clone(), message: e.to_string() })?;
    if let Some(error) = result.errors.first() {
        return Err(ModelError::BadTensor { path, tensor: String::new(), message: error.to_string() });
    }
    if let Some((missing, _)) = result.missing.first() {
        return Err(ModelError::MissingTensor { path, tensor: burn_to_hf_name(missing) });
    }
    Ok((encoder, LoadReport { applied: result.applied.len(), unused: result.unused }))
}

pub(crate) fn regex_escape(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_ascii_alphanumeric() || c == '_' { vec![c] } else { vec!['\\', c] }).collect()
}

/// Loads the tokenizer of a model directory and checks it fits the embedding matrix
/// ([`crate::ModelInfo::tokenizer`], the one place that check lives).
pub fn load_tokenizer(meta: &ModelMeta) -> Result<TextTokenizer> {
    crate::any::ModelInfo::from_meta(meta.clone()).tokenizer(meta.max_len)
}

/// Tokenizer-side files copied verbatim from the source directory on export when present.
const TOKENIZER_FILES: [&str; 6] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "added_tokens.json",
    "merges.txt",
];

/// Writes `encoder` as a Hugging Face + sentence-transformers directory: `model.safetensors` with
/// the original tensor names (prefix and buffers included), the original `config.json`, the
/// tokenizer files, and `modules.json` / `1_Pooling` / `2_Normalize` /
/// `config_sentence_transformers.json` / `sentence_bert_config.json` from `meta`.
pub fn export_hf_dir(encoder: &BertEncoder, meta: &ModelMeta, tokenizer: &TextTokenizer, out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir).map_err(|e| ModelError::io(out_dir, e))?;
    let weights_path = out_dir.join("model.safetensors");
    write_weights(encoder, meta, &weights_path)?;
    write_json(&out_dir.join("config.json"), &meta.config_json)?;
    let tok_path = out_dir.join("tokenizer.json");
    std::fs::write(&tok_path, tokenizer.source_json()).map_err(|e| ModelError::io(&tok_path, e))?;
    for file in TOKENIZER_FILES {
        let src = meta.source_dir.join(file);
        if src.is_file() && src != out_dir.join(file) {
            std::fs::copy(&src, out_dir.join(file)).map_err(|e| ModelError::io(&src, e))?;
        }
    }
    write_sentence_transformers(meta, out_dir)
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ModelError::json(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}

/// Writes the sentence-transformers pipeline files that make `SentenceTransformer(dir)` rebuild
/// the same pooling, normalisation, prefixes and truncation.
pub fn write_sentence_transformers(meta: &ModelMeta, out_dir: &Path) -> Result<()> {
    use serde_json::json;
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if meta.pooling.normalize {
        modules.push(json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}));
        let dir = out_dir.join("2_Normalize");
        std::fs::create_dir_all(&dir).map_err(|e| ModelError::io(&dir, e))?;
    }
    write_json(&out_dir.join("modules.json"), &serde_json::Value::Array(modules))?;
    // sentence-transformers has no "pooler" pooling mode; the BERT pooler output is CLS-based, so
    // exporting it as cls is the closest a ST pipeline can express.
    let (cls, mean) = match meta.pooling.mode {
        PoolingMode::Mean => (false, true),
        PoolingMode::Cls | PoolingMode::Pooler => (true, false),
    };
    let pool_dir = out_dir.join("1_Pooling");
    std::fs::create_dir_all(&pool_dir).map_err(|e| ModelError::io(&pool_dir, e))?;
    write_json(
        &pool_dir.join("config.json"),
        &json!({"word_embedding_dimension": meta.config.hidden_size, "pooling_mode_cls_token": cls,
                "pooling_mode_mean_tokens": mean, "pooling_mode_max_tokens": false,
                "pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode_weightedmean_tokens": false,
                "pooling_mode_lasttoken": false, "include_prompt": true}),
    )?;
    write_json(&out_dir.join("sentence_bert_config.json"), &json!({"max_seq_length": meta.max_len, "do_lower_case": false}))?;
    let mut st_config = json!({"default_prompt_name": null, "similarity_fn_name": "cosine"});
    if !meta.prefixes.query.is_empty() || !meta.prefixes.passage.is_empty() {
        st_config["prompts"] = json!({"query": meta.prefixes.query, "passage": meta.prefixes.passage});
    }
    write_json(&out_dir.join("config_sentence_transformers.json"), &st_config)
}

/// Collects the encoder's parameters in PyTorch layout and writes them with HF names.
fn write_weights(encoder: &BertEncoder, meta: &ModelMeta, path: &Path) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let bad =
        |tensor: &str, message: String| ModelError::BadTensor { path: path.to_path_buf(), tensor: tensor.to_string(), message };
    let adapter: Box<dyn ModuleAdapter> = Box::new(BurnToPyTorchAdapter);
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in encoder.collect(None, Some(adapter), false) {
        let name = format!("{}{}", meta.weight_prefix, burn_to_hf_name(&t.name));
        let dtype = match t.dtype {
            DType::F32 => Dtype::F32,
            other => return Err(bad(&name, format!("cannot export dtype {other:?}"))),
        };
        let shape = t.shape.to_vec();
        let bytes = t.to_bytes().map_err(|e| bad(&name, e.to_string()))?.to_vec();
        tensors.push((name, dtype, shape, bytes));
    }
    for (name, info) in &meta.buffers {
        let full = format!("{}{name}", meta.weight_prefix);
        let count: usize = info.shape.iter().product();
        let row = *info.shape.last().unwrap_or(&0);
        // position_ids is arange over the last dim; token_type_ids is zeros.
        let values: Vec<i64> =
            (0..count).map(|k| if name.ends_with("position_ids") && row > 0 { (k % row) as i64 } else { 0 }).collect();
        let (dtype, bytes) = match info.dtype.as_str() {
            "I64" => (Dtype::I64, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            "I32" => (Dtype::I32, values.iter().flat_map(|v| (*v as i32).to_le_bytes()).collect()),
            other => return Err(bad(&full, format!("cannot re-create a {other} buffer"))),
        };
        tensors.push((full, dtype, info.shape.clone(), bytes));
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v)).map_err(|e| bad(name, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| ModelError::Safetensors { path: path.to_path_buf(), message: e.to_string() })
}
