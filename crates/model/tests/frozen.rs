//! The frozen-bottom evaluation cache gives exactly the embeddings of a full forward.

mod common;

use burn::module::Module;
use burn::tensor::Device;
use hybrid_ir_model::{
    FrozenPrefixCache, LoadOptions, ModelInfo, PrefixConfig, TextKind, TextPipeline, embed_sequences, load_weights, read_meta,
};

#[test]
fn cached_bottom_plus_top_layers_equals_full_forward() {
    let device = Device::flex();
    let meta = read_meta(&common::model_dir("all-MiniLM-L6-v2"), &LoadOptions::default()).unwrap();
    let pipeline = TextPipeline::new(&ModelInfo::from_meta(meta.clone()), PrefixConfig::none(), 32, 32).unwrap();
    let texts = [
        "How many people live in Berlin?",
        "Berlin has about 3.7 million inhabitants.",
        "short",
        "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill.",
        "Wie viele Menschen leben in Berlin?",
    ];
    let seqs = pipeline.tokenize(&texts, TextKind::Passage).unwrap();
    let (base, _) = load_weights(&meta, &device).unwrap();
    let base = base.valid();
    let full = embed_sequences(&base, &seqs, pipeline.pad_id(), 2, |_| {}).unwrap();
    for frozen in [0, 3, 6] {
        let cache = FrozenPrefixCache::build(&base, &seqs, pipeline.pad_id(), frozen, 2, |_| {}).unwrap();
        let cached = cache.embed(&base, |_| {}).unwrap();
        assert_eq!(cached, full, "frozen = {frozen}");
    }
    // Split over 2 processes (every other length-sorted batch each, what `reproduce` does under
    // mpiexec): each caches and embeds only its batches, and the sum is the full matrix.
    let shares: Vec<_> = (0..2)
        .map(|rank| {
            let cache = FrozenPrefixCache::build_share(&base, &seqs, pipeline.pad_id(), 3, 2, (rank, 2), |_| {}).unwrap();
            cache.embed(&base, |_| {}).unwrap()
        })
        .collect();
    for share in &shares {
        assert_ne!(share, &full, "each share holds only some rows");
        assert!(share.rows().into_iter().any(|r| r.iter().all(|&x| x == 0.0)));
    }
    assert_eq!(&shares[0] + &shares[1], full);
    // A model whose top layer differs gives different embeddings through the same cache.
    let mut other = base.clone();
    let top = other.encoder.layer.len() - 1;
    other.encoder.layer[top] = other.encoder.layer[0].clone();
    let cache = FrozenPrefixCache::build(&base, &seqs, pipeline.pad_id(), 3, 2, |_| {}).unwrap();
    let changed = cache.embed(&other, |_| {}).unwrap();
    assert_ne!(changed, full);
    let direct = embed_sequences(&other, &seqs, pipeline.pad_id(), 2, |_| {}).unwrap();
    assert_eq!(changed, direct);
}
