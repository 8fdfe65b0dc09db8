//! `reproduce` writes one mAP heatmap per model and, beside them, difference heatmaps: each
//! trained model minus the start model, Hybrid minus X-X-mono and minus X-Y of the same seed.

use std::collections::BTreeMap;

use hybrid_ir_metrics::{LareqaReport, Scores};
use hybrid_ir_train::reproduce::{DirectionResult, ModelResult, write_heatmaps};

/// A report whose pair (x, y) has mAP `base` on the diagonal and `base - 0.2` off it.
fn report(base: f64) -> LareqaReport {
    let languages: Vec<String> = ["de", "en", "es"].map(String::from).to_vec();
    let mut pairs = BTreeMap::new();
    for x in &languages {
        for y in &languages {
            let map = if x == y { base } else { base - 0.2 };
            pairs.insert(LareqaReport::pair_key(x, y), Scores { map, queries: 10, ..Default::default() });
        }
    }
    LareqaReport {
        benchmark: "xquad-r".into(),
        score: Default::default(),
        languages,
        num_queries: 30,
        num_candidates: 30,
        settings: Default::default(),
        per_language: BTreeMap::new(),
        pairs,
        per_query: None,
    }
}

fn model(label: &str, alpha: Option<f64>, seed: Option<u64>, base: f64) -> ModelResult {
    ModelResult { label: label.into(), alpha, run_dir: None, seed, val: None, train_seconds: 0.0, report: report(base) }
}

#[test]
fn heatmaps_and_difference_heatmaps_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let direction = DirectionResult {
        train: "mlqa-r".into(),
        eval: "xquad-r".into(),
        models: vec![
            model("start", None, None, 0.6),
            model("X-X-mono", Some(1.0), Some(42), 0.7),
            model("X-Y", Some(0.0), Some(42), 0.65),
            model("Hybrid", Some(0.5), Some(42), 0.75),
        ],
        summaries: Vec::new(),
        comparisons: Vec::new(),
    };
    let written = write_heatmaps(dir.path(), 1, &direction).unwrap();
    let mut names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    names.sort();
    let expected = [
        "Hybrid",
        "Hybrid_minus_X-X-mono",
        "Hybrid_minus_X-Y",
        "Hybrid_minus_start",
        "X-X-mono",
        "X-X-mono_minus_start",
        "X-Y",
        "X-Y_minus_start",
        "start",
    ]
    .map(|m| format!("heatmap-mlqa-r-to-xquad-r-{m}.svg"));
    assert_eq!(names, expected);
    for path in &written {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        if name.contains("minus") {
            // Hybrid minus X-Y: 0.75 - 0.65 on every cell, signed, and the legend says difference.
            assert!(svg.contains("mAP difference"), "{name}");
            if name.ends_with("Hybrid_minus_X-Y.svg") {
                assert!(svg.contains("+0.100") && svg.contains("minus X-Y"), "{name}");
            }
        } else {
            assert!(!svg.contains("mAP difference"), "{name}");
        }
    }

    // With several seeds the names carry the seed, and Hybrid is compared within its seed only.
    let seeds = DirectionResult {
        models: vec![
            model("start", None, None, 0.6),
            model("X-Y", Some(0.0), Some(1), 0.65),
            model("X-Y", Some(0.0), Some(2), 0.66),
            model("Hybrid", Some(0.5), Some(1), 0.75),
            model("Hybrid", Some(0.5), Some(2), 0.76),
        ],
        ..direction
    };
    let written = write_heatmaps(dir.path(), 2, &seeds).unwrap();
    let names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names.contains(&"heatmap-mlqa-r-to-xquad-r-Hybrid_seed_2_minus_X-Y.svg".to_string()), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.contains("Hybrid") && n.contains("minus_X-Y")).count(), 2, "{names:?}");
}
