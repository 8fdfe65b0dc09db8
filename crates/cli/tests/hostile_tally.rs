//! The hostile-input tally of issue #17: a table of hostile inputs (flags and values, corpus
//! files, TOML configs, TREC files, model directories, embeddings files, output paths) run
//! against the CLI binary, each outcome classified as
//! - clear: exit 1 or 2 with a message naming the file or the flag given;
//! - unclear: exit 1 or 2, but the message names neither;
//! - panic: exit 101 or "panicked" on stderr;
//! - abort: killed by a signal (an allocation failure, a stack overflow);
//! - hang: still running after [`LIMIT`] (killed);
//! - silent: exit 0 where an error was expected.
//!
//! It prints a per-class markdown table and fails on any panic, abort, hang or silent success.
//! Slow (a few minutes: one process per input), so ignored by default:
//!
//! ```text
//! cargo test -p hybrid-ir-cli --test hostile_tally -- --ignored --nocapture
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use common::workspace;

/// A case still running after this long is killed and counted as a hang.
const LIMIT: Duration = Duration::from_secs(120);

const MODEL: &str = "models/all-MiniLM-L6-v2";

/// One hostile input: the command line and the strings one of which a clear error names (the
/// file, the flag or the value at fault).
struct Case {
    class: &'static str,
    args: Vec<String>,
    needles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Clear,
    Unclear,
    Panic,
    Abort,
    Hang,
    Silent,
}

/// Builds the table; `at` turns a fixture name into its path (as a string).
struct Cases {
    dir: PathBuf,
    list: Vec<Case>,
}

impl Cases {
    fn at(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// A fixture file with `bytes`; returns its path.
    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn add(&mut self, class: &'static str, args: &[&str], needles: &[&str]) {
        self.list.push(Case {
            class,
            args: args.iter().map(|s| s.to_string()).collect(),
            needles: needles.iter().map(|s| s.to_string()).collect(),
        });
    }
}

/// `text` as bytes with every NUL turned into a Latin-1 `é` (0xE9): not UTF-8 from there on.
fn latin1(text: &str) -> Vec<u8> {
    text.bytes().map(|b| if b == 0 { 0xE9 } else { b }).collect()
}

/// A flag and its value as needles; values under 3 characters (`0`, `-1`) would match anything.
fn flag_needles<'a>(flag: &'a str, value: &'a str) -> Vec<&'a str> {
    if value.len() >= 3 { vec![flag, value] } else { vec![flag] }
}

fn base_name(path: &str) -> &str {
    Path::new(path).file_name().and_then(|n| n.to_str()).unwrap_or(path)
}

fn run(case: &Case) -> (Outcome, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hybrid-ir"))
        .args(&case.args)
        .current_dir(workspace())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hybrid-ir");
    // Read stderr on a thread so a chatty child never blocks on a full pipe.
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut pipe, &mut bytes).ok();
        s.push_str(&String::from_utf8_lossy(&bytes));
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    let last = stderr.lines().rev().find(|l| l.starts_with("error")).or(stderr.lines().last()).unwrap_or("").to_string();
    let Some(status) = status else { return (Outcome::Hang, last) };
    let outcome = match status.code() {
        _ if stderr.contains("panicked") => Outcome::Panic,
        Some(0) => Outcome::Silent,
        Some(101) => Outcome::Panic,
        None => Outcome::Abort,
        Some(1 | 2) if case.needles.iter().any(|n| stderr.contains(n.as_str())) => Outcome::Clear,
        Some(_) => Outcome::Unclear,
    };
    (outcome, last)
}

/// Writes a Parquet file of string columns (None = null).
fn parquet_strings(path: &str, columns: &[(&str, Vec<Option<&str>>)]) {
    let arrays: Vec<(&str, ArrayRef)> =
        columns.iter().map(|(name, values)| (*name, Arc::new(StringArray::from(values.clone())) as ArrayRef)).collect();
    write_batch(path, RecordBatch::try_from_iter(arrays).unwrap());
}

fn write_batch(path: &str, batch: RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A model directory: links to every file of the MiniLM model except those replaced (`Some`)
/// or removed (`None`) by `edits`.
fn model_variant(cases: &Cases, name: &str, edits: &[(&str, Option<&[u8]>)]) -> String {
    let src = workspace().join(MODEL);
    let dst = cases.dir.join(name);
    for rel in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
    ] {
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        match edits.iter().find(|(r, _)| *r == rel) {
            Some((_, Some(bytes))) => std::fs::write(&to, bytes).unwrap(),
            Some((_, None)) => {}
            None => std::os::unix::fs::symlink(src.join(rel).canonicalize().unwrap(), &to).unwrap(),
        }
    }
    dst.to_str().unwrap().to_string()
}

