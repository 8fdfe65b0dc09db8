//! User corpora: one row per (id, language) with columns `id, lang, query, positive`, optional
//! `negative` (hard negative) and `context` (the positive's paragraph), from
//! - JSONL (`.jsonl`, `.ndjson`): one JSON object per line, UTF-8 (a byte order mark at the start
//!   of the file is skipped); blank lines are allowed and ignored;
//! - Parquet (`.parquet`) or Arrow IPC (`.arrow`, `.ipc`, `.feather`): string columns
//!   (`utf8`, `large_utf8` or `utf8_view`). These need the crate feature `parquet` (on by
//!   default); a build without it refuses such files with an error naming the feature.
//!
//! Rows sharing an `id` are translations of each other. Nothing is dropped silently: a value of
//! the wrong type, a missing, empty or whitespace-only id, language or text, a line that is not
//! UTF-8, or a duplicate (id, lang) stops the load with the file and the row (the line number for
//! JSONL, the 1-based row for columnar files). Extra columns are ignored.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::corpus::{Example, ParallelCorpus, ParallelCorpusBuilder};
use crate::error::{DataError, Result};
use crate::text::TextLines;

/// Loads a user corpus, choosing the reader by file extension. The corpus is named after the
/// file stem.
pub fn load_user_corpus(path: &Path) -> Result<ParallelCorpus> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jsonl" | "ndjson" => load_jsonl(path),
        "parquet" => load_parquet(path),
        "arrow" | "ipc" | "feather" => load_arrow_ipc(path),
        _ => Err(DataError::Format {
            path: path.to_path_buf(),
            place: "file name".into(),
            message: "unknown corpus format: use .jsonl, .parquet or .arrow".into(),
        }),
    }
}

fn corpus_name(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("corpus").to_string()
}

/// One row's fields before validation.
struct Row {
    id: String,
    lang: String,
    query: String,
    positive: String,
    negative: Option<String>,
    context: Option<String>,
}

/// Adds rows to a builder, wrapping its complaints with file and row; remembers where each
/// (id, lang) was first seen so a duplicate names both rows.
struct RowSink<'a> {
    path: &'a Path,
    builder: ParallelCorpusBuilder,
    first_row: HashMap<(String, String), usize>,
}

impl<'a> RowSink<'a> {
    fn new(path: &'a Path) -> Self {
        RowSink { path, builder: ParallelCorpusBuilder::new(corpus_name(path)), first_row: HashMap::new() }
    }

    fn row_error(&self, row: usize, message: String) -> DataError {
        DataError::Row { path: self.path.to_path_buf(), row, message }
    }

    fn push(&mut self, row_number: usize, row: Row) -> Result<()> {
        let key = (row.id.clone(), row.lang.clone());
        if let Some(first) = self.first_row.get(&key) {
            return Err(self
                .row_error(row_number, format!("duplicate (id, lang) = ({}, {}); first seen at row {first}", row.id, row.lang)));
        }
        let example = Example {
            query: Arc::from(row.query),
            positive: Arc::from(row.positive),
            context: row.context.map(Arc::from),
            negative: row.negative.map(Arc::from),
        };
        self.builder.push(&row.id, &row.lang, example).map_err(|m| self.row_error(row_number, m))?;
        self.first_row.insert(key, row_number);
        Ok(())
    }

    fn finish(self) -> Result<ParallelCorpus> {
        if self.first_row.is_empty() {
            return Err(DataError::Format { path: self.path.to_path_buf(), place: "file".into(), message: "no rows".into() });
        }
        Ok(self.builder.build())
    }
}

