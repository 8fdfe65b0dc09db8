//! Measures defined outside the crate, scored next to the built-ins: in the LAReQA report (every
//! pair, language and setting, and Table 1) and in the TREC report, against values computed by
//! hand; plus the guarantees for reports without extra measures (same JSON, same tables).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hybrid_ir_data::lareqa::{LareqaLanguage, LareqaParagraph, LareqaQuestion};
use hybrid_ir_data::{LareqaBenchmark, LareqaDataset, RetrievalBenchmark};
use hybrid_ir_metrics::{
    BenchmarkEmbeddings, EvalOptions, LareqaReport, Measure, MeasureFn, Metric, Qrels, QueryRanks, Run, ScoreFunction, Scores,
    evaluate_benchmark, evaluate_run, table,
};
use ndarray::Array2;
use support::Xorshift;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// A user measure: reciprocal rank of the **last** retrieved relevant item; undefined (NaN) when
/// no relevant item is retrieved.
struct RrLast;

impl Measure for RrLast {
    fn name(&self) -> String {
        "rr_last".into()
    }

    fn score(&self, ranks: &QueryRanks) -> f64 {
        ranks.ranks().last().map_or(f64::NAN, |r| 1.0 / r as f64)
    }
}

/// A user measure from a closure: 1 if the first relevant item is in the top `k`.
fn success_at(k: u64) -> MeasureFn<impl Fn(&QueryRanks) -> f64 + Send + Sync> {
    MeasureFn::new(format!("success@{k}"), move |q: &QueryRanks| if q.ranks().next().is_some_and(|r| r <= k) { 1.0 } else { 0.0 })
}

fn extras() -> Vec<Arc<dyn Measure>> {
    vec![Arc::new(RrLast), Arc::new(success_at(1))]
}

/// Two languages (de, en), one paragraph of three sentences each; questions `a` and `b` are
/// answered by sentence 0 and sentence 1 in both languages. Candidates: de 0,1,2 then en 3,4,5;
/// queries: de:a, de:b, en:a, en:b.
fn tiny_benchmark() -> RetrievalBenchmark {
    let language = |lang: &str| LareqaLanguage {
        lang: lang.into(),
        path: PathBuf::from(format!("{lang}.json")),
        articles: 1,
        paragraphs: vec![LareqaParagraph {
            article: 0,
            title: "t".into(),
            context: "S0. S1. S2.".into(),
            sentences: vec!["S0.".into(), "S1.".into(), "S2.".into()],
            sentence_breaks: vec![[0, 3], [4, 7], [8, 11]],
        }],
        questions: ["a", "b"]
            .iter()
            .enumerate()
            .map(|(s, id)| LareqaQuestion {
                id: (*id).into(),
                question: format!("{lang} {id}?").into(),
                paragraph: 0,
                sentence: s,
                answer: "S".into(),
                answer_start: 4 * s,
            })
            .collect(),
    };
    let dataset = LareqaDataset { name: "tiny".into(), languages: vec![language("de"), language("en")] };
    let bench = RetrievalBenchmark::from_lareqa(&dataset);
    let relevant: Vec<&[u32]> = bench.queries.iter().map(|q| q.relevant.as_slice()).collect();
    assert_eq!(relevant, [&[0, 3][..], &[1, 4], &[0, 3], &[1, 4]], "benchmark layout the hand values assume");
    bench
}

/// Dot-product embeddings whose scores are exactly `SCORES[query][candidate]`: candidate j = e_j.
const SCORES: [[f32; 6]; 4] = [
    [0.9, 0.1, 0.5, 0.2, 0.8, 0.3], // de:a (relevant 0, 3)
    [0.6, 0.7, 0.1, 0.3, 0.2, 0.9], // de:b (relevant 1, 4)
    [0.4, 0.3, 0.2, 0.5, 0.6, 0.1], // en:a (relevant 0, 3)
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], // en:b (relevant 1, 4)
];

fn tiny_embeddings() -> BenchmarkEmbeddings {
    BenchmarkEmbeddings {
        queries: Array2::from_shape_fn((4, 6), |(q, c)| SCORES[q][c]),
        candidates: Array2::from_shape_fn((6, 6), |(i, j)| if i == j { 1.0 } else { 0.0 }),
    }
}

fn dot(extra_measures: Vec<Arc<dyn Measure>>) -> EvalOptions {
    EvalOptions { score: ScoreFunction::Dot, extra_measures, ..Default::default() }
}

fn extra(s: &Scores, name: &str) -> f64 {
    *s.extra.get(name).unwrap_or_else(|| panic!("`{name}` missing from {s:?}"))
}

