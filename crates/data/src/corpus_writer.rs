//! Writes a user corpus in the formats [`crate::load_user_corpus`] reads (JSONL, Parquet), with
//! any number of hard negatives per row: `negative` holds the first (the one the loaders and the
//! trainer use), `negative_2` … `negative_N` the others (sentence-transformers' n-tuple layout),
//! and optional scores (`positive_score`, `negative_score`, `negative_2_score`, …) record what a
//! mining model thought of them. The loaders ignore the extra columns.
//!
//! The file appears whole or not at all: it is written beside its final name and renamed.

use std::path::Path;
use std::sync::Arc;

use crate::error::{DataError, Result};

/// One (id, language) row of a user corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusRow {
    /// Parallel id (shared by the translations).
    pub id: Arc<str>,
    /// Language code.
    pub lang: Arc<str>,
    /// The query.
    pub query: Arc<str>,
    /// The relevant passage.
    pub positive: Arc<str>,
    /// The positive's paragraph, when known.
    pub context: Option<Arc<str>>,
    /// Hard negatives, best first (may be empty).
    pub negatives: Vec<Arc<str>>,
    /// Scores, when a model chose the negatives.
    pub scores: Option<RowScores>,
}

/// A mining model's scores of a row's positive and negatives.
#[derive(Debug, Clone, PartialEq)]
pub struct RowScores {
    /// Score of (query, positive).
    pub positive: f32,
    /// Score of (query, negative k), one per negative.
    pub negatives: Vec<f32>,
}

/// Column name of the `k`-th negative (0-based): `negative`, `negative_2`, `negative_3`, …
pub fn negative_column(k: usize) -> String {
    if k == 0 { "negative".into() } else { format!("negative_{}", k + 1) }
}

/// Writes `rows` to `path` as JSONL (`.jsonl`, `.ndjson`) or Parquet (`.parquet`, needs the
/// `parquet` feature), chosen by extension. Errors name the file; an unknown extension, a row
/// whose scores do not match its negatives, and an empty row list are refused before anything
/// is written.
pub fn write_user_corpus(path: &Path, rows: &[CorpusRow]) -> Result<()> {
    let format_error = |message: String| DataError::Format { path: path.to_path_buf(), place: "file".into(), message };
    if rows.is_empty() {
        return Err(format_error("no rows to write".into()));
    }
    for (i, row) in rows.iter().enumerate() {
        if let Some(s) = &row.scores
            && s.negatives.len() != row.negatives.len()
        {
            return Err(DataError::Row {
                path: path.to_path_buf(),
                row: i + 1,
                message: format!("{} negatives but {} negative scores", row.negatives.len(), s.negatives.len()),
            });
        }
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "jsonl" | "ndjson" => jsonl_bytes(rows),
        "parquet" => columnar::parquet_bytes(path, rows)?,
        _ => return Err(format_error("unknown output format: use .jsonl or .parquet".into())),
    };
    crate::fs::write_atomic(path, &bytes).map_err(|e| DataError::io(path, e))
}

fn jsonl_bytes(rows: &[CorpusRow]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        let mut obj = serde_json::Map::new();
        let text = |s: &Arc<str>| serde_json::Value::String(s.to_string());
        obj.insert("id".into(), text(&row.id));
        obj.insert("lang".into(), text(&row.lang));
        obj.insert("query".into(), text(&row.query));
        obj.insert("positive".into(), text(&row.positive));
        if let Some(c) = &row.context {
            obj.insert("context".into(), text(c));
        }
        for (k, n) in row.negatives.iter().enumerate() {
            obj.insert(negative_column(k), text(n));
        }
        if let Some(s) = &row.scores {
            // f32 → f64 prints the float's exact value; JSON readers get the same f32 back.
            obj.insert("positive_score".into(), serde_json::json!(f64::from(s.positive)));
            for (k, v) in s.negatives.iter().enumerate() {
                obj.insert(format!("{}_score", negative_column(k)), serde_json::json!(f64::from(*v)));
            }
        }
        // A map of strings and finite numbers always serialises.
        serde_json::to_writer(&mut out, &obj).expect("JSON of strings and numbers");
        out.push(b'\n');
    }
    out
}

#[cfg(not(feature = "parquet"))]
mod columnar {
    use std::path::Path;

    use super::CorpusRow;
    use crate::error::{DataError, Result};

    pub(super) fn parquet_bytes(path: &Path, _rows: &[CorpusRow]) -> Result<Vec<u8>> {
        Err(DataError::Format {
            path: path.to_path_buf(),
            place: "file format".into(),
            message: "writing Parquet needs the `parquet` feature of hybrid-ir-data (on by default); or write .jsonl".into(),
        })
    }
}

#[cfg(feature = "parquet")]
mod columnar {
    use std::path::Path;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::{CorpusRow, negative_column};
    use crate::error::{DataError, Result};

    pub(super) fn parquet_bytes(path: &Path, rows: &[CorpusRow]) -> Result<Vec<u8>> {
        let columnar = |e: &dyn std::fmt::Display| DataError::Columnar { path: path.to_path_buf(), message: e.to_string() };
        let most = rows.iter().map(|r| r.negatives.len()).max().unwrap_or(0);
        let scored = rows.iter().any(|r| r.scores.is_some());
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut text = |name: String, nullable: bool, values: Vec<Option<&str>>| {
            fields.push(Field::new(name, DataType::Utf8, nullable));
            columns.push(Arc::new(StringArray::from(values)));
        };
        text("id".into(), false, rows.iter().map(|r| Some(&*r.id)).collect());
        text("lang".into(), false, rows.iter().map(|r| Some(&*r.lang)).collect());
        text("query".into(), false, rows.iter().map(|r| Some(&*r.query)).collect());
        text("positive".into(), false, rows.iter().map(|r| Some(&*r.positive)).collect());
        if rows.iter().any(|r| r.context.is_some()) {
            text("context".into(), true, rows.iter().map(|r| r.context.as_deref()).collect());
        }
        for k in 0..most {
            text(negative_column(k), true, rows.iter().map(|r| r.negatives.get(k).map(|n| &**n)).collect());
        }
        if scored {
            let mut score = |name: String, values: Vec<Option<f32>>| {
                fields.push(Field::new(name, DataType::Float32, true));
                columns.push(Arc::new(Float32Array::from(values)));
            };
            score("positive_score".into(), rows.iter().map(|r| r.scores.as_ref().map(|s| s.positive)).collect());
            for k in 0..most {
                score(
                    format!("{}_score", negative_column(k)),
                    rows.iter().map(|r| r.scores.as_ref().and_then(|s| s.negatives.get(k).copied())).collect(),
                );
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| columnar(&e))?;
        let mut out = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).map_err(|e| columnar(&e))?;
        writer.write(&batch).map_err(|e| columnar(&e))?;
        writer.close().map_err(|e| columnar(&e))?;
        Ok(out)
    }
}
