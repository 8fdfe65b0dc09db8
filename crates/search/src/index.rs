//! Building an index: a collection encoded once into sharded Parquet embeddings, resumable.
//!
//! The collection streams through: documents are read, checked (an id, a text, no duplicate id)
//! and gathered into shards of `shard_size`; each shard is encoded in one call to the
//! [`TextEncoder`] (which sorts it by length into batches), written atomically, and recorded in
//! the manifest. Run again with the same arguments after an interruption, it verifies the shards
//! already written (hash, and that their document ids are the corpus's, in order), keeps them,
//! and encodes only the rest. A directory holding an index made by another encoder, prefix,
//! template or corpus is refused, never mixed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::collection::{DocumentTemplate, count_documents, read_documents};
use crate::encoder::{Side, TextEncoder, probe_mismatch, probes};
use crate::error::{Place, Result, SearchError};
use crate::shard::{CorpusRecord, FORMAT_VERSION, MANIFEST, Manifest, read_shard_docids, write_shard};

/// How to build an index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexOptions {
    /// Documents per shard: the unit of resumption (an interrupted build loses at most one
    /// shard's encoding) and of search's reading.
    pub shard_size: usize,
    /// How title and text become the encoded text.
    pub template: DocumentTemplate,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions { shard_size: 10_000, template: DocumentTemplate::default() }
    }
}

/// Where a build is, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexProgress {
    /// Documents in the collection.
    pub total: usize,
    /// Documents encoded, or kept from an earlier run.
    pub done: usize,
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSummary {
    /// Documents in the index.
    pub documents: usize,
    /// Shards in the index.
    pub shards: usize,
    /// Shards kept (verified) from an earlier, interrupted run.
    pub kept_shards: usize,
    /// Documents encoded by this run.
    pub encoded: usize,
}

/// Encodes the collection at `corpus` with `encoder` into the index directory `out` (created if
/// needed); see the module docs. `progress` is called after each shard.
pub fn build_index<E: TextEncoder + ?Sized>(
    corpus: &Path,
    out: &Path,
    encoder: &mut E,
    options: &IndexOptions,
    mut progress: impl FnMut(IndexProgress),
) -> Result<IndexSummary> {
    if options.shard_size == 0 {
        return Err(SearchError::Invalid("--shard-size must be at least 1".into()));
    }
    let corpus_bytes = std::fs::metadata(corpus).map_err(|e| SearchError::io(corpus, e))?.len();
    let total = count_documents(corpus)?;
    if total == 0 {
        return Err(SearchError::File { path: corpus.to_path_buf(), message: "the collection holds no documents".into() });
    }
    let probes = probes(encoder).map_err(SearchError::Encode)?;
    let dim = encoder.dim();
    let fresh = Manifest {
        format: FORMAT_VERSION,
        encoder: encoder.describe(),
        dim,
        query_prefix: encoder.prefix(Side::Query),
        passage_prefix: encoder.prefix(Side::Passage),
        passage_max_tokens: encoder.max_tokens(Side::Passage),
        template: options.template.clone(),
        corpus: CorpusRecord { path: corpus.to_path_buf(), bytes: corpus_bytes },
        shard_size: options.shard_size,
        probes,
        shards: Vec::new(),
        documents: 0,
        complete: false,
    };
    let mut manifest = prepare_dir(out, fresh)?;
    let kept_shards = manifest.shards.len();
    if manifest.complete {
        tracing::info!("index {} is already complete ({} documents); nothing to do", out.display(), manifest.documents);
        return Ok(IndexSummary { documents: manifest.documents, shards: kept_shards, kept_shards, encoded: 0 });
    }
    if kept_shards > 0 {
        tracing::info!("resuming {}: {} shards ({} documents) verified and kept", out.display(), kept_shards, manifest.documents);
    }
    progress(IndexProgress { total, done: manifest.documents });

    let mut seen: HashMap<String, Place> = HashMap::new();
    let mut buffer: Vec<(String, String)> = Vec::with_capacity(options.shard_size.min(total));
    // Document ids of the kept shard the stream is in, compared as the corpus goes by.
    let mut expected: Option<(usize, Vec<String>)> = None;
    let mut position = 0usize;
    let mut encoded = 0usize;
    for doc in read_documents(corpus)? {
        let doc = doc?;
        if let Some(first) = seen.insert(doc.docid.clone(), doc.place) {
            return Err(doc.place.error(corpus, format!("document id `{}` was already used at {first}", doc.docid)));
        }
        let shard = position / options.shard_size;
        if shard < kept_shards {
            if expected.as_ref().is_none_or(|(s, _)| *s != shard) {
                expected = Some((shard, read_shard_docids(out, &manifest.shards[shard], dim)?));
            }
            let ids = &expected.as_ref().expect("just set").1;
            let at = position % options.shard_size;
            if ids.get(at) != Some(&doc.docid) {
                return Err(doc.place.error(
                    corpus,
                    format!(
                        "document `{}` is not what {} holds at this position (`{}`): the collection changed since the index \
                         was started; build into a new directory",
                        doc.docid,
                        manifest.shards[shard].file,
                        ids.get(at).map_or("nothing", String::as_str)
                    ),
                ));
            }
        } else {
            let text = options.template.render(&doc);
            buffer.push((doc.docid, text));
            if buffer.len() == options.shard_size {
                encoded += flush(out, &mut manifest, encoder, &mut buffer, corpus, &mut |done| progress(IndexProgress { total, done }))?;
            }
        }
        position += 1;
    }
    if position < manifest.documents {
        return Err(SearchError::index(
            out,
            format!("the kept shards hold {} documents but {} has only {position}: build into a new directory", manifest.documents, corpus.display()),
        ));
    }
    if !buffer.is_empty() {
        encoded += flush(out, &mut manifest, encoder, &mut buffer, corpus, &mut |done| progress(IndexProgress { total, done }))?;
    }
    manifest.complete = true;
    manifest.write(out)?;
    progress(IndexProgress { total, done: manifest.documents });
    Ok(IndexSummary { documents: manifest.documents, shards: manifest.shards.len(), kept_shards, encoded })
}

