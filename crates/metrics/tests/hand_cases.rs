//! Small cases computed by hand: ties, one relevant, all relevant, rank distance, skipped
//! queries, and the engine against a naive count on inputs full of exact ties.

mod support;

use hybrid_ir_metrics::engine::{EngineOptions, relevant_rank_counts};
use hybrid_ir_metrics::lareqa::macro_average;
use hybrid_ir_metrics::rank::ranks_above;
use hybrid_ir_metrics::{Metric, QueryRanks, Scores, ranks_of};
use ndarray::Array2;
use support::Xorshift;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn ties_go_to_the_earlier_candidate() {
    // scores:        c0   c1   c2   c3   c4
    let scores = [0.5f32, 0.9, 0.5, 0.9, 0.1];
    // Order: c1 (0.9), c3 (0.9, later), c0 (0.5), c2 (0.5, later), c4.
    assert_eq!(ranks_of(&scores, &[1, 3, 0, 2, 4]).unwrap(), vec![1, 2, 3, 4, 5]);
    // Relevant c2: rank 4. AP = 1/4, R@3 = 0, MRR@10 = 1/4, RR@3 = 0.
    let q = QueryRanks::binary(ranks_of(&scores, &[2]).unwrap()).unwrap();
    assert!(close(q.average_precision(), 0.25));
    assert!(close(q.recall_at(3), 0.0));
    assert!(close(q.reciprocal_rank_at(10), 0.25));
    assert!(close(q.reciprocal_rank_at(3), 0.0));
    // All scores equal: ranking = candidate order.
    assert_eq!(ranks_of(&[0.0; 4], &[3, 0]).unwrap(), vec![4, 1]);
}

#[test]
fn one_relevant_is_reciprocal_rank() {
    for rank in [1u64, 2, 7, 1000] {
        let q = QueryRanks::binary([rank]).unwrap();
        assert!(close(q.average_precision(), 1.0 / rank as f64));
        assert_eq!(q.rank_distance(), Some(0.0));
        assert!(close(q.recall_at(1), if rank == 1 { 1.0 } else { 0.0 }));
        // nDCG@k with one relevant = 1/log2(rank+1) when rank ≤ k.
        assert!(close(q.ndcg_at(1000), 1.0 / ((rank + 1) as f64).log2()));
    }
}

#[test]
fn all_relevant_on_top_is_perfect() {
    let q = QueryRanks::binary([3, 1, 2]).unwrap();
    assert!(close(q.average_precision(), 1.0));
    assert!(close(q.recall_at(2), 2.0 / 3.0));
    assert!(close(q.precision_at(2), 1.0));
    assert!(close(q.ndcg_at(10), 1.0));
    assert_eq!(q.rank_distance(), Some(2.0));
    // Every candidate relevant (pool of 4): AP 1, R@1 1/4.
    let ranks = ranks_of(&[0.3, 0.1, 0.2, 0.4], &[0, 1, 2, 3]).unwrap();
    let q = QueryRanks::binary(ranks).unwrap();
    assert!(close(q.average_precision(), 1.0));
    assert!(close(q.recall_at(1), 0.25));
}

#[test]
fn ap_and_rank_distance_by_hand() {
    // Relevant at ranks 2, 5, 9: AP = (1/2 + 2/5 + 3/9)/3; RD = 7.
    let q = QueryRanks::binary([9, 2, 5]).unwrap();
    assert!(close(q.average_precision(), (0.5 + 0.4 + 1.0 / 3.0) / 3.0));
    assert_eq!(q.rank_distance(), Some(7.0));
    assert!(close(q.value(Metric::RankDistance), 7.0));
    // Graded nDCG@3 with hits (1, g=1), (3, g=2), ideal grades [2, 1, 1]:
    // DCG = 1/log2(2) + 2/log2(4) = 2; IDCG = 2 + 1/log2(3) + 1/2.
    let g = QueryRanks::graded(vec![(3, 2), (1, 1)], vec![1, 2, 1]).unwrap();
    assert!(close(g.ndcg_at(3), 2.0 / (2.0 + 1.0 / 3f64.log2() + 0.5)));
    // A relevant item that is not ranked: AP counts it in |R|, rank distance is undefined.
    let g = QueryRanks::graded(vec![(1, 1)], vec![1, 1]).unwrap();
    assert!(close(g.average_precision(), 0.5));
    assert_eq!(g.rank_distance(), None);
}

#[test]
fn metric_names_round_trip() {
    for name in ["map", "recall@1", "recall@100", "p@5", "mrr@10", "ndcg@10", "rank_distance"] {
        let m: Metric = name.parse().unwrap();
        assert_eq!(m.to_string(), name);
    }
    assert!("ndcg@0".parse::<Metric>().is_err());
    assert!("bleu".parse::<Metric>().is_err());
}

