//! Hostile and odd inputs against the release CLI: each gets a clear error naming the flag,
//! file or value (never a panic, never a silent success), or a documented behaviour.

mod common;

use std::path::Path;
use common::{hybrid_ir, workspace};

/// Runs and expects a clean failure (exit 1 or 2, no panic) whose stderr contains `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = hybrid_ir(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hybrid-ir {args:?} succeeded; stderr:\n{stderr}");
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "hybrid-ir {args:?} exited with {:?} (a panic is 101):\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "hybrid-ir {args:?} panicked:\n{stderr}");
    assert!(stderr.contains(needle), "hybrid-ir {args:?}: error should mention {needle:?}:\n{stderr}");
}

/// [`fails`], and the exit code must be `code`: 2 for a command line to fix, 1 for a failure.
fn fails_with(code: i32, args: &[&str], needle: &str) {
    fails(args, needle);
    let out = hybrid_ir(args);
    assert_eq!(out.status.code(), Some(code), "hybrid-ir {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
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
    // A run for other queries (or an empty one) would score 0 on every qrels query.
    let qrels = write(&dir.path().join("q1.txt"), "1 0 d1 1\n");
    let other = write(&dir.path().join("r2.txt"), "2 Q0 d1 1 0.5 t\n");
    fails_with(1, &["eval", "--qrels", &qrels, "--run", &other], "nothing to score");
    fails_with(1, &["eval", "--qrels", &qrels, "--run", &run], "nothing to score");
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

fn write_bytes(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn bytes_that_are_not_utf8_are_named_by_file_line_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    // `encode` input: a Latin-1 é on line 2 (the first line is 28 bytes with its CRLF).
    let input = write_bytes(&p("in.jsonl"), b"{\"id\": \"a\", \"text\": \"one\"}\r\n{\"id\": \"b\", \"text\": \"caf\xe9\"}\n");
    let out = p("out.parquet");
    fails_with(
        1,
        &["encode", "--model", MODEL, "--input", &input, "--out", out.to_str().unwrap()],
        "in.jsonl: line 2, column 25 (byte offset 52): not valid UTF-8",
    );
    // A training corpus.
    let corpus = write_bytes(&p("pairs.jsonl"), b"{\"id\": \"1\", \"lang\": \"en\", \"query\": \"q\", \"positive\": \"\xff\"}\n");
    fails_with(1, &["data", "sample", "--corpus", &corpus], "pairs.jsonl: line 1, column 54 (byte offset 53): not valid UTF-8");
    // TREC qrels and run.
    let good_run = write(&p("run.txt"), "1 Q0 d1 1 0.5 t\n");
    let qrels = write_bytes(&p("qrels.txt"), b"1 0 d1 1\n1 0 d\xe92 0\n");
    fails_with(
        1,
        &["eval", "--qrels", &qrels, "--run", &good_run],
        "qrels.txt: line 2, column 6 (byte offset 14): not valid UTF-8",
    );
    // A TOML config.
    let config = write_bytes(&p("c.toml"), b"seed = 1\noutput_dir = \"runs/caf\xe9\"\n");
    fails_with(1, &["train", "--config", &config, "--dry-run"], "c.toml: line 2, column 23 (byte offset 31): not valid UTF-8");
}

#[test]
fn a_byte_order_mark_is_skipped_in_corpora_and_trec_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let row = |id: &str, lang: &str| {
        format!("{{\"id\": \"{id}\", \"lang\": \"{lang}\", \"query\": \"q{id}\", \"positive\": \"p{id}\"}}\n")
    };
    let corpus =
        write(&p("pairs.jsonl"), &format!("\u{feff}{}{}{}{}", row("1", "en"), row("1", "de"), row("2", "en"), row("2", "de")));
    let batches = ok(&["data", "sample", "--corpus", &corpus, "--batch-size", "2", "--batches", "1", "--sampler", "cross"]);
    assert!(batches.contains("\"id\":\"1\"") && !batches.contains('\u{feff}'), "{batches}");
    // In a TREC file the mark would glue itself to the first query id, which then matches nothing.
    let qrels = write(&p("qrels.txt"), "\u{feff}1 0 d1 1\n");
    let run = write(&p("run.txt"), "\u{feff}1 Q0 d1 1 0.5 t\n");
    let table = ok(&["eval", "--qrels", &qrels, "--run", &run, "--metrics", "map"]);
    assert!(table.contains("| map | 1.0000 |"), "{table}");
}

#[test]
fn a_misspelt_benchmark_is_neither_a_benchmark_nor_a_file() {
    fails_with(
        2,
        &["data", "sample", "--corpus", "xquad-rr"],
        "--corpus: `xquad-rr` is neither a built-in benchmark (xquad-r, mlqa-r) nor an existing file; did you mean `xquad-r`?",
    );
    fails_with(2, &["data", "stats", "--benchmark", "mlqa"], "--benchmark mlqa: invalid configuration: unknown benchmark `mlqa`");
    fails_with(2, &["data", "stats", "--benchmark", "mlqa"], "did you mean `mlqa-r`?");
    fails_with(2, &["eval", "--benchmark", "xquad", "--model", MODEL], "did you mean `xquad-r`?");
    // In a config it is the file's content: exit 1, same wording.
    let config = workspace().join("crates/train/configs/reference.toml");
    fails(
        &["train", "--config", config.to_str().unwrap(), "--model", MODEL, "--dry-run", "--set", "data.corpora=[\"mlqa_rr\"]"],
        "`mlqa_rr` is neither a built-in benchmark (xquad-r, mlqa-r) nor an existing file; did you mean `mlqa-r`?",
    );
}

#[test]
fn data_stats_and_data_sample_accept_and_refuse_the_same_benchmark_files() {
    // A paragraph with a blank context: `data stats` counted it, `data sample` refused it.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("xquad-r");
    std::fs::create_dir(&dir).unwrap();
    let file = |context: &str| {
        format!(
            r#"{{"data": [{{"title": "T", "paragraphs": [{{"context": "{context}",
            "sentences": ["x"], "sentence_breaks": [[0, 5]],
            "qas": [{{"id": "q1", "question": "What?", "answers": [{{"text": "{}", "answer_start": 0}}]}}]}}]}}]}}"#,
            &context[..1]
        )
    };
    let data = root.path().to_str().unwrap();
    for lang in ["en", "de"] {
        write(&dir.join(format!("{lang}.json")), &file("     "));
    }
    let needle = r#"xquad-r/de.json: data[0] "T" paragraphs[0]: blank context"#;
    fails_with(1, &["data", "stats", "--data", data], needle);
    fails_with(1, &["data", "sample", "--data", data, "--corpus", "xquad-r"], needle);
    // The same files with text load in both.
    for lang in ["en", "de"] {
        write(&dir.join(format!("{lang}.json")), &file("xyzzy"));
    }
    assert!(ok(&["data", "stats", "--data", data]).contains("xquad-r: 2 queries"));
    ok(&["data", "sample", "--data", data, "--corpus", "xquad-r", "--batch-size", "2", "--batches", "1"]);
}