fn flags_and_values(c: &mut Cases) {
    let input = c.file("good.jsonl", "{\"id\": \"a\", \"text\": \"one\"}\n");
    let out = c.at("out.parquet");
    let encode = |extra: &[&'static str]| {
        [&["encode", "--model", MODEL, "--input", input.as_str(), "--out", out.as_str()][..], extra].concat()
    };
    for (flag, value) in [
        ("--batch-size", "0"),
        ("--batch-size", "-1"),
        ("--batch-size", "many"),
        ("--max-len", "0"),
        ("--max-len", "99999999999999999999999"),
        ("--kind", "question"),
        ("--device", "gpu9"),
        ("--device", "tch-cuda:x"),
    ] {
        c.add("flags and values", &encode(&[flag, value]), &flag_needles(flag, value));
    }
    let eval = |extra: &[&'static str]| [&["eval", "--benchmark", "xquad-r", "--model", MODEL][..], extra].concat();
    for (flag, value) in [
        ("--score", "dott"),
        ("--metrics", "ndcg@x"),
        ("--candidate-text", "paragraph"),
        ("--prefixes", "bogus"),
        ("--prefixes", "custom"),
        ("--languages", "../../etc"),
        ("--languages", ""),
        ("--batch-size", "0"),
        ("--max-len", "0"),
        ("--plot", "map.png"),
    ] {
        c.add("flags and values", &eval(&[flag, value]), &flag_needles(flag, value));
    }
    c.add("flags and values", &["eval", "--benchmark", "xquad-rr", "--model", MODEL], &["xquad-rr"]);
    c.add("flags and values", &["eval", "--qrels", &input], &["--qrels"]);
    c.add("flags and values", &["eval", "--run", &input], &["--run"]);
    c.add("flags and values", &["eval"], &["--benchmark"]);
    c.add("flags and values", &["eval", "--benchmark", "xquad-r"], &["--embeddings", "--model"]);
    c.add("flags and values", &["eval", "--benchmark", "xquad-r", "--model", MODEL, "--embeddings", &input], &["--embeddings"]);
    c.add("flags and values", &["eval", "--qrels", &input, "--run", &input, "--benchmark", "xquad-r"], &["--qrels"]);
    let sample = |extra: &[&'static str]| [&["data", "sample", "--corpus", "xquad-r"][..], extra].concat();
    for (flag, value) in [
        ("--sampler", "hybridd"),
        ("--alpha", "2"),
        ("--alpha", "NaN"),
        ("--alpha", "-0.5"),
        ("--batch-size", "0"),
        ("--batches", "-3"),
        ("--pairing", "diagonal"),
        ("--seed", "-1"),
    ] {
        c.add("flags and values", &sample(&[flag, value]), &flag_needles(flag, value));
    }
    c.add("flags and values", &["data", "sample", "--corpus", "xquad-rr"], &["xquad-rr"]);
    c.add("flags and values", &["data", "sample", "--corpus", "xquad-r", "--data", "no/such/root"], &["--data", "no/such/root"]);
    c.add("flags and values", &["data", "stats", "--benchmark", "mlqa"], &["mlqa"]);
    c.add("flags and values", &["data", "stats", "--data", &input], &["--data"]);
    let config = workspace().join("crates/train/configs/reference.toml").to_str().unwrap().to_string();
    let train =
        |extra: &[&'static str]| [&["train", "--config", config.as_str(), "--model", MODEL, "--dry-run"][..], extra].concat();
    for (flag, value) in [
        ("--sampler", "hybridd"),
        ("--alpha", "2"),
        ("--lr", "NaN"),
        ("--lr", "0"),
        ("--steps", "0"),
        ("--batch-size", "0"),
        ("--batch-size", "1"),
        ("--set", "no-equals-sign"),
        ("--set", "optim.lrr=1"),
        ("--set", "optim.lr=abc"),
        ("--device", "gpu9"),
        ("--out", ""),
    ] {
        c.add("flags and values", &train(&[flag, value]), &flag_needles(flag, value));
    }
    c.add("flags and values", &["train", "--config", &config, "--resume-intact"], &["--resume-intact"]);
    c.add("flags and values", &["train", "--config", "no/such.toml"], &["no/such.toml"]);
    c.add("flags and values", &["train", "--config", &config, "--model", "no/such/model", "--dry-run"], &["no/such/model"]);
    // A fresh output directory inside the fixture folder: a case that is not refused trains there.
    let runs = c.at("reproduce-runs");
    let reproduce = |extra: &[&'static str]| [&["reproduce", "--model", MODEL, "--out", runs.as_str()][..], extra].concat();
    for (flag, value) in [
        ("--lr", "NaN"),
        ("--lr", "-1"),
        ("--alphas", "2"),
        ("--alphas", "NaN"),
        ("--steps", "0"),
        ("--batch-size", "1"),
        ("--query-max-len", "0"),
        ("--train", "mlqa-rr"),
        ("--eval", "xquad"),
        ("--backbone", "lstm"),
        ("--trainable-layers", "99"),
        ("--eval-batch-size", "0"),
    ] {
        c.add("flags and values", &reproduce(&[flag, value]), &flag_needles(flag, value));
    }
    c.add("flags and values", &["reproduce", "--model", "no/such/model"], &["no/such/model"]);
    c.add("flags and values", &["export", "--run", "no/such/run", "--out", &c.at("exported")], &["no/such/run"]);
    c.add("flags and values", &["export", "--run", &input, "--out", &c.at("exported")], &["good.jsonl"]);
    c.add("flags and values", &["bogus-command"], &["bogus-command"]);
}

fn corpus_files(c: &mut Cases) {
    let row = r#"{"id": "1", "lang": "en", "query": "q", "positive": "p"}"#;
    let de = r#"{"id": "1", "lang": "de", "query": "q", "positive": "p"}"#;
    let jsonl: Vec<(&str, Vec<u8>)> = vec![
        ("empty.jsonl", Vec::new()),
        ("blank-lines.jsonl", b"\n\n  \n".to_vec()),
        ("not-json.jsonl", b"id,lang,query,positive\n1,en,q,p\n".to_vec()),
        ("array.jsonl", format!("[{row}]\n").into_bytes()),
        ("missing-id.jsonl", br#"{"lang": "en", "query": "q", "positive": "p"}"#.to_vec()),
        ("number-id.jsonl", br#"{"id": 1, "lang": "en", "query": "q", "positive": "p"}"#.to_vec()),
        ("duplicate.jsonl", format!("{row}\n{de}\n{row}\n").into_bytes()),
        ("blank-query.jsonl", format!("{de}\n{}\n", row.replace("\"q\"", "\"  \"")).into_bytes()),
        ("latin1.jsonl", latin1(&format!("{de}\n{}\n", row.replace("\"q\"", "\"caf\u{0}\"")))),
        ("bom-inside.jsonl", format!("{de}\n\u{feff}{row}\n").into_bytes()),
        ("nul.jsonl", format!("{de}\n{row}\0\n").into_bytes()),
        ("truncated.jsonl", format!("{de}\n{}", &row[..20]).into_bytes()),
        ("one-language.jsonl", format!("{row}\n").into_bytes()),
        ("empty-lang.jsonl", format!("{de}\n{}\n", row.replace("\"en\"", "\"\"")).into_bytes()),
        ("negative-number.jsonl", format!("{de}\n{}\n", row.replace("\"p\"}", "\"p\", \"negative\": 5}")).into_bytes()),
    ];
    for (name, bytes) in jsonl {
        let path = c.file(name, bytes);
        c.add("corpus files", &["data", "sample", "--corpus", &path, "--sampler", "cross", "--batch-size", "2"], &[name]);
    }
    let txt = c.file("pairs.txt", format!("{row}\n"));
    c.add("corpus files", &["data", "sample", "--corpus", &txt], &["pairs.txt"]);
    std::fs::create_dir_all(c.dir.join("dir.jsonl")).unwrap();
    let dir = c.at("dir.jsonl");
    c.add("corpus files", &["data", "sample", "--corpus", &dir], &["dir.jsonl"]);
    // Columnar corpora.
    let garbage = c.file("garbage.parquet", b"PAR1 this is not parquet PAR1");
    let empty = c.file("empty.parquet", b"");
    let arrow_garbage = c.file("garbage.arrow", b"ARROW1 nope");
    let missing = c.at("missing-column.parquet");
    parquet_strings(&missing, &[("id", vec![Some("1")]), ("lang", vec![Some("en")]), ("query", vec![Some("q")])]);
    let nulls = c.at("nulls.parquet");
    parquet_strings(
        &nulls,
        &[
            ("id", vec![Some("1"), None]),
            ("lang", vec![Some("en"), Some("de")]),
            ("query", vec![Some("q"), Some("q")]),
            ("positive", vec![Some("p"), Some("p")]),
        ],
    );
    let int_id = c.at("int-id.parquet");
    let strings = |v: &str| Arc::new(StringArray::from(vec![v, v])) as ArrayRef;
    write_batch(
        &int_id,
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 1])) as ArrayRef),
            ("lang", Arc::new(StringArray::from(vec!["en", "de"])) as ArrayRef),
            ("query", strings("q")),
            ("positive", strings("p")),
        ])
        .unwrap(),
    );
    let truncated = c.at("truncated.parquet");
    let whole = std::fs::read(&nulls).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    for path in [&garbage, &empty, &arrow_garbage, &missing, &nulls, &int_id, &truncated] {
        c.add("corpus files", &["data", "sample", "--corpus", path.as_str()], &[base_name(path)]);
    }
    // `encode` inputs.
    let out = c.at("encoded.parquet");
    for (name, bytes) in [
        ("encode-empty.jsonl", b"".to_vec()),
        ("encode-no-text.jsonl", br#"{"id": "a"}"#.to_vec()),
        ("encode-dup.jsonl", b"{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n".to_vec()),
        ("encode-blank.jsonl", b"{\"id\": \"a\", \"text\": \" \\t \"}\n".to_vec()),
        ("encode-latin1.jsonl", b"{\"id\": \"a\", \"text\": \"caf\xe9\"}\n".to_vec()),
        ("encode.csv", b"id,text\na,x\n".to_vec()),
    ] {
        let path = c.file(name, bytes);
        c.add("corpus files", &["encode", "--model", MODEL, "--input", &path, "--out", &out], &[name]);
    }
    let no_text = c.at("encode-no-text.parquet");
    parquet_strings(&no_text, &[("id", vec![Some("a")])]);
    c.add("corpus files", &["encode", "--model", MODEL, "--input", &no_text, "--out", &out], &["encode-no-text.parquet"]);
}

const LAREQA_GOOD: &str = r#"{"data": [{"title": "T", "paragraphs": [{
  "context": " Alpha beta. Gamma delta.", "sentences": ["Alpha beta.", "Gamma delta."], "sentence_breaks": [[1, 12], [13, 25]],
  "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Gamma", "answer_start": 13}]}]}]}]}"#;

