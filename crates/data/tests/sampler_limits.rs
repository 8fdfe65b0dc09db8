//! Samplers on a tiny hand-made corpus at the edges users can reach: batch sizes far beyond the
//! corpus, states saved over a corpus that changed since, damaged states. None may panic or
//! abort; each refusal is an error that says what is wrong.

use std::collections::HashSet;
use std::sync::Arc;

use hybrid_ir_data::sampler::{BatchSampler, CorpusFingerprint, CrossPairing, SamplerConfig, SamplerKind};
use hybrid_ir_data::{Example, ParallelCorpus, ParallelCorpusBuilder};

/// (id, lang, query, positive). `a` and `d` share the English answer "Here.", so they form one
/// answer cluster: 3 clusters in all, and 3 ids (a, b, c) exist in two or more languages.
const ROWS: [(&str, &str, &str, &str); 8] = [
    ("a", "en", "Where?", "Here."),
    ("a", "de", "Wo?", "Hier."),
    ("b", "en", "Who?", "Me."),
    ("b", "de", "Wer?", "Ich."),
    ("b", "fr", "Qui?", "Moi."),
    ("c", "en", "When?", "Now."),
    ("c", "fr", "Quand?", "Maintenant."),
    ("d", "en", "Why?", "Here."),
];

fn build(name: &str, rows: &[(&str, &str, &str, &str)]) -> Arc<ParallelCorpus> {
    let mut builder = ParallelCorpusBuilder::new(name);
    for &(id, lang, query, positive) in rows {
        let example = Example { query: query.into(), positive: positive.into(), context: None, negative: None };
        builder.push(id, lang, example).unwrap();
    }
    Arc::new(builder.build())
}

fn tiny() -> Arc<ParallelCorpus> {
    build("tiny", &ROWS)
}

/// The tiny corpus with one text edited: the same ids, languages and counts.
fn tiny_edited() -> Arc<ParallelCorpus> {
    let mut rows = ROWS;
    rows[3].3 = "Ich bin es.";
    build("tiny", &rows)
}

/// Every built-in sampler over `corpora` (one corpus: each kind and pairing; two: the mixer).
fn configs(batch_size: usize) -> Vec<(String, SamplerConfig)> {
    let mut out = Vec::new();
    for kind in [SamplerKind::Mono, SamplerKind::Cross, SamplerKind::Mixed, SamplerKind::Hybrid] {
        for pairing in [CrossPairing::PerPair, CrossPairing::PerBatch] {
            let mut c = SamplerConfig::new(kind);
            c.batch_size = batch_size;
            c.seed = 3;
            c.cross_pairing = pairing;
            out.push((format!("{kind:?}/{pairing:?}"), c));
        }
    }
    out
}

fn samplers(batch_size: usize, corpus: &Arc<ParallelCorpus>) -> Vec<(String, Box<dyn BatchSampler>)> {
    let mut out: Vec<(String, Box<dyn BatchSampler>)> =
        configs(batch_size).into_iter().map(|(name, c)| (name, c.build(corpus.clone()).unwrap())).collect();
    let (_, hybrid) = &configs(batch_size)[6];
    let second = build("second", &ROWS[..5]);
    out.push(("mixer".into(), hybrid.build_multi(vec![corpus.clone(), second]).unwrap()));
    out
}

#[test]
fn huge_batch_sizes_give_corpus_sized_batches() {
    // `--batch-size 18446744073709551615` overflowed a capacity computation (panic) and
    // `--batch-size 1000000000` reserved ~16 GB up front (abort); a batch is bounded by the
    // corpus: here 3 answer clusters.
    let corpus = tiny();
    for batch_size in [usize::MAX, 1_000_000_000, usize::MAX / 2 + 1] {
        for (name, mut sampler) in samplers(batch_size, &corpus) {
            for _ in 0..20 {
                let batch = sampler.next_batch();
                let keys: HashSet<(&str, u64)> = batch.pairs.iter().map(|p| (&*batch.corpus, p.group_key)).collect();
                assert!((1..=3).contains(&batch.pairs.len()), "{name} at {batch_size}: {} pairs", batch.pairs.len());
                assert_eq!(keys.len(), batch.pairs.len(), "{name}: two pairs of one answer cluster");
            }
        }
    }
}