/// Ranks of the relevant items, from `SCORES` by hand:
///
/// | query | mono (own language) | cross (other language) | multi (all six) |
/// |---|---|---|---|
/// | de:a | 1 | 3 | 1, 5 |
/// | de:b | 1 | 3 | 2, 5 |
/// | en:a | 2 | 1 | 2, 3 |
/// | en:b | 2 | 2 | 2, 5 |
///
/// rr_last = 1 / last rank; success@1 = [first rank = 1].
#[test]
fn user_measures_in_every_unit_of_the_lareqa_report() {
    let bench = tiny_benchmark();
    let report = evaluate_benchmark(&bench, &tiny_embeddings(), &dot(extras())).unwrap();

    // Pairs: means over the pair's queries.
    for (pair, rr_last, success) in [
        (("de", "de"), (1.0 + 1.0) / 2.0, (1.0 + 1.0) / 2.0),
        (("de", "en"), (1.0 / 3.0 + 1.0 / 3.0) / 2.0, 0.0),
        (("en", "en"), (0.5 + 0.5) / 2.0, 0.0),
        (("en", "de"), (1.0 + 0.5) / 2.0, (1.0 + 0.0) / 2.0),
    ] {
        let s = report.pair(pair.0, pair.1).unwrap();
        assert_eq!(s.queries, 2);
        assert_eq!(s.extra.len(), 2, "{pair:?}: {:?}", s.extra);
        assert!(close(extra(s, "rr_last"), rr_last), "{pair:?} rr_last {}", extra(s, "rr_last"));
        assert!(close(extra(s, "success@1"), success), "{pair:?} success@1 {}", extra(s, "success@1"));
    }
    // Multi per language: de (1/5, 1/5), en (1/3, 1/5); success@1 de (1, 0), en (0, 0).
    let de = &report.per_language["de"];
    let en = &report.per_language["en"];
    assert!(close(extra(&de.multi, "rr_last"), 0.2));
    assert!(close(extra(&en.multi, "rr_last"), (1.0 / 3.0 + 0.2) / 2.0));
    assert!(close(extra(&de.multi, "success@1"), 0.5));
    assert!(close(extra(&en.multi, "success@1"), 0.0));
    // Per-language mono / cross rows (one target each here).
    assert!(close(extra(&de.mono, "rr_last"), 1.0) && close(extra(&de.cross, "rr_last"), 1.0 / 3.0));
    assert!(close(extra(&en.mono, "rr_last"), 0.5) && close(extra(&en.cross, "rr_last"), 0.75));
    // Settings: unweighted means over languages (mono, multi) and pairs X ≠ Y (cross), like mAP.
    let s = &report.settings;
    assert!(close(extra(&s.mono, "rr_last"), 0.75));
    assert!(close(extra(&s.cross, "rr_last"), (1.0 / 3.0 + 0.75) / 2.0));
    assert!(close(extra(&s.multi, "rr_last"), (0.2 + (1.0 / 3.0 + 0.2) / 2.0) / 2.0));
    assert!(close(extra(&s.mono, "success@1"), 0.5));
    assert!(close(extra(&s.cross, "success@1"), 0.25));
    assert!(close(extra(&s.multi, "success@1"), 0.25));

    // The built-ins are unchanged by extra measures; multi mAP by hand: (0.7, 0.45) and (7/12, 0.45).
    let plain = evaluate_benchmark(&bench, &tiny_embeddings(), &dot(Vec::new())).unwrap();
    assert!(close(plain.per_language["de"].multi.map, (0.7 + 0.45) / 2.0));
    assert!(close(plain.per_language["en"].multi.map, (7.0 / 12.0 + 0.45) / 2.0));
    assert!(plain.pairs.values().all(|s| s.extra.is_empty()));
    let mut stripped = report.clone();
    for s in stripped.pairs.values_mut() {
        s.extra.clear();
    }
    for l in stripped.per_language.values_mut() {
        for s in [&mut l.mono, &mut l.cross, &mut l.multi] {
            s.extra.clear();
        }
    }
    for s in [&mut stripped.settings.mono, &mut stripped.settings.cross, &mut stripped.settings.multi] {
        s.extra.clear();
    }
    assert_eq!(stripped, plain);

    // Cosine goes through the same path (rows are already unit vectors for the candidates; the
    // query scores are rescaled per row, so the ranks and thus the values stay the same).
    let cosine =
        evaluate_benchmark(&bench, &tiny_embeddings(), &EvalOptions { extra_measures: extras(), ..Default::default() }).unwrap();
    assert!(close(extra(&cosine.settings.multi, "rr_last"), extra(&s.multi, "rr_last")));
}