#[test]
fn dot_scores_that_overflow_f32_are_a_clear_error() {
    let root = hybrid_ir_data::locate_data_root(&[]).unwrap();
    let bench = hybrid_ir_eval::load_benchmark("xquad-r", Some(&root), &["en".into()]).unwrap();
    let embeddings = hybrid_ir_metrics::BenchmarkEmbeddings {
        queries: ndarray::Array2::from_elem((bench.queries.len(), 4), 1e19),
        candidates: ndarray::Array2::from_elem((bench.candidates.len(), 4), 1e19),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    hybrid_ir_metrics::write_embeddings(&path, &bench, &embeddings).unwrap();
    let p = path.to_str().unwrap();
    let data = root.to_str().unwrap();
    let args = ["eval", "--benchmark", "xquad-r", "--data", data, "--languages", "en", "--embeddings", p];
    fails_with(
        1,
        &[&args[..], &["--score", "dot"]].concat(),
        &format!("scoring {p} with --score dot: dot products overflow f32"),
    );
    fails(&[&args[..], &["--score", "dot"]].concat(), "use cosine scores or normalise the embeddings");
    // Cosine normalises the rows first: the same file scores.
    assert!(ok(&[&args[..], &["--score", "cosine"]].concat()).contains("en"));
}

#[test]
fn exit_code_2_for_the_command_line_1_for_failures() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir.path().join("in.jsonl"), "{\"id\": \"a\", \"text\": \"one\"}\n");
    let existing = write(&dir.path().join("out.parquet"), "keep");
    let fresh = dir.path().join("new.parquet");
    let fresh = fresh.to_str().unwrap();
    fn encode<'a>(input: &'a str, extra: &[&'a str], out: &'a str) -> Vec<&'a str> {
        [&["encode", "--model", MODEL, "--input", input, "--out", out][..], extra].concat()
    }
    fails_with(2, &encode(&good, &["--max-len", "0"], fresh), "--max-len 0");
    fails_with(2, &encode(&good, &["--batch-size", "0"], fresh), "--batch-size 0");
    fails_with(2, &encode(&good, &[], &existing), "--force");
    fails_with(2, &encode(&good, &["--batch-size", "many"], fresh), "many"); // clap's own parse error
    fails_with(
        2,
        &["encode", "--model", MODEL, "--input", "no/such.jsonl", "--out", fresh],
        "--input no/such.jsonl: no such file",
    );
    fails_with(
        2,
        &["encode", "--model", "models/no-such-model", "--input", &good, "--out", fresh],
        "--model models/no-such-model",
    );
    fails_with(2, &["eval", "--qrels", &good], "--qrels and --run go together");
    fails_with(2, &["eval", "--benchmark", "xquad-r", "--model", MODEL, "--score", "dott"], "--score dott");
    fails_with(2, &["reproduce", "--model", MODEL, "--lr", "NaN"], "--lr NaN");
    // A negative number is the flag's value, not an unknown flag `-1`.
    fails_with(2, &["reproduce", "--model", MODEL, "--lr", "-1"], "--lr -1: give a finite learning rate > 0");
    fails_with(2, &["reproduce", "--model", MODEL, "--eval", "xquad"], "--eval xquad");
    fails_with(2, &["data", "sample", "--corpus", "xquad-r", "--alpha", "-0.5"], "--alpha -0.5");
    let config = workspace().join("crates/train/configs/reference.toml");
    let c = config.to_str().unwrap();
    fails_with(2, &["train", "--config", "no/such.toml", "--dry-run"], "--config no/such.toml: no such file");
    fails_with(2, &["train", "--config", c, "--model", MODEL, "--dry-run", "--lr=-1"], "optim.lr must be finite and > 0");
    fails_with(2, &["train", "--config", c, "--model", MODEL, "--dry-run", "--set", "optim.lrr=1"], "lrr");
    fails_with(2, &["data", "sample", "--corpus", "xquad-r", "--pairing", "diagonal"], "--pairing `diagonal`");
    // Failures: the command line is fine, the content is not.
    let empty = write(&dir.path().join("empty.jsonl"), "\n");
    fails_with(1, &["encode", "--model", MODEL, "--input", &empty, "--out", fresh], "no rows");
    let bad = write(&dir.path().join("bad.toml"), "seed = \"one\"\n");
    fails_with(1, &["train", "--config", &bad, "--dry-run"], "bad.toml");
    let qrels = write(&dir.path().join("q.txt"), "1 0 d1 0\n");
    fails_with(1, &["eval", "--qrels", &qrels, "--run", &qrels], "q.txt");
}

