//! `reproduce --seeds`, paired significance between samplers, `mine` and `--loss paper`, end to
//! end through the binary on the static backbone (seconds per model): the spread over seeds and
//! the paired tests are in results.md / results.json, the tests agree with `eval compare` on the
//! saved per-model reports, and mined negatives train with the paper's loss.

mod common;

use std::path::Path;

use serde_json::Value;
use common::{hybrid_ir, workspace};

fn ok(args: &[&str]) -> String {
    let out = hybrid_ir(args);
    assert!(out.status.success(), "hybrid-ir {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn seeds_significance_mining_and_the_papers_loss() {
    assert!(workspace().join("models/all-MiniLM-L6-v2/model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = std::env::temp_dir().join(format!("hybrid-ir-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("seeds");
    let common = [
        "--backbone", "static", "--model", "models/all-MiniLM-L6-v2", "--one-way", "--eval", "mlqa-r", "--steps", "3",
        "--batch-size", "8", "--lr", "1e-2", "--eval-languages", "en,de", "--resamples", "400", "--no-progress",
    ];

    // Two seeds of two samplers.
    let mut args: Vec<&str> = vec!["reproduce", "--train", "xquad-r", "--alphas", "1,0.5", "--seeds", "2", "--out", s(&out)];
    args.extend(common);
    let md = ok(&args);
    for needle in ["seeds 42–43", "loss in-batch", "X-X-mono (seed 43)", "Across seeds", "Paired significance", "Hybrid vs X-X-mono"] {
        assert!(md.contains(needle), "results.md lacks {needle:?}:\n{md}");
    }
    let results = read(&out.join("results.json"));
    let direction = &results[1][0];
    let summaries = direction["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), 2);
    for summary in summaries {
        let metrics = summary["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 7, "{summary}");
        for m in metrics {
            let v = &m[1];
            assert_eq!(v["n"], 2);
            let (mean, lo, hi) = (v["mean"].as_f64().unwrap(), v["ci_low"].as_f64().unwrap(), v["ci_high"].as_f64().unwrap());
            assert!(lo <= mean && mean <= hi, "{m}");
        }
    }
    // The seeds really differ: two X-X-mono models with different sampler orders and dropout.
    let models = direction["models"].as_array().unwrap();
    let mono: Vec<&Value> = models.iter().filter(|m| m["label"] == "X-X-mono").collect();
    assert_eq!(mono.len(), 2);
    assert_ne!(mono[0]["report"]["settings"], mono[1]["report"]["settings"]);
    // results.json stays small: the per-query values live in the runs' reports only.
    assert!(models.iter().all(|m| m["report"]["per_query"].is_null()));

    // The paired tests equal `eval compare` on the saved reports of the same models.
    let comparison = &direction["comparisons"][0];
    assert_eq!((comparison["a"].as_str(), comparison["b"].as_str()), (Some("X-X-mono"), Some("Hybrid")));
    let runs = out.join("train-xquad-r");
    let reports = |label: &str, second: &str| {
        format!("{},{}", s(&runs.join(label).join("report-mlqa-r.json")), s(&runs.join(second).join("report-mlqa-r.json")))
    };
    let compare_out = dir.join("compare.json");
    ok(&[
        "eval", "compare", &reports("X-X-mono", "X-X-mono-seed-43"), &reports("Hybrid", "Hybrid-seed-43"), "--resamples", "400",
        "--out", s(&compare_out),
    ]);
    let standalone = read(&compare_out);
    for (a, b) in comparison["comparison"]["metrics"].as_array().unwrap().iter().zip(standalone["metrics"].as_array().unwrap()) {
        assert_eq!(a["metric"], b["metric"]);
        // Same queries, resamples and seed: the same test, up to the last bit of a JSON read back
        // (serde_json without `float_roundtrip` may read a value one ulp off).
        for (key, x) in a["test"].as_object().unwrap() {
            let (x, y) = (x.as_f64().unwrap(), b["test"][key].as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{key}: {x} vs {y}");
        }
    }

    // A loss that needs hard negatives is refused on a corpus without them, naming the way out.
    let refused_dir = dir.join("refused");
    let mut args: Vec<&str> = vec!["reproduce", "--train", "xquad-r", "--loss", "paper", "--out", s(&refused_dir)];
    args.extend(common);
    let refused = hybrid_ir(&args);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("hybrid-ir mine") && err.contains("0 of"), "{err}");

    // Mine with a run directory (its best checkpoint) and train on the mined corpus with Eq. (1).
    let mined = dir.join("mined.jsonl");
    let summary = ok(&["mine", "--model", s(&runs.join("Hybrid")), "--corpus", "xquad-r", "--out", s(&mined), "--num-negatives", "2"]);
    assert!(summary.contains("rows got a negative") && summary.contains("positive − first negative"), "{summary}");
    let corpus = hybrid_ir_data::load_user_corpus(&mined).unwrap();
    let stats = corpus.stats();
    assert_eq!(stats.with_negative, stats.examples);
    for g in corpus.groups() {
        for (_, ex) in &g.versions {
            assert_ne!(ex.negative.as_deref(), Some(&*ex.positive));
        }
    }
    let again = hybrid_ir(&["mine", "--model", s(&runs.join("Hybrid")), "--corpus", "xquad-r", "--out", s(&mined)]);
    assert_eq!(again.status.code(), Some(2), "an existing --out without --force is a usage error");

    let without_one_way = hybrid_ir(&["reproduce", "--train", s(&mined), "--out", s(&dir.join("x"))]);
    assert_eq!(without_one_way.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without_one_way.stderr).contains("--one-way"));

    let paper = dir.join("paper");
    let mut args: Vec<&str> = vec!["reproduce", "--train", s(&mined), "--alphas", "0.5", "--loss", "paper", "--out", s(&paper)];
    args.extend(common);
    let md = ok(&args);
    assert!(md.contains("loss paper"), "{md}");
    let config = std::fs::read_to_string(paper.join("train-mined/Hybrid/config.toml")).unwrap();
    assert!(config.contains("kind = \"paper\"") && config.contains("drop_negatives = false"), "{config}");

    std::fs::remove_dir_all(&dir).ok();
}
