//! Fuzzing on stable Rust: every parser of the project gets arbitrary bytes and structure-aware
//! mutations of a valid file (byte flips, insertions, deletions, truncation, splices of
//! another valid file), and must answer with `Ok` or an error — never a panic, never an abort.
//!
//! CI runs a fixed budget with a fixed seed (`CASES` per target, below). A longer run with fresh
//! seeds is one command:
//!
//! ```sh
//! HYBRID_IR_FUZZ_CASES=20000 HYBRID_IR_FUZZ_SEED=$RANDOM cargo test --release --test fuzz_parsers
//! ```

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// Cases per target in the test suite (overridden by `HYBRID_IR_FUZZ_CASES`).
const CASES: u32 = 1500;

fn config() -> Config {
    let cases = std::env::var("HYBRID_IR_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let seed = std::env::var("HYBRID_IR_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    Config { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() }
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Splice(usize, usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>(), 1usize..32).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
    ];
    prop::collection::vec(edit, 1..6)
}

/// `seed` with `edits` applied (indices taken modulo the current length).
fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for e in edits {
        let len = v.len().max(1);
        match e {
            Edit::Flip(i, b) if !v.is_empty() => {
                let i = i % v.len();
                v[i] ^= b | 1;
            }
            Edit::Insert(i, bytes) => {
                let i = i % (v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(i, n) if !v.is_empty() => {
                let i = i % v.len();
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Edit::Truncate(i) => v.truncate(i % len),
            Edit::Splice(a, b, n) if !v.is_empty() => {
                // Copy a stretch of the file over another place: structure-shaped garbage.
                let (a, b) = (a % v.len(), b % v.len());
                let n = (*n).min(v.len() - a).min(v.len() - b);
                let chunk: Vec<u8> = v[a..a + n].to_vec();
                v[b..b + n].copy_from_slice(&chunk);
            }
            _ => {}
        }
    }
    v
}

/// Inputs for a parser: arbitrary bytes half the time, mutations of `seed` otherwise.
fn inputs(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), edits().prop_map(move |e| mutate(&seed, &e)),]
}

/// Runs `parse` on every generated input written to `name` in a scratch directory.
fn fuzz(name: &str, seed: Vec<u8>, parse: impl Fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let mut runner = TestRunner::new(config());
    runner
        .run(&inputs(seed), |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            parse(&path);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn workspace() -> PathBuf {
    hybrid_ir::data::paths::package_dir(env!("CARGO_MANIFEST_DIR"))
}

const LAREQA: &str = r#"{"version": "1.1", "data": [{"title": "T", "paragraphs": [{
  "context": " Alpha beta. Gamma delta.",
  "sentences": ["Alpha beta.", "Gamma delta."],
  "sentence_breaks": [[1, 12], [13, 25]],
  "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Gamma", "answer_start": 13}]}]
}]}]}"#;

#[test]
fn lareqa_json() {
    fuzz("en.json", LAREQA.as_bytes().to_vec(), |p| {
        let _ = hybrid_ir::data::lareqa::load_language(p, "en");
    });
}

#[test]
fn jsonl_corpus() {
    let seed = concat!(
        "{\"id\": \"a\", \"lang\": \"en\", \"query\": \"q?\", \"positive\": \"p.\", \"negative\": \"n.\"}\n",
        "{\"id\": \"a\", \"lang\": \"de\", \"query\": \"f?\", \"positive\": \"a.\", \"context\": \"c\"}\n",
        "{\"id\": \"b\", \"lang\": \"en\", \"query\": \"r?\", \"positive\": \"s.\"}\n"
    );
    fuzz("c.jsonl", seed.as_bytes().to_vec(), |p| {
        if let Ok(corpus) = hybrid_ir::data::load_user_corpus(p) {
            // Whatever loads must also sample without panicking.
            let sampler = hybrid_ir::data::sampler::SamplerConfig::new(hybrid_ir::data::sampler::SamplerKind::Hybrid)
                .build(std::sync::Arc::new(corpus));
            if let Ok(mut s) = sampler {
                let _ = s.next_batch();
            }
        }
    });
}

