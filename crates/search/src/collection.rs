//! Reading a document collection and its queries in the formats people have.
//!
//! Documents (one per line or row; `title` optional everywhere):
//! - **JSONL** (MIRACL, BEIR, Tevatron): `{"docid": …, "title": …, "text": …}`; the id may be
//!   called `docid`, `_id` (BEIR) or `id`, and may be a string or an integer. Other fields are
//!   ignored.
//! - **TSV**: `docid<TAB>text` (Pyserini, MS MARCO) or `docid<TAB>text<TAB>title` (DPR's
//!   `psgs_w100.tsv`, whose header line `id text title` is skipped).
//! - **Parquet** (the Hugging Face layout of `miracl/miracl-corpus`): string columns `docid` (or
//!   `_id` / `id`), `text` and optionally `title`.
//!
//! Queries: MIRACL / TREC topics TSV (`qid<TAB>query`), or JSONL with `query_id` / `qid` / `_id` /
//! `id` and `query` / `text`.
//!
//! A row without text, a missing id, a malformed line or a duplicate query id is an error naming
//! the file and line (or row); a duplicate document id is caught by the index builder, which sees
//! the whole collection.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use hybrid_ir_data::text::{LineError, TextLines};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::Value;

use crate::error::{Place, Result, SearchError};

/// The id fields accepted for documents, in order of preference.
const DOCID_FIELDS: [&str; 3] = ["docid", "_id", "id"];
/// The id fields accepted for queries, in order of preference.
const QID_FIELDS: [&str; 4] = ["query_id", "qid", "_id", "id"];
/// The text fields accepted for queries, in order of preference.
const QUERY_TEXT_FIELDS: [&str; 2] = ["query", "text"];

/// A file layout, chosen from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object per line (`.jsonl`, `.json`, `.ndjson`).
    Jsonl,
    /// Tab-separated (`.tsv`, `.txt`).
    Tsv,
    /// Parquet (`.parquet`): documents only.
    Parquet,
}

impl FileFormat {
    /// The format of `path` from its extension.
    pub fn of_path(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "json" | "ndjson" => Ok(FileFormat::Jsonl),
            "tsv" | "txt" => Ok(FileFormat::Tsv),
            "parquet" => Ok(FileFormat::Parquet),
            _ => Err(SearchError::File {
                path: path.to_path_buf(),
                message: format!("unknown file type `.{ext}`: expected .jsonl, .tsv or .parquet"),
            }),
        }
    }
}

/// One document of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its id, as written in qrels and runs.
    pub docid: String,
    /// Its title (empty when the collection has none).
    pub title: String,
    /// Its text (never empty).
    pub text: String,
    /// Where it was read.
    pub place: Place,
}

/// The documents of `path` in file order, each checked (an id, a non-empty text). Streams: memory
/// does not grow with the collection.
pub fn read_documents(path: &Path) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
    Ok(match FileFormat::of_path(path)? {
        FileFormat::Jsonl => {
            let owned = path.to_path_buf();
            Box::new(lines(path)?.filter_map(move |line| jsonl_document(&owned, line).transpose()))
        }
        FileFormat::Tsv => {
            let owned = path.to_path_buf();
            Box::new(lines(path)?.filter_map(move |line| tsv_document(&owned, line).transpose()))
        }
        FileFormat::Parquet => Box::new(ParquetDocuments::open(path)?),
    })
}

