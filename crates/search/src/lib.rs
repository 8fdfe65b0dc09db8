//! # hybrid-ir-search
//!
//! Retrieve from a document collection with any embedding model: encode it once into sharded
//! Parquet embeddings, then run exact top-k search streamed over the shards, and write a TREC run
//! that the metrics crate (or trec_eval) scores against qrels. What Tevatron's encode / search
//! drivers and pyserini's dense search do, with the index's provenance checked at every step.
//!
//! - [`collection`]: documents from JSONL (MIRACL / BEIR), TSV or Parquet; topics from TSV or JSONL.
//! - [`TextEncoder`]: the extension point to a model (`hybrid_ir_eval::PipelineTextEncoder` runs
//!   the workspace's encoding pipeline; anything else that embeds texts works).
//! - [`build_index`]: length-sorted encoding per shard, atomic shard and manifest writes, and an
//!   interrupted build that continues where it stopped (kept shards are verified).
//! - [`Index::search`]: exact inner-product / cosine top-k, bounded memory, all cores.
//!
//! ```no_run
//! use hybrid_ir_search::{Index, IndexOptions, SearchOptions, build_index, read_queries, to_run};
//! # fn demo(encoder: &mut impl hybrid_ir_search::TextEncoder) -> hybrid_ir_search::Result<()> {
//! use std::path::Path;
//! build_index(Path::new("corpus.jsonl"), Path::new("index"), encoder, &IndexOptions::default(), |_| {})?;
//! let index = Index::open(Path::new("index"))?;
//! index.check_encoder(encoder)?;
//! let queries = read_queries(Path::new("topics.tsv"))?;
//! let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
//! let embeddings = encoder.encode(&texts, hybrid_ir_search::Side::Query, &mut |_| {}).unwrap();
//! let hits = index.search(&embeddings, &SearchOptions::default(), |_| {})?;
//! let qids: Vec<String> = queries.iter().map(|q| q.qid.clone()).collect();
//! to_run(&qids, &hits).write(Path::new("run.trec"), "hybrid-ir")?;
//! # Ok(()) }
//! ```

pub mod collection;
pub mod encoder;
pub mod error;
pub mod index;
pub mod product;
pub mod search;
pub mod shard;
pub mod topk;

pub use collection::{Document, DocumentTemplate, FileFormat, Query, count_documents, read_documents, read_queries};
pub use encoder::{PROBE_TEXTS, Probe, Side, TextEncoder};
pub use error::{Place, Result, SearchError};
pub use index::{IndexOptions, IndexProgress, IndexSummary, build_index};
pub use search::{Hit, Index, SearchOptions, to_run};
pub use shard::Manifest;
pub use topk::{Scored, TopK};

/// Compiles and runs the README's code blocks as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
