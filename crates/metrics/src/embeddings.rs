//! Bring-your-own embeddings: a Parquet file with one row per query and per candidate.
//!
//! | column      | type                                            | meaning |
//! |-------------|-------------------------------------------------|---------|
//! | `kind`      | utf8 (`query` or `candidate`)                   | what the row embeds |
//! | `lang`      | utf8                                            | language code |
//! | `id`        | utf8                                            | queries: the parallel question id; candidates: `{lang}_{p}_{s}` |
//! | `embedding` | list / large list / fixed-size list of float32  | the vector |
//!
//! Rows may come in any order. Reading checks everything and guesses nothing: a null, a wrong
//! kind, a dimension different from the first row's, a NaN or infinite value, a duplicate
//! (kind, lang, id), a row the benchmark does not have, or a benchmark item with no row is an
//! error naming the (1-based) row or the missing item.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListBuilder, Float32Builder, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};
use hybrid_ir_data::RetrievalBenchmark;
use ndarray::Array2;

use crate::error::{MetricsError, Result};
use crate::lareqa::BenchmarkEmbeddings;

/// What a row embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddingKind {
    /// A question.
    Query,
    /// A candidate sentence.
    Candidate,
}

impl EmbeddingKind {
    /// `query` or `candidate`.
    pub fn name(self) -> &'static str {
        match self {
            EmbeddingKind::Query => "query",
            EmbeddingKind::Candidate => "candidate",
        }
    }
}

/// The rows of an embeddings file, in file order, validated row by row.
#[derive(Debug, Clone)]
pub struct EmbeddingTable {
    /// File the rows were read from (for error messages).
    pub path: PathBuf,
    /// Kind of each row.
    pub kinds: Vec<EmbeddingKind>,
    /// Language of each row.
    pub langs: Vec<String>,
    /// Id of each row.
    pub ids: Vec<String>,
    /// Embeddings, one row per file row.
    pub vectors: Array2<f32>,
}

/// Reads and validates an embeddings Parquet file (see the module docs for the format).
pub fn read_embeddings(path: &Path) -> Result<EmbeddingTable> {
    // The `parquet` crate asserts on some malformed footers (e.g. a negative column offset, found
    // by `tests/fuzz_parsers.rs`) instead of returning an error: contain that as an error here.
    std::panic::catch_unwind(|| read_embeddings_unguarded(path)).unwrap_or_else(|_| {
        Err(MetricsError::Parquet {
            path: path.to_path_buf(),
            message: "malformed Parquet file (its reader stopped on an internal check)".into(),
        })
    })
}

fn read_embeddings_unguarded(path: &Path) -> Result<EmbeddingTable> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| MetricsError::io(path, e))?;
    let pq = |e: &dyn std::fmt::Display| MetricsError::Parquet { path: path.to_path_buf(), message: e.to_string() };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(&e))?.build().map_err(|e| pq(&e))?;
    let mut kinds = Vec::new();
    let mut langs = Vec::new();
    let mut ids = Vec::new();
    let mut data: Vec<f32> = Vec::new();
    let mut dim: Option<usize> = None;
    for batch in reader {
        let batch = batch.map_err(|e| pq(&e))?;
        let first_row = kinds.len() + 1;
        let kind = string_column(path, &batch, "kind")?;
        let lang = string_column(path, &batch, "lang")?;
        let id = string_column(path, &batch, "id")?;
        let emb = batch.column_by_name("embedding").ok_or_else(|| column_error(path, "embedding", "missing"))?;
        for i in 0..batch.num_rows() {
            let row = first_row + i;
            let row_err = |message: String| MetricsError::Row { path: path.to_path_buf(), row, message };
            for (name, col) in [("kind", &kind), ("lang", &lang), ("id", &id)] {
                if col.is_null(i) {
                    return Err(row_err(format!("`{name}` is null")));
                }
            }
            kinds.push(match kind.value(i) {
                "query" => EmbeddingKind::Query,
                "candidate" => EmbeddingKind::Candidate,
                other => return Err(row_err(format!("kind `{other}` is neither `query` nor `candidate`"))),
            });
            langs.push(lang.value(i).to_string());
            ids.push(id.value(i).to_string());
            let values = list_row(path, emb, i).map_err(|m| row_err(m))?;
            match dim {
                None if values.is_empty() => return Err(row_err("embedding is empty".into())),
                None => dim = Some(values.len()),
                Some(d) if d != values.len() => {
                    return Err(row_err(format!("embedding has dimension {}, row 1 has {d}", values.len())));
                }
                Some(_) => {}
            }
            if let Some(k) = values.iter().position(|x| !x.is_finite()) {
                return Err(row_err(format!("embedding[{k}] is {}", values[k])));
            }
            data.extend_from_slice(&values);
        }
    }
    let dim = dim.ok_or_else(|| MetricsError::Row { path: path.to_path_buf(), row: 0, message: "the file has no rows".into() })?;
    let vectors = Array2::from_shape_vec((kinds.len(), dim), data).expect("rows have the checked dimension");
    Ok(EmbeddingTable { path: path.to_path_buf(), kinds, langs, ids, vectors })
}

