//! `hybrid-ir encode`: embed `{"id", "lang", "text"}` rows (JSONL or Parquet) with a Hugging Face
//! model directory and write `id, lang, embedding` rows to Parquet.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use hybrid_ir_model::{DeviceSpec, LoadOptions, SentenceEncoder, TextKind};
use hybrid_ir_train::Progress;

use crate::usage::{input_dir, input_file, usage};

/// Arguments of `hybrid-ir encode`.
#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// Model directory: Hugging Face BERT-family (config.json, model.safetensors,
    /// tokenizer.json) or a static-embedding model saved by `hybrid-ir export`.
    #[arg(long)]
    pub model: PathBuf,
    /// Input rows `{"id", "lang", "text"}`: a `.jsonl` or `.parquet` file.
    #[arg(long)]
    pub input: PathBuf,
    /// `query` / `passage` add the model's prefix; `raw` adds none.
    #[arg(long, default_value = "raw")]
    pub kind: TextKind,
    /// Output Parquet file with columns `id`, `lang`, `embedding` (fixed-size list of f32).
    #[arg(long)]
    pub out: PathBuf,
    /// Sequences per forward pass (texts are length-sorted first).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Truncation length in tokens (default: the model directory's max_seq_length).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// `cpu` (Flex), `tch-cpu` or `tch-cuda:N` (the latter two need a `tch` build).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

/// One input row.
#[derive(Debug, serde::Deserialize)]
struct InputRow {
    id: String,
    #[serde(default)]
    lang: String,
    text: String,
}

/// Runs `hybrid-ir encode`.
pub fn run(args: &EncodeArgs) -> Result<()> {
    if args.batch_size == 0 {
        usage!("--batch-size 0: give at least 1");
    }
    if args.max_len == Some(0) {
        usage!("--max-len 0: give at least 1 token");
    }
    input_file("--input", &args.input)?;
    if !matches!(args.input.extension().and_then(|e| e.to_str()), Some("jsonl" | "json" | "parquet")) {
        usage!("--input {}: expected a .jsonl or .parquet file", args.input.display());
    }
    input_dir("--model", &args.model, "a model directory")?;
    crate::output::check_output("--out", &args.out, &[&args.input, &args.model], args.force)?;
    let rows = read_rows(&args.input)?;
    if rows.is_empty() {
        bail!("{}: no rows to encode", args.input.display());
    }
    let mut seen = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        if !seen.insert(row.id.as_str()) {
            bail!("{}: row {}: duplicate id {:?}", args.input.display(), i + 1, row.id);
        }
        if row.text.trim().is_empty() {
            bail!("{}: row {} (id {:?}): empty text", args.input.display(), i + 1, row.id);
        }
    }
    let device = args.device.try_device()?;
    let options = LoadOptions { max_len: args.max_len, ..Default::default() };
    let model = SentenceEncoder::load(&args.model, &device, &options)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    if let Some(bad) = hybrid_ir_model::first_non_finite_parameter(&model.encoder) {
        bail!("{}: the model's weights hold a NaN or infinite value ({bad}); refusing to encode with it", args.model.display());
    }
    let pooling = model.info.pooling();
    eprintln!(
        "encoding {} rows from {} with {} ({} backbone, {:?} pooling, normalize {}, max_len {}, prefix {:?}) on {}",
        rows.len(),
        args.input.display(),
        model.info.name,
        model.info.kind(),
        pooling.mode,
        pooling.normalize,
        model.pipeline.passage_tokenizer.max_len(),
        model.pipeline.prefixes.prefix(args.kind),
        args.device
    );
    let bar = Progress::new(true, "encoding", "rows", rows.len() as u64);
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let embeddings = model.encode(&texts, args.kind, args.batch_size, |done| bar.set_position(done as u64))?;
    bar.finish();
    write_parquet(&args.out, &rows, &embeddings, model.dim())?;
    eprintln!("wrote {} embeddings of dimension {} to {}", rows.len(), model.dim(), args.out.display());
    Ok(())
}

fn read_rows(path: &Path) -> Result<Vec<InputRow>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") | Some("json") => read_jsonl(path),
        Some("parquet") => read_parquet(path),
        _ => bail!("{}: expected a .jsonl or .parquet file", path.display()),
    }
}

fn read_jsonl(path: &Path) -> Result<Vec<InputRow>> {
    let mut rows = Vec::new();
    let lines = hybrid_ir_data::text::TextLines::open(path).with_context(|| format!("opening {}", path.display()))?;
    for line in lines {
        let (line_no, line) = line.with_context(|| path.display().to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let row: InputRow = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {line_no}: expected {{\"id\", \"lang\", \"text\"}}", path.display()))?;
        rows.push(row);
    }
    Ok(rows)
}

/// A string column in any of Arrow's string layouts.
fn string_column<'a>(
    path: &Path,
    batch: &'a RecordBatch,
    name: &str,
) -> Result<Option<Box<dyn Fn(usize) -> Option<String> + 'a>>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let col: &'a dyn Array = col.as_ref();
    macro_rules! getter {
        ($ty:ty) => {{
            let a = col.as_any().downcast_ref::<$ty>().expect("checked type");
            Box::new(move |r: usize| (!a.is_null(r)).then(|| a.value(r).to_string())) as Box<dyn Fn(usize) -> Option<String>>
        }};
    }
    Ok(Some(match col.data_type() {
        DataType::Utf8 => getter!(StringArray),
        DataType::LargeUtf8 => getter!(LargeStringArray),
        DataType::Utf8View => getter!(StringViewArray),
        other => bail!("{}: column `{name}` has type {other}, expected a string column", path.display()),
    }))
}

fn read_parquet(path: &Path) -> Result<Vec<InputRow>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
        let id = string_column(path, &batch, "id")?.with_context(|| format!("{}: no `id` column", path.display()))?;
        let text = string_column(path, &batch, "text")?.with_context(|| format!("{}: no `text` column", path.display()))?;
        let lang = string_column(path, &batch, "lang")?;
        for r in 0..batch.num_rows() {
            let n = rows.len() + 1;
            rows.push(InputRow {
                id: id(r).with_context(|| format!("{}: row {n}: null id", path.display()))?,
                text: text(r).with_context(|| format!("{}: row {n}: null text", path.display()))?,
                lang: lang.as_ref().and_then(|l| l(r)).unwrap_or_default(),
            });
        }
    }
    Ok(rows)
}

fn write_parquet(path: &Path, rows: &[InputRow], embeddings: &[Vec<f32>], dim: usize) -> Result<()> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("embedding", DataType::FixedSizeList(item.clone(), dim as i32), false),
    ]));
    let ids: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.id.as_str())));
    let langs: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.lang.as_str())));
    let values = Float32Array::from_iter_values(embeddings.iter().flatten().copied());
    let vectors: ArrayRef = Arc::new(FixedSizeListArray::try_new(item, dim as i32, Arc::new(values), None)?);
    let batch = RecordBatch::try_new(schema.clone(), vec![ids, langs, vectors])?;
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    writer.write(&batch)?;
    writer.close().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