#[test]
fn extra_measures_in_report_json_and_tables() {
    let bench = tiny_benchmark();
    let report = evaluate_benchmark(&bench, &tiny_embeddings(), &dot(extras())).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert!(close(json["settings"]["mono"]["extra"]["rr_last"].as_f64().unwrap(), 0.75));
    assert!(close(json["pairs"]["en→de"]["extra"]["success@1"].as_f64().unwrap(), 0.5));
    let back: LareqaReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);

    let t = table::table_1(&report);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[1],
        "| Benchmark | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. | rr_last Mo. | rr_last Cr. | \
         rr_last Mul. | success@1 Mo. | success@1 Cr. | success@1 Mul. |"
    );
    assert_eq!(lines[2], "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    assert_eq!(
        lines[3],
        "| tiny | 0.7500 | 0.5417 | 0.5458 | 0.5000 | 0.2500 | 1.0000 | 0.7500 | 0.5417 | 0.2333 | 0.5000 | 0.2500 | 0.2500 |"
    );
    assert!(
        t.contains(
            "| de | 1.0000 | 0.3333 | 0.5750 | 1.0000 | 0.0000 | 1.0000 | 1.0000 | 0.3333 | 0.2000 | 1.0000 | 0.0000 | 0.5000 |\n"
        ),
        "{t}"
    );
    assert!(
        t.contains(
            "| en | 0.5000 | 0.7500 | 0.5167 | 0.0000 | 0.5000 | 1.0000 | 0.5000 | 0.7500 | 0.2667 | 0.0000 | 0.5000 | 0.0000 |\n"
        ),
        "{t}"
    );
    assert!(
        t.contains(
            "| Mean | 0.7500 | 0.5417 | 0.5458 | 0.5000 | 0.2500 | 1.0000 | 0.7500 | 0.5417 | 0.2333 | 0.5000 | 0.2500 | 0.2500 |\n"
        ),
        "{t}"
    );
}

/// Without extra measures, `report.json` has no `extra` key anywhere and Table 1 is the paper's
/// (pinned here character for character, values by hand); a report.json written before extra
/// measures existed still parses.
#[test]
fn no_extra_measures_means_the_old_outputs() {
    let bench = tiny_benchmark();
    let report = evaluate_benchmark(&bench, &tiny_embeddings(), &dot(Vec::new())).unwrap();
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("extra"), "{text}");
    let old: LareqaReport = serde_json::from_str(&text).unwrap();
    assert_eq!(old, report);
    assert_eq!(
        table::table_1(&report),
        "Table 1 shape: tiny (dot scores)
| Benchmark | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. |
|---|---:|---:|---:|---:|---:|---:|
| tiny | 0.7500 | 0.5417 | 0.5458 | 0.5000 | 0.2500 | 1.0000 |

Per query language (Tables 3–6 shape):
| lang | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. |
|---|---:|---:|---:|---:|---:|---:|
| de | 1.0000 | 0.3333 | 0.5750 | 1.0000 | 0.0000 | 1.0000 |
| en | 0.5000 | 0.7500 | 0.5167 | 0.0000 | 0.5000 | 1.0000 |
| Mean | 0.7500 | 0.5417 | 0.5458 | 0.5000 | 0.2500 | 1.0000 |
"
    );
    // Options: extra measures are code, not configuration.
    let opts: EvalOptions = serde_json::from_str(&serde_json::to_string(&dot(extras())).unwrap()).unwrap();
    assert!(opts.extra_measures.is_empty());
    assert_eq!(opts, dot(Vec::new()));
    assert_ne!(dot(extras()), dot(Vec::new()));
}

#[test]
fn duplicate_or_empty_names_are_rejected() {
    let bench = tiny_benchmark();
    let twice: Vec<Arc<dyn Measure>> = vec![Arc::new(RrLast), Arc::new(MeasureFn::new("rr_last", |_: &QueryRanks| 0.0))];
    let e = evaluate_benchmark(&bench, &tiny_embeddings(), &dot(twice)).unwrap_err().to_string();
    assert!(e.contains("rr_last"), "{e}");
    let empty: Vec<Arc<dyn Measure>> = vec![Arc::new(MeasureFn::new(" ", |_: &QueryRanks| 0.0))];
    assert!(evaluate_benchmark(&bench, &tiny_embeddings(), &dot(empty)).is_err());
}

