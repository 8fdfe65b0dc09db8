//! The index on disk: `manifest.json` and `shard-NNNNN.parquet` files in one directory.
//!
//! A shard holds consecutive documents of the collection: a `docid` (utf8) and an `embedding`
//! (fixed-size list of float32) column. The manifest records how the embeddings were made (encoder,
//! prefixes, document template, probe embeddings), the corpus they came from, and per shard its
//! row count and SHA-256. Every file is written atomically and the manifest is rewritten after
//! each shard, so an interrupted build leaves complete shards that a resumed build verifies and
//! keeps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::collection::{DocumentTemplate, guarded, string_column};
use crate::encoder::Probe;
use crate::error::{Result, SearchError};

/// Version of the on-disk layout (bumped on incompatible changes).
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's file name inside an index directory.
pub const MANIFEST: &str = "manifest.json";

/// The collection an index was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusRecord {
    /// The path as given.
    pub path: PathBuf,
    /// Its size in bytes when the build started (a resumed build refuses a changed file).
    pub bytes: u64,
}

/// One completed shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// File name inside the index directory.
    pub file: String,
    /// Number of documents.
    pub rows: usize,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Whether every embedding has unit L2 norm (to 1e-4): cosine search then skips normalising.
    pub normalized: bool,
}

/// What an index holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The encoder's description.
    pub encoder: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Prefix of queries.
    pub query_prefix: String,
    /// Prefix of documents.
    pub passage_prefix: String,
    /// Truncation of documents in tokens, if the encoder says.
    pub passage_max_tokens: Option<usize>,
    /// How title and text were joined.
    pub template: DocumentTemplate,
    /// The collection.
    pub corpus: CorpusRecord,
    /// Documents per shard (the last may hold fewer).
    pub shard_size: usize,
    /// The encoder's probe embeddings (see [`crate::encoder::PROBE_TEXTS`]).
    pub probes: Vec<Probe>,
    /// Completed shards, in collection order.
    pub shards: Vec<ShardRecord>,
    /// Documents in the completed shards.
    pub documents: usize,
    /// Whether the whole collection is encoded.
    pub complete: bool,
}

impl Manifest {
    /// Reads `dir/manifest.json`, or `None` if there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(MANIFEST);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SearchError::io(&path, e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| SearchError::File { path: path.clone(), message: format!("not a hybrid-ir index manifest: {e}") })?;
        if manifest.format != FORMAT_VERSION {
            return Err(SearchError::index(
                dir,
                format!("layout version {} is not this version's ({FORMAT_VERSION}); rebuild the index", manifest.format),
            ));
        }
        Ok(Some(manifest))
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        hybrid_ir_data::fs::write_atomic(&path, text.as_bytes()).map_err(|e| SearchError::io(&path, e))
    }

    /// Whether the cosine of stored rows needs normalising at search time.
    pub fn all_normalized(&self) -> bool {
        self.shards.iter().all(|s| s.normalized)
    }
}

/// The file name of shard `i`.
pub fn shard_file(i: usize) -> String {
    format!("shard-{i:05}.parquet")
}

/// Whether every row of `rows` (row-major, `dim` wide) has unit L2 norm to 1e-4.
pub fn rows_normalized(rows: &[f32], dim: usize) -> bool {
    rows.chunks_exact(dim.max(1)).all(|r| (r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt() - 1.0).abs() <= 1e-4)
}

/// Writes a shard atomically and returns its record.
pub fn write_shard(dir: &Path, index: usize, docids: &[String], rows: &[f32], dim: usize) -> Result<ShardRecord> {
    let file = shard_file(index);
    let path = dir.join(&file);
    let fail = |e: &dyn std::fmt::Display| SearchError::File { path: path.clone(), message: format!("writing Parquet: {e}") };
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let embedding = FixedSizeListArray::try_new(item, dim as i32, Arc::new(Float32Array::from(rows.to_vec())), None)
        .map_err(|e| fail(&e))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("docid", DataType::Utf8, false),
        Field::new("embedding", embedding.data_type().clone(), false),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(docids.to_vec())), Arc::new(embedding)])
        .map_err(|e| fail(&e))?;
    let mut bytes = Vec::new();
    // Plain encoding without statistics: embeddings never repeat, so dictionary pages only cost
    // time to write and to decode (reading was ~3x slower with them), and min/max of vector
    // components prune nothing.
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .build();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(properties)).map_err(|e| fail(&e))?;
    writer.write(&batch).map_err(|e| fail(&e))?;
    writer.close().map_err(|e| fail(&e))?;
    hybrid_ir_data::fs::write_atomic(&path, &bytes).map_err(|e| SearchError::io(&path, e))?;
    Ok(ShardRecord { file, rows: docids.len(), sha256: hex(&Sha256::digest(&bytes)), normalized: rows_normalized(rows, dim) })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A shard read back and verified.
