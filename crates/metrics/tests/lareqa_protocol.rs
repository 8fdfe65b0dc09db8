//! The protocol on the real benchmarks with synthetic embeddings whose results are known:
//! perfect and reversed embeddings on XQuAD-R (values derived from the benchmark structure),
//! MLQA-R's skipped cross-lingual queries against the data notes' matrix, and the whole report
//! against a naive implementation on exact (integer) scores.

mod support;

use std::collections::HashMap;

use hybrid_ir_data::{LareqaBenchmark, RetrievalBenchmark};
use hybrid_ir_metrics::{evaluate_benchmark, BenchmarkEmbeddings, EvalOptions, LareqaReport, ScoreFunction};
use ndarray::Array2;
use support::{benchmark, Xorshift};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// One dimension per parallel id: query = ±e_id, candidate = Σ_{answered ids} e_id.
fn one_hot(bench: &RetrievalBenchmark, sign: f32) -> BenchmarkEmbeddings {
    let mut dims: HashMap<&str, usize> = HashMap::new();
    for q in &bench.queries {
        let n = dims.len();
        dims.entry(&q.id).or_insert(n);
    }
    let dim = dims.len();
    let mut queries = Array2::zeros((bench.queries.len(), dim));
    for (i, q) in bench.queries.iter().enumerate() {
        queries[[i, dims[&*q.id]]] = sign;
    }
    let mut candidates = Array2::zeros((bench.candidates.len(), dim));
    for (i, c) in bench.candidates.iter().enumerate() {
        for a in &c.answers {
            candidates[[i, dims[&**a]]] = 1.0;
        }
    }
    BenchmarkEmbeddings { queries, candidates }
}

/// Mean of `f(q)` over queries of language `x`; then mean over languages.
fn per_language_mean(bench: &RetrievalBenchmark, x: usize, f: impl Fn(usize) -> f64) -> f64 {
    let r = bench.query_range(x);
    r.clone().map(f).sum::<f64>() / r.len() as f64
}

fn macro_mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn perfect_embeddings_on_xquad_r() {
    let bench = benchmark(LareqaBenchmark::XquadR);
    let report = evaluate_benchmark(&bench, &one_hot(&bench, 1.0), &EvalOptions::default()).unwrap();
    let nl = bench.languages.len();
    assert_eq!((nl, report.num_queries, report.num_candidates), (11, 13_090, 13_014));
    let s = &report.settings;
    assert!(close(s.mono.map, 1.0) && close(s.cross.map, 1.0) && close(s.multi.map, 1.0), "{s:?}");
    assert!(close(s.mono.recall_at_1, 1.0) && close(s.cross.recall_at_1, 1.0));
    assert_eq!((s.mono.averaged_over, s.cross.averaged_over, s.multi.averaged_over), (Some(11), Some(110), Some(11)));
    assert_eq!(s.cross.skipped_queries, 0);
    assert_eq!(report.pairs.len(), 121);
    // Multi: all |R| relevant on top, so R@10 = min(10,|R|)/|R|, RD = |R| − 1.
    let r10: Vec<f64> = (0..nl)
        .map(|x| per_language_mean(&bench, x, |q| { let r = bench.queries[q].relevant.len() as f64; r.min(10.0) / r }))
        .collect();
    let rd: Vec<f64> =
        (0..nl).map(|x| per_language_mean(&bench, x, |q| bench.queries[q].relevant.len() as f64 - 1.0)).collect();
    assert!(close(s.multi.recall_at_10, macro_mean(&r10)), "{} vs {}", s.multi.recall_at_10, macro_mean(&r10));
    assert!(close(s.multi.rank_distance.unwrap(), macro_mean(&rd)));
    assert!(close(s.multi.rank_distance.unwrap(), 10.0), "XQuAD-R: 11 relevant per query");
    for (x, lang) in bench.languages.iter().enumerate() {
        let l = &report.per_language[&**lang];
        assert_eq!(l.queries, 1190);
        assert!(close(l.multi.recall_at_10, r10[x]) && close(l.multi.rank_distance.unwrap(), rd[x]));
    }
}