#[test]
fn fingerprint_is_a_stable_content_hash() {
    let corpus = tiny();
    // The same value on every run and platform (a randomly seeded hasher would fail this).
    assert_eq!(format!("{:016x}", corpus.fingerprint()), "03166389ba8a2cbb");
    // (An independent re-implementation of the byte encoding documented at
    // `ParallelCorpus::fingerprint` gives the same value.)
    assert_eq!(CorpusFingerprint::of(&corpus).fingerprint, format!("{:016x}", corpus.fingerprint()));
    // Content, not name: a renamed copy matches.
    assert_eq!(build("renamed", &ROWS).fingerprint(), corpus.fingerprint());
    // Any edit changes it, also ones that keep every count.
    let mut variants = vec![tiny_edited()];
    let mut swapped = ROWS;
    swapped.swap(0, 2); // rows reordered: group order, hence queue indices, differ
    variants.push(build("tiny", &swapped));
    let mut moved = ROWS;
    (moved[0].2, moved[0].3) = ("Where?Here", "."); // text moved between two fields
    variants.push(build("tiny", &moved));
    let mut with_context = ParallelCorpusBuilder::new("tiny");
    for (i, &(id, lang, query, positive)) in ROWS.iter().enumerate() {
        let context = (i == 7).then(|| "Why? Here.".into());
        with_context.push(id, lang, Example { query: query.into(), positive: positive.into(), context, negative: None }).unwrap();
    }
    variants.push(Arc::new(with_context.build()));
    let mut seen = HashSet::from([corpus.fingerprint()]);
    for v in variants {
        assert!(seen.insert(v.fingerprint()), "two different corpora share a fingerprint");
    }
}

#[test]
fn restoring_over_an_edited_corpus_is_refused_and_changes_nothing() {
    let (original, edited) = (tiny(), tiny_edited());
    assert_eq!(original.stats().examples, edited.stats().examples);
    let was = format!("{:016x}", original.fingerprint());
    let now = format!("{:016x}", edited.fingerprint());
    for ((name, mut saved_from), (_, mut target)) in samplers(2, &original).into_iter().zip(samplers(2, &edited)) {
        for _ in 0..3 {
            saved_from.next_batch();
        }
        let state = saved_from.state().unwrap();
        let untouched: Vec<_> = {
            let (_, mut fresh) = samplers(2, &edited).into_iter().find(|(n, _)| *n == name).unwrap();
            (0..5).map(|_| fresh.next_batch()).collect()
        };
        let err = target.restore(&state).unwrap_err().to_string();
        assert!(err.contains("corpus `tiny` changed since the checkpoint"), "{name}: {err}");
        assert!(err.contains(&was) && err.contains(&now), "{name}: both fingerprints in {err}");
        let after: Vec<_> = (0..5).map(|_| target.next_batch()).collect();
        assert_eq!(after, untouched, "{name}: a refused restore changed the sampler");
    }
}

#[test]
fn restoring_over_the_same_content_continues_exactly() {
    let corpus = tiny();
    for ((name, mut straight), (_, mut resumed)) in samplers(2, &corpus).into_iter().zip(samplers(2, &tiny())) {
        for _ in 0..7 {
            straight.next_batch();
        }
        // Through JSON text, as a checkpoint stores it.
        let saved = serde_json::to_string(&straight.state().unwrap()).unwrap();
        resumed.restore(&serde_json::from_str(&saved).unwrap()).unwrap();
        let a: Vec<_> = (0..20).map(|_| straight.next_batch()).collect();
        let b: Vec<_> = (0..20).map(|_| resumed.next_batch()).collect();
        assert_eq!(a, b, "{name}");
        assert_eq!(straight.corpora(), resumed.corpora(), "{name}");
    }
}

