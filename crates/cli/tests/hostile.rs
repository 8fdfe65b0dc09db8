//! Hostile and odd inputs against the release CLI: each gets a clear error naming the flag,
//! file or value (never a panic, never a silent success), or a documented behaviour.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hybrid_ir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-ir")).args(args).current_dir(workspace()).output().expect("run hybrid-ir")
}

/// Runs and expects a clean failure (exit 1 or 2, no panic) whose stderr contains `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = hybrid_ir(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hybrid-ir {args:?} succeeded; stderr:\n{stderr}");
    assert!(matches!(out.status.code(), Some(1 | 2)), "hybrid-ir {args:?} exited with {:?} (a panic is 101):\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "hybrid-ir {args:?} panicked:\n{stderr}");
    assert!(stderr.contains(needle), "hybrid-ir {args:?}: error should mention {needle:?}:\n{stderr}");
}

fn ok(args: &[&str]) -> String {
    let out = hybrid_ir(args);
    assert!(out.status.success(), "hybrid-ir {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const MODEL: &str = "models/all-MiniLM-L6-v2";

#[test]
fn encode_refuses_bad_inputs_and_outputs_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir.path().join("in.jsonl"), "{\"id\": \"a\", \"text\": \"one\"}\n{\"id\": \"b\", \"text\": \"two\"}\n");
    let out = dir.path().join("out.parquet");
    let out_s = out.to_str().unwrap();
    let encode = |input: &str, extra: &[&str]| {
        let mut a = vec!["encode", "--model", MODEL, "--input", input, "--out", out_s];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, needle: &str| fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    run(encode(&good, &["--max-len", "0"]), "--max-len 0");
    run(encode(&good, &["--batch-size", "0"]), "--batch-size 0");
    let empty = write(&dir.path().join("empty.jsonl"), "\n");
    run(encode(&empty, &[]), "no rows");
    let dup = write(&dir.path().join("dup.jsonl"), "{\"id\": \"a\", \"text\": \"one\"}\n{\"id\": \"a\", \"text\": \"two\"}\n");
    run(encode(&dup, &[]), "duplicate id");
    let blank = write(&dir.path().join("blank.jsonl"), "{\"id\": \"a\", \"text\": \"  \"}\n");
    run(encode(&blank, &[]), "empty text");
    // The input itself as output, and an existing output without --force.
    fails(&["encode", "--model", MODEL, "--input", &good, "--out", &good], "is an input");
    std::fs::write(&out, b"keep me").unwrap();
    run(encode(&good, &[]), "--force");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me", "an existing file was replaced without --force");
    // A model path that is a file, not a directory.
    fails(&["encode", "--model", &good, "--input", &good, "--out", dir.path().join("x.parquet").to_str().unwrap()], "directory");
}

#[test]
fn eval_checks_outputs_and_languages_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("map.png");
    fails(&["eval", "--benchmark", "xquad-r", "--model", MODEL, "--plot", plot.to_str().unwrap()], ".svg");
    let existing = write(&dir.path().join("report.json"), "{}");
    fails(&["eval", "--benchmark", "xquad-r", "--model", MODEL, "--out", &existing], "--force");
    fails(&["eval", "--benchmark", "xquad-r", "--model", MODEL, "--languages", "../../etc"], "not a language code");
    // TREC scoring with nothing in common is an error, not zeros over 0 queries.
    let qrels = write(&dir.path().join("q.txt"), "1 0 d1 0\n");
    let run = write(&dir.path().join("r.txt"), "");
    fails(&["eval", "--qrels", &qrels, "--run", &run], "nothing to score");
}

#[test]
fn train_and_reproduce_refuse_impossible_settings() {
    let config = workspace().join("crates/train/configs/reference.toml");
    let c = config.to_str().unwrap();
    let dry = |extra: &[&str], needle: &str| {
        let mut a = vec!["train", "--config", c, "--model", MODEL, "--dry-run"];
        a.extend_from_slice(extra);
        fails(&a, needle);
    };
    dry(&["--set", "output_dir=\"\""], "output_dir is empty");
    dry(&["--batch-size", "1"], "batch_size must be >= 2");
    dry(&["--set", "model.trainable_layers=99"], "trainable_layers = 99");
    dry(&["--set", "data.corpora=[\"no/such/corpus.jsonl\"]"], "corpus.jsonl");
    dry(&["--sampler", "hybridd"], "hybridd");
    fails(&["reproduce", "--model", MODEL, "--lr", "NaN"], "--lr NaN");
}

#[test]
fn shortcut_flags_arrive_as_given() {
    // A decomposed accent and a space in --out: the dry run's config holds exactly that path
    // (they were once pasted into TOML with Rust's {:?} quoting and came back altered).
    let config = workspace().join("crates/train/configs/reference.toml");
    let out = "runs/cafe\u{301} and more";
    let toml = ok(&["train", "--config", config.to_str().unwrap(), "--model", MODEL, "--out", out, "--dry-run"]);
    assert!(toml.contains(&format!("output_dir = \"{out}\"")), "{toml}");
    assert!(!workspace().join(out).exists(), "a dry run writes nothing");
}

#[test]
fn huge_batch_sizes_neither_panic_nor_abort() {
    for size in ["18446744073709551615", "1000000000"] {
        let out = hybrid_ir(&["data", "sample", "--corpus", "xquad-r", "--batch-size", size, "--batches", "1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "batch size {size}: {:?}\n{stderr}", out.status);
    }
}
