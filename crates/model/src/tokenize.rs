//! Tokenization with the `tokenizers` crate and our own batching (padding to the batch's longest
//! sequence with the model's pad id, plus an attention mask).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};
use crate::reference::TokenizerReference;

/// A `tokenizer.json` tokenizer with padding disabled and truncation set to `max_len` tokens
/// (special tokens included, as in Hugging Face `truncation=True, max_length=max_len`), running
/// the pipeline of a [`TokenizerReference`].
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    reference: TokenizerReference,
    pad_id: u32,
    max_len: usize,
    /// Whether `encode` adds the model's special tokens (`[CLS]`/`[SEP]`, `<s>`/`</s>`); static
    /// embedding models read the text's own tokens only.
    add_special_tokens: bool,
    path: PathBuf,
    /// The file as read, so an export writes it back byte-for-byte.
    source_json: Arc<Vec<u8>>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("reference", &self.reference)
            .field("vocab_size", &self.vocab_size())
            .field("pad_id", &self.pad_id)
            .field("max_len", &self.max_len)
            .finish()
    }
}

/// Token ids of a batch, right-padded to the longest sequence, row-major `[batch, len]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, pad id in padded positions.
    pub input_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Number of sequences.
    pub batch: usize,
    /// Padded length.
    pub len: usize,
}

impl TokenBatch {
    /// Pads `sequences` to their longest length with `pad_id`.
    pub fn from_sequences(sequences: &[Vec<u32>], pad_id: u32) -> Self {
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut input_ids = Vec::with_capacity(sequences.len() * len);
        let mut attention_mask = Vec::with_capacity(sequences.len() * len);
        for seq in sequences {
            input_ids.extend(seq.iter().map(|&t| i64::from(t)));
            input_ids.extend(std::iter::repeat_n(i64::from(pad_id), len - seq.len()));
            attention_mask.extend(std::iter::repeat_n(1, seq.len()));
            attention_mask.extend(std::iter::repeat_n(0, len - seq.len()));
        }
        Self { input_ids, attention_mask, batch: sequences.len(), len }
    }

