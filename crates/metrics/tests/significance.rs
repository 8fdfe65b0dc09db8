//! Per-query values in the LAReQA report and the paired tests on them: the weighted per-query
//! means are the report's macro numbers (on benchmarks whose language pairs have different
//! numbers of queries, hand-built and MLQA-R), opt-in per-query values leave the aggregate
//! report untouched, and comparing reports finds a real improvement, finds nothing between a
//! system and itself, and refuses reports that cannot be paired.

mod support;

use std::path::PathBuf;

use hybrid_ir_data::lareqa::{LareqaLanguage, LareqaParagraph, LareqaQuestion};
use hybrid_ir_data::{LareqaBenchmark, LareqaDataset, RetrievalBenchmark};
use hybrid_ir_metrics::{
    BenchmarkEmbeddings, EvalOptions, HeadlineMetric, LareqaReport, PairedTestOptions, PerQueryValues, SeedSummary, Setting,
    combine_seeds,
    compare_report_seeds, compare_reports, evaluate_benchmark, holm_jointly,
};
use ndarray::Array2;
use support::Xorshift;

/// Languages de, en, fr; paragraphs of three sentences; question `q{k}` is answered by sentence
/// k % 3 of paragraph k / 3. `en` has every id (`ids` of them), `de` those with k % 3 ≠ 1 and
/// `fr` those with k % 3 ≠ 2 (and not `q{ids - 2}` when `drop_fr`), so the six cross pairs have
/// different numbers of answerable queries, as on MLQA-R.
fn uneven_benchmark(ids: usize, drop_fr: bool) -> RetrievalBenchmark {
    let language = |lang: &str, keep: &dyn Fn(usize) -> bool| {
        let paragraphs = ids.div_ceil(3);
        LareqaLanguage {
            lang: lang.into(),
            path: PathBuf::from(format!("{lang}.json")),
            articles: 1,
            paragraphs: (0..paragraphs)
                .map(|_| LareqaParagraph {
                    article: 0,
                    title: "t".into(),
                    context: "S0. S1. S2.".into(),
                    sentences: vec!["S0.".into(), "S1.".into(), "S2.".into()],
                    sentence_breaks: vec![[0, 3], [4, 7], [8, 11]],
                })
                .collect(),
            questions: (0..ids)
                .filter(|&k| keep(k))
                .map(|k| LareqaQuestion {
                    id: format!("q{k}").into(),
                    question: format!("{lang} {k}?").into(),
                    paragraph: k / 3,
                    sentence: k % 3,
                    answer: "S".into(),
                    answer_start: 4 * (k % 3),
                })
                .collect(),
        }
    };
    let dataset = LareqaDataset {
        name: "uneven".into(),
        languages: vec![
            language("de", &|k| k % 3 != 1),
            language("en", &|_| true),
            language("fr", &|k| k % 3 != 2 && !(drop_fr && k == ids - 2)),
        ],
    };
    RetrievalBenchmark::from_lareqa(&dataset)
}

fn random_embeddings(bench: &RetrievalBenchmark, dim: usize, seed: u64) -> BenchmarkEmbeddings {
    let mut rng = Xorshift(seed);
    BenchmarkEmbeddings {
        queries: Array2::from_shape_fn((bench.queries.len(), dim), |_| rng.symmetric()),
        candidates: Array2::from_shape_fn((bench.candidates.len(), dim), |_| rng.symmetric()),
    }
}

/// Random candidates; each query is the sum of its relevant candidates plus noise of size
/// `noise`: a good retriever (better the smaller the noise).
fn good_embeddings(bench: &RetrievalBenchmark, dim: usize, seed: u64, noise: f32) -> BenchmarkEmbeddings {
    let mut rng = Xorshift(seed);
    let candidates = Array2::from_shape_fn((bench.candidates.len(), dim), |_| rng.symmetric());
    let queries = Array2::from_shape_fn((bench.queries.len(), dim), |(q, k)| {
        bench.queries[q].relevant.iter().map(|&c| candidates[[c as usize, k]]).sum::<f32>() + noise * rng.symmetric()
    });
    BenchmarkEmbeddings { queries, candidates }
}

fn per_query() -> EvalOptions {
    EvalOptions { per_query: true, ..Default::default() }
}

/// Σ weight · value of every headline metric equals the report's number, and each setting's
/// weights sum to 1.
fn assert_weighted_means_are_the_report(report: &LareqaReport) {
    let values = report.per_query.as_ref().expect("per-query values");
    for metric in HeadlineMetric::ALL {
        let want = metric.of(&report.settings).unwrap();
        let got = values.weighted_mean(metric).unwrap();
        // Relative to the value: rank distances are in the thousands on MLQA-R.
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{} {metric}: per-query {got}, report {want}", report.benchmark);
    }
    for setting in [Setting::Mono, Setting::Cross, Setting::Multi] {
        let sum: f64 = values.weights.get(setting).iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "{setting} weights sum to {sum}");
    }
}

