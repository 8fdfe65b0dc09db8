//! `export` writes a model card: YAML front matter that a YAML parser reads with the fields the
//! Hugging Face hub uses, and the run's data, sampler, loss, hyperparameters, evaluation, language
//! bias, usage and citation in the text. Needs `cargo xtask fetch-models` and the data.

mod common;

use std::collections::BTreeMap;

use hybrid_ir_metrics::{LanguageScores, LareqaReport, Scores, SettingScores};
use hybrid_ir_train::{ExportOptions, RunOptions, export_run_with, train};
use yaml_rust2::{Yaml, YamlLoader};

/// The YAML between the leading `---` lines of a card.
fn front_matter(card: &str) -> Yaml {
    let rest = card.strip_prefix("---\n").expect("the card starts with front matter");
    let end = rest.find("\n---\n").expect("the front matter is closed");
    let mut docs = YamlLoader::load_from_str(&rest[..end]).expect("the front matter is valid YAML");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_vec().expect("a YAML list").iter().map(|x| x.as_str().expect("a string").to_string()).collect()
}

fn scores(map: f64, rank_distance: Option<f64>) -> Scores {
    let (mrr_at_10, recall_at_1, recall_at_10) = (map + 0.01, map - 0.1, map + 0.1);
    Scores { map, mrr_at_10, recall_at_1, recall_at_10, rank_distance, queries: 10, ..Default::default() }
}

/// A report with recognisable numbers (the card must copy them, not compute them).
fn report() -> LareqaReport {
    let languages: Vec<String> = ["de", "en", "es"].map(String::from).to_vec();
    let per_language: BTreeMap<String, LanguageScores> = languages
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let x = 0.5 + i as f64 / 100.0;
            let multi = scores(x - 0.1, Some(40.0 + i as f64));
            (l.clone(), LanguageScores { queries: 10, mono: scores(x, None), cross: scores(x - 0.2, None), multi })
        })
        .collect();
    let mut pairs = BTreeMap::new();
    for x in &languages {
        for y in &languages {
            pairs.insert(LareqaReport::pair_key(x, y), scores(if x == y { 0.8 } else { 0.6 }, None));
        }
    }
    LareqaReport {
        benchmark: "xquad-r".into(),
        score: Default::default(),
        languages,
        num_queries: 30,
        num_candidates: 30,
        settings: SettingScores { mono: scores(0.7321, None), cross: scores(0.6543, None), multi: scores(0.5987, Some(41.27)) },
        per_language,
        pairs,
        per_query: None,
    }
}

#[test]
fn export_writes_a_model_card_with_front_matter_the_hub_reads() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut config = common::small_config(&run, 2);
    config.schedule.val_every = 0;
    config.data.holdout_every = 0;
    train(&config, &RunOptions::default()).unwrap();

    // Without an evaluation the card says so and writes no heatmap.
    let plain = dir.path().join("plain");
    export_run_with(&run, &plain, &ExportOptions::default()).unwrap();
    let card = std::fs::read_to_string(plain.join("README.md")).unwrap();
    assert!(card.contains("no retrieval evaluation"), "{card}");
    assert!(!plain.join("heatmap.svg").exists());

    // With a final evaluation: its table, the language bias and the heatmap.
    std::fs::write(run.join("final_eval.json"), serde_json::to_vec(&report()).unwrap()).unwrap();
    let out = dir.path().join("my-retriever");
    export_run_with(&run, &out, &ExportOptions::default()).unwrap();
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    let yaml = front_matter(&card);
    assert_eq!(strings(&yaml["language"]), ["de", "en", "es"]);
    assert_eq!(yaml["library_name"].as_str(), Some("sentence-transformers"));
    assert_eq!(yaml["pipeline_tag"].as_str(), Some("sentence-similarity"));
    let tags = strings(&yaml["tags"]);
    for tag in ["sentence-transformers", "sentence-similarity", "feature-extraction"] {
        assert!(tags.iter().any(|t| t == tag), "{tag} missing from {tags:?}");
    }
    // The fetched base model's hub id, not the local directory.
    assert_eq!(yaml["base_model"].as_str(), Some("sentence-transformers/all-MiniLM-L6-v2"));

    for expected in [
        "# my-retriever",
        "`xquad-r`",                      // corpus
        "| languages | de, en, es (3) |", // its languages
        "| sampler | hybrid, α = 0.5",    // sampler and α
        "in_batch, cosine score, temperature τ = 0.05",
        "| steps | 2 planned, checkpoint at step 2 |",
        "| batch size | 8 pairs",
        "learning rate 0.0001",
        "| seed | 7 |",
        "| monolingual | 0.7321 |",
        "| cross-lingual | 0.6543 |",
        "| multilingual | 0.5987 |",
        "Mean rank distance: **41.3**", // language bias
        "| es | 0.5200 | 0.3200 | 0.4200 | 42.0 |",
        "![mAP heatmap](heatmap.svg)",
        "SentenceTransformer(",
        "arXiv:2408.10536",
        "Elmahdy, Adel and Lin, Sheng-Chieh and Ahmad, Amin",
    ] {
        assert!(card.contains(expected), "card lacks {expected:?}:\n{card}");
    }
    let svg = std::fs::read_to_string(out.join("heatmap.svg")).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..60.min(svg.len())]);

    // A base model id given by hand; one that is not a hub id is refused before anything is written.
    let named = dir.path().join("named");
    let options = ExportOptions { base_model_id: Some("me/my-base".into()), ..Default::default() };
    export_run_with(&run, &named, &options).unwrap();
    let yaml = front_matter(&std::fs::read_to_string(named.join("README.md")).unwrap());
    assert_eq!(yaml["base_model"].as_str(), Some("me/my-base"));
    let bad = dir.path().join("bad");
    let options = ExportOptions { base_model_id: Some("not an id".into()), ..Default::default() };
    let err = export_run_with(&run, &bad, &options).unwrap_err().to_string();
    assert!(err.contains("not an id") && err.contains("owner/name"), "{err}");
    assert!(!bad.exists(), "a refused export wrote {}", bad.display());

    // --no-card.
    let bare = dir.path().join("bare");
    export_run_with(&run, &bare, &ExportOptions { no_card: true, ..Default::default() }).unwrap();
    assert!(bare.join("model.safetensors").is_file() && !bare.join("README.md").exists());
}