    /// `(input_ids, attention_mask)` as `[batch, len]` int tensors on `device`.
    pub fn to_tensors(&self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let shape = [self.batch, self.len];
        (
            Tensor::from_data(TensorData::new(self.input_ids.clone(), shape), device),
            Tensor::from_data(TensorData::new(self.attention_mask.clone(), shape), device),
        )
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` with its pipeline as written, turning off any padding baked into
    /// the file and truncating at `max_len`. `pad_id` is the model's padding id (`pad_token_id`
    /// of `config.json`).
    pub fn from_file(path: &Path, pad_id: u32, max_len: usize) -> Result<Self> {
        Self::from_file_as(path, TokenizerReference::File { class: None }, pad_id, max_len)
    }

    /// [`Self::from_file`] with the pipeline of `reference` (e.g. what transformers builds for the
    /// model's tokenizer class).
    pub fn from_file_as(path: &Path, reference: TokenizerReference, pad_id: u32, max_len: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let err = |message: String| ModelError::Tokenizer { path: path.to_path_buf(), message };
        let pipeline = reference.rewrite(&bytes).map_err(&err)?;
        // The tokenizers crate panics on some malformed files (a deserialisation helper unwraps;
        // found by `tests/fuzz_parsers.rs`): contain that as an error naming the file.
        let parsed = std::panic::catch_unwind(|| Tokenizer::from_bytes(pipeline.as_deref().unwrap_or(&bytes)))
            .map_err(|_| err("malformed tokenizer.json (the tokenizers crate stopped on an internal check)".into()))?;
        let mut inner = parsed.map_err(|e| err(e.to_string()))?;
        inner.with_padding(None);
        if pad_id as usize >= inner.get_vocab_size(true) {
            return Err(err(format!("pad id {pad_id} is outside the vocabulary ({})", inner.get_vocab_size(true))));
        }
        let tokenizer = Self {
            inner,
            reference,
            pad_id,
            max_len,
            add_special_tokens: true,
            path: path.to_path_buf(),
            source_json: Arc::new(bytes),
        };
        tokenizer.with_max_len(max_len)
    }

    /// The same tokenizer truncating at `max_len` tokens (special tokens included), without
    /// reading and parsing the file again.
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self> {
        let err = |message: String| ModelError::Tokenizer { path: self.path.clone(), message };
        if max_len == 0 {
            // The tokenizers crate reads a truncation length of 0 as "no truncation".
            return Err(err("the truncation length must be at least 1 token".into()));
        }
        let truncation = TruncationParams { max_length: max_len, ..Default::default() };
        if let Err(e) = self.inner.with_truncation(Some(truncation)) {
            return Err(err(e.to_string()));
        }
        self.max_len = max_len;
        Ok(self)
    }

    /// The same tokenizer without special tokens (sentence-transformers' `StaticEmbedding` way).
    pub fn without_special_tokens(mut self) -> Self {
        self.add_special_tokens = false;
        self
    }

    /// Whose pipeline this tokenizer runs.
    pub fn reference(&self) -> &TokenizerReference {
        &self.reference
    }

    /// Whether special tokens are added.
    pub fn adds_special_tokens(&self) -> bool {
        self.add_special_tokens
    }

    /// The `tokenizer.json` this tokenizer was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Truncation length (special tokens included).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The `tokenizer.json` bytes this tokenizer was read from.
    pub fn source_json(&self) -> &[u8] {
        &self.source_json
    }

    /// Token ids of one text, special tokens added, truncated to `max_len`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let text = self.cut(text);
        let encoding = self.inner.encode(text, self.add_special_tokens).map_err(|e| ModelError::Tokenizer {
            path: self.path.clone(),
            message: format!("encoding {:?}: {e}", truncate_for_message(text)),
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The start of `text` that tokenising can need ([`cut_for_tokenizing`] at this tokenizer's
    /// truncation length).
    pub fn cut<'a>(&self, text: &'a str) -> &'a str {
        cut_for_tokenizing(text, self.max_len)
    }

    /// Token ids of many texts.
    pub fn encode_all<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Tokenizes and pads `texts` into one batch.
    pub fn batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<TokenBatch> {
        Ok(TokenBatch::from_sequences(&self.encode_all(texts)?, self.pad_id))
    }
}

/// Bytes of text kept per token of the truncation length (see [`cut_for_tokenizing`]).
pub const BYTES_PER_KEPT_TOKEN: usize = 64;

/// The start of `text` that a tokenizer truncating at `max_len` tokens can need: at most
/// `max_len` × [`BYTES_PER_KEPT_TOKEN`] bytes (at least 4096), cut at a char boundary.
///
/// Very long texts are cut before they are tokenised in full, or copied to add a prefix: a
/// truncated encoding never needs more than ~`max_len` words, and a 100 MB text would otherwise
/// take minutes and gigabytes. 64 bytes per kept token is far above any tokenizer's bytes per
/// token, so the kept ids are those of the whole text.
pub fn cut_for_tokenizing(text: &str, max_len: usize) -> &str {
    let limit = max_len.saturating_mul(BYTES_PER_KEPT_TOKEN).max(4096);
    if text.len() > limit { &text[..floor_char_boundary(text, limit)] } else { text }
}

/// The largest char boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut i = index.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn truncate_for_message(text: &str) -> String {
    text.chars().take(60).collect()
}

/// Groups sequence indices into batches of at most `batch_size`, longest first, so each batch
/// pads little. Returns index lists into `lengths`.
pub fn length_sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Stable sort: equal lengths keep input order, so results are deterministic.
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_at_a_char_boundary_before_tokenising() {
        // 20 MB: the cut keeps 32 × 64 bytes of it (4096, the floor), not a copy of the whole.
        let huge = "word ".repeat(4 << 20);
        let kept = cut_for_tokenizing(&huge, 32);
        assert_eq!(kept.len(), 4096);
        assert!(huge.starts_with(kept));
        assert_eq!(cut_for_tokenizing(&huge, 512).len(), 512 * BYTES_PER_KEPT_TOKEN);
        // A multi-byte character straddling the limit is left out whole, never split.
        let accents = "é".repeat(3000);
        let kept = cut_for_tokenizing(&accents, 1);
        assert_eq!((kept.len(), kept.chars().count()), (4096, 2048));
        let odd = format!("x{accents}");
        assert_eq!(cut_for_tokenizing(&odd, 1).len(), 4095);
        // Short texts and a huge max_len are untouched (no overflow in the limit).
        assert_eq!(cut_for_tokenizing("short", 1), "short");
        assert_eq!(cut_for_tokenizing(&accents, usize::MAX).len(), accents.len());
    }
}