fn column_error(path: &Path, column: &str, message: &str) -> MetricsError {
    MetricsError::Column { path: path.to_path_buf(), column: column.into(), message: message.into() }
}

/// A string column of any arrow string type, as plain utf8.
fn string_column(path: &Path, batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let col = batch.column_by_name(name).ok_or_else(|| column_error(path, name, "missing"))?;
    match col.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {}
        other => return Err(column_error(path, name, &format!("has type {other}, expected utf8"))),
    }
    let cast = arrow::compute::cast(col, &DataType::Utf8).map_err(|e| column_error(path, name, &e.to_string()))?;
    Ok(cast.as_string::<i32>().clone())
}

/// The float32 values of row `i` of a list / large list / fixed-size list column.
fn list_row(path: &Path, col: &ArrayRef, i: usize) -> std::result::Result<Vec<f32>, String> {
    if col.is_null(i) {
        return Err("`embedding` is null".into());
    }
    let values: ArrayRef = match col.data_type() {
        DataType::List(_) => col.as_list::<i32>().value(i),
        DataType::LargeList(_) => col.as_list::<i64>().value(i),
        DataType::FixedSizeList(_, _) => col.as_fixed_size_list().value(i),
        other => {
            return Err(column_error(path, "embedding", &format!("has type {other}, expected a list of float32")).to_string());
        }
    };
    if values.data_type() != &DataType::Float32 {
        return Err(format!("`embedding` holds {} values, expected float32", values.data_type()));
    }
    if values.null_count() > 0 {
        return Err("`embedding` has a null value".into());
    }
    Ok(values.as_primitive::<Float32Type>().values().to_vec())
}