/// Encodes the buffered documents as the next shard, writes it and the manifest. `progress` gets
/// the documents done in the whole index, during encoding too.
fn flush<E: TextEncoder + ?Sized>(
    out: &Path,
    manifest: &mut Manifest,
    encoder: &mut E,
    buffer: &mut Vec<(String, String)>,
    corpus: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<usize> {
    let texts: Vec<&str> = buffer.iter().map(|(_, t)| t.as_str()).collect();
    let before = manifest.documents;
    let rows = encoder.encode(&texts, Side::Passage, &mut |n| progress(before + n)).map_err(SearchError::Encode)?;
    if rows.nrows() != texts.len() || rows.ncols() != manifest.dim {
        return Err(SearchError::Encode(format!(
            "the encoder returned {}×{} embeddings for {} texts of dimension {}",
            rows.nrows(),
            rows.ncols(),
            texts.len(),
            manifest.dim
        )));
    }
    if let Some((i, _)) = rows.rows().into_iter().enumerate().find(|(_, r)| r.iter().any(|x| !x.is_finite())) {
        return Err(SearchError::Encode(format!(
            "document `{}` of {} has a non-finite embedding",
            buffer[i].0,
            corpus.display()
        )));
    }
    let values: Vec<f32> = rows.iter().copied().collect();
    let ids: Vec<String> = buffer.drain(..).map(|(id, _)| id).collect();
    let record = write_shard(out, manifest.shards.len(), &ids, &values, manifest.dim)?;
    manifest.documents += record.rows;
    manifest.shards.push(record);
    manifest.write(out)?;
    progress(manifest.documents);
    Ok(ids.len())
}

/// Creates `out`, or checks the index already in it against this build and returns the manifest
/// to continue from (verified shards only). Leftover temporary files of a killed writer are
/// removed; a directory with other content is refused.
fn prepare_dir(out: &Path, fresh: Manifest) -> Result<Manifest> {
    std::fs::create_dir_all(out).map_err(|e| SearchError::io(out, e))?;
    remove_leftovers(out)?;
    let Some(mut old) = Manifest::read(out)? else {
        let foreign: Vec<PathBuf> =
            std::fs::read_dir(out).map_err(|e| SearchError::io(out, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        if let Some(other) = foreign.first() {
            return Err(SearchError::index(
                out,
                format!("the directory is not empty and holds no index ({} and {} more); choose a new --out", other.display(), foreign.len() - 1),
            ));
        }
        fresh.write(out)?;
        return Ok(fresh);
    };
    let mut differences = Vec::new();
    let mut differ = |what: &str, then: String, now: String| {
        if then != now {
            differences.push(format!("{what}: {then} then, {now} now"));
        }
    };
    differ("dimension", old.dim.to_string(), fresh.dim.to_string());
    differ("query prefix", format!("{:?}", old.query_prefix), format!("{:?}", fresh.query_prefix));
    differ("passage prefix", format!("{:?}", old.passage_prefix), format!("{:?}", fresh.passage_prefix));
    differ("document truncation", format!("{:?}", old.passage_max_tokens), format!("{:?}", fresh.passage_max_tokens));
    differ("document template", format!("{:?}", old.template.as_str()), format!("{:?}", fresh.template.as_str()));
    differ("shard size", old.shard_size.to_string(), fresh.shard_size.to_string());
    differ("corpus size", format!("{} bytes", old.corpus.bytes), format!("{} bytes", fresh.corpus.bytes));
    if differences.is_empty()
        && let Some(why) = probe_mismatch(&old.probes, &fresh.probes)
    {
        differences.push(format!("encoder: {} then, {} now ({why})", old.encoder, fresh.encoder));
    }
    if !differences.is_empty() {
        return Err(SearchError::index(
            out,
            format!(
                "it was built with other settings, so it cannot be continued: {}. Build into a new directory (or delete this one)",
                differences.join("; ")
            ),
        ));
    }
    // Keep the leading shards that verify; a damaged one is re-encoded with everything after it.
    let mut kept = 0;
    for record in &old.shards {
        match read_shard_docids(out, record, old.dim) {
            Ok(_) => kept += 1,
            Err(e) => {
                tracing::warn!("{e}; re-encoding from {} on", record.file);
                break;
            }
        }
    }
    if kept < old.shards.len() {
        old.shards.truncate(kept);
        old.documents = old.shards.iter().map(|s| s.rows).sum();
        old.complete = false;
        old.write(out)?;
    }
    Ok(old)
}

/// Removes `.<name>.tmp-<pid>` files that an interrupted atomic write left behind.
fn remove_leftovers(out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out).map_err(|e| SearchError::io(out, e))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") && (name.starts_with(".shard-") || name.starts_with(&format!(".{MANIFEST}"))) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}