/// A valid Parquet corpus (columns id, lang, query, positive) as bytes.
fn parquet_corpus() -> Vec<u8> {
    use std::sync::Arc;
    use arrow::array::{ArrayRef, RecordBatch, StringArray};
    let col = |v: &[&str]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let batch = RecordBatch::try_from_iter([
        ("id", col(&["a", "a", "b"])),
        ("lang", col(&["en", "de", "en"])),
        ("query", col(&["q?", "f?", "r?"])),
        ("positive", col(&["p.", "a.", "s."])),
    ])
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

#[test]
fn parquet_and_arrow_corpora() {
    let seed = parquet_corpus();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.parquet"), &seed).unwrap();
    hybrid_ir::data::load_user_corpus(&dir.path().join("ok.parquet")).expect("the seed corpus is valid");
    fuzz("c.parquet", seed, |p| {
        let _ = hybrid_ir::data::load_user_corpus(p);
    });
    fuzz("c.arrow", b"ARROW1\0\0".to_vec(), |p| {
        let _ = hybrid_ir::data::load_user_corpus(p);
    });
}

#[test]
fn toml_config() {
    let seed = std::fs::read(workspace().join("crates/train/configs/reference.toml")).unwrap();
    fuzz("c.toml", seed, |p| {
        if let Ok(text) = std::fs::read_to_string(p)
            && let Ok(c) = hybrid_ir::train::TrainConfig::from_toml_str(&text, p)
        {
            let _ = c.validate();
            let _ = c.to_toml();
        }
    });
}

#[test]
fn trec_qrels_and_runs() {
    fuzz("qrels.txt", b"1 0 d1 1\n1 0 d2 0\n2 0 d3 2\n".to_vec(), |p| {
        let _ = hybrid_ir::metrics::Qrels::read(p);
    });
    let qrels = hybrid_ir::metrics::Qrels::parse("1 0 d1 1\n2 0 d3 1\n", Path::new("q")).unwrap();
    fuzz("run.txt", b"1 Q0 d1 1 2.5 t\n1 Q0 d2 2 1.5 t\n2 Q0 d3 1 0.5 t\n".to_vec(), |p| {
        if let Ok(run) = hybrid_ir::metrics::Run::read(p) {
            let _ = hybrid_ir::metrics::evaluate_run(&qrels, &run, &hybrid_ir::metrics::Metric::TREC_DEFAULT);
        }
    });
}

#[test]
fn embeddings_parquet() {
    // A valid embeddings file of a one-language benchmark built from the LAReQA seed.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("en.json"), LAREQA).unwrap();
    let dataset = hybrid_ir::data::LareqaDataset::load_dir("seed", dir.path()).unwrap();
    let bench = hybrid_ir::data::RetrievalBenchmark::from_lareqa(&dataset);
    let rows = |n: usize| ndarray::Array2::from_shape_fn((n, 4), |(i, j)| (i * 4 + j) as f32 / 10.0);
    let embeddings = hybrid_ir::metrics::BenchmarkEmbeddings { queries: rows(bench.queries.len()), candidates: rows(bench.candidates.len()) };
    let path = dir.path().join("seed.parquet");
    hybrid_ir::metrics::write_embeddings(&path, &bench, &embeddings).unwrap();
    fuzz("e.parquet", std::fs::read(&path).unwrap(), |p| {
        if let Ok(table) = hybrid_ir::metrics::read_embeddings(p) {
            let _ = table.align(&bench);
        }
    });
}

#[test]
fn hf_config_and_tokenizer() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    let config = std::fs::read(model.join("config.json")).expect("run `cargo xtask fetch-models`");
    fuzz("config.json", config, |p| {
        let _ = hybrid_ir::model::BertConfig::from_file(p);
    });
    // tokenizer.json is large: mutate a small WordPiece tokenizer of the same layout.
    let tokenizer = r###"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},"post_processor":null,"decoder":null,"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{"[PAD]":0,"[UNK]":1,"a":2,"b":3,"##b":4}}}"###;
    fuzz("tokenizer.json", tokenizer.as_bytes().to_vec(), |p| {
        if let Ok(t) = hybrid_ir::model::TextTokenizer::from_file(p, 0, 16) {
            let _ = t.encode("a ab b");
        }
    });
}

#[test]
fn checkpoint_manifest() {
    let manifest = br#"{"files": [{"file": "model.bpk", "bytes": 3, "sha256": "00"}, {"file": "optimizer.bpk", "bytes": 0, "sha256": ""}, {"file": "state.json", "bytes": 2, "sha256": "ab"}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("step-000001");
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::write(ckpt.join("model.bpk"), b"abc").unwrap();
    std::fs::write(ckpt.join("state.json"), b"{}").unwrap();
    let mut runner = TestRunner::new(config());
    runner
        .run(&inputs(manifest.to_vec()), |bytes| {
            std::fs::write(ckpt.join("manifest.json"), &bytes).unwrap();
            let _ = hybrid_ir::train::checkpoint::verify(&ckpt);
            Ok(())
        })
        .unwrap();
}
