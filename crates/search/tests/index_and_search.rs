//! Building, resuming and searching an index with a model-free encoder: exact top-k against a
//! brute-force full sort, tie order, independence from shard size, interrupted builds, and the
//! provenance checks.

mod common;

use std::path::Path;

use common::{TrigramEncoder, write_collection};
use hybrid_ir_metrics::ScoreFunction;
use hybrid_ir_search::{
    DocumentTemplate, Index, IndexOptions, Manifest, SearchError, SearchOptions, Side, TextEncoder, build_index, read_documents,
};
use ndarray::Array2;

fn options(shard_size: usize) -> IndexOptions {
    IndexOptions { shard_size, template: DocumentTemplate::default() }
}

fn queries(encoder: &mut TrigramEncoder) -> Array2<f32> {
    let texts = ["river bank", "money tree", "eiffel tower paris", "stone bridge water", "x"];
    encoder.encode(&texts, Side::Query, &mut |_| {}).unwrap()
}

/// Every document scored in f64 and fully sorted (score descending, earlier document first):
/// an implementation independent of the streaming top-k.
fn brute_force(corpus: &Path, encoder: &mut TrigramEncoder, q: &Array2<f32>, k: usize, cosine: bool) -> Vec<Vec<(String, f64)>> {
    let docs: Vec<_> = read_documents(corpus).unwrap().map(Result::unwrap).collect();
    let texts: Vec<String> = docs.iter().map(|d| DocumentTemplate::default().render(d)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let d = encoder.encode(&refs, Side::Passage, &mut |_| {}).unwrap();
    let norm = |v: ndarray::ArrayView1<f32>| if cosine { v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt().max(1e-300) } else { 1.0 };
    q.rows()
        .into_iter()
        .map(|qr| {
            let mut scored: Vec<(usize, f64)> = d
                .rows()
                .into_iter()
                .enumerate()
                .map(|(j, dr)| (j, qr.iter().zip(dr).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>() / (norm(qr) * norm(dr))))
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            scored.into_iter().take(k).map(|(j, s)| (docs[j].docid.clone(), s)).collect()
            // (`k` may be the whole collection: the test looks up every document's true score.)
        })
        .collect()
}

#[test]
fn search_equals_a_brute_force_sort_whatever_the_shard_size() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_collection(&corpus, 2_345);
    let mut encoder = TrigramEncoder::new(48);
    let q = queries(&mut encoder);
    for cosine in [true, false] {
        let score = if cosine { ScoreFunction::Cosine } else { ScoreFunction::Dot };
        let want = brute_force(&corpus, &mut encoder, &q, usize::MAX, cosine);
        let mut previous: Option<Vec<Vec<String>>> = None;
        for shard_size in [1_000, 97, 2_345] {
            let out = dir.path().join(format!("index-{shard_size}-{cosine}"));
            let summary = build_index(&corpus, &out, &mut encoder, &options(shard_size), |_| {}).unwrap();
            assert_eq!(summary.documents, 2_345);
            assert_eq!(summary.shards, 2_345usize.div_ceil(shard_size));
            let index = Index::open(&out).unwrap();
            index.check_encoder(&mut encoder).unwrap();
            let hits = index.search(&q, &SearchOptions { top_k: 50, score }, |_| {}).unwrap();
            let ids: Vec<Vec<String>> = hits.iter().map(|h| h.iter().map(|x| x.docid.clone()).collect()).collect();
            for (qi, (got, want)) in hits.iter().zip(&want).enumerate() {
                assert_eq!(got.len(), 50);
                for (r, (g, (wid, ws))) in got.iter().zip(want).enumerate() {
                    assert!((f64::from(g.score) - ws).abs() < 1e-4, "query {qi} rank {r}: {} vs {ws}", g.score);
                    // Same ids, except where f32 rounding may order scores equal in f64 otherwise.
                    if g.docid != *wid {
                        let (_, true_score) = want.iter().find(|(id, _)| *id == g.docid).expect("every document is listed");
                        assert!((true_score - ws).abs() < 1e-5, "query {qi} rank {r}: {} ({true_score}) vs {wid} ({ws})", g.docid);
                    }
                }
            }
            if let Some(prev) = &previous {
                assert_eq!(prev, &ids, "the hits changed with the shard size ({shard_size})");
            }
            previous = Some(ids);
        }
    }
}