/// Reads a JSONL corpus.
pub fn load_jsonl(path: &Path) -> Result<ParallelCorpus> {
    let mut sink = RowSink::new(path);
    for line in TextLines::open(path).map_err(|e| DataError::io(path, e))? {
        let (line_no, line) = line.map_err(|e| DataError::line(path, e))?;
        let line = line.as_str();
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| match DataError::json(path, &e) {
            // serde_json counts lines within this one line; the file's line is ours.
            DataError::Json { path, column, message, .. } => DataError::Json { path, line: line_no, column, message },
            other => other,
        })?;
        let obj = value
            .as_object()
            .ok_or_else(|| sink.row_error(line_no, format!("expected a JSON object, found {}", json_type(&value))))?;
        let optional = |name: &str| -> Result<Option<String>> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => {
                    Err(sink.row_error(line_no, format!("field `{name}` is a {}, expected a string", json_type(other))))
                }
            }
        };
        let required = |name: &str| -> Result<String> {
            optional(name)?.ok_or_else(|| sink.row_error(line_no, format!("missing required field `{name}`")))
        };
        let row = Row {
            id: required("id")?,
            lang: required("lang")?,
            query: required("query")?,
            positive: required("positive")?,
            negative: optional("negative")?,
            context: optional("context")?,
        };
        sink.push(line_no, row)?;
    }
    sink.finish()
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Reads a Parquet corpus. Needs the crate feature `parquet` (on by default); without it this
/// returns an error naming the file and the feature.
pub fn load_parquet(path: &Path) -> Result<ParallelCorpus> {
    contain_panics(path, "Parquet", || columnar::load_parquet(path))
}

/// Reads an Arrow IPC (file format) corpus. Needs the crate feature `parquet` (on by default);
/// without it this returns an error naming the file and the feature.
pub fn load_arrow_ipc(path: &Path) -> Result<ParallelCorpus> {
    contain_panics(path, "Arrow IPC", || columnar::load_arrow_ipc(path))
}

/// Runs a reader of a third-party format and turns a panic inside it into an error naming the
/// file: the `parquet` crate asserts on some malformed files (e.g. a negative column offset in
/// the footer, found by `tests/fuzz_parsers.rs`) instead of returning its own error.
fn contain_panics(path: &Path, format: &str, read: impl FnOnce() -> Result<ParallelCorpus> + std::panic::UnwindSafe) -> Result<ParallelCorpus> {
    std::panic::catch_unwind(read).unwrap_or_else(|_| {
        Err(DataError::Format {
            path: path.to_path_buf(),
            place: "file".into(),
            message: format!("malformed {format} file (its reader stopped on an internal check)"),
        })
    })
}

/// Stand-ins for a build without the `parquet` feature: the public loaders keep their
/// signatures in both builds, so callers compile either way and learn at run time which
/// feature the file needs.
#[cfg(not(feature = "parquet"))]
mod columnar {
    use std::path::Path;

    use crate::corpus::ParallelCorpus;
    use crate::error::{DataError, Result};

    pub(super) fn load_parquet(path: &Path) -> Result<ParallelCorpus> {
        Err(feature_missing(path, "Parquet"))
    }

    pub(super) fn load_arrow_ipc(path: &Path) -> Result<ParallelCorpus> {
        Err(feature_missing(path, "Arrow IPC"))
    }

    fn feature_missing(path: &Path, format: &str) -> DataError {
        DataError::Format {
            path: path.to_path_buf(),
            place: "file format".into(),
            message: format!(
                "reading {format} files needs the `parquet` feature of hybrid-ir-data, which this \
                 build leaves out (it is on by default: enable it with `features = [\"parquet\"]`, \
                 or convert the corpus to .jsonl)"
            ),
        }
    }
}

/// Parquet and Arrow IPC readers (feature `parquet`: arrow and parquet are by far the crate's
/// largest dependencies).
#[cfg(feature = "parquet")]
mod columnar {
    use std::fs::File;
    use std::io::BufReader;
    use std::path::Path;

    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::DataType;

    use super::{Row, RowSink};
    use crate::corpus::ParallelCorpus;
    use crate::error::{DataError, Result};