/// How many documents `path` holds (non-empty lines, a TSV header left out; Parquet: its row
/// count), for progress. Reading is cheap next to encoding.
pub fn count_documents(path: &Path) -> Result<usize> {
    match FileFormat::of_path(path)? {
        FileFormat::Parquet => {
            let file = File::open(path).map_err(|e| SearchError::io(path, e))?;
            let builder = guarded(path, || ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, &e)))?;
            Ok(builder.metadata().file_metadata().num_rows().max(0) as usize)
        }
        format => {
            use std::io::BufRead;
            let file = File::open(path).map_err(|e| SearchError::io(path, e))?;
            let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
            let (mut count, mut buf, mut first) = (0usize, Vec::new(), true);
            loop {
                buf.clear();
                if reader.read_until(b'\n', &mut buf).map_err(|e| SearchError::io(path, e))? == 0 {
                    break;
                }
                let header = first && format == FileFormat::Tsv && is_dpr_header(&String::from_utf8_lossy(&buf));
                first = false;
                if !buf.trim_ascii().is_empty() && !header {
                    count += 1;
                }
            }
            Ok(count)
        }
    }
}

/// Where the document fields of a JSONL line are: the shared parsing of one line.
fn json_object(path: &Path, line: usize, text: &str) -> Result<Option<serde_json::Map<String, Value>>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(Place::Line(line).error(path, "expected a JSON object")),
        Err(e) => Err(Place::Line(line).error(path, format!("not valid JSON: {e}"))),
    }
}

/// The first of `fields` present and not null, as a string (numbers are written as in the file).
fn id_field(map: &serde_json::Map<String, Value>, fields: &[&str]) -> std::result::Result<Option<String>, String> {
    for field in fields {
        match map.get(*field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(Value::Number(n)) => return Ok(Some(n.to_string())),
            Some(other) => return Err(format!("`{field}` must be a string or a number, found {other}")),
        }
    }
    Ok(None)
}