/// A built-in passed as an extra measure equals the report's own field in every unit of a real
/// benchmark: extra measures are aggregated exactly like the built-ins.
#[test]
fn builtins_as_extra_measures_match_the_report_fields_on_mlqa_r() {
    let bench = support::benchmark(LareqaBenchmark::MlqaR);
    let mut rng = Xorshift(7);
    let dim = 6;
    let emb = BenchmarkEmbeddings {
        queries: Array2::from_shape_fn((bench.queries.len(), dim), |_| rng.below(5) as f32 - 2.0),
        candidates: Array2::from_shape_fn((bench.candidates.len(), dim), |_| rng.below(5) as f32 - 2.0),
    };
    let builtins: Vec<Arc<dyn Measure>> = vec![
        Arc::new(Metric::AveragePrecision),
        Arc::new(Metric::ReciprocalRankAt(10)),
        Arc::new(Metric::RecallAt(1)),
        Arc::new(Metric::RecallAt(10)),
        Arc::new(Metric::RankDistance),
    ];
    let report = evaluate_benchmark(&bench, &emb, &dot(builtins)).unwrap();
    let check = |what: &str, s: &Scores| {
        if s.queries == 0 {
            return;
        }
        for (name, field) in [("map", s.map), ("mrr@10", s.mrr_at_10), ("recall@1", s.recall_at_1), ("recall@10", s.recall_at_10)]
        {
            let v = extra(s, name);
            assert!((v - field).abs() < 1e-9, "{what} {name}: extra {v}, field {field}");
        }
        if let Some(rd) = s.rank_distance {
            assert!((extra(s, "rank_distance") - rd).abs() < 1e-6, "{what} rank distance");
        }
    };
    for (key, s) in &report.pairs {
        check(key, s);
    }
    for (lang, l) in &report.per_language {
        check(&format!("{lang} mono"), &l.mono);
        check(&format!("{lang} cross"), &l.cross);
        check(&format!("{lang} multi"), &l.multi);
    }
    check("settings mono", &report.settings.mono);
    check("settings cross", &report.settings.cross);
    check("settings multi", &report.settings.multi);
}

/// qrels / run by hand:
///
/// - q1: relevant d1 (1), d3 (2), d4 (1, not retrieved); run order d2, d1, d9, d3 → hits at 2, 4.
/// - q2: relevant d5, ranked 1.
/// - q3: relevant d6, absent from the run (no hit: rr_last undefined → 0).
/// - q4: no relevant document (left out).
#[test]
fn user_measures_in_the_trec_report() {
    let qrels =
        Qrels::parse("q1 0 d1 1\nq1 0 d2 0\nq1 0 d3 2\nq1 0 d4 1\nq2 0 d5 1\nq3 0 d6 1\nq4 0 d7 0\n", Path::new("hand.qrels"))
            .unwrap();
    let run = Run::parse(
        "q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 3.0 t\nq1 Q0 d3 3 1.0 t\nq1 Q0 d9 4 1.5 t\nq2 Q0 d8 1 1.0 t\nq2 Q0 d5 2 2.0 t\n",
        Path::new("hand.run"),
    )
    .unwrap();
    // Built-ins and user measures in one list.
    let measures: Vec<Arc<dyn Measure>> = vec![Arc::new(Metric::AveragePrecision), Arc::new(RrLast), Arc::new(success_at(1))];
    let rep = evaluate_run(&qrels, &run, &measures);
    assert_eq!((rep.queries, rep.queries_missing_from_run, rep.queries_without_relevant), (3, 1, 1));
    assert_eq!(rep.metrics.keys().collect::<Vec<_>>(), ["map", "rr_last", "success@1"]);
    // rr_last: q1 1/4, q2 1, q3 undefined = 0.
    assert!(close(rep.per_query["q1"]["rr_last"], 0.25));
    assert!(close(rep.per_query["q2"]["rr_last"], 1.0));
    assert_eq!(rep.per_query["q3"]["rr_last"], 0.0);
    assert!(close(rep.metrics["rr_last"], (0.25 + 1.0 + 0.0) / 3.0));
    // success@1: q1 0, q2 1, q3 0.
    assert!(close(rep.metrics["success@1"], 1.0 / 3.0));
    // map: q1 (1/2 + 2/4)/3, q2 1, q3 0.
    assert!(close(rep.metrics["map"], ((0.5 + 0.5) / 3.0 + 1.0) / 3.0));

    // The same through `&[&dyn Measure]`, and a measure repeated by name is scored once.
    let by_ref: [&dyn Measure; 3] = [&RrLast, &Metric::AveragePrecision, &RrLast];
    let again = evaluate_run(&qrels, &run, &by_ref);
    assert_eq!(again.metrics.len(), 2);
    assert_eq!(again.metrics["rr_last"], rep.metrics["rr_last"]);
    assert_eq!(again.metrics["map"], rep.metrics["map"]);
    let json = serde_json::to_value(&again).unwrap();
    assert!(close(json["metrics"]["rr_last"].as_f64().unwrap(), 5.0 / 12.0));
}
