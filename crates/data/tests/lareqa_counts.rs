//! Loader counts on the real XQuAD-R and MLQA-R files must equal the documented ones.

mod support;

use std::collections::BTreeMap;

use hybrid_ir_data::{LareqaBenchmark, RetrievalBenchmark};

#[test]
fn xquad_r_counts_match_the_documented_ones() {
    let dataset = LareqaBenchmark::XquadR.load(&support::data_root()).unwrap();
    let bench = RetrievalBenchmark::from_lareqa(&dataset);
    let stats = bench.stats(&dataset);
    assert_eq!(stats.languages, ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]);
    assert_eq!(stats.queries, 13_090);
    assert_eq!(stats.candidates, 13_014);
    assert_eq!(stats.distinct_ids, 1190);
    assert_eq!(stats.relevant_per_query, BTreeMap::from([(11, 13_090)]));
    let expected_candidates = [
        ("ar", 1222), ("de", 1276), ("el", 1234), ("en", 1180), ("es", 1215), ("hi", 1244),
        ("ru", 1219), ("th", 852), ("tr", 1167), ("vi", 1209), ("zh", 1196),
    ];
    for (lang, n) in expected_candidates {
        let l = &stats.per_language[lang];
        assert_eq!((l.candidates, l.queries, l.paragraphs, l.articles), (n, 1190, 240, 48), "{lang}");
    }
    // Every relevant set has exactly one candidate per language.
    for q in 0..bench.queries.len() {
        for li in 0..bench.languages.len() {
            assert_eq!(bench.relevant_in(q, li).count(), 1, "query {q} language {li}");
        }
    }
}

#[test]
fn mlqa_r_counts_match_the_documented_ones() {
    let dataset = LareqaBenchmark::MlqaR.load(&support::data_root()).unwrap();
    let bench = RetrievalBenchmark::from_lareqa(&dataset);
    let stats = bench.stats(&dataset);
    assert_eq!(stats.languages, ["ar", "de", "en", "es", "hi", "vi", "zh"]);
    assert_eq!(stats.queries, 4199);
    assert_eq!(stats.candidates, 20_534);
    assert_eq!(stats.distinct_ids, 1148);
    assert_eq!(stats.ids_by_language_count, BTreeMap::from([(2, 65), (3, 263), (4, 820)]));
    assert_eq!(stats.relevant_per_query, BTreeMap::from([(2, 130), (3, 789), (4, 3280)]));
    let expected = [
        ("ar", 238, 439, 517, 2545), ("de", 281, 456, 512, 2362), ("en", 520, 978, 1148, 6264),
        ("es", 259, 454, 500, 1787), ("hi", 217, 425, 507, 2426), ("vi", 228, 451, 511, 2828),
        ("zh", 244, 443, 504, 2322),
    ];
    for (lang, articles, paragraphs, queries, candidates) in expected {
        let l = &stats.per_language[lang];
        assert_eq!((l.articles, l.paragraphs, l.queries, l.candidates), (articles, paragraphs, queries, candidates), "{lang}");
    }
}