fn string_field(map: &serde_json::Map<String, Value>, field: &str) -> std::result::Result<Option<String>, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{field}` must be a string, found {other}")),
    }
}

/// Checks an id and a text and builds the document.
fn document(path: &Path, place: Place, docid: Option<String>, title: String, text: Option<String>) -> Result<Document> {
    let docid = docid.ok_or_else(|| place.error(path, format!("no document id (one of {})", DOCID_FIELDS.join(", "))))?;
    check_id(path, place, &docid, "document id")?;
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(place.error(path, format!("document `{docid}` has no text")));
    }
    Ok(Document { docid, title, text, place })
}

/// Ids end up as whitespace-separated TREC fields: one with whitespace would break the run file.
fn check_id(path: &Path, place: Place, id: &str, what: &str) -> Result<()> {
    if id.is_empty() {
        return Err(place.error(path, format!("the {what} is empty")));
    }
    if id.chars().any(char::is_whitespace) {
        return Err(place.error(path, format!("the {what} `{id}` contains whitespace, which TREC run files cannot hold")));
    }
    Ok(())
}

fn lines(path: &Path) -> Result<impl Iterator<Item = Result<(usize, String)>> + Send + use<>> {
    let owned = path.to_path_buf();
    let lines = TextLines::open(path).map_err(|e| SearchError::io(path, e))?;
    Ok(lines.map(move |line| {
        line.map_err(|e| match e {
            LineError::Io(e) => SearchError::io(&owned, e),
            LineError::Utf8(e) => SearchError::File { path: owned.clone(), message: e.to_string() },
        })
    }))
}

fn jsonl_document(path: &Path, line: Result<(usize, String)>) -> Result<Option<Document>> {
    let (n, text) = line?;
    let Some(map) = json_object(path, n, &text)? else { return Ok(None) };
    let place = Place::Line(n);
    let docid = id_field(&map, &DOCID_FIELDS).map_err(|m| place.error(path, m))?;
    let title = string_field(&map, "title").map_err(|m| place.error(path, m))?.unwrap_or_default();
    let body = string_field(&map, "text").map_err(|m| place.error(path, m))?;
    document(path, place, docid, title, body).map(Some)
}

fn is_dpr_header(line: &str) -> bool {
    let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split('\t').collect();
    fields.len() >= 2 && fields[0] == "id" && fields[1] == "text"
}

fn tsv_document(path: &Path, line: Result<(usize, String)>) -> Result<Option<Document>> {
    let (n, text) = line?;
    if text.trim().is_empty() || (n == 1 && is_dpr_header(&text)) {
        return Ok(None);
    }
    let place = Place::Line(n);
    let fields: Vec<&str> = text.split('\t').collect();
    match fields.as_slice() {
        [docid, body] => document(path, place, Some(docid.to_string()), String::new(), Some(body.to_string())),
        [docid, body, title] => document(path, place, Some(docid.to_string()), title.to_string(), Some(body.to_string())),
        _ => Err(place.error(
            path,
            format!("expected `docid<TAB>text` or `docid<TAB>text<TAB>title`, found {} tab-separated fields", fields.len()),
        )),
    }
    .map(Some)
}

fn parquet_error(path: &Path, e: &dyn std::fmt::Display) -> SearchError {
    SearchError::File { path: path.to_path_buf(), message: format!("reading Parquet: {e}") }
}

/// Runs `f`, turning a panic of the `parquet` crate (it asserts on some malformed files instead of
/// returning an error) into an error naming the file.
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(SearchError::File { path: path.to_path_buf(), message: "malformed Parquet file (its reader stopped on an internal check)".into() })
    })
}

/// The values of a string-like column (utf8, large utf8, view, integers) as `Option<String>`.
pub(crate) fn string_column(path: &Path, batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<String>>>> {
    let Some(column) = batch.column_by_name(name) else { return Ok(None) };
    let column = match column.data_type() {
        DataType::Utf8 => column.clone(),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64 => {
            arrow::compute::cast(column, &DataType::Utf8).map_err(|e| parquet_error(path, &e))?
        }
        other => {
            return Err(SearchError::File {
                path: path.to_path_buf(),
                message: format!("column `{name}` has type {other}; expected a string column"),
            });
        }
    };
    let strings = column.as_string::<i32>();
    Ok(Some((0..strings.len()).map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string())).collect()))
}

/// The rows of a Parquet collection, batch by batch.
struct ParquetDocuments {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    pending: std::vec::IntoIter<Result<Document>>,
    rows: usize,
    failed: bool,
}

impl ParquetDocuments {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| SearchError::io(path, e))?;
        let reader = guarded(path, || {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, &e))?;
            let schema = builder.schema().clone();
            if DOCID_FIELDS.iter().all(|f| schema.field_with_name(f).is_err()) || schema.field_with_name("text").is_err() {
                return Err(SearchError::File {
                    path: path.to_path_buf(),
                    message: format!(
                        "expected columns `docid` (or `_id` / `id`), `text` and optionally `title`; found {}",
                        schema.fields().iter().map(|f| format!("`{}`", f.name())).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            builder.with_batch_size(4096).build().map_err(|e| parquet_error(path, &e))
        })?;
        Ok(ParquetDocuments { path: path.to_path_buf(), reader, pending: Vec::new().into_iter(), rows: 0, failed: false })
    }

    fn batch_documents(&self, batch: &RecordBatch) -> Result<Vec<Result<Document>>> {
        let path = &self.path;
        let mut ids = None;
        for field in DOCID_FIELDS {
            if let Some(column) = string_column(path, batch, field)? {
                ids = Some(column);
                break;
            }
        }
        let ids = ids.expect("checked when the file was opened");
        let texts = string_column(path, batch, "text")?.expect("checked when the file was opened");
        let titles = string_column(path, batch, "title")?;
        Ok((0..batch.num_rows())
            .map(|i| {
                let title = titles.as_ref().and_then(|t| t[i].clone()).unwrap_or_default();
                document(path, Place::Row(self.rows + i + 1), ids[i].clone(), title, texts[i].clone())
            })
            .collect())
    }
}

impl Iterator for ParquetDocuments {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        loop {
            if let Some(doc) = self.pending.next() {
                return Some(doc);
            }
            if self.failed {
                return None;
            }
            let path = self.path.clone();
            let batch = match guarded(&path, || Ok(self.reader.next())) {
                Ok(None) => return None,
                Ok(Some(Ok(batch))) => Ok(batch),
                Ok(Some(Err(e))) => Err(parquet_error(&path, &e)),
                Err(e) => Err(e),
            }
            .and_then(|batch| {
                let docs = self.batch_documents(&batch)?;
                self.rows += batch.num_rows();
                Ok(docs)
            });
            match batch {
                Ok(docs) => self.pending = docs.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// One query of a topics file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Its id, as in the qrels.
    pub qid: String,
    /// Its text.
    pub text: String,
    /// Where it was read.
    pub place: Place,
}

/// The queries of a topics file (TSV `qid<TAB>query`, or JSONL), in file order. A duplicate id,
/// an empty text or a malformed line is an error naming the line.
pub fn read_queries(path: &Path) -> Result<Vec<Query>> {
    let format = FileFormat::of_path(path)?;
    if format == FileFormat::Parquet {
        return Err(SearchError::File { path: path.to_path_buf(), message: "queries must be a .tsv or .jsonl file".into() });
    }
    let mut queries = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for line in lines(path)? {
        let (n, text) = line?;
        let place = Place::Line(n);
        let (qid, query) = match format {
            FileFormat::Tsv => {
                if text.trim().is_empty() {
                    continue;
                }
                match text.split_once('\t') {
                    Some((qid, query)) => (Some(qid.to_string()), Some(query.to_string())),
                    None => return Err(place.error(path, "expected `qid<TAB>query`, found no tab")),
                }
            }
            _ => {
                let Some(map) = json_object(path, n, &text)? else { continue };
                let qid = id_field(&map, &QID_FIELDS).map_err(|m| place.error(path, m))?;
                let mut query = None;
                for field in QUERY_TEXT_FIELDS {
                    if let Some(t) = string_field(&map, field).map_err(|m| place.error(path, m))? {
                        query = Some(t);
                        break;
                    }
                }
                (qid, query)
            }
        };
        let qid = qid.ok_or_else(|| place.error(path, format!("no query id (one of {})", QID_FIELDS.join(", "))))?;
        check_id(path, place, &qid, "query id")?;
        let query = query.filter(|q| !q.trim().is_empty()).ok_or_else(|| place.error(path, format!("query `{qid}` has no text")))?;
        if let Some(first) = seen.insert(qid.clone(), n) {
            return Err(place.error(path, format!("query id `{qid}` was already used on line {first}")));
        }
        queries.push(Query { qid, text: query, place });
    }
    if queries.is_empty() {
        return Err(SearchError::File { path: path.to_path_buf(), message: "the file holds no queries".into() });
    }
    Ok(queries)
}

/// How a document becomes the text that is encoded: `{title}` and `{text}` replaced, surrounding
/// whitespace trimmed (so an untitled document is its text alone). The default, `{title} {text}`,
/// is how Tevatron and the mE5 / BGE-M3 MIRACL evaluations join the two fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DocumentTemplate(String);

impl Default for DocumentTemplate {
    fn default() -> Self {
        DocumentTemplate("{title} {text}".into())
    }
}

impl DocumentTemplate {
    /// A template; it must contain `{text}`.
    pub fn new(template: impl Into<String>) -> Result<Self> {
        let template = template.into();
        if !template.contains("{text}") {
            return Err(SearchError::Invalid(format!("the document template {template:?} does not contain `{{text}}`")));
        }
        Ok(DocumentTemplate(template))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text to encode for `doc`.
    pub fn render(&self, doc: &Document) -> String {
        // One pass over the template: a `{text}` inside a title (or the reverse) stays as written.
        let mut out = String::with_capacity(self.0.len() + doc.title.len() + doc.text.len());
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            if let Some(after) = tail.strip_prefix("{title}") {
                out.push_str(&doc.title);
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{text}") {
                out.push_str(&doc.text);
                rest = after;
            } else {
                out.push('{');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out.trim().to_string()
    }
}
