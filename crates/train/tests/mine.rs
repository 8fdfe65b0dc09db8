//! Hard-negative mining: no mined negative is a sentence of the row's own parallel id or answer
//! cluster (checked against the benchmark's own answer lists, not the miner's pool), negatives
//! stay in the row's language, the window and score filters hold, and mining is deterministic.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hybrid_ir_data::{
    Example, LareqaBenchmark, NegativePolicy, ParallelCorpus, ParallelCorpusBuilder, RetrievalBenchmark, resolve_data_dir,
};
use hybrid_ir_model::{LoadOptions, ModelInfo, TextPipeline};
use hybrid_ir_train::{CandidatePool, MineOptions, NegativeChoice, mine_negatives};

/// A static model over all-MiniLM-L6-v2's word embeddings: fast, and a real (if weak) retriever.
fn static_model() -> (hybrid_ir_model::AnyEncoder, TextPipeline) {
    let base = ModelInfo::read(&common::model_dir("all-MiniLM-L6-v2"), &LoadOptions::default()).unwrap();
    let info = ModelInfo::static_from(base.bert().unwrap(), true, false);
    let pipeline = TextPipeline::new(&info, info.prefixes.clone(), 32, 32).unwrap();
    (info.load(&burn::tensor::Device::flex()).unwrap(), pipeline)
}

#[test]
fn mined_negatives_never_share_the_id_or_answer_cluster_and_stay_in_the_language() {
    let dataset = LareqaBenchmark::XquadR.load(&resolve_data_dir(None)).unwrap();
    let corpus = ParallelCorpus::from_lareqa(&dataset, NegativePolicy::None).unwrap().restrict_languages(&["de", "en"]).unwrap();
    let benchmark = RetrievalBenchmark::from_lareqa(&dataset);
    let mut pool = CandidatePool::of_corpus(&corpus);
    pool.add_benchmark_sentences(&corpus, &benchmark).unwrap();

    // The reference: which ids each (language, sentence) answers, from the benchmark itself.
    let mut answers: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for c in &benchmark.candidates {
        let entry = answers.entry((c.lang.to_string(), c.sentence.to_string())).or_default();
        entry.extend(c.answers.iter().map(|a| a.to_string()));
    }
    let cluster_of: HashMap<&str, u32> = corpus.groups().iter().map(|g| (&*g.id, g.cluster)).collect();
    // XQuAD-R has sentences answering several questions: the exclusion is not vacuous here.
    assert!(answers.values().any(|ids| ids.len() > 1));

    let (model, pipeline) = static_model();
    let options = MineOptions { num_negatives: 3, range_max: Some(20), ..MineOptions::default() };
    let mined = mine_negatives(&model, &pipeline, &corpus, &pool, &options, |_| {}).unwrap();
    assert_eq!(mined.queries, corpus.num_examples());
    assert_eq!(mined.rows.len() + mined.without_negative, mined.queries);
    assert!(mined.rows.len() > mined.queries * 9 / 10, "{} of {}", mined.rows.len(), mined.queries);

    let mut checked = 0;
    for row in &mined.rows {
        let cluster = cluster_of[&*row.id];
        let scores = row.scores.as_ref().unwrap();
        assert!(!row.negatives.is_empty() && row.negatives.len() <= 3);
        for (k, negative) in row.negatives.iter().enumerate() {
            assert_ne!(negative, &row.positive, "row {} {}: the positive itself", row.id, row.lang);
            let key = (row.lang.to_string(), negative.to_string());
            let answered = answers.get(&key).unwrap_or_else(|| panic!("negative of {} is not a {} sentence", row.id, row.lang));
            for id in answered {
                assert_ne!(id.as_str(), &*row.id, "row {} {}: a sentence of its own id", row.id, row.lang);
                assert_ne!(cluster_of.get(id.as_str()), Some(&cluster), "row {} {}: a sentence of its cluster ({id})", row.id, row.lang);
            }
            // Best first, and the window holds the 20 best eligible, so later ones never score higher.
            if k > 0 {
                assert!(scores.negatives[k] <= scores.negatives[k - 1]);
            }
            checked += 1;
        }
    }
    assert!(checked > 2 * mined.queries, "{checked} negatives checked");

    // The same model and options give the same corpus, row for row.
    let again = mine_negatives(&model, &pipeline, &corpus, &pool, &options, |_| {}).unwrap();
    assert_eq!(again.rows, mined.rows);

    // Filters: every chosen negative obeys the margin and the maximum; random choice stays in
    // the window, is seeded, and differs from the top choice somewhere.
    let filtered = MineOptions { margin: Some(0.05), max_score: Some(0.9), range_min: 2, ..options };
    let f = mine_negatives(&model, &pipeline, &corpus, &pool, &filtered, |_| {}).unwrap();
    for row in &f.rows {
        let s = row.scores.as_ref().unwrap();
        for &n in &s.negatives {
            assert!(f64::from(n) <= f64::from(s.positive) - 0.05 + 1e-12 && f64::from(n) <= 0.9 + 1e-12);
        }
    }
    let random = MineOptions { choice: NegativeChoice::Random, ..options };
    let r1 = mine_negatives(&model, &pipeline, &corpus, &pool, &random, |_| {}).unwrap();
    let r2 = mine_negatives(&model, &pipeline, &corpus, &pool, &random, |_| {}).unwrap();
    assert_eq!(r1.rows, r2.rows);
    assert_ne!(r1.rows, mined.rows);
}