#[test]
fn per_query_weights_follow_the_macro_averages_by_hand() {
    // 6 ids: en q0..q5; de q0 q2 q3 q5; fr q0 q1 q3 q4.
    let bench = uneven_benchmark(6, false);
    let report = evaluate_benchmark(&bench, &random_embeddings(&bench, 8, 3), &per_query()).unwrap();
    let values = report.per_query.as_ref().unwrap();
    let keys = ["de:q0", "de:q2", "de:q3", "de:q5", "en:q0", "en:q1", "en:q2", "en:q3", "en:q4", "en:q5"];
    assert_eq!(values.queries[..10], keys);
    assert_eq!(values.queries[10..], ["fr:q0", "fr:q1", "fr:q3", "fr:q4"]);
    // Answerable queries per pair: de→en 4, de→fr 2 (q0 q3), en→de 4, en→fr 4, fr→de 2, fr→en 4.
    for (pair, n) in [("de→en", 4), ("de→fr", 2), ("en→de", 4), ("en→fr", 4), ("fr→de", 2), ("fr→en", 4)] {
        assert_eq!(report.pairs[pair].queries, n, "{pair}");
    }
    let w = |s: Setting, key: &str| values.weights.get(s)[values.queries.iter().position(|k| k == key).unwrap()];
    let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
    // Mono and multi: 1 / (3 languages · queries of the language).
    assert!(close(w(Setting::Mono, "de:q0"), 1.0 / 12.0) && close(w(Setting::Multi, "en:q1"), 1.0 / 18.0));
    // Cross: (1 / 6 pairs) Σ over answerable targets of 1 / n_XY.
    assert!(close(w(Setting::Cross, "de:q0"), (1.0 / 4.0 + 1.0 / 2.0) / 6.0), "de:q0 answered in en and fr");
    assert!(close(w(Setting::Cross, "de:q2"), (1.0 / 4.0) / 6.0), "de:q2 answered in en only");
    assert!(close(w(Setting::Cross, "en:q1"), (1.0 / 4.0) / 6.0), "en:q1 answered in fr only");
    assert!(close(w(Setting::Cross, "en:q0"), (1.0 / 4.0 + 1.0 / 4.0) / 6.0));
    let ap_cross = &values.values[&HeadlineMetric::MapCross];
    assert!(ap_cross.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_weighted_means_are_the_report(&report);
}

#[test]
fn per_query_values_average_to_the_report_on_mlqa_r() {
    let bench = support::benchmark(LareqaBenchmark::MlqaR);
    let report = evaluate_benchmark(&bench, &random_embeddings(&bench, 6, 42), &per_query()).unwrap();
    assert_eq!(report.settings.cross.averaged_over, Some(42));
    assert_weighted_means_are_the_report(&report);
    let values = report.per_query.as_ref().unwrap();
    assert_eq!(values.queries.len(), report.num_queries);
    assert_eq!(values.queries[0], PerQueryValues::query_key(&bench.queries[0].lang, &bench.queries[0].id));
}

#[test]
fn per_query_values_are_opt_in_and_leave_the_report_unchanged() {
    let bench = uneven_benchmark(30, false);
    let emb = random_embeddings(&bench, 8, 5);
    let plain = evaluate_benchmark(&bench, &emb, &EvalOptions::default()).unwrap();
    let with = evaluate_benchmark(&bench, &emb, &per_query()).unwrap();
    assert!(plain.per_query.is_none());
    assert_eq!(LareqaReport { per_query: None, ..with.clone() }, plain, "the aggregate numbers are the same bits");
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("per_query").is_none(), "report.json without per-query values is unchanged");
    // Reports written before per-query values existed still parse.
    let parsed: LareqaReport = serde_json::from_value(json).unwrap();
    assert_eq!(parsed, plain);
    // With them, the JSON round trip keeps every value (to serde_json's parsing, ≤ 1 ulp).
    let text = serde_json::to_string(&with).unwrap();
    assert!(text.contains("\"per_query\"") && text.contains("\"recall@1_cross\"") && text.contains("\"weights\""));
    let back: LareqaReport = serde_json::from_str(&text).unwrap();
    let (pq, pq_back) = (with.per_query.as_ref().unwrap(), back.per_query.as_ref().unwrap());
    assert_eq!(pq.queries, pq_back.queries);
    for metric in HeadlineMetric::ALL {
        let (v, w) = (pq.metric(metric).unwrap(), pq_back.metric(metric).unwrap());
        for (x, y) in v.0.iter().zip(w.0).chain(v.1.iter().zip(w.1)) {
            assert!((x - y).abs() <= 1e-15 * x.abs().max(1.0), "{metric:?}: {x} vs {y}");
        }
    }
    let old_options = r#"{"score": "cosine", "engine": {"query_block": 8, "candidate_block": 16}}"#;
    let options: EvalOptions = serde_json::from_str(old_options).unwrap();
    assert!(!options.per_query, "options written before the flag parse with it off");
}