fn lareqa_files(c: &mut Cases) {
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("not-json", b"not json".to_vec()),
        ("empty-object", b"{}".to_vec()),
        ("no-articles", br#"{"data": []}"#.to_vec()),
        ("wrong-type", LAREQA_GOOD.replace("\"What?\"", "42").into_bytes()),
        ("blank-sentence", LAREQA_GOOD.replace("\"Gamma delta.\"", "\"  \"").into_bytes()),
        ("offset-off", LAREQA_GOOD.replace("\"answer_start\": 13", "\"answer_start\": 14").into_bytes()),
        ("offset-past-end", LAREQA_GOOD.replace("\"answer_start\": 13", "\"answer_start\": 1000").into_bytes()),
        ("duplicate-id", LAREQA_GOOD.replace(r#""answer_start": 13}]}]"#, r#""answer_start": 13}]},
                {"id": "q1", "question": "Who?", "answers": [{"text": "Alpha", "answer_start": 1}]}]"#).into_bytes()),
        ("blank-context", br#"{"data": [{"title": "T", "paragraphs": [{"context": "     ",
                "sentences": ["x"], "sentence_breaks": [[0, 5]],
                "qas": [{"id": "q1", "question": "What?", "answers": [{"text": " ", "answer_start": 0}]}]}]}]}"#.to_vec()),
        ("break-count", LAREQA_GOOD.replace("[[1, 12], [13, 25]]", "[[1, 12]]").into_bytes()),
        ("break-past-end", LAREQA_GOOD.replace("[13, 25]", "[13, 99]").into_bytes()),
        ("two-answers", LAREQA_GOOD.replace(r#""answer_start": 13}]"#, r#""answer_start": 13},
                {"text": "Alpha", "answer_start": 1}]"#).into_bytes()),
        ("empty-id", LAREQA_GOOD.replace("\"q1\"", "\"\"").into_bytes()),
        ("latin1", latin1(&LAREQA_GOOD.replace("What?", "Wh\u{0}t?"))),
        ("truncated", LAREQA_GOOD[..LAREQA_GOOD.len() / 2].as_bytes().to_vec()),
    ];
    for (name, bytes) in variants {
        let root = c.dir.join(format!("lareqa-{name}"));
        c.file(&format!("lareqa-{name}/xquad-r/en.json"), LAREQA_GOOD);
        std::fs::write(root.join("xquad-r/de.json"), &bytes).unwrap();
        let root = root.to_str().unwrap().to_string();
        c.add("LAReQA files", &["data", "stats", "--data", &root], &["de.json"]);
        c.add("LAReQA files", &["data", "sample", "--data", &root, "--corpus", "xquad-r"], &["de.json"]);
    }
    let empty_root = c.dir.join("lareqa-empty-dir/xquad-r");
    std::fs::create_dir_all(&empty_root).unwrap();
    c.add("LAReQA files", &["data", "stats", "--data", c.dir.join("lareqa-empty-dir").to_str().unwrap()], &["xquad-r"]);
    let no_bench = c.dir.join("lareqa-no-benchmark");
    std::fs::create_dir_all(&no_bench).unwrap();
    c.add("LAReQA files", &["data", "stats", "--data", no_bench.to_str().unwrap()], &["xquad-r"]);
}

