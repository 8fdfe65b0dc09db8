//! A narrow copy of a BERT-family model directory: one attention head wide, every other size
//! kept (layers, vocabulary, positions, tokenizer). `speed op-count` times its tiny step on it,
//! where a step's host work per operator is what remains: on a CPU the full model's tiny step
//! is mostly AdamW over its trainable values (memory traffic), which a GPU does in microseconds.
//!
//! The weights are the real ones, cut to their leading rows and columns (no random numbers, so
//! the copy is the same on every machine); both engines load the copy, as they load the model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use safetensors::tensor::{SafeTensors, TensorView};
use serde_json::Value;

/// Files copied as they are (those present), besides the rewritten config and weights.
const COPIED: [&str; 7] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "2_Normalize/config.json",
];

/// Writes the narrow copy of `model` into `out` (created) and returns `out`.
pub fn narrow_copy(model: &Path, out: &Path) -> Result<PathBuf> {
    let config_path = model.join("config.json");
    let mut config: Value = read_json(&config_path)?;
    let size = |key: &str| -> Result<usize> {
        config[key].as_u64().map(|v| v as usize).with_context(|| format!("{}: no integer `{key}`", config_path.display()))
    };
    let (hidden, intermediate, heads) = (size("hidden_size")?, size("intermediate_size")?, size("num_attention_heads")?);
    if heads == 0 || hidden % heads != 0 || hidden == intermediate {
        bail!("{}: hidden_size {hidden}, intermediate_size {intermediate}, {heads} heads: no one-head cut", config_path.display());
    }
    // One head of the same width; the feed-forward layer keeps its ratio to the hidden size.
    let (narrow_hidden, narrow_intermediate) = (hidden / heads, intermediate / heads);
    config["hidden_size"] = narrow_hidden.into();
    config["intermediate_size"] = narrow_intermediate.into();
    config["num_attention_heads"] = 1.into();
    std::fs::create_dir_all(out.join("1_Pooling")).with_context(|| format!("creating {}", out.display()))?;
    std::fs::create_dir_all(out.join("2_Normalize")).with_context(|| format!("creating {}", out.display()))?;
    write_json(&out.join("config.json"), &config)?;
    for file in COPIED {
        let from = model.join(file);
        if from.exists() {
            std::fs::copy(&from, out.join(file)).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    let pooling_path = model.join("1_Pooling/config.json");
    if pooling_path.exists() {
        let mut pooling = read_json(&pooling_path)?;
        pooling["word_embedding_dimension"] = narrow_hidden.into();
        write_json(&out.join("1_Pooling/config.json"), &pooling)?;
    }

    let weights_path = model.join("model.safetensors");
    let bytes = std::fs::read(&weights_path).with_context(|| format!("reading {}", weights_path.display()))?;
    let weights = SafeTensors::deserialize(&bytes).with_context(|| format!("parsing {}", weights_path.display()))?;
    let narrow_dim = |d: usize| match d {
        d if d == hidden => narrow_hidden,
        d if d == intermediate => narrow_intermediate,
        d => d,
    };
    let mut cut: Vec<(String, TensorView<'_>, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in weights.tensors() {
        let shape: Vec<usize> = view.shape().iter().map(|&d| narrow_dim(d)).collect();
        let data = leading_block(view.data(), view.shape(), &shape, view.dtype().bitsize() / 8)
            .with_context(|| format!("{}: tensor {name} of dtype {:?}", weights_path.display(), view.dtype()))?;
        cut.push((name, view, shape, data));
    }
    let views = cut
        .iter()
        .map(|(name, view, shape, data)| Ok((name.clone(), TensorView::new(view.dtype(), shape.clone(), data)?)))
        .collect::<Result<Vec<_>>>()?;
    let path = out.join("model.safetensors");
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(out.to_path_buf())
}

/// The leading `to` block of a row-major tensor of shape `from` (elements of `bytes` bytes).
fn leading_block(data: &[u8], from: &[usize], to: &[usize], bytes: usize) -> Result<Vec<u8>> {
    if bytes == 0 {
        bail!("elements narrower than a byte");
    }
    let mut out = Vec::with_capacity(to.iter().product::<usize>() * bytes);
    copy_leading(data, from, to, bytes, &mut out);
    Ok(out)
}

fn copy_leading(data: &[u8], from: &[usize], to: &[usize], bytes: usize, out: &mut Vec<u8>) {
    match from {
        [] => out.extend_from_slice(&data[..bytes]),
        [_] => out.extend_from_slice(&data[..to[0] * bytes]),
        [_, inner @ ..] => {
            let row_bytes = inner.iter().product::<usize>() * bytes;
            for row in data.chunks_exact(row_bytes).take(to[0]) {
                copy_leading(row, inner, &to[1..], bytes, out);
            }
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::leading_block;

    #[test]
    fn the_leading_block_of_a_matrix_and_of_a_vector() {
        // 3 x 4 matrix of one-byte elements 0..12, cut to 2 x 3.
        let data: Vec<u8> = (0..12).collect();
        assert_eq!(leading_block(&data, &[3, 4], &[2, 3], 1).unwrap(), vec![0, 1, 2, 4, 5, 6]);
        // Two-byte elements: a vector of 4 cut to 2 keeps the first 4 bytes.
        assert_eq!(leading_block(&[1, 2, 3, 4, 5, 6, 7, 8], &[4], &[2], 2).unwrap(), vec![1, 2, 3, 4]);
    }
}