#[test]
fn reversed_embeddings_on_xquad_r_rank_relevant_last() {
    let bench = benchmark(LareqaBenchmark::XquadR);
    let report = evaluate_benchmark(&bench, &one_hot(&bench, -1.0), &EvalOptions::default()).unwrap();
    let nl = bench.languages.len();
    let n = bench.candidates.len() as f64;
    // Multi: relevant at ranks N−|R|+1..N.
    let ap_multi = |q: usize| {
        let r = bench.queries[q].relevant.len() as f64;
        (1..=r as usize).map(|i| i as f64 / (n - r + i as f64)).sum::<f64>() / r
    };
    let multi: Vec<f64> = (0..nl).map(|x| per_language_mean(&bench, x, ap_multi)).collect();
    assert!(close(report.settings.multi.map, macro_mean(&multi)));
    assert!(close(report.settings.multi.rank_distance.unwrap(), 10.0));
    assert!(close(report.settings.multi.recall_at_10, 0.0));
    // Pair X→Y: the single relevant candidate is last of the N_Y candidates of Y.
    let mut cross = Vec::new();
    for x in 0..nl {
        for y in 0..nl {
            let want = 1.0 / bench.candidate_range(y).len() as f64;
            let got = report.pair(&bench.languages[x], &bench.languages[y]).unwrap();
            assert!(close(got.map, want), "{}→{}: {} vs {want}", bench.languages[x], bench.languages[y], got.map);
            if x != y {
                cross.push(want);
            }
        }
    }
    assert!(close(report.settings.cross.map, macro_mean(&cross)));
}

#[test]
fn mlqa_r_cross_lingual_skips_queries_without_an_answer_in_the_target() {
    // Questions that have both languages (rows = question language, columns = candidate
    // language), from the project's data notes (docs/data.md, MLQA-R parallelism).
    let langs = ["ar", "de", "en", "es", "hi", "vi", "zh"];
    let matrix = [
        [517, 207, 517, 161, 186, 163, 188],
        [207, 512, 512, 196, 163, 182, 190],
        [517, 512, 1148, 500, 507, 511, 504],
        [161, 196, 500, 500, 187, 189, 161],
        [186, 163, 507, 187, 507, 177, 189],
        [163, 182, 511, 189, 177, 511, 184],
        [188, 190, 504, 161, 189, 184, 504],
    ];
    let bench = benchmark(LareqaBenchmark::MlqaR);
    let report = evaluate_benchmark(&bench, &one_hot(&bench, 1.0), &EvalOptions::default()).unwrap();
    let mut skipped_total = 0;
    for (i, x) in langs.iter().enumerate() {
        for (j, y) in langs.iter().enumerate() {
            let pair = report.pair(x, y).unwrap();
            assert_eq!(pair.queries, matrix[i][j], "{x}→{y} answerable");
            assert_eq!(pair.queries + pair.skipped_queries, matrix[i][i], "{x}→{y} all queries of {x}");
            if i != j {
                skipped_total += matrix[i][i] - matrix[i][j];
            }
        }
    }
    assert_eq!(report.pair("ar", "es").unwrap().skipped_queries, 517 - 161);
    assert_eq!(report.settings.cross.skipped_queries, skipped_total);
    assert_eq!(report.settings.cross.averaged_over, Some(42));
    assert!(close(report.settings.cross.map, 1.0) && close(report.settings.multi.map, 1.0));
}

/// Naive per-pool metrics of one query: scores by plain loops, ranks by counting.
fn naive(scores: &[f32], pool: std::ops::Range<usize>, relevant: &[usize]) -> [f64; 5] {
    let mut ranks: Vec<usize> = relevant
        .iter()
        .map(|&r| 1 + pool.clone().filter(|&c| scores[c] > scores[r] || (scores[c] == scores[r] && c < r)).count())
        .collect();
    ranks.sort_unstable();
    let n = ranks.len() as f64;
    let ap = ranks.iter().enumerate().map(|(i, &r)| (i + 1) as f64 / r as f64).sum::<f64>() / n;
    let rr10 = if ranks[0] <= 10 { 1.0 / ranks[0] as f64 } else { 0.0 };
    let r1 = ranks.iter().filter(|&&r| r <= 1).count() as f64 / n;
    let r10 = ranks.iter().filter(|&&r| r <= 10).count() as f64 / n;
    let rd = (ranks[ranks.len() - 1] - ranks[0]) as f64;
    [ap, rr10, r1, r10, rd]
}

