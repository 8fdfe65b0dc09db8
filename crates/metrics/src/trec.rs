//! TREC qrels and run files, scored with trec_eval's conventions (how MIRACL is evaluated).
//!
//! - qrels: `qid iter docid rel`, whitespace separated (MIRACL: tabs). `rel ≥ 1` is relevant
//!   and is the nDCG gain; `rel ≤ 0` is judged non-relevant.
//! - run: `qid Q0 docid rank score tag`. As in trec_eval the rank column is ignored: each
//!   query's documents are ordered by descending score, **ties by docid in descending string
//!   order** (trec_eval's rule, so numbers match `trec_eval`, `pytrec_eval` and `ir-measures`
//!   on the same file; the embeddings path uses the earlier-candidate-first rule instead).
//! - Averages are over the qrels queries with at least one relevant document. A query absent
//!   from the run scores 0 on every metric (`trec_eval -c`); queries of the run without qrels
//!   and qrels queries without relevant documents are left out. All three are counted.
//! - Measures: [`evaluate_run`] scores any list of [`Measure`]s — the built-in
//!   [`Metric`](crate::Metric)s and your own — each as the mean of its per-query values
//!   (NaN counts as 0), keyed by its name.
//!
//! A malformed line, a duplicate (query, document) pair, a non-numeric field or bytes that are not
//! UTF-8 are an error naming the file and line. A byte order mark at the start is dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::measures::{Measure, QueryRanks, aggregated_value};

/// Relevance judgements: query id → document id → grade.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Qrels {
    /// Judgements per query.
    pub queries: BTreeMap<String, HashMap<String, i64>>,
}

/// A run: query id → (document id, score), in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    /// Retrieved documents per query.
    pub queries: BTreeMap<String, Vec<(String, f64)>>,
}

/// The file as text (a leading byte order mark dropped); bytes that are not UTF-8 are an error
/// naming the line, column and byte offset (`read_to_string` would name neither).
fn read_lines(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| MetricsError::io(path, e))?;
    hybrid_ir_data::text::decode_file_text(bytes).map_err(|e| MetricsError::Utf8 { path: path.to_path_buf(), place: e })
}

fn line_error(path: &Path, line: usize, message: String) -> MetricsError {
    MetricsError::Line { path: path.to_path_buf(), line, message }
}

impl Qrels {
    /// Reads a TREC qrels file.
    pub fn read(path: &Path) -> Result<Self> {
        Self::parse(&read_lines(path)?, path)
    }

    /// Parses qrels text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut qrels = Qrels::default();
        for (n, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            if fields.len() != 4 {
                return Err(line_error(path, n + 1, format!("expected 4 fields `qid iter docid rel`, found {}", fields.len())));
            }
            let rel: i64 =
                fields[3].parse().map_err(|_| line_error(path, n + 1, format!("relevance `{}` is not an integer", fields[3])))?;
            let docs = qrels.queries.entry(fields[0].to_string()).or_default();
            if docs.insert(fields[2].to_string(), rel).is_some() {
                return Err(line_error(path, n + 1, format!("document {} of query {} is judged twice", fields[2], fields[0])));
            }
        }
        Ok(qrels)
    }
}

impl Run {
    /// Reads a TREC run file.
    pub fn read(path: &Path) -> Result<Self> {
        Self::parse(&read_lines(path)?, path)
    }

    /// Parses run text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut run = Run::default();
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            if fields.len() != 6 {
                return Err(line_error(
                    path,
                    n + 1,
                    format!("expected 6 fields `qid Q0 docid rank score tag`, found {}", fields.len()),
                ));
            }
            let score: f64 = fields[4]
                .parse()
                .ok()
                .filter(|s: &f64| !s.is_nan())
                .ok_or_else(|| line_error(path, n + 1, format!("score `{}` is not a number", fields[4])))?;
            let key = (fields[0].to_string(), fields[2].to_string());
            if let Some(first) = seen.insert(key, n + 1) {
                return Err(line_error(
                    path,
                    n + 1,
                    format!("document {} of query {} already retrieved at line {first}", fields[2], fields[0]),
                ));
            }
            run.queries.entry(fields[0].to_string()).or_default().push((fields[2].to_string(), score));
        }
        Ok(run)
    }

    /// The run in TREC format (rank = position after trec_eval's ordering), tag `tag`.
    pub fn to_trec(&self, tag: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (qid, docs) in &self.queries {
            for (i, (doc, score)) in ranked(docs).into_iter().enumerate() {
                writeln!(out, "{qid} Q0 {doc} {} {score} {tag}", i + 1).expect("writing to a String");
            }
        }
        out
    }

    /// Writes the run in TREC format ([`Run::to_trec`]) atomically.
    pub fn write(&self, path: &Path, tag: &str) -> Result<()> {
        hybrid_ir_data::fs::write_atomic(path, self.to_trec(tag).as_bytes()).map_err(|e| MetricsError::io(path, e))
    }
}

