//! TREC qrels / run files: MIRACL's real qrels with synthetic runs whose scores are known, and
//! malformed lines named by file and line.

mod support;

use hybrid_ir_metrics::{evaluate_run, Metric, Qrels, Run};
use std::path::Path;

fn miracl_qrels(lang: &str) -> (Qrels, std::path::PathBuf) {
    let path = support::data_root().join(format!("miracl/qrels.miracl-v1.0-{lang}-dev.tsv"));
    (Qrels::read(&path).unwrap(), path)
}

/// A run listing each query's relevant documents first (or last) and its judged non-relevant ones.
fn synthetic_run(qrels: &Qrels, relevant_first: bool) -> String {
    let mut out = String::new();
    for (qid, docs) in &qrels.queries {
        let mut docs: Vec<(&String, &i64)> = docs.iter().collect();
        docs.sort();
        let n = docs.len();
        for (i, &(doc, &rel)) in docs.iter().enumerate() {
            let good = (rel > 0) == relevant_first;
            let score = if good { 1000.0 + (n - i) as f64 } else { (n - i) as f64 };
            out.push_str(&format!("{qid} Q0 {doc} 0 {score} synthetic\n"));
        }
    }
    out
}

#[test]
fn miracl_qrels_with_a_perfect_and_a_reversed_run() {
    let (qrels, path) = miracl_qrels("sw");
    assert_eq!(qrels.queries.len(), 482, "{} queries", path.display());
    let metrics = Metric::TREC_DEFAULT;
    let perfect = evaluate_run(&qrels, &Run::parse(&synthetic_run(&qrels, true), Path::new("perfect.run")).unwrap(), &metrics);
    assert_eq!(perfect.queries, 482);
    assert_eq!(perfect.queries_missing_from_run, 0);
    assert_eq!(perfect.metrics["map"], 1.0);
    assert_eq!(perfect.metrics["ndcg@10"], 1.0);
    assert_eq!(perfect.metrics["mrr@10"], 1.0);
    // Recall@100 = min(100, |R|)/|R| per query.
    let want = qrels
        .queries
        .values()
        .map(|d| {
            let r = d.values().filter(|&&g| g > 0).count() as f64;
            r.min(100.0) / r
        })
        .sum::<f64>()
        / 482.0;
    assert!((perfect.metrics["recall@100"] - want).abs() < 1e-12);

    // Reversed: relevant after all n judged non-relevant ones; AP = mean_i i/(n_nonrel + i).
    let reversed =
        evaluate_run(&qrels, &Run::parse(&synthetic_run(&qrels, false), Path::new("reversed.run")).unwrap(), &metrics);
    let want = qrels
        .queries
        .values()
        .map(|d| {
            let r = d.values().filter(|&&g| g > 0).count();
            let n = d.len() - r;
            (1..=r).map(|i| i as f64 / (n + i) as f64).sum::<f64>() / r as f64
        })
        .sum::<f64>()
        / 482.0;
    assert!((reversed.metrics["map"] - want).abs() < 1e-12, "{} vs {want}", reversed.metrics["map"]);
}

#[test]
fn queries_missing_from_the_run_score_zero() {
    let qrels = Qrels::parse("1 0 a 1\n1 0 b 0\n2 0 c 1\n3 0 d 0\n", Path::new("q")).unwrap();
    let run = Run::parse("1 Q0 b 1 2.0 t\n1 Q0 a 2 1.0 t\n9 Q0 z 1 1.0 t\n", Path::new("r")).unwrap();
    let rep = evaluate_run(&qrels, &run, &[Metric::AveragePrecision]);
    assert_eq!((rep.queries, rep.queries_missing_from_run, rep.queries_without_relevant, rep.run_queries_without_qrels), (2, 1, 1, 1));
    assert!((rep.metrics["map"] - 0.25).abs() < 1e-12, "query 1: 1/2, query 2: 0");
}

#[test]
fn run_ties_follow_trec_eval_docid_descending() {
    let qrels = Qrels::parse("q 0 a 1\n", Path::new("q")).unwrap();
    // a and b tie: trec_eval puts b (larger docid) first, so a is at rank 2.
    let run = Run::parse("q Q0 a 1 1.0 t\nq Q0 b 2 1.0 t\n", Path::new("r")).unwrap();
    let rep = evaluate_run(&qrels, &run, &[Metric::ReciprocalRankAt(10)]);
    assert_eq!(rep.metrics["mrr@10"], 0.5);
}

#[test]
fn malformed_lines_are_named() {
    let e = Qrels::parse("1 0 a 1\n1 0 b\n", Path::new("x.qrels")).unwrap_err().to_string();
    assert!(e.starts_with("x.qrels:2:") && e.contains("4 fields"), "{e}");
    let e = Qrels::parse("1 0 a yes\n", Path::new("x.qrels")).unwrap_err().to_string();
    assert!(e.starts_with("x.qrels:1:") && e.contains("yes"), "{e}");
    let e = Qrels::parse("1 0 a 1\n\n1 0 a 0\n", Path::new("x.qrels")).unwrap_err().to_string();
    assert!(e.starts_with("x.qrels:3:") && e.contains("twice"), "{e}");
    let e = Run::parse("1 Q0 a 1 0.5 t\n1 Q0 a 2 0.4 t\n", Path::new("x.run")).unwrap_err().to_string();
    assert!(e.starts_with("x.run:2:") && e.contains("line 1"), "{e}");
    let e = Run::parse("1 Q0 a 1 nan t\n", Path::new("x.run")).unwrap_err().to_string();
    assert!(e.starts_with("x.run:1:") && e.contains("not a number"), "{e}");
    let e = Run::parse("1 Q0 a 1 0.5\n", Path::new("x.run")).unwrap_err().to_string();
    assert!(e.starts_with("x.run:1:") && e.contains("6 fields"), "{e}");
}

#[test]
fn files_that_are_not_utf8_name_the_line_and_a_bom_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let qrels = dir.path().join("q.tsv");
    std::fs::write(&qrels, b"1 0 a 1\n2 0 caf\xe9 1\n").unwrap();
    let e = Qrels::read(&qrels).unwrap_err().to_string();
    assert!(e.contains("q.tsv: line 2, column 8 (byte offset 15): not valid UTF-8"), "{e}");
    let run = dir.path().join("r.txt");
    std::fs::write(&run, b"1 Q0 a 1 0.5 t\n1 Q0 b 2 0.4 t\xff\n").unwrap();
    let e = Run::read(&run).unwrap_err().to_string();
    assert!(e.contains("r.txt: line 2, column 15 (byte offset 29): not valid UTF-8"), "{e}");
    // A byte order mark would otherwise turn query `1` into `\u{feff}1`, which matches nothing.
    std::fs::write(&qrels, "\u{feff}1 0 a 1\n").unwrap();
    std::fs::write(&run, "\u{feff}1 Q0 a 1 0.5 t\n").unwrap();
    let report = evaluate_run(&Qrels::read(&qrels).unwrap(), &Run::read(&run).unwrap(), &[Metric::AveragePrecision]);
    assert_eq!((report.queries, report.metrics["map"]), (1, 1.0));
}
