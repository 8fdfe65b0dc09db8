//! Parity with PyTorch `transformers`: token ids identical to the Python tokenizer, embeddings
//! within max |Δ| ≤ 1e-4 per component and cosine ≥ 0.99999. The reference is
//! `tests/fixtures/parity.json`, written by `tests/fixtures/make_parity.py` (versions inside).
//! Needs `cargo xtask fetch-models`.

mod common;

use hybrid_ir_model::{TextKind, test_device};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    models: std::collections::BTreeMap<String, ModelFixture>,
}

#[derive(Deserialize)]
struct ModelFixture {
    max_len: usize,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    kind: String,
    lang: String,
    text: String,
    input: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/parity.json");
    serde_json::from_str(text).expect("parity.json parses")
}

fn check_model(name: &str, device: burn::tensor::Device) {
    let fixture = fixture();
    let expected = &fixture.models[name];
    let model = common::load(name, &device);
    assert_eq!(model.info.max_len, expected.max_len, "{name}: truncation length");
    // Batches of 5 over 12 rows: padding and length-sorting are exercised too.
    let mut worst = (0.0f32, 1.0f64);
    for kind in [TextKind::Query, TextKind::Passage] {
        let rows: Vec<&Row> = expected.rows.iter().filter(|r| r.kind.parse::<TextKind>().unwrap() == kind).collect();
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        let ids = model.tokenize(&texts, kind).unwrap();
        for (row, got) in rows.iter().zip(&ids) {
            assert_eq!(model.info.prefixes.apply(kind, &row.text), row.input, "{name}/{}: prefixed input", row.lang);
            assert_eq!(got, &row.ids, "{name}/{}: token ids differ from the Python tokenizer", row.lang);
        }
        let embeddings = model.encode(&texts, kind, 5, |_| {}).unwrap();
        for (row, got) in rows.iter().zip(&embeddings) {
            let diff = common::max_abs_diff(got, &row.embedding);
            let cos = common::cosine(got, &row.embedding);
            eprintln!("{name}/{}: max|Δ| {diff:.2e}, cosine {cos:.8}", row.lang);
            assert!(diff <= 1e-4, "{name}/{}: max |Δ| {diff} > 1e-4", row.lang);
            assert!(cos >= 0.99999, "{name}/{}: cosine {cos} < 0.99999", row.lang);
            worst = (worst.0.max(diff), worst.1.min(cos));
        }
    }
    eprintln!("{name}: worst max|Δ| {:.2e}, worst cosine {:.8}", worst.0, worst.1);
}

test_device!(fn minilm_matches_pytorch(device) { check_model("all-MiniLM-L6-v2", device) });

test_device!(fn multilingual_e5_small_matches_pytorch(device) { check_model("multilingual-e5-small", device) });