/// trec_eval's ordering: score descending, ties by docid descending. A document listed twice (a
/// `Run` built by hand; the file reader refuses that) counts once, at its best position.
fn ranked(docs: &[(String, f64)]) -> Vec<(&str, f64)> {
    let mut v: Vec<(&str, f64)> = docs.iter().map(|(d, s)| (d.as_str(), *s)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(a.0)));
    let mut seen = std::collections::HashSet::new();
    v.retain(|(d, _)| seen.insert(*d));
    v
}

/// Ranks of one query's relevant documents in its run (trec_eval ordering).
pub fn query_ranks(judged: &HashMap<String, i64>, docs: &[(String, f64)]) -> QueryRanks {
    let hits: Vec<(u64, u32)> = ranked(docs)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (doc, _))| match judged.get(doc) {
            Some(&g) if g > 0 => Some((i as u64 + 1, g.min(u32::MAX as i64) as u32)),
            _ => None,
        })
        .collect();
    let grades = judged.values().filter(|&&g| g > 0).map(|&g| g.min(u32::MAX as i64) as u32).collect();
    QueryRanks::graded(hits, grades).expect("positions are distinct and grades positive")
}

/// Scores of a run against qrels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrecReport {
    /// qrels file (for the record).
    pub qrels: Option<PathBuf>,
    /// run file (for the record).
    pub run: Option<PathBuf>,
    /// Mean of each measure over the evaluated queries, keyed by measure name (`ndcg@10`, ...;
    /// your own measures under their [`Measure::name`]).
    pub metrics: BTreeMap<String, f64>,
    /// Queries averaged over (qrels queries with a relevant document).
    pub queries: usize,
    /// Of those, queries absent from the run (scored 0).
    pub queries_missing_from_run: usize,
    /// Qrels queries without any relevant document (left out).
    pub queries_without_relevant: usize,
    /// Run queries that have no qrels (left out).
    pub run_queries_without_qrels: usize,
    /// Per query id, per measure name: the per-query values that were averaged.
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Scores `run` against `qrels` on `measures` (see the module docs for the conventions).
///
/// `measures` is any slice of [`Measure`]s: the built-in [`Metric`]s (`&Metric::TREC_DEFAULT`),
/// your own (`&[&dyn Measure]`, `Vec<Arc<dyn Measure>>`), or both in one list. Each is keyed by
/// its [`Measure::name`] in [`TrecReport::metrics`] (the mean over the evaluated queries) and
/// [`TrecReport::per_query`]; a NaN per-query value counts as 0. Measures are identified by
/// name: when several share one, the first is scored and the later ones are not (so a
/// repeated built-in is counted once); use [`crate::measures::checked_names`] first to reject
/// such lists instead.
///
/// [`Metric`]: crate::Metric
pub fn evaluate_run<M: Measure>(qrels: &Qrels, run: &Run, measures: &[M]) -> TrecReport {
    // One (name, measure) per distinct name, in the given order.
    let mut scored: Vec<(String, &M)> = Vec::with_capacity(measures.len());
    for m in measures {
        let name = m.name();
        if !scored.iter().any(|(n, _)| *n == name) {
            scored.push((name, m));
        }
    }
    let mut sums = vec![0.0f64; scored.len()];
    let mut per_query = BTreeMap::new();
    let (mut queries, mut missing, mut without_relevant) = (0, 0, 0);
    for (qid, judged) in &qrels.queries {
        if !judged.values().any(|&g| g > 0) {
            without_relevant += 1;
            continue;
        }
        queries += 1;
        let docs = run.queries.get(qid).map(Vec::as_slice).unwrap_or(&[]);
        if docs.is_empty() {
            missing += 1;
        }
        let ranks = query_ranks(judged, docs);
        let mut values = BTreeMap::new();
        for ((name, m), sum) in scored.iter().zip(&mut sums) {
            // Rank distance needs every relevant item ranked; undefined values count as 0 here.
            let v = aggregated_value(*m, &ranks);
            *sum += v;
            values.insert(name.clone(), v);
        }
        per_query.insert(qid.clone(), values);
    }
    let n = queries.max(1) as f64;
    TrecReport {
        qrels: None,
        run: None,
        metrics: scored.into_iter().zip(sums).map(|((name, _), sum)| (name, sum / n)).collect(),
        queries,
        queries_missing_from_run: missing,
        queries_without_relevant: without_relevant,
        run_queries_without_qrels: run.queries.keys().filter(|q| !qrels.queries.contains_key(*q)).count(),
        per_query,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hand_built_run_with_a_duplicate_document_counts_it_once() {
        let judged = std::collections::HashMap::from([("d1".to_string(), 1i64)]);
        let docs = vec![("d1".to_string(), 2.0), ("d2".to_string(), 1.5), ("d1".to_string(), 1.0)];
        let ranks = super::query_ranks(&judged, &docs);
        assert_eq!(ranks.ranks().collect::<Vec<_>>(), vec![1]);
    }
}