impl EmbeddingTable {
    /// Puts the rows in benchmark order. Every query (by `lang` + `id`) and every candidate (by
    /// `id`, whose `lang` must match) needs exactly one row; any other row is an error.
    pub fn align(&self, benchmark: &RetrievalBenchmark) -> Result<BenchmarkEmbeddings> {
        let row_err = |row: usize, message: String| MetricsError::Row { path: self.path.clone(), row, message };
        let mut query_index: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, q) in benchmark.queries.iter().enumerate() {
            query_index.insert((&q.lang, &q.id), i);
        }
        let candidate_index: HashMap<&str, usize> =
            benchmark.candidates.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
        let mut query_row = vec![usize::MAX; benchmark.queries.len()];
        let mut candidate_row = vec![usize::MAX; benchmark.candidates.len()];
        for r in 0..self.kinds.len() {
            let (lang, id) = (self.langs[r].as_str(), self.ids[r].as_str());
            let (slot, what) = match self.kinds[r] {
                EmbeddingKind::Query => {
                    let i = *query_index.get(&(lang, id)).ok_or_else(|| {
                        row_err(r + 1, format!("query ({lang}, {id}) is not in benchmark {}", benchmark.name))
                    })?;
                    (&mut query_row[i], "query")
                }
                EmbeddingKind::Candidate => {
                    let i = *candidate_index.get(id).ok_or_else(|| {
                        row_err(r + 1, format!("candidate {id} is not in benchmark {}", benchmark.name))
                    })?;
                    let expected = &*benchmark.candidates[i].lang;
                    if expected != lang {
                        return Err(row_err(r + 1, format!("candidate {id} has lang `{lang}`, the benchmark says `{expected}`")));
                    }
                    (&mut candidate_row[i], "candidate")
                }
            };
            if *slot != usize::MAX {
                return Err(row_err(r + 1, format!("{what} ({lang}, {id}) already given at row {}", *slot + 1)));
            }
            *slot = r;
        }
        if let Some(i) = query_row.iter().position(|&r| r == usize::MAX) {
            let q = &benchmark.queries[i];
            let n = query_row.iter().filter(|&&r| r == usize::MAX).count();
            return Err(row_err(0, format!("no row for query ({}, {}) ({n} queries missing)", q.lang, q.id)));
        }
        if let Some(i) = candidate_row.iter().position(|&r| r == usize::MAX) {
            let n = candidate_row.iter().filter(|&&r| r == usize::MAX).count();
            return Err(row_err(0, format!("no row for candidate {} ({n} candidates missing)", benchmark.candidates[i].id)));
        }
        Ok(BenchmarkEmbeddings {
            queries: self.vectors.select(ndarray::Axis(0), &query_row),
            candidates: self.vectors.select(ndarray::Axis(0), &candidate_row),
        })
    }
}

/// Writes benchmark-aligned embeddings in the input format (queries first, then candidates;
/// `embedding` as a fixed-size list of float32).
pub fn write_embeddings(path: &Path, benchmark: &RetrievalBenchmark, embeddings: &BenchmarkEmbeddings) -> Result<()> {
    let (nq, nc) = (benchmark.queries.len(), benchmark.candidates.len());
    if embeddings.queries.nrows() != nq || embeddings.candidates.nrows() != nc {
        return Err(MetricsError::Invalid(format!(
            "embeddings have {} queries and {} candidates, the benchmark {nq} and {nc}",
            embeddings.queries.nrows(),
            embeddings.candidates.nrows()
        )));
    }
    let dim = embeddings.queries.ncols();
    if embeddings.candidates.ncols() != dim {
        return Err(MetricsError::Invalid("query and candidate embeddings differ in dimension".into()));
    }
    let out_err = |e: &dyn std::fmt::Display| MetricsError::Parquet { path: path.to_path_buf(), message: e.to_string() };
    let kinds: Vec<&str> = std::iter::repeat_n("query", nq).chain(std::iter::repeat_n("candidate", nc)).collect();
    let langs: Vec<&str> =
        benchmark.queries.iter().map(|q| &*q.lang).chain(benchmark.candidates.iter().map(|c| &*c.lang)).collect();
    let ids: Vec<&str> =
        benchmark.queries.iter().map(|q| &*q.id).chain(benchmark.candidates.iter().map(|c| c.id.as_str())).collect();
    let mut builder = FixedSizeListBuilder::with_capacity(Float32Builder::with_capacity((nq + nc) * dim), dim as i32, nq + nc)
        .with_field(Arc::new(Field::new("item", DataType::Float32, false)));
    for row in embeddings.queries.rows().into_iter().chain(embeddings.candidates.rows()) {
        for &x in row {
            builder.values().append_value(x);
        }
        builder.append(true);
    }
    let embedding = builder.finish();
    let schema = Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("embedding", embedding.data_type().clone(), false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(kinds)),
            Arc::new(StringArray::from(langs)),
            Arc::new(StringArray::from(ids)),
            Arc::new(embedding),
        ],
    )
    .map_err(|e| out_err(&e))?;
    let file = File::create(path).map_err(|e| MetricsError::io(path, e))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(|e| out_err(&e))?;
    writer.write(&batch).map_err(|e| out_err(&e))?;
    writer.close().map_err(|e| out_err(&e))?;
    Ok(())
}