    pub(super) fn load_parquet(path: &Path) -> Result<ParallelCorpus> {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let columnar = |e: &dyn std::fmt::Display| DataError::Columnar { path: path.to_path_buf(), message: e.to_string() };
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| columnar(&e))?.build().map_err(|e| columnar(&e))?;
        load_record_batches(path, reader.map(|b| b.map_err(|e| columnar(&e))))
    }

    pub(super) fn load_arrow_ipc(path: &Path) -> Result<ParallelCorpus> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let columnar = |e: &dyn std::fmt::Display| DataError::Columnar { path: path.to_path_buf(), message: e.to_string() };
        let reader = arrow::ipc::reader::FileReader::try_new(BufReader::new(file), None).map_err(|e| columnar(&e))?;
        load_record_batches(path, reader.map(|b| b.map_err(|e| columnar(&e))))
    }

    fn load_record_batches(path: &Path, batches: impl Iterator<Item = Result<RecordBatch>>) -> Result<ParallelCorpus> {
        let mut sink = RowSink::new(path);
        let mut row_offset = 0;
        for batch in batches {
            let batch = batch?;
            let schema = batch.schema();
            let optional = |name: &str| -> Result<Option<StringColumn<'_>>> {
                let Some((idx, field)) = schema.column_with_name(name) else {
                    return Ok(None);
                };
                StringColumn::new(batch.column(idx).as_ref()).map(Some).ok_or_else(|| DataError::Column {
                    path: path.to_path_buf(),
                    column: name.into(),
                    message: format!("unsupported type {}; expected a string column (utf8)", field.data_type()),
                })
            };
            let required = |name: &str| -> Result<StringColumn<'_>> {
                optional(name)?.ok_or_else(|| DataError::Column {
                    path: path.to_path_buf(),
                    column: name.into(),
                    message: format!("missing (the file has: {})", column_names(&batch)),
                })
            };
            let (id, lang, query, positive) = (required("id")?, required("lang")?, required("query")?, required("positive")?);
            let (negative, context) = (optional("negative")?, optional("context")?);
            for r in 0..batch.num_rows() {
                let row_number = row_offset + r + 1;
                let value = |name: &str, col: &StringColumn<'_>| -> Result<String> {
                    col.get(r).map(str::to_string).ok_or_else(|| sink.row_error(row_number, format!("`{name}` is null")))
                };
                let opt = |col: &Option<StringColumn<'_>>| col.as_ref().and_then(|c| c.get(r)).map(str::to_string);
                let row = Row {
                    id: value("id", &id)?,
                    lang: value("lang", &lang)?,
                    query: value("query", &query)?,
                    positive: value("positive", &positive)?,
                    negative: opt(&negative),
                    context: opt(&context),
                };
                sink.push(row_number, row)?;
            }
            row_offset += batch.num_rows();
        }
        sink.finish()
    }

    fn column_names(batch: &RecordBatch) -> String {
        batch.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Read access to a string column of any of Arrow's three string layouts.
    enum StringColumn<'a> {
        Utf8(&'a arrow::array::StringArray),
        LargeUtf8(&'a arrow::array::LargeStringArray),
        View(&'a arrow::array::StringViewArray),
    }

    impl<'a> StringColumn<'a> {
        fn new(array: &'a dyn Array) -> Option<Self> {
            Some(match array.data_type() {
                DataType::Utf8 => StringColumn::Utf8(array.as_string::<i32>()),
                DataType::LargeUtf8 => StringColumn::LargeUtf8(array.as_string::<i64>()),
                DataType::Utf8View => StringColumn::View(array.as_string_view()),
                _ => return None,
            })
        }

        fn get(&self, i: usize) -> Option<&'a str> {
            match self {
                StringColumn::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
                StringColumn::LargeUtf8(a) => a.is_valid(i).then(|| a.value(i)),
                StringColumn::View(a) => a.is_valid(i).then(|| a.value(i)),
            }
        }
    }
}