#[test]
fn a_better_system_is_significantly_better_and_a_system_is_not_better_than_itself() {
    let bench = uneven_benchmark(120, false);
    let a = evaluate_benchmark(&bench, &random_embeddings(&bench, 16, 7), &per_query()).unwrap();
    let b = evaluate_benchmark(&bench, &good_embeddings(&bench, 16, 8, 0.5), &per_query()).unwrap();
    let options = PairedTestOptions::default();
    let cmp = compare_reports(&a, &b, &options).unwrap();
    assert_eq!((cmp.benchmark.as_str(), cmp.runs_a, cmp.runs_b, cmp.metrics.len()), ("uneven", 1, 1, 7));
    for row in &cmp.metrics {
        let (want_a, want_b) = (row.metric.of(&a.settings).unwrap(), row.metric.of(&b.settings).unwrap());
        assert!((row.test.mean_a - want_a).abs() < 1e-12 && (row.test.mean_b - want_b).abs() < 1e-12, "{row:?}");
        assert!(row.p_holm >= row.test.p_value && row.p_holm <= 1.0);
        assert!(row.test.ci_low <= row.test.difference && row.test.difference <= row.test.ci_high, "{row:?}");
    }
    for metric in [HeadlineMetric::MapMono, HeadlineMetric::MapCross, HeadlineMetric::MapMulti, HeadlineMetric::RecallAt10Multi] {
        let row = cmp.get(metric).unwrap();
        assert!(row.test.difference > 0.3 && row.test.ci_low > 0.0, "{row:?}");
        assert!(row.test.p_value == 1.0 / 10_001.0 && row.p_holm <= 7.0 / 10_001.0 && row.significant, "{row:?}");
    }
    // Against itself: nothing differs.
    let same = compare_reports(&b, &b, &options).unwrap();
    for row in &same.metrics {
        assert_eq!((row.test.difference, row.test.p_value, row.p_holm, row.significant), (0.0, 1.0, 1.0, false), "{row:?}");
    }
    // From report.json: the same comparison (values within serde_json's ≤ 1 ulp parsing).
    let reparsed: Vec<LareqaReport> =
        [&a, &b].iter().map(|r| serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap()).collect();
    let again = compare_reports(&reparsed[0], &reparsed[1], &options).unwrap();
    for (x, y) in again.metrics.iter().zip(&cmp.metrics) {
        assert_eq!((x.metric, x.significant), (y.metric, y.significant));
        for (u, v) in [(x.test.difference, y.test.difference), (x.test.ci_low, y.test.ci_low), (x.test.p_value, y.test.p_value)] {
            assert!((u - v).abs() <= 1e-12 * u.abs().max(1.0), "{:?}: {u} vs {v}", x.metric);
        }
    }
    // One family over both comparisons: Holm over 14 p-values is never smaller.
    let mut family = [cmp.clone(), same];
    holm_jointly(&mut family);
    for (joint, alone) in family[0].metrics.iter().zip(&cmp.metrics) {
        assert!(joint.p_holm >= alone.p_holm, "{joint:?} vs {alone:?}");
    }
}

#[test]
fn seeds_are_averaged_per_query() {
    let bench = uneven_benchmark(45, false);
    let run = |seed: u64, good: bool| {
        let emb = if good { good_embeddings(&bench, 12, seed, 2.0) } else { random_embeddings(&bench, 12, seed) };
        evaluate_benchmark(&bench, &emb, &per_query()).unwrap()
    };
    let a = [run(1, false), run(2, false), run(3, false)];
    let b = [run(4, true), run(5, true)];
    let options = PairedTestOptions { resamples: 2_000, seed: 9, ..Default::default() };
    let cmp = compare_report_seeds(&a.iter().collect::<Vec<_>>(), &b.iter().collect::<Vec<_>>(), &options).unwrap();
    assert_eq!((cmp.runs_a, cmp.runs_b), (3, 2));
    let metric = HeadlineMetric::MapCross;
    let per_seed = |reports: &[LareqaReport]| -> Vec<Vec<f64>> {
        reports.iter().map(|r| r.per_query.as_ref().unwrap().values[&metric].clone()).collect()
    };
    let weights = a[0].per_query.as_ref().unwrap().weights.get(Setting::Cross);
    let direct = combine_seeds(&per_seed(&a), &per_seed(&b), Some(weights), &options).unwrap();
    assert_eq!(cmp.get(metric).unwrap().test, direct);
    // The compared means are the means over seeds of the reported numbers.
    let mean = |reports: &[LareqaReport]| reports.iter().map(|r| r.settings.cross.map).sum::<f64>() / reports.len() as f64;
    assert!((direct.mean_a - mean(&a)).abs() < 1e-12 && (direct.mean_b - mean(&b)).abs() < 1e-12, "{direct:?}");
}