#[test]
fn mixer_names_the_corpus_that_changed() {
    let c = &configs(2)[6].1;
    let saved = c.build_multi(vec![tiny(), build("second", &ROWS[..5])]).unwrap().state().unwrap();
    let mut second_rows = ROWS;
    second_rows[1].2 = "Wohin?";
    let mut target = c.build_multi(vec![tiny(), build("second", &second_rows[..5])]).unwrap();
    let err = target.restore(&saved).unwrap_err().to_string();
    assert!(err.contains("corpus `second` changed since the checkpoint"), "{err}");
    assert_eq!(target.corpora().len(), 2);
}

/// A state edited by `damage`, restored into a fresh sampler of the same kind: an error, no panic.
fn damaged(config: &SamplerConfig, damage: impl Fn(&mut serde_json::Value)) -> String {
    let mut sampler = config.build(tiny()).unwrap();
    sampler.next_batch();
    let mut state = sampler.state().unwrap();
    damage(&mut state);
    let mut target = config.build(tiny()).unwrap();
    let err = target.restore(&state).unwrap_err().to_string();
    target.next_batch();
    err
}

#[test]
fn damaged_states_are_refused_not_panicking() {
    let mono = &configs(2)[0].1;
    let err = damaged(mono, |s| s["queues"][0]["items"][0] = 999.into());
    assert!(err.contains("mono: the queue of language `de` does not fit corpus `tiny`"), "{err}");
    let err = damaged(mono, |s| s["queues"][1]["pos"] = 1000.into());
    assert!(err.contains("does not fit"), "{err}");
    let err = damaged(mono, |s| s["queues"][2]["deferred"] = serde_json::json!([7]));
    assert!(err.contains("does not fit"), "{err}");
    // 64 bytes, but not 64 ASCII hex digits: byte slicing would split a character.
    let err = damaged(mono, |s| s["rng"]["seed"] = "é".repeat(32).into());
    assert!(err.contains("bad RNG seed"), "{err}");

    let mixed = &configs(2)[4].1;
    let err = damaged(mixed, |s| s["queue"]["items"] = serde_json::json!([0, 1, 2]));
    assert!(err.contains("mixed: the queue does not fit"), "{err}");
    let per_batch = &configs(2)[3].1;
    let err = damaged(per_batch, |s| {
        let queues = s["pair_queues"].as_array_mut().unwrap();
        let used = queues.iter().position(|q| !q.is_null()).unwrap();
        queues[used]["items"][0] = 3.into(); // id d exists only in English
    });
    assert!(err.contains("cross: the queue of") && err.contains("does not fit"), "{err}");
    let err = damaged(per_batch, |s| s["pair_queues"] = serde_json::json!([]));
    assert!(err.contains("another language pairing"), "{err}");

    // Hybrid: the second child's state is damaged; the first must not stay restored.
    let hybrid = &configs(2)[6].1;
    let err = damaged(hybrid, |s| s["beta_sampler"]["queue"]["items"][0] = 3.into());
    assert!(err.contains("cross: the queue does not fit"), "{err}");
    let mut donor = hybrid.build(tiny()).unwrap();
    (0..4).for_each(|_| drop(donor.next_batch()));
    let mut state = donor.state().unwrap();
    state["beta_sampler"]["queue"]["items"][0] = 3.into();
    let mut target = hybrid.build(tiny()).unwrap();
    let mut fresh = hybrid.build(tiny()).unwrap();
    assert!(target.restore(&state).is_err());
    for _ in 0..10 {
        assert_eq!(target.next_batch(), fresh.next_batch(), "a refused hybrid restore changed a child");
    }
}
