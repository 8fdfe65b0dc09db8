//! Every measure against pytrec_eval (trec_eval's C code) on fixed random qrels and runs.
//! The fixture is written by `tests/fixtures/make_reference.py` (see its docstring).

use std::collections::{BTreeMap, HashMap};

use hybrid_ir_metrics::engine::{relevant_rank_counts, EngineOptions};
use hybrid_ir_metrics::trec::query_ranks;
use hybrid_ir_metrics::{evaluate_run, ranks_of, Metric, QueryRanks, Qrels, Run};
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    qrels: BTreeMap<String, HashMap<String, i64>>,
    run: BTreeMap<String, BTreeMap<String, f64>>,
    expected: BTreeMap<String, BTreeMap<String, f64>>,
}

fn fixture() -> Fixture {
    let path = hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

const TOLERANCE: f64 = 1e-12;

#[test]
fn trec_path_matches_pytrec_eval_on_every_query_and_metric() {
    let f = fixture();
    let qrels = Qrels { queries: f.qrels.clone() };
    let run = Run {
        queries: f.run.iter().map(|(q, docs)| (q.clone(), docs.iter().map(|(d, s)| (d.clone(), *s)).collect())).collect(),
    };
    let metric_names: Vec<&String> = f.expected.values().next().unwrap().keys().collect();
    let metrics: Vec<Metric> = metric_names.iter().map(|m| m.parse().unwrap()).collect();
    let report = evaluate_run(&qrels, &run, &metrics);
    assert_eq!(report.queries, f.expected.len());
    let mut checked = 0;
    for (qid, expected) in &f.expected {
        for (name, &want) in expected {
            let metric: Metric = name.parse().unwrap();
            let got = report.per_query[qid][&metric.to_string()];
            assert!((got - want).abs() <= TOLERANCE, "query {qid} {name}: ours {got}, pytrec_eval {want}");
            checked += 1;
        }
    }
    assert!(checked >= 12 * 12, "only {checked} values checked");
    // The reported mean is the mean of the per-query values.
    for name in metric_names {
        let metric: Metric = name.parse().unwrap();
        let mean = f.expected.values().map(|e| e[name]).sum::<f64>() / f.expected.len() as f64;
        let got = report.metrics[&metric.to_string()];
        assert!((got - mean).abs() <= TOLERANCE, "{name}: ours {got}, pytrec_eval mean {mean}");
    }
}

/// The count-based ranks (no sort) and the GEMM engine give the same ranks as trec_eval's sort
/// when scores are distinct; AP/recall/nDCG from them match pytrec_eval.
#[test]
fn counted_ranks_and_engine_match_pytrec_eval() {
    let f = fixture();
    for (qid, docs) in &f.run {
        let judged = &f.qrels[qid];
        let doc_ids: Vec<&String> = docs.keys().collect();
        let scores: Vec<f32> = docs.values().map(|&s| s as f32).collect();
        let relevant: Vec<u32> =
            (0..doc_ids.len() as u32).filter(|&i| judged.get(doc_ids[i as usize]).is_some_and(|&g| g > 0)).collect();
        let grades: Vec<u32> = judged.values().filter(|&&g| g > 0).map(|&g| g as u32).collect();
        let ranks = ranks_of(&scores, &relevant).unwrap();
        let hits: Vec<(u64, u32)> =
            ranks.iter().zip(&relevant).map(|(&r, &c)| (r, judged[doc_ids[c as usize]] as u32)).collect();
        let counted = QueryRanks::graded(hits, grades).unwrap();
        let sorted = query_ranks(judged, &docs.iter().map(|(d, s)| (d.clone(), *s)).collect::<Vec<_>>());
        assert_eq!(counted, sorted, "query {qid}");
        for (name, &want) in &f.expected[qid] {
            let got = counted.value(name.parse().unwrap());
            assert!((got - want).abs() <= TOLERANCE, "query {qid} {name}: counted {got}, pytrec_eval {want}");
        }

        // Engine: 2-d embeddings whose dot products are exactly the scores.
        let query = Array2::from_shape_vec((1, 2), vec![1.0f32, 0.0]).unwrap();
        let cands = Array2::from_shape_fn((scores.len(), 2), |(i, k)| if k == 0 { scores[i] } else { 0.0 });
        let n = scores.len();
        let groups = [0..n / 3, n / 3..n];
        let opts = EngineOptions { query_block: 1, candidate_block: 7 };
        let counts = relevant_rank_counts(query.view(), cands.view(), &groups, &[relevant.clone()], opts).unwrap();
        assert_eq!(counts.ranks_in_pool(0), ranks, "engine ranks of query {qid}");
    }
}