#[test]
fn equal_scores_rank_the_earlier_document_first() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    // d0, d7, d14, … have the same text: equal scores for every query when their titles agree.
    write_collection(&corpus, 60);
    let mut encoder = TrigramEncoder::new(16);
    build_index(&corpus, &dir.path().join("i"), &mut encoder, &options(4), |_| {}).unwrap();
    let index = Index::open(&dir.path().join("i")).unwrap();
    let q = encoder.encode(&["river"], Side::Query, &mut |_| {}).unwrap();
    let hits = &index.search(&q, &SearchOptions { top_k: 60, score: ScoreFunction::Dot }, |_| {}).unwrap()[0];
    let pos = |id: &str| hits.iter().position(|h| h.docid == id).unwrap();
    let docs: Vec<_> = read_documents(&corpus).unwrap().map(Result::unwrap).collect();
    let mut checked = 0;
    for i in (7..60).step_by(7) {
        for j in (0..i).step_by(7) {
            if docs[i].title == docs[j].title {
                assert_eq!(hits[pos(&docs[i].docid)].score, hits[pos(&docs[j].docid)].score);
                assert!(pos(&docs[j].docid) < pos(&docs[i].docid), "d{j} must rank before d{i}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked} tied pairs");
}

#[test]
fn an_interrupted_build_continues_and_ends_as_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_collection(&corpus, 1_000);
    let fresh_dir = dir.path().join("fresh");
    build_index(&corpus, &fresh_dir, &mut TrigramEncoder::new(32), &options(300), |_| {}).unwrap();

    let out = dir.path().join("resumed");
    let mut failing = TrigramEncoder::new(32);
    failing.fail_after = Some(700);
    let err = build_index(&corpus, &out, &mut failing, &options(300), |_| {}).unwrap_err();
    assert!(err.to_string().contains("interrupted (test)"), "{err}");
    let partial = Manifest::read(&out).unwrap().unwrap();
    assert_eq!((partial.shards.len(), partial.documents, partial.complete), (2, 600, false));
    let open = Index::open(&out).unwrap_err().to_string();
    assert!(open.contains("interrupted") && open.contains("600 documents"), "{open}");

    // A leftover temporary file of a killed writer is cleaned up, and only the rest is encoded.
    std::fs::write(out.join(".shard-00002.parquet.tmp-999"), b"half").unwrap();
    let mut encoder = TrigramEncoder::new(32);
    let summary = build_index(&corpus, &out, &mut encoder, &options(300), |_| {}).unwrap();
    assert_eq!((summary.kept_shards, summary.encoded, summary.shards), (2, 400, 4));
    assert!(!out.join(".shard-00002.parquet.tmp-999").exists());
    let (a, b) = (Manifest::read(&fresh_dir).unwrap().unwrap(), Manifest::read(&out).unwrap().unwrap());
    assert_eq!(a.shards, b.shards, "a resumed build writes the same shards, byte for byte");
    // Complete: running again does nothing.
    let again = build_index(&corpus, &out, &mut encoder, &options(300), |_| {}).unwrap();
    assert_eq!(again.encoded, 0);

    // A damaged shard is found, and it and the shards after it are encoded again.
    let shard = out.join("shard-00001.parquet");
    let mut bytes = std::fs::read(&shard).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&shard, bytes).unwrap();
    let err = Index::open(&out).unwrap().search(&Array2::zeros((1, 32)), &SearchOptions::default(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("shard-00001.parquet does not match the manifest"), "{err}");
    let repaired = build_index(&corpus, &out, &mut encoder, &options(300), |_| {}).unwrap();
    assert_eq!((repaired.kept_shards, repaired.encoded), (1, 700));
    assert_eq!(Manifest::read(&out).unwrap().unwrap().shards, a.shards);
}

#[test]
fn another_model_prefix_template_or_corpus_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_collection(&corpus, 200);
    let out = dir.path().join("index");
    let mut encoder = TrigramEncoder::new(32);
    encoder.fail_after = Some(100);
    build_index(&corpus, &out, &mut encoder, &options(50), |_| {}).unwrap_err();

    let mut other_model = TrigramEncoder::new(32);
    other_model.seed = 2;
    let err = build_index(&corpus, &out, &mut other_model, &options(50), |_| {}).unwrap_err().to_string();
    assert!(err.contains("cannot be continued") && err.contains("encoder"), "{err}");
    let mut other_prefix = TrigramEncoder::new(32);
    other_prefix.passage_prefix = "doc: ".into();
    let err = build_index(&corpus, &out, &mut other_prefix, &options(50), |_| {}).unwrap_err().to_string();
    assert!(err.contains("passage prefix"), "{err}");
    let template = IndexOptions { shard_size: 50, template: DocumentTemplate::new("{text}").unwrap() };
    let err = build_index(&corpus, &out, &mut TrigramEncoder::new(32), &template, |_| {}).unwrap_err().to_string();
    assert!(err.contains("document template"), "{err}");
    let bigger = dir.path().join("bigger.jsonl");
    write_collection(&bigger, 201);
    let err = build_index(&bigger, &out, &mut TrigramEncoder::new(32), &options(50), |_| {}).unwrap_err().to_string();
    assert!(err.contains("corpus size"), "{err}");
    // Same size, other documents: caught as the corpus streams past the kept shards.
    let text = std::fs::read_to_string(&corpus).unwrap().replacen("\"d3\"", "\"e3\"", 1);
    std::fs::write(&corpus, text).unwrap();
    let err = build_index(&corpus, &out, &mut TrigramEncoder::new(32), &options(50), |_| {}).unwrap_err().to_string();
    assert!(err.contains("line 4") && err.contains("collection changed"), "{err}");

    // Search with another model than the index's.
    let complete = dir.path().join("complete");
    build_index(&bigger, &complete, &mut TrigramEncoder::new(32), &options(50), |_| {}).unwrap();
    let index = Index::open(&complete).unwrap();
    let err = index.check_encoder(&mut other_model).unwrap_err().to_string();
    assert!(err.contains("not the encoder the index was built with"), "{err}");
    // A non-empty directory that is no index is not written into.
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let err = build_index(&corpus, &busy, &mut TrigramEncoder::new(32), &options(50), |_| {}).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn a_shard_of_another_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    write_collection(&a, 100);
    write_collection(&b, 120);
    let mut encoder = TrigramEncoder::new(16);
    let mut other = TrigramEncoder::new(16);
    other.seed = 9;
    build_index(&a, &dir.path().join("ia"), &mut encoder, &options(50), |_| {}).unwrap();
    build_index(&b, &dir.path().join("ib"), &mut other, &options(50), |_| {}).unwrap();
    std::fs::copy(dir.path().join("ib/shard-00001.parquet"), dir.path().join("ia/shard-00001.parquet")).unwrap();
    let index = Index::open(&dir.path().join("ia")).unwrap();
    let q = encoder.encode(&["river"], Side::Query, &mut |_| {}).unwrap();
    match index.search(&q, &SearchOptions::default(), |_| {}) {
        Err(SearchError::Index { message, .. }) => assert!(message.contains("shard-00001.parquet"), "{message}"),
        other => panic!("{other:?}"),
    }
}