#[test]
fn macro_average_leaves_out_empty_units_and_counts_skipped() {
    let a = Scores { map: 0.5, queries: 2, skipped_queries: 1, ..Default::default() };
    let b = Scores { map: 1.0, queries: 6, ..Default::default() };
    let empty = Scores { queries: 0, skipped_queries: 4, ..Default::default() };
    let m = macro_average([&a, &b, &empty]);
    assert!(close(m.map, 0.75), "unweighted mean over non-empty units");
    assert_eq!(m.queries, 8);
    assert_eq!(m.skipped_queries, 5);
    assert_eq!(m.averaged_over, Some(2));
}

/// Integer-valued embeddings make every dot product exact in f32 (any summation order), with
/// many exact ties: the engine must reproduce the naive count under the tie rule exactly, per
/// group, for any block sizes.
#[test]
fn engine_matches_naive_counts_with_exact_ties() {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let (nq, nc, dim) = (37, 301, 5);
    let queries = Array2::from_shape_fn((nq, dim), |_| rng.below(5) as f32 - 2.0);
    let mut candidates = Array2::from_shape_fn((nc, dim), |_| rng.below(3) as f32 - 1.0);
    // Duplicate a few candidates verbatim (identical sentences in different paragraphs).
    for (dst, src) in [(10, 200), (150, 3), (299, 150)] {
        let row = candidates.row(src).to_owned();
        candidates.row_mut(dst).assign(&row);
    }
    let groups = vec![0..100, 100..101, 101..250, 250..301];
    let relevant: Vec<Vec<u32>> = (0..nq)
        .map(|q| {
            let mut r: Vec<u32> = (0..1 + q % 6).map(|_| rng.below(nc as u64) as u32).collect();
            r.sort_unstable();
            r.dedup();
            r
        })
        .collect();
    for opts in [
        EngineOptions::default(),
        EngineOptions { query_block: 1, candidate_block: 1 },
        EngineOptions { query_block: 5, candidate_block: 33 },
    ] {
        let counts = relevant_rank_counts(queries.view(), candidates.view(), &groups, &relevant, opts).unwrap();
        for q in 0..nq {
            let scores: Vec<f32> =
                (0..nc).map(|c| queries.row(q).iter().zip(candidates.row(c)).map(|(a, b)| a * b).sum()).collect();
            for (i, &r) in relevant[q].iter().enumerate() {
                for (g, range) in groups.iter().enumerate() {
                    let naive = range.clone().filter(|&c| ranks_above(scores[c], c, scores[r as usize], r as usize)).count();
                    assert_eq!(counts.above(q, i)[g] as usize, naive, "query {q} relevant {r} group {g} ({opts:?})");
                }
            }
            assert_eq!(counts.ranks_in_pool(q), ranks_of(&scores, &relevant[q]).unwrap());
        }
    }
}

#[test]
fn engine_rejects_bad_inputs() {
    let q = Array2::<f32>::zeros((2, 3));
    let c = Array2::<f32>::zeros((4, 3));
    let ok = vec![vec![0u32], vec![1]];
    let opts = EngineOptions::default();
    assert!(relevant_rank_counts(q.view(), c.view(), &[0..4], &ok, opts).is_ok());
    assert!(relevant_rank_counts(q.view(), c.view(), &[0..3], &ok, opts).is_err(), "groups must cover the pool");
    assert!(relevant_rank_counts(q.view(), c.view(), &[0..2, 3..4], &ok, opts).is_err(), "groups contiguous");
    assert!(relevant_rank_counts(q.view(), c.view(), &[0..4], &[vec![4u32], vec![0]], opts).is_err(), "index range");
    assert!(relevant_rank_counts(q.view(), c.view(), &[0..4], &[vec![1u32, 1], vec![0]], opts).is_err(), "duplicate");
    let mut nan = c.clone();
    nan[[2, 1]] = f32::NAN;
    let err = relevant_rank_counts(q.view(), nan.view(), &[0..4], &ok, opts).unwrap_err().to_string();
    assert!(err.contains("candidate 2") && err.contains("NaN"), "{err}");
}

#[test]
fn dot_products_that_overflow_f32_are_an_error_naming_the_norms() {
    // Finite vectors whose dot products exceed f32's range: once "internal: the GEMM score ...
    // fell outside its error window [3.4e38, inf]".
    let mut q = Array2::<f32>::zeros((2, 3));
    let mut c = Array2::<f32>::zeros((4, 3));
    q.fill(1e19);
    c.fill(1e19);
    c[[3, 0]] = 3e19;
    let ok = vec![vec![0u32], vec![1]];
    let err = relevant_rank_counts(q.view(), c.view(), &[0..4], &ok, EngineOptions::default()).unwrap_err().to_string();
    assert!(
        err.starts_with("dot products overflow f32: embedding norms up to 1.732e19 (query 0) and 3.317e19 (candidate 3)"),
        "{err}"
    );
    assert!(err.contains("use cosine scores or normalise"), "{err}");
    // Large but safe: the product of the norms is under half of f32's range.
    q.fill(1e18);
    assert!(relevant_rank_counts(q.view(), c.view(), &[0..4], &ok, EngineOptions::default()).is_ok());
}