/// Ids `a` and `b` share their English answer, so they form one answer cluster; their German
/// answers differ. For `a`'s German query, `b`'s German answer is not a negative (it answers
/// `a`'s question too), however it scores: only `c`'s answer is eligible.
#[test]
fn a_cluster_is_excluded_in_every_language() {
    let ex = |q: &str, p: &str| Example { query: Arc::from(q), positive: Arc::from(p), context: None, negative: None };
    let mut b = ParallelCorpusBuilder::new("tiny");
    b.push("a", "en", ex("Where is the tower?", "The tower is in Paris.")).unwrap();
    b.push("b", "en", ex("Which city has the tower?", "The tower is in Paris.")).unwrap();
    b.push("c", "en", ex("How old is the bridge?", "The bridge is old.")).unwrap();
    b.push("a", "de", ex("Wo steht der Turm?", "Der Turm steht in Paris.")).unwrap();
    b.push("b", "de", ex("Welche Stadt hat den Turm?", "Paris hat den Turm.")).unwrap();
    b.push("c", "de", ex("Wie alt ist die Brücke?", "Die Brücke ist alt.")).unwrap();
    let corpus = b.build();
    let (ga, gb) = (&corpus.groups()[0], &corpus.groups()[1]);
    assert_eq!(ga.cluster, gb.cluster);

    let pool = CandidatePool::of_corpus(&corpus);
    let (model, pipeline) = static_model();
    let mined = mine_negatives(&model, &pipeline, &corpus, &pool, &MineOptions::default(), |_| {}).unwrap();
    let de_a = mined.rows.iter().find(|r| &*r.id == "a" && &*r.lang == "de").unwrap();
    assert_eq!(de_a.negatives, vec![Arc::<str>::from("Die Brücke ist alt.")]);
    let de_b = mined.rows.iter().find(|r| &*r.id == "b" && &*r.lang == "de").unwrap();
    assert_eq!(de_b.negatives, vec![Arc::<str>::from("Die Brücke ist alt.")]);
    // `c` may take either of the tower answers; never its own.
    let en_c = mined.rows.iter().find(|r| &*r.id == "c" && &*r.lang == "en").unwrap();
    assert_eq!(en_c.negatives, vec![Arc::<str>::from("The tower is in Paris.")]);

    // A window beyond the eligible passages leaves rows out, counted; bad options are refused.
    let skip = MineOptions { range_min: 1, range_max: Some(5), ..MineOptions::default() };
    let m = mine_negatives(&model, &pipeline, &corpus, &pool, &skip, |_| {}).unwrap();
    // Every row but c's German one has a single eligible passage, which range_min skips.
    assert_eq!((m.without_negative, m.rows.len()), (5, 1));
    for bad in [
        MineOptions { num_negatives: 0, ..MineOptions::default() },
        MineOptions { range_min: 5, range_max: Some(5), ..MineOptions::default() },
        MineOptions { relative_margin: Some(1.0), ..MineOptions::default() },
        MineOptions { margin: Some(f64::NAN), ..MineOptions::default() },
    ] {
        assert!(mine_negatives(&model, &pipeline, &corpus, &pool, &bad, |_| {}).is_err(), "{bad:?}");
    }
}
