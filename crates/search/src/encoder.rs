//! The extension point between a model and the index: [`TextEncoder`].
//!
//! The search crate does not know about models: it hands texts to a `TextEncoder` and gets
//! embeddings back. The built-in implementation (`hybrid_ir_eval::PipelineTextEncoder`) runs the
//! workspace's one encoding path (`TextPipeline` + any `Backbone`); tests and users can plug in
//! anything else (an HTTP embedding service, a hashing baseline).

use ndarray::Array2;

/// Which side of retrieval a text is on: it picks the prefix (`query: ` / `passage: ` for E5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// A query.
    Query,
    /// A document of the collection.
    Passage,
}

/// Turns texts into embeddings, one row per text, in input order.
pub trait TextEncoder {
    /// A description for the manifest and logs (e.g. `model multilingual-e5-small`).
    fn describe(&self) -> String;

    /// The prefix this encoder adds to texts of `side` (recorded in the manifest; `""` if none).
    fn prefix(&self, side: Side) -> String;

    /// The embedding dimension.
    fn dim(&self) -> usize;

    /// Where texts of `side` are truncated, in tokens, if anywhere. Recorded in the manifest: the
    /// probe texts are too short to show a change of truncation, so a resumed build compares it.
    fn max_tokens(&self, side: Side) -> Option<usize> {
        let _ = side;
        None
    }

    /// Embeds `texts` as `side`. `progress` gets the number of texts done so far. Rows must be
    /// finite; the index checks it.
    fn encode(&mut self, texts: &[&str], side: Side, progress: &mut dyn FnMut(usize)) -> Result<Array2<f32>, String>;
}

/// Fixed texts encoded when an index is built and again whenever it is resumed or searched: the
/// same model with the same prefixes gives the same vectors (to float noise across backends), any
/// other model or prefix does not. This identifies the encoder by what it computes, not by file
/// names or paths, which change when a model directory is copied.
pub const PROBE_TEXTS: [&str; 3] = [
    "Where is the Eiffel Tower?",
    "La tour Eiffel se trouve à Paris, sur le Champ-de-Mars.",
    "東京は日本の首都です。",
];

/// Largest element-wise difference between probe embeddings still taken as the same encoder.
/// Backends differ by ~1e-6 on normalised vectors; another checkpoint, even a lightly fine-tuned
/// one, differs by far more.
pub const PROBE_TOLERANCE: f32 = 1e-3;

/// A probe text's embedding on one side.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    /// Query or passage.
    pub side: Side,
    /// The text (one of [`PROBE_TEXTS`]).
    pub text: String,
    /// Its embedding.
    pub embedding: Vec<f32>,
}

/// The probe embeddings of `encoder`: every probe text on both sides.
pub fn probes<E: TextEncoder + ?Sized>(encoder: &mut E) -> Result<Vec<Probe>, String> {
    let mut out = Vec::new();
    for side in [Side::Query, Side::Passage] {
        let rows = encoder.encode(&PROBE_TEXTS, side, &mut |_| {})?;
        for (text, row) in PROBE_TEXTS.iter().zip(rows.rows()) {
            out.push(Probe { side, text: text.to_string(), embedding: row.to_vec() });
        }
    }
    Ok(out)
}

/// Why two probe sets do not come from the same encoder, or `None` if they do.
pub fn probe_mismatch(recorded: &[Probe], now: &[Probe]) -> Option<String> {
    if recorded.len() != now.len() {
        return Some(format!("{} probe texts were recorded, {} encoded now", recorded.len(), now.len()));
    }
    for (a, b) in recorded.iter().zip(now) {
        if a.side != b.side || a.text != b.text || a.embedding.len() != b.embedding.len() {
            return Some("the probe texts or dimensions differ".into());
        }
        let worst = a.embedding.iter().zip(&b.embedding).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        if !(worst <= PROBE_TOLERANCE) {
            let side = match a.side {
                Side::Query => "query",
                Side::Passage => "passage",
            };
            return Some(format!("the {side} embedding of {:?} differs by up to {worst:.3e} (tolerance {PROBE_TOLERANCE:e})", a.text));
        }
    }
    None
}
