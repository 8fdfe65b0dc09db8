//! Exact top-k search over an index, streamed shard by shard with bounded memory.
//!
//! For each shard (read, verified, and normalised for cosine if its rows are not unit length), the
//! score blocks `queries · documentsᵀ` are computed with `gemm`, [`QUERY_BLOCK`] × [`DOC_BLOCK`]
//! at a time so a block is scanned while it is still in cache, and every query keeps its best `k`
//! in a [`TopK`]. The blocks run on rayon's threads: split by queries when there are enough
//! query blocks to keep every thread busy, else by documents with per-thread lists merged after.
//! Memory: the queries, `k` hits per query and one shard, whatever the collection size.
//!
//! Ties: equal scores rank the document earlier in the collection first (see [`crate::topk`]),
//! so the hits do not depend on shard size, block size or thread count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hybrid_ir_metrics::rank::normalize_rows;
use hybrid_ir_metrics::{Run, ScoreFunction};
use ndarray::Array2;
use rayon::prelude::*;

use crate::encoder::{Side, TextEncoder, probe_mismatch, probes};
use crate::error::{Result, SearchError};
use crate::product::scores_into;
use crate::shard::{Manifest, ShardData, read_shard};
use crate::topk::{Scored, TopK};

/// Queries per score block.
pub const QUERY_BLOCK: usize = 256;
/// Documents per score block (a 256 × 1024 block of f32 is 1 MiB: it stays in L2 for the scan).
pub const DOC_BLOCK: usize = 1024;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SearchOptions {
    /// Hits per query.
    pub top_k: usize,
    /// Cosine (rows normalised) or raw inner product.
    #[serde(with = "score_name")]
    pub score: ScoreFunction,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { top_k: 100, score: ScoreFunction::Cosine }
    }
}

mod score_name {
    use hybrid_ir_metrics::ScoreFunction;
    pub fn serialize<S: serde::Serializer>(s: &ScoreFunction, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.name())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(de: D) -> Result<ScoreFunction, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(de)?;
        ScoreFunction::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// One retrieved document.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Document id.
    pub docid: String,
    /// Score.
    pub score: f32,
}

/// A complete index, opened for search.
#[derive(Debug, Clone)]
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
}

impl Index {
    /// Opens the index in `dir`: it must hold a manifest of a complete build.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?
            .ok_or_else(|| SearchError::index(dir, "no manifest.json here: build one with `hybrid-ir index`".to_string()))?;
        if !manifest.complete {
            return Err(SearchError::index(
                dir,
                format!(
                    "the build was interrupted ({} documents in {} shards so far); run `hybrid-ir index` again with the same \
                     arguments to finish it",
                    manifest.documents,
                    manifest.shards.len()
                ),
            ));
        }
        Ok(Index { dir: dir.to_path_buf(), manifest })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks that `encoder` is the one the index was built with (same probe embeddings, prefixes
    /// and dimension): queries must be embedded in the same space as the documents.
    pub fn check_encoder<E: TextEncoder + ?Sized>(&self, encoder: &mut E) -> Result<()> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        if encoder.dim() != m.dim {
            problems.push(format!("dimension {} vs the index's {}", encoder.dim(), m.dim));
        }
        for (side, name, recorded) in [(Side::Query, "query", &m.query_prefix), (Side::Passage, "passage", &m.passage_prefix)] {
            let now = encoder.prefix(side);
            if now != *recorded {
                problems.push(format!("{name} prefix {now:?} vs the index's {recorded:?}"));
            }
        }
        if problems.is_empty() {
            let now = probes(encoder).map_err(SearchError::Encode)?;
            if let Some(why) = probe_mismatch(&m.probes, &now) {
                problems.push(format!("{} is not the encoder the index was built with ({}): {why}", encoder.describe(), m.encoder));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SearchError::index(&self.dir, format!("{}; search it with the model it was built with", problems.join("; "))))
        }
    }

    /// Reads shard `i`, verified.
    pub fn shard(&self, i: usize) -> Result<ShardData> {
        read_shard(&self.dir, &self.manifest.shards[i], self.manifest.dim)
    }