#[test]
fn a_huge_single_text_is_cut_before_tokenising() {
    // 20 MB in one row, truncated at 32 tokens: the tokenizer sees at most 32 × 64 bytes of it
    // (`cut_for_tokenizing`, unit-tested in the model crate), so this finishes like a short text.
    let dir = tempfile::tempdir().unwrap();
    let text = "word ".repeat(4 << 20);
    let input = write(
        &dir.path().join("big.jsonl"),
        &format!("{{\"id\": \"big\", \"text\": \"{text}\"}}\n{{\"id\": \"small\", \"text\": \"{}\"}}\n", &text[..4096]),
    );
    let out = dir.path().join("big.parquet");
    ok(&["encode", "--model", MODEL, "--input", &input, "--out", out.to_str().unwrap(), "--max-len", "32"]);
    // Both rows keep the same 32 tokens, so the 20 MB text embeds exactly like its first 4 KB.
    use arrow::array::{Array, AsArray};
    let file = std::fs::File::open(&out).unwrap();
    let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let batch = reader.next().unwrap().unwrap();
    let vectors = batch.column_by_name("embedding").unwrap().as_fixed_size_list();
    assert_eq!(vectors.len(), 2);
    let row = |i: usize| vectors.value(i).as_primitive::<arrow::datatypes::Float32Type>().values().to_vec();
    assert_eq!(row(0), row(1));
}