/// The whole report against a naive implementation, on integer embeddings (exact scores, many
/// ties) over MLQA-R's real structure, with dot and cosine-free scoring.
#[test]
fn report_matches_naive_protocol_on_mlqa_r() {
    let bench = benchmark(LareqaBenchmark::MlqaR);
    let dim = 6;
    let mut rng = Xorshift(42);
    let emb = BenchmarkEmbeddings {
        queries: Array2::from_shape_fn((bench.queries.len(), dim), |_| rng.below(5) as f32 - 2.0),
        candidates: Array2::from_shape_fn((bench.candidates.len(), dim), |_| rng.below(5) as f32 - 2.0),
    };
    let report =
        evaluate_benchmark(&bench, &emb, &EvalOptions { score: ScoreFunction::Dot, ..Default::default() }).unwrap();
    let nl = bench.languages.len();
    let check = |what: &str, got: &hybrid_ir_metrics::Scores, want: &[f64; 5], n: usize| {
        let want = want.map(|v| v / n as f64);
        assert_eq!(got.queries, n, "{what}");
        for (name, g, w) in [
            ("map", got.map, want[0]),
            ("mrr@10", got.mrr_at_10, want[1]),
            ("recall@1", got.recall_at_1, want[2]),
            ("recall@10", got.recall_at_10, want[3]),
        ] {
            assert!(close(g, w), "{what} {name}: report {g}, naive {w}");
        }
        if let Some(rd) = got.rank_distance {
            assert!(close(rd, want[4]), "{what} rank distance: report {rd}, naive {}", want[4]);
        }
    };
    let mut multi_maps = Vec::new();
    for x in 0..nl {
        let mut pair_sums = vec![([0.0; 5], 0usize); nl];
        let mut multi = [0.0; 5];
        for q in bench.query_range(x) {
            let scores: Vec<f32> = (0..bench.candidates.len())
                .map(|c| emb.queries.row(q).iter().zip(emb.candidates.row(c)).map(|(a, b)| a * b).sum())
                .collect();
            for (y, (sum, n)) in pair_sums.iter_mut().enumerate() {
                let rel: Vec<usize> = bench.relevant_in(q, y).map(|c| c as usize).collect();
                if !rel.is_empty() {
                    let v = naive(&scores, bench.candidate_range(y), &rel);
                    sum.iter_mut().zip(v).for_each(|(s, v)| *s += v);
                    *n += 1;
                }
            }
            let rel: Vec<usize> = bench.queries[q].relevant.iter().map(|&c| c as usize).collect();
            let v = naive(&scores, 0..bench.candidates.len(), &rel);
            multi.iter_mut().zip(v).for_each(|(s, v)| *s += v);
        }
        let lx = &*bench.languages[x];
        for (y, (sum, n)) in pair_sums.iter().enumerate() {
            let key = LareqaReport::pair_key(lx, &bench.languages[y]);
            check(&key, &report.pairs[&key], sum, *n);
        }
        check(&format!("multi {lx}"), &report.per_language[lx].multi, &multi, bench.query_range(x).len());
        multi_maps.push(multi[0] / bench.query_range(x).len() as f64);
    }
    assert!(close(report.settings.multi.map, macro_mean(&multi_maps)));
    let report_json = serde_json::to_value(&report).unwrap();
    for key in ["benchmark", "settings", "per_language", "pairs"] {
        assert!(report_json.get(key).is_some(), "report.json has `{key}`");
    }
    assert!(report_json["settings"]["multi"]["rank_distance"].is_number());
    assert!(report_json["settings"]["cross"]["skipped_queries"].is_number());
    assert!(report_json["pairs"]["ar→de"]["map"].is_number());
}
