//! `hybrid-ir index` + `search` with a real model: a run file in TREC format scored against
//! qrels, an interrupted-then-finished build that keeps its shards, and each refusal (another
//! model, a duplicate docid, a bad flag) with a message naming what to fix. Needs `cargo xtask
//! fetch-models`, as the whole suite does.

mod common;

use std::path::{Path, PathBuf};
use common::{hybrid_ir, workspace};

fn ok(args: &[&str]) -> String {
    let out = hybrid_ir(args);
    assert!(out.status.success(), "hybrid-ir {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str], code: i32) -> String {
    let out = hybrid_ir(args);
    assert_eq!(out.status.code(), Some(code), "hybrid-ir {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const DOCS: [(&str, &str, &str); 8] = [
    ("eiffel#0", "Eiffel Tower", "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."),
    ("eiffel#1", "Eiffel Tower", "It was designed by the company of the engineer Gustave Eiffel and built for the 1889 World's Fair."),
    ("colosseum#0", "Colosseum", "The Colosseum is an elliptical amphitheatre in the centre of the city of Rome, Italy."),
    ("tokyo#0", "Tokyo", "Tokyo is the capital and most populous city of Japan."),
    ("nile#0", "Nile", "The Nile is a major north-flowing river in northeastern Africa."),
    ("python#0", "Python", "Python is a high-level, general-purpose programming language."),
    ("everest#0", "Mount Everest", "Mount Everest is Earth's highest mountain above sea level, in the Himalayas."),
    ("amazon#0", "Amazon River", "The Amazon River in South America is the largest river by discharge volume of water in the world."),
];

fn write_inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let corpus = dir.join("corpus.jsonl");
    let text: String = DOCS
        .iter()
        .map(|(id, title, text)| format!("{{\"docid\": \"{id}\", \"title\": \"{title}\", \"text\": \"{text}\"}}\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let topics = dir.join("topics.tsv");
    std::fs::write(&topics, "1\tWho designed the Eiffel Tower?\n2\tWhat is the capital of Japan?\n3\tlongest river in Africa\n9\tunjudged query\n").unwrap();
    let qrels = dir.join("qrels.tsv");
    std::fs::write(&qrels, "1\tQ0\teiffel#1\t1\n1\tQ0\teiffel#0\t0\n2\tQ0\ttokyo#0\t1\n3\tQ0\tnile#0\t1\n").unwrap();
    (corpus, topics, qrels)
}

#[test]
fn index_search_and_score_a_collection() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    assert!(model.join("model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = tempfile::tempdir().unwrap();
    let (corpus, topics, qrels) = write_inputs(dir.path());
    let index = dir.path().join("index");
    let run = dir.path().join("run.trec");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (model_s, corpus_s, index_s, topics_s, qrels_s, run_s) = (s(&model), s(&corpus), s(&index), s(&topics), s(&qrels), s(&run));

    let out = ok(&["index", "--model", &model_s, "--corpus", &corpus_s, "--out", &index_s, "--shard-size", "3"]);
    assert!(out.contains("8 documents in 3 shards"), "{out}");
    let again = ok(&["index", "--model", &model_s, "--corpus", &corpus_s, "--out", &index_s, "--shard-size", "3"]);
    assert!(again.contains("0 encoded now") && again.contains("3 kept"), "{again}");

    let out = ok(&[
        "search", "--model", &model_s, "--index", &index_s, "--queries", &topics_s, "--out", &run_s, "--top-k", "5", "--qrels", &qrels_s,
    ]);
    assert!(out.contains("| ndcg@10 |") && out.contains("| recall@100 |") && out.contains("| mrr@10 |") && out.contains("| map |"), "{out}");
    assert!(out.contains("1 run queries without qrels left out"), "{out}");
    let lines: Vec<Vec<String>> = std::fs::read_to_string(&run)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    assert_eq!(lines.len(), 4 * 5);
    for l in &lines {
        assert_eq!(l.len(), 6);
        assert_eq!((l[1].as_str(), l[5].as_str()), ("Q0", "hybrid-ir"));
    }
    let top = |q: &str| lines.iter().find(|l| l[0] == q && l[3] == "1").unwrap()[2].clone();
    assert!(top("1").starts_with("eiffel#"), "{lines:?}");
    assert_eq!(top("2"), "tokyo#0");
    assert_eq!(top("3"), "nile#0");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.trec.eval.json")).unwrap()).unwrap();
    assert_eq!(report["queries"], 3);
    assert_eq!(report["metrics"]["recall@100"], 1.0);

    // Queries encoded by another model would not be comparable with the documents.
    let other = s(&workspace().join("models/e5-small-enpt"));
    let err = fails(&["search", "--model", &other, "--index", &index_s, "--queries", &topics_s, "--out", &s(&dir.path().join("x.trec"))], 1);
    assert!(err.contains("prefix \"query: \" vs the index's \"\"") && err.contains("search it with the model it was built with"), "{err}");
    // An existing run is not replaced without --force.
    let err = fails(&["search", "--model", &model_s, "--index", &index_s, "--queries", &topics_s, "--out", &run_s], 2);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn bad_input_is_named() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    let dir = tempfile::tempdir().unwrap();
    let (corpus, topics, _) = write_inputs(dir.path());
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let dup = dir.path().join("dup.jsonl");
    let mut text = std::fs::read_to_string(&corpus).unwrap();
    text.push_str("{\"docid\": \"tokyo#0\", \"text\": \"again\"}\n");
    std::fs::write(&dup, text).unwrap();
    let err = fails(&["index", "--model", &s(&model), "--corpus", &s(&dup), "--out", &s(&dir.path().join("i"))], 1);
    assert!(err.contains("dup.jsonl, line 9") && err.contains("`tokyo#0` was already used at line 4"), "{err}");
    let err = fails(&["index", "--model", &s(&model), "--corpus", &s(&corpus), "--out", &s(&dir.path().join("j")), "--shard-size", "0"], 2);
    assert!(err.contains("--shard-size 0"), "{err}");
    let err = fails(&["index", "--model", &s(&model), "--corpus", &s(&corpus), "--out", &s(&dir.path().join("k")), "--template", "{title}"], 2);
    assert!(err.contains("does not contain `{text}`"), "{err}");
    let err = fails(&["search", "--model", &s(&model), "--index", &s(&dir.path().join("none")), "--queries", &s(&topics), "--out", "x.trec"], 2);
    assert!(err.contains("--index") && err.contains("no such directory"), "{err}");
    // An interrupted index (no complete manifest) is named as such.
    let partial = dir.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    let err = fails(&["search", "--model", &s(&model), "--index", &s(&partial), "--queries", &s(&topics), "--out", &s(&dir.path().join("y.trec"))], 1);
    assert!(err.contains("no manifest.json"), "{err}");
}