fn toml_configs(c: &mut Cases) {
    let reference = std::fs::read_to_string(workspace().join("crates/train/configs/reference.toml")).unwrap();
    let model = workspace().join(MODEL).canonicalize().unwrap();
    let base = reference.replace("\"models/multilingual-e5-small\"", &format!("{:?}", model.to_str().unwrap()));
    let set = |key: &str, value: &str| -> String {
        // Replace the first `key = ...` line, commented out or not, keeping the reference's layout.
        let mut done = false;
        let text = base
            .lines()
            .map(|l| {
                if !done && l.trim_start().trim_start_matches("# ").starts_with(&format!("{key} =")) {
                    done = true;
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(done, "no `{key}` line in the reference config");
        text
    };
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("empty.toml", Vec::new()),
        ("not-toml.toml", b"this is = = not toml".to_vec()),
        ("unknown-key.toml", format!("{base}\nlearning_rate = 1\n").into_bytes()),
        ("wrong-type.toml", set("seed", "\"forty-two\"").into_bytes()),
        ("lr-nan.toml", set("lr", "nan").into_bytes()),
        ("lr-negative.toml", set("lr", "-1.0").into_bytes()),
        ("batch-one.toml", set("batch_size", "1").into_bytes()),
        ("steps-zero.toml", set("steps", "0").into_bytes()),
        ("output-empty.toml", set("output_dir", "\"\"").into_bytes()),
        ("corpora-empty.toml", set("corpora", "[]").into_bytes()),
        ("corpora-typo.toml", set("corpora", "[\"xquad-rr\"]").into_bytes()),
        ("corpora-missing.toml", set("corpora", "[\"no/such/pairs.jsonl\"]").into_bytes()),
        ("model-missing.toml", reference.replace("\"models/multilingual-e5-small\"", "\"no/such/model\"").into_bytes()),
        ("latin1.toml", latin1(&set("output_dir", "\"runs/caf\u{0}\""))),
        ("max-len-zero.toml", set("query_max_len", "0").into_bytes()),
        ("layers-99.toml", set("trainable_layers", "99").into_bytes()),
        ("device.toml", set("device", "\"gpu9\"").into_bytes()),
        ("holdout-one.toml", set("holdout_every", "1").into_bytes()),
        ("temperature-zero.toml", set("temperature", "0.0").into_bytes()),
        ("eval-typo.toml", set("benchmark", "\"xquad\"").into_bytes()),
        ("alpha-two.toml", set("alpha", "2.0").into_bytes()),
        ("duplicate-key.toml", format!("seed = 1\nseed = 2\n{base}").into_bytes()),
    ];
    for (name, bytes) in variants {
        let path = c.file(&format!("configs/{name}"), bytes);
        c.add("TOML configs", &["train", "--config", &path, "--dry-run"], &[name]);
    }
    std::fs::create_dir_all(c.dir.join("configs/dir.toml")).unwrap();
    let dir = c.at("configs/dir.toml");
    c.add("TOML configs", &["train", "--config", &dir, "--dry-run"], &["dir.toml"]);
}

fn trec_files(c: &mut Cases) {
    let good_qrels = c.file("trec/good.qrels", "1 0 d1 1\n");
    let good_run = c.file("trec/good.run", "1 Q0 d1 1 0.5 t\n");
    let qrels: Vec<(&str, Vec<u8>)> = vec![
        ("empty.qrels", Vec::new()),
        ("three-fields.qrels", b"1 0 d1\n".to_vec()),
        ("rel-word.qrels", b"1 0 d1 yes\n".to_vec()),
        ("twice.qrels", b"1 0 d1 1\n1 0 d1 0\n".to_vec()),
        ("latin1.qrels", b"1 0 d\xe91 1\n".to_vec()),
        ("binary.qrels", vec![0, 159, 146, 150, 255, 0, 1]),
        ("none-relevant.qrels", b"1 0 d1 0\n".to_vec()),
    ];
    for (name, bytes) in qrels {
        let path = c.file(&format!("trec/{name}"), bytes);
        c.add("TREC files", &["eval", "--qrels", &path, "--run", &good_run], &[name]);
    }
    let runs: Vec<(&str, Vec<u8>)> = vec![
        ("empty.run", Vec::new()),
        ("five-fields.run", b"1 Q0 d1 1 0.5\n".to_vec()),
        ("score-nan.run", b"1 Q0 d1 1 nan t\n".to_vec()),
        ("score-word.run", b"1 Q0 d1 1 high t\n".to_vec()),
        ("duplicate.run", b"1 Q0 d1 1 0.5 t\n1 Q0 d1 2 0.4 t\n".to_vec()),
        ("latin1.run", b"1 Q0 d1 1 0.5 t\xe9\n".to_vec()),
        ("other-queries.run", b"2 Q0 d1 1 0.5 t\n".to_vec()),
    ];
    for (name, bytes) in runs {
        let path = c.file(&format!("trec/{name}"), bytes);
        c.add("TREC files", &["eval", "--qrels", &good_qrels, "--run", &path], &[name]);
    }
    c.add("TREC files", &["eval", "--qrels", "no/such.qrels", "--run", &good_run], &["no/such.qrels"]);
    let dir = c.dir.join("trec").to_str().unwrap().to_string();
    c.add("TREC files", &["eval", "--qrels", &good_qrels, "--run", &dir], &["trec"]);
}

fn model_dirs(c: &mut Cases) {
    let input = c.file("model-input.jsonl", "{\"id\": \"a\", \"text\": \"one\"}\n");
    let config = std::fs::read_to_string(workspace().join(MODEL).join("config.json")).unwrap();
    let tokenizer = std::fs::read(workspace().join(MODEL).join("tokenizer.json")).unwrap();
    let safetensors = std::fs::read(workspace().join(MODEL).join("model.safetensors").canonicalize().unwrap()).unwrap();
    let cfg = |from: &str, to: &str| config.replace(from, to).into_bytes();
    let variants: Vec<(&str, Vec<(&str, Option<Vec<u8>>)>, &str)> = vec![
        ("no-config", vec![("config.json", None)], "config.json"),
        ("config-garbage", vec![("config.json", Some(b"{ nope".to_vec()))], "config.json"),
        ("config-empty-object", vec![("config.json", Some(b"{}".to_vec()))], "config.json"),
        ("config-act", vec![("config.json", Some(cfg("\"gelu\"", "\"swish\"")))], "config.json"),
        ("config-vocab-zero", vec![("config.json", Some(cfg("30522", "0")))], "config.json"),
        (
            "config-positions-zero",
            vec![("config.json", Some(cfg("\"max_position_embeddings\": 512", "\"max_position_embeddings\": 0")))],
            "config.json",
        ),
        (
            "config-heads",
            vec![("config.json", Some(cfg("\"num_attention_heads\": 12", "\"num_attention_heads\": 7")))],
            "config.json",
        ),
        ("config-hidden", vec![("config.json", Some(cfg("\"hidden_size\": 384", "\"hidden_size\": 768")))], "model.safetensors"),
        (
            "config-layers",
            vec![("config.json", Some(cfg("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 12")))],
            "model.safetensors",
        ),
        ("config-latin1", vec![("config.json", Some(latin1(&config.replace("\"bert\"", "\"b\u{0}rt\""))))], "config.json"),
        ("no-tokenizer", vec![("tokenizer.json", None)], "tokenizer.json"),
        ("tokenizer-garbage", vec![("tokenizer.json", Some(b"garbage".to_vec()))], "tokenizer.json"),
        ("tokenizer-empty-object", vec![("tokenizer.json", Some(b"{}".to_vec()))], "tokenizer.json"),
        ("tokenizer-truncated", vec![("tokenizer.json", Some(tokenizer[..tokenizer.len() / 2].to_vec()))], "tokenizer.json"),
        ("no-weights", vec![("model.safetensors", None)], "model.safetensors"),
        (
            "weights-garbage",
            vec![("model.safetensors", Some(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}".to_vec()))],
            "model.safetensors",
        ),
        (
            "weights-truncated",
            vec![("model.safetensors", Some(safetensors[..safetensors.len() / 3].to_vec()))],
            "model.safetensors",
        ),
        ("weights-empty", vec![("model.safetensors", Some(Vec::new()))], "model.safetensors"),
        (
            "weights-huge-header",
            vec![("model.safetensors", Some(b"\xff\xff\xff\xff\xff\xff\xff\x7f{".to_vec()))],
            "model.safetensors",
        ),
        ("modules-garbage", vec![("modules.json", Some(b"[{".to_vec()))], "modules.json"),
        ("pooling-garbage", vec![("1_Pooling/config.json", Some(b"nope".to_vec()))], "config.json"),
        (
            "pooling-max",
            vec![(
                "1_Pooling/config.json",
                Some(br#"{"word_embedding_dimension": 384, "pooling_mode_max_tokens": true}"#.to_vec()),
            )],
            "config.json",
        ),
        (
            "st-config-garbage",
            vec![("config_sentence_transformers.json", Some(b"{".to_vec()))],
            "config_sentence_transformers.json",
        ),
    ];
    for (name, edits, needle) in variants {
        let edits: Vec<(&str, Option<&[u8]>)> = edits.iter().map(|(p, b)| (*p, b.as_deref())).collect();
        let dir = model_variant(c, &format!("models/{name}"), &edits);
        let out = c.at(&format!("models/{name}.parquet"));
        // The file at fault, or the directory given with --model.
        c.add("model directories", &["encode", "--model", &dir, "--input", &input, "--out", &out], &[needle, &dir]);
    }
    let out = c.at("models/file.parquet");
    c.add("model directories", &["encode", "--model", &input, "--input", &input, "--out", &out], &["--model"]);
    c.add("model directories", &["encode", "--model", "no/such/model", "--input", &input, "--out", &out], &["no/such/model"]);
}

fn embeddings_files(c: &mut Cases) {
    use hybrid_ir_metrics::{BenchmarkEmbeddings, write_embeddings};
    let root = hybrid_ir_data::locate_data_root(&[]).unwrap();
    let bench = hybrid_ir_eval::load_benchmark("xquad-r", Some(&root), &["en".into()]).unwrap();
    let (nq, nc) = (bench.queries.len(), bench.candidates.len());
    let fill =
        |n: usize, v: f32| ndarray::Array2::from_shape_fn((n, 4), |(i, j)| v * ((i * 7 + j * 3) % 11) as f32 / 11.0 + 0.01);
    let write = |name: &str, bench: &hybrid_ir_data::RetrievalBenchmark, q: ndarray::Array2<f32>, cand: ndarray::Array2<f32>| {
        let path = c.at(&format!("embeddings/{name}"));
        std::fs::create_dir_all(c.dir.join("embeddings")).unwrap();
        write_embeddings(Path::new(&path), bench, &BenchmarkEmbeddings { queries: q, candidates: cand }).unwrap();
        path
    };
    let mut files = Vec::new();
    let mut nan = fill(nc, 1.0);
    nan[[5, 2]] = f32::NAN;
    files.push(write("nan.parquet", &bench, fill(nq, 1.0), nan));
    files.push(write("overflow.parquet", &bench, fill(nq, 3e19), fill(nc, 3e19)));
    let mut fewer = bench.clone();
    fewer.candidates.pop();
    files.push(write("missing-row.parquet", &fewer, fill(nq, 1.0), fill(nc - 1, 1.0)));
    let mut more = bench.clone();
    more.candidates.push(more.candidates[0].clone());
    files.push(write("duplicate-row.parquet", &more, fill(nq, 1.0), fill(nc + 1, 1.0)));
    let mut renamed = bench.clone();
    renamed.queries[3].id = "no-such-id".into();
    files.push(write("unknown-id.parquet", &renamed, fill(nq, 1.0), fill(nc, 1.0)));
    let mut other_lang = bench.clone();
    other_lang.candidates[0].lang = "xx".into();
    files.push(write("other-lang.parquet", &other_lang, fill(nq, 1.0), fill(nc, 1.0)));
    files.push(c.file("embeddings/garbage.parquet", b"PAR1 garbage PAR1"));
    files.push(c.file("embeddings/empty.parquet", b""));
    let corpus_like = c.at("embeddings/no-kind.parquet");
    parquet_strings(&corpus_like, &[("id", vec![Some("1")]), ("lang", vec![Some("en")])]);
    files.push(corpus_like);
    let data = root.to_str().unwrap().to_string();
    for path in &files {
        c.add(
            "embeddings files",
            &["eval", "--benchmark", "xquad-r", "--data", &data, "--languages", "en", "--embeddings", path, "--score", "dot"],
            &[base_name(path)],
        );
    }
}

fn output_paths(c: &mut Cases) {
    let input = c.file("out-input.jsonl", "{\"id\": \"a\", \"text\": \"one\"}\n");
    let existing = c.file("outputs/existing.parquet", "keep");
    let encode = |out: &str| {
        vec!["encode".to_string(), "--model".into(), MODEL.into(), "--input".into(), input.clone(), "--out".into(), out.into()]
    };
    let dir = c.dir.join("outputs").to_str().unwrap().to_string();
    let missing_dir = c.at("no-such-dir/out.parquet");
    for (out, needle) in [
        (existing.as_str(), "existing.parquet"),
        (input.as_str(), "out-input.jsonl"),
        (dir.as_str(), "outputs"),
        (missing_dir.as_str(), "no-such-dir/out.parquet"),
        ("/proc/version", "/proc/version"),
    ] {
        let args = encode(out);
        c.add("output paths", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[needle]);
    }
    let eval = |flag: &str, out: &str| {
        vec!["eval".to_string(), "--benchmark".into(), "xquad-r".into(), "--model".into(), MODEL.into(), flag.into(), out.into()]
    };
    for (flag, out) in [
        ("--out", existing.as_str()),
        ("--plot", existing.as_str()),
        ("--save-embeddings", existing.as_str()),
        ("--out", dir.as_str()),
    ] {
        let args = eval(flag, out);
        c.add("output paths", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[flag]);
    }
    let config = workspace().join("crates/train/configs/reference.toml").to_str().unwrap().to_string();
    c.add(
        "output paths",
        &["train", "--config", &config, "--model", MODEL, "--out", &existing, "--steps", "1"],
        &["existing.parquet"],
    );
    let run = c.dir.join("outputs/run-without-config");
    std::fs::create_dir_all(&run).unwrap();
    let run = run.to_str().unwrap().to_string();
    c.add("output paths", &["export", "--run", &run, "--out", &c.at("outputs/exported")], &["run-without-config"]);
    c.add("output paths", &["reproduce", "--model", MODEL, "--out", &existing, "--steps", "1"], &["existing.parquet"]);
}

#[test]
#[ignore = "slow: one process per hostile input; run with --ignored --nocapture"]
fn hostile_input_tally() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Cases { dir: dir.path().to_path_buf(), list: Vec::new() };
    flags_and_values(&mut cases);
    corpus_files(&mut cases);
    lareqa_files(&mut cases);
    toml_configs(&mut cases);
    trec_files(&mut cases);
    model_dirs(&mut cases);
    embeddings_files(&mut cases);
    output_paths(&mut cases);

    let mut tally: BTreeMap<&str, BTreeMap<Outcome, usize>> = BTreeMap::new();
    let mut bad = Vec::new();
    let started = Instant::now();
    for case in &cases.list {
        let (outcome, message) = run(case);
        *tally.entry(case.class).or_default().entry(outcome).or_default() += 1;
        if outcome != Outcome::Clear {
            bad.push(format!("- {outcome:?}: `hybrid-ir {}`\n  {message}", case.args.join(" ")));
        }
    }
    let outcomes = [Outcome::Clear, Outcome::Unclear, Outcome::Panic, Outcome::Abort, Outcome::Hang, Outcome::Silent];
    println!(
        "\n| class | inputs | clear | unclear | panic | abort | hang | silent success |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut total = BTreeMap::new();
    for (class, counts) in &tally {
        let n: usize = counts.values().sum();
        let cells: Vec<String> = outcomes.iter().map(|o| counts.get(o).copied().unwrap_or(0).to_string()).collect();
        println!("| {class} | {n} | {} |", cells.join(" | "));
        for (o, k) in counts {
            *total.entry(*o).or_insert(0) += k;
        }
    }
    let cells: Vec<String> = outcomes.iter().map(|o| total.get(o).copied().unwrap_or(0).to_string()).collect();
    println!("| **all** | {} | {} |", cases.list.len(), cells.join(" | "));
    println!("\n{} inputs in {:.0} s", cases.list.len(), started.elapsed().as_secs_f64());
    if !bad.is_empty() {
        println!("\nNot clear:\n{}", bad.join("\n"));
    }
    assert!(cases.list.len() >= 120, "the tally needs at least 120 inputs, has {}", cases.list.len());
    let fatal: usize =
        [Outcome::Panic, Outcome::Abort, Outcome::Hang, Outcome::Silent].iter().map(|o| total.get(o).copied().unwrap_or(0)).sum();
    assert_eq!(fatal, 0, "panics, aborts, hangs or silent successes remain (listed above)");
}
