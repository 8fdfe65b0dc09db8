//! The data crate alone (`hybrid-ir-data`, no model, no burn): load a user corpus of parallel
//! QA pairs from JSONL and audit what the Hybrid sampler builds from it — the batch kinds, that
//! every X-X-mono batch is one language, every X-Y pair crosses languages, and that no batch
//! holds two translations of one id (no false negatives).
//!
//! `cargo run --example data_only`

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use hybrid_ir::data::load_user_corpus;
use hybrid_ir::data::sampler::{BatchKind, SamplerConfig, SamplerKind};

/// Audit figures of `batches` Hybrid batches: (mono batches, cross batches, pairs seen).
pub fn run(dir: &std::path::Path, batches: usize) -> Result<(usize, usize, usize), Box<dyn std::error::Error>> {
    // A user corpus: 40 ids, each in 2-4 of en / de / es / fr.
    let path = dir.join("pairs.jsonl");
    let mut file = std::fs::File::create(&path)?;
    for id in 0..40 {
        for lang in ["en", "de", "es", "fr"].iter().take(2 + id % 3) {
            let row = serde_json::json!({"id": format!("q{id}"), "lang": lang,
                "query": format!("[{lang}] question {id}?"), "positive": format!("[{lang}] answer {id}.")});
            writeln!(file, "{row}")?;
        }
    }
    drop(file);
    let corpus = Arc::new(load_user_corpus(&path)?);
    println!("{}", serde_json::to_string_pretty(&corpus.stats())?);

    let mut sampler =
        SamplerConfig { alpha: 0.5, batch_size: 8, seed: 3, ..SamplerConfig::new(SamplerKind::Hybrid) }.build(corpus)?;
    let (mut mono, mut cross, mut pairs) = (0, 0, 0);
    for _ in 0..batches {
        let batch = sampler.next_batch();
        let ids: HashSet<_> = batch.pairs.iter().map(|p| p.group_key).collect();
        assert_eq!(ids.len(), batch.pairs.len(), "a batch holds two pairs of one answer cluster");
        match batch.kind {
            BatchKind::Mono => {
                mono += 1;
                let langs: HashSet<_> = batch.pairs.iter().map(|p| (p.query_lang.clone(), p.passage_lang.clone())).collect();
                assert_eq!(langs.len(), 1, "an X-X-mono batch mixes languages");
                assert!(batch.pairs.iter().all(|p| p.query_lang == p.passage_lang));
            }
            BatchKind::Cross => {
                cross += 1;
                assert!(batch.pairs.iter().all(|p| p.query_lang != p.passage_lang), "an X-Y pair in one language");
            }
            other => panic!("hybrid gave a {other:?} batch"),
        }
        pairs += batch.pairs.len();
    }
    Ok((mono, cross, pairs))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("hybrid-ir-data-only");
    std::fs::create_dir_all(&dir)?;
    let (mono, cross, pairs) = run(&dir, 1000)?;
    println!("1000 hybrid batches (alpha 0.5): {mono} X-X-mono, {cross} X-Y, {pairs} pairs");
    Ok(())
}

#[test]
fn runs() {
    let dir = tempfile::tempdir().unwrap();
    let (mono, cross, pairs) = run(dir.path(), 400).unwrap();
    assert_eq!(mono + cross, 400);
    // alpha 0.5: the mono share is binomial(400, 0.5); 140..260 is more than 6 standard deviations.
    assert!((140..=260).contains(&mono), "{mono} mono batches of 400");
    assert!(pairs > 400 * 4, "batches far below the batch size of 8: {pairs} pairs");
}