    /// The `top_k` best documents for each row of `queries` (raw embeddings; normalised here for
    /// cosine), best first. `progress` gets the number of documents searched so far.
    pub fn search(&self, queries: &Array2<f32>, options: &SearchOptions, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<Hit>>> {
        let dim = self.manifest.dim;
        if options.top_k == 0 {
            return Err(SearchError::Invalid("--top-k must be at least 1".into()));
        }
        if queries.ncols() != dim {
            return Err(SearchError::Invalid(format!("queries have dimension {}, the index {dim}", queries.ncols())));
        }
        if let Some(bad) = queries.iter().find(|x| !x.is_finite()) {
            return Err(SearchError::Invalid(format!("a query embedding holds a non-finite value ({bad})")));
        }
        let mut queries = queries.as_standard_layout().into_owned();
        if options.score == ScoreFunction::Cosine {
            normalize_rows(&mut queries);
        }
        let query_rows = queries.as_slice().expect("standard layout");
        let mut lists: Vec<TopK> = (0..queries.nrows()).map(|_| TopK::new(options.top_k)).collect();
        // Names of the documents currently in some list: bounded by queries × k, not the collection.
        let mut names: HashMap<u64, String> = HashMap::new();
        let mut first = 0u64;
        // Shards are read, hashed and decoded on a thread of their own, one ahead of the scoring,
        // so the disk and the decoding overlap the products (at most two shards in memory).
        std::thread::scope(|scope| -> Result<()> {
            // Made inside the scope: on an error the receiver is dropped before the scope joins
            // the reader, whose next send then fails and ends it (no deadlock).
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<ShardData>>(1);
            scope.spawn(move || {
                for i in 0..self.manifest.shards.len() {
                    let shard = self.shard(i);
                    let failed = shard.is_err();
                    if sender.send(shard).is_err() || failed {
                        break;
                    }
                }
            });
            self.search_shards(&receiver, query_rows, options, &mut lists, &mut names, &mut first, &mut progress)
        })?;
        Ok(lists
            .into_iter()
            .map(|list| {
                list.into_sorted()
                    .into_iter()
                    .map(|Scored { score, position }| Hit { docid: names[&position].clone(), score })
                    .collect()
            })
            .collect())
    }

    /// The scoring loop of [`Index::search`] over the shards arriving on `shards`.
    #[allow(clippy::too_many_arguments)]
    fn search_shards(
        &self,
        shards: &std::sync::mpsc::Receiver<Result<ShardData>>,
        query_rows: &[f32],
        options: &SearchOptions,
        lists: &mut [TopK],
        names: &mut HashMap<u64, String>,
        first: &mut u64,
        progress: &mut impl FnMut(usize),
    ) -> Result<()> {
        let dim = self.manifest.dim;
        for record in &self.manifest.shards {
            let mut shard = shards.recv().map_err(|_| SearchError::index(&self.dir, "the shard reader stopped"))??;
            let first_position = *first;
            if options.score == ScoreFunction::Cosine && !record.normalized {
                let mut m = Array2::from_shape_vec((record.rows, dim), std::mem::take(&mut shard.rows)).expect("checked shape");
                normalize_rows(&mut m);
                shard.rows = m.into_raw_vec_and_offset().0;
            }
            search_block(query_rows, &shard.rows, dim, first_position, lists);
            let end = first_position + record.rows as u64;
            for list in lists.iter() {
                for hit in list.iter().filter(|h| (first_position..end).contains(&h.position)) {
                    names.entry(hit.position).or_insert_with(|| shard.docids[(hit.position - first_position) as usize].clone());
                }
            }
            if names.len() > 2 * lists.len() * options.top_k {
                let live: std::collections::HashSet<u64> = lists.iter().flat_map(|l| l.iter().map(|h| h.position)).collect();
                names.retain(|p, _| live.contains(p));
            }
            *first = end;
            progress(end as usize);
        }
        Ok(())
    }
}

/// Offers every document of `docs` (row-major, `dim` wide, collection positions from `first`) to
/// every query's list.
pub fn search_block(queries: &[f32], docs: &[f32], dim: usize, first: u64, lists: &mut [TopK]) {
    let nq = lists.len();
    let nd = docs.len() / dim.max(1);
    if nq == 0 || nd == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let query_blocks = nq.div_ceil(QUERY_BLOCK);
    if query_blocks >= 2 * threads || threads == 1 {
        lists.par_chunks_mut(QUERY_BLOCK).enumerate().for_each(|(b, chunk)| {
            let q = &queries[b * QUERY_BLOCK * dim..(b * QUERY_BLOCK + chunk.len()) * dim];
            scan_docs(q, chunk, docs, dim, first);
        });
    } else {
        // Few queries: each thread takes a slice of the documents with its own lists.
        let per_part = nd.div_ceil(threads).div_ceil(DOC_BLOCK) * DOC_BLOCK;
        let k = lists.first().map_or(1, |l| l.k());
        let partials: Vec<Vec<TopK>> = docs
            .par_chunks(per_part * dim)
            .enumerate()
            .map(|(p, part)| {
                let mut own: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
                for (b, chunk) in own.chunks_mut(QUERY_BLOCK).enumerate() {
                    let q = &queries[b * QUERY_BLOCK * dim..(b * QUERY_BLOCK + chunk.len()) * dim];
                    scan_docs(q, chunk, part, dim, first + (p * per_part) as u64);
                }
                own
            })
            .collect();
        for partial in partials {
            for (list, other) in lists.iter_mut().zip(partial) {
                list.merge(other);
            }
        }
    }
}

/// One thread's work: the score blocks of these queries against these documents, scanned.
///
/// Every product has exactly [`DOC_BLOCK`] columns (a short last block is zero-padded): `gemm`
/// picks its kernels by shape, and a narrow product may sum in another order and round a score
/// differently by an ulp, which would let shard boundaries decide ties.
fn scan_docs(queries: &[f32], lists: &mut [TopK], docs: &[f32], dim: usize, first: u64) {
    let nq = lists.len();
    let nd = docs.len() / dim;
    let mut scores = vec![0.0f32; nq * DOC_BLOCK];
    let mut padded: Vec<f32> = Vec::new();
    for start in (0..nd).step_by(DOC_BLOCK) {
        let n = DOC_BLOCK.min(nd - start);
        let block = &docs[start * dim..(start + n) * dim];
        let block = if n == DOC_BLOCK {
            block
        } else {
            padded.clear();
            padded.extend_from_slice(block);
            padded.resize(DOC_BLOCK * dim, 0.0);
            &padded
        };
        scores_into(&mut scores, queries, nq, block, DOC_BLOCK, dim);
        for (i, list) in lists.iter_mut().enumerate() {
            list.offer_row(&scores[i * DOC_BLOCK..i * DOC_BLOCK + n], first + start as u64);
        }
    }
}

/// The hits as a TREC run (query ids in `qids`, same order as the hits).
pub fn to_run(qids: &[String], hits: &[Vec<Hit>]) -> Run {
    let mut run = Run::default();
    for (qid, hits) in qids.iter().zip(hits) {
        run.queries.insert(qid.clone(), hits.iter().map(|h| (h.docid.clone(), f64::from(h.score))).collect());
    }
    run
}