#[derive(Debug, Clone)]
pub struct ShardData {
    /// Document ids, in collection order.
    pub docids: Vec<String>,
    /// Embeddings, row-major, `dim` wide.
    pub rows: Vec<f32>,
}

/// Reads shard `record` of the index in `dir`, checking its hash (a file from another index or a
/// damaged one is an error), its row count and dimension, and that every value is finite.
pub fn read_shard(dir: &Path, record: &ShardRecord, dim: usize) -> Result<ShardData> {
    let path = dir.join(&record.file);
    let bytes = std::fs::read(&path).map_err(|e| SearchError::io(&path, e))?;
    let sha = hex(&Sha256::digest(&bytes));
    if sha != record.sha256 {
        return Err(SearchError::index(
            dir,
            format!(
                "{} does not match the manifest (SHA-256 {sha}, recorded {}): it was changed, damaged, or comes from another \
                 index; rebuild the index",
                record.file, record.sha256
            ),
        ));
    }
    let data = guarded(&path, || decode_shard(&path, bytes::Bytes::from(bytes), dim))?;
    if data.docids.len() != record.rows {
        return Err(SearchError::index(dir, format!("{} holds {} rows, the manifest says {}", record.file, data.docids.len(), record.rows)));
    }
    Ok(data)
}

fn decode_shard(path: &Path, bytes: bytes::Bytes, dim: usize) -> Result<ShardData> {
    let fail = |e: &dyn std::fmt::Display| SearchError::File { path: path.to_path_buf(), message: format!("reading Parquet: {e}") };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| fail(&e))?.with_batch_size(8192).build().map_err(|e| fail(&e))?;
    let mut out = ShardData { docids: Vec::new(), rows: Vec::new() };
    for batch in reader {
        let batch = batch.map_err(|e| fail(&e))?;
        let first = out.docids.len();
        let docids = string_column(path, &batch, "docid")?.ok_or_else(|| fail(&"no `docid` column"))?;
        let column = batch.column_by_name("embedding").ok_or_else(|| fail(&"no `embedding` column"))?;
        let list = column.as_fixed_size_list_opt().ok_or_else(|| fail(&"`embedding` is not a fixed-size list"))?;
        if list.value_length() as usize != dim || list.null_count() > 0 {
            return Err(fail(&format!("`embedding` must be {dim} non-null floats per row")));
        }
        let values = list.values().as_primitive_opt::<Float32Type>().ok_or_else(|| fail(&"`embedding` values are not float32"))?;
        if values.null_count() > 0 {
            return Err(fail(&"`embedding` holds nulls"));
        }
        let start = list.value_offset_at(0);
        let values = &values.values()[start..start + batch.num_rows() * dim];
        if let Some(k) = values.iter().position(|x| !x.is_finite()) {
            return Err(SearchError::Row { path: path.to_path_buf(), row: first + k / dim + 1, message: "a non-finite embedding value".into() });
        }
        for (i, id) in docids.into_iter().enumerate() {
            out.docids.push(id.ok_or_else(|| SearchError::Row { path: path.to_path_buf(), row: first + i + 1, message: "null docid".into() })?);
        }
        out.rows.extend_from_slice(values);
    }
    Ok(out)
}

/// Reads only the document ids of a shard (for a resumed build, which compares them with the
/// corpus as it streams by).
pub fn read_shard_docids(dir: &Path, record: &ShardRecord, dim: usize) -> Result<Vec<String>> {
    read_shard(dir, record, dim).map(|d| d.docids)
}