#[test]
fn reports_that_cannot_be_paired_are_refused_with_the_reason() {
    let options = PairedTestOptions { resamples: 100, ..Default::default() };
    let full = uneven_benchmark(12, false);
    let fewer = uneven_benchmark(12, true);
    let a = evaluate_benchmark(&full, &random_embeddings(&full, 8, 1), &per_query()).unwrap();
    let b = evaluate_benchmark(&fewer, &random_embeddings(&fewer, 8, 2), &per_query()).unwrap();
    let err = compare_reports(&a, &b, &options).unwrap_err().to_string();
    // fr has q0 q1 q3 q4 q6 q7 q9 q10 in full and not q10 in fewer: the last query differs.
    assert!(err.contains("benchmark `uneven`") && err.contains("different queries (28 and 27)"), "{err}");
    assert!(err.contains("query 27: `fr:q10` in A, no query in B"), "{err}");

    let plain = evaluate_benchmark(&full, &random_embeddings(&full, 8, 2), &EvalOptions::default()).unwrap();
    let err = compare_reports(&a, &plain, &options).unwrap_err().to_string();
    assert!(err.contains("B (benchmark `uneven`)") && err.contains("re-run eval with per-query values"), "{err}");

    let mut renamed = a.clone();
    renamed.benchmark = "other".into();
    let err = compare_reports(&a, &renamed, &options).unwrap_err().to_string();
    assert!(err.contains("B is a report of `other`, A of `uneven`"), "{err}");

    let mut swapped = a.clone();
    swapped.per_query.as_mut().unwrap().queries.swap(0, 1);
    let err = compare_report_seeds(&[&a, &a], &[&swapped], &options).unwrap_err().to_string();
    assert!(err.contains("query 0: `de:q0` in A (run 1), `de:q2` in B"), "{err}");

    let mut broken = a.clone();
    let values = broken.per_query.as_mut().unwrap();
    values.values.get_mut(&HeadlineMetric::RankDistance).unwrap()[3] = f64::NAN;
    let err = compare_reports(&a, &broken, &options).unwrap_err().to_string();
    assert!(err.contains("rank_distance of query `de:q5` is NaN"), "{err}");

    assert!(compare_report_seeds(&[], &[&a], &options).unwrap_err().to_string().contains("no report of A"));
}

/// Student's t interval over seeds against the printed t table (t_{0.975, 2} = 4.302652729749464,
/// t_{0.975, 4} = 2.776445105197793) and the sample standard deviation worked by hand.
#[test]
fn seed_summary_is_the_t_interval_of_the_mean() {
    let s = SeedSummary::of(&[0.50, 0.56, 0.53], 0.95).unwrap();
    assert_eq!(s.n, 3);
    assert!((s.mean - 0.53).abs() < 1e-15);
    let sd = 0.03f64; // deviations −0.03, 0.03, 0: sum of squares 0.0018 / 2 = 0.0009
    assert!((s.sd.unwrap() - sd).abs() < 1e-12);
    let half = 4.302652729749464 * sd / 3f64.sqrt();
    assert!((s.ci_low.unwrap() - (0.53 - half)).abs() < 1e-9, "{s:?}");
    assert!((s.ci_high.unwrap() - (0.53 + half)).abs() < 1e-9, "{s:?}");

    let five = SeedSummary::of(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95).unwrap();
    let half = 2.776445105197793 * 2.5f64.sqrt() / 5f64.sqrt();
    assert!((five.ci_high.unwrap() - (3.0 + half)).abs() < 1e-9, "{five:?}");

    let one = SeedSummary::of(&[0.7], 0.95).unwrap();
    assert_eq!((one.mean, one.sd, one.ci_low), (0.7, None, None));
    assert!(SeedSummary::of(&[], 0.95).is_err());
    assert!(SeedSummary::of(&[0.1, f64::NAN], 0.95).unwrap_err().to_string().contains("value 1"));
    assert!(SeedSummary::of(&[0.1, 0.2], 1.0).is_err());
}
