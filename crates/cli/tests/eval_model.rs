//! `hybrid-ir eval --model`: encode a real benchmark with a real model, save the embeddings, and
//! check that evaluating the saved embeddings gives the same report (needs `cargo xtask
//! fetch-models` and ../shared/data, as the whole test suite does).

mod common;

use serde_json::Value;
use common::{hybrid_ir, workspace};

fn ok(args: &[&str]) -> String {
    let out = hybrid_ir(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hybrid-ir {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn model_eval_matches_its_saved_embeddings_and_context_changes_candidates() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    assert!(model.join("model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = std::env::temp_dir().join(format!("hybrid-ir-eval-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (r1, r2, r3, emb) = (dir.join("model.json"), dir.join("saved.json"), dir.join("context.json"), dir.join("emb.parquet"));
    let model_s = model.to_str().unwrap();

    let table = ok(&[
        "eval", "--benchmark", "xquad-r", "--languages", "en,es", "--model", model_s, "--max-len", "64",
        "--out", r1.to_str().unwrap(), "--save-embeddings", emb.to_str().unwrap(),
    ]);
    assert!(table.contains("mAP"), "Table 1 printed:\n{table}");
    ok(&["eval", "--benchmark", "xquad-r", "--languages", "en,es", "--embeddings", emb.to_str().unwrap(), "--out", r2.to_str().unwrap()]);
    let (a, b) = (read(&r1), read(&r2));
    assert_eq!(a["settings"], b["settings"], "saved embeddings reproduce the report exactly");
    assert_eq!(a["per_language"], b["per_language"]);

    // all-MiniLM-L6-v2 is an English retriever: English mono retrieval is far above chance
    // (1 relevant among 1,190 candidates), and its English-Spanish cross retrieval is weaker.
    let en_mono = a["per_language"]["en"]["mono"]["map"].as_f64().unwrap();
    assert!(en_mono > 0.4, "en mono mAP {en_mono}");
    let cross = a["settings"]["cross"]["map"].as_f64().unwrap();
    assert!(cross < en_mono, "cross {cross} vs en mono {en_mono}");

    // Sentence + paragraph is a different candidate text: a different (valid) report.
    ok(&[
        "eval", "--benchmark", "xquad-r", "--languages", "en", "--model", model_s, "--max-len", "64",
        "--candidate-text", "sentence+context", "--out", r3.to_str().unwrap(),
    ]);
    let c = read(&r3);
    let context_map = c["settings"]["mono"]["map"].as_f64().unwrap();
    assert!(context_map > 0.0 && context_map <= 1.0);
    assert_ne!(context_map, en_mono);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_model_eval_arguments_are_refused_clearly() {
    let out = hybrid_ir(&["eval", "--benchmark", "xquad-r", "--model", "models/all-MiniLM-L6-v2", "--candidate-text", "paragraph"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sentence+context"), "{err}");

    let out = hybrid_ir(&["eval", "--benchmark", "xquad-r", "--embeddings", "x.parquet", "--save-embeddings", "y.parquet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--save-embeddings only applies with --model"));

    let out = hybrid_ir(&["eval", "--benchmark", "xquad-r", "--model", "no/such/model"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/model"));
}

#[test]
fn eval_compare_finds_a_real_difference_and_none_between_a_model_and_itself() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    assert!(model.join("model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = tempfile::tempdir().unwrap();
    let (full, cut, plain) = (dir.path().join("full.json"), dir.path().join("cut.json"), dir.path().join("plain.json"));
    let (model_s, full_s, cut_s) = (model.to_str().unwrap(), full.to_str().unwrap(), cut.to_str().unwrap());
    let emb = dir.path().join("full.parquet");
    let emb_s = emb.to_str().unwrap();
    let eval = |max_len: &str, out: &str, extra: &[&str]| {
        let mut args =
            vec!["eval", "--benchmark", "xquad-r", "--languages", "en,es", "--model", model_s, "--max-len", max_len, "--out", out, "--per-query"];
        args.extend(extra);
        ok(&args);
    };
    // The same model with texts cut to 5 tokens ([CLS], 3 word pieces, [SEP]) retrieves worse.
    eval("64", full_s, &["--save-embeddings", emb_s]);
    eval("5", cut_s, &[]);
    let table = ok(&["eval", "compare", full_s, cut_s, "--resamples", "2000"]);
    let row = |metric: &str| table.lines().find(|l| l.starts_with(&format!("| {metric} |"))).unwrap_or_else(|| panic!("{metric}:\n{table}")).to_string();
    assert!(row("map_mono").ends_with("| yes, A better |"), "{table}");
    // An embeddings file is evaluated on --benchmark first: the same rows as its report.
    let from_embeddings =
        ok(&["eval", "compare", emb_s, cut_s, "--resamples", "2000", "--benchmark", "xquad-r", "--languages", "en,es"]);
    let rows = |t: &str| t.lines().filter(|l| l.starts_with("| ")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(rows(&from_embeddings), rows(&table));
    let out = hybrid_ir(&["eval", "compare", emb_s, cut_s]);
    assert_eq!(out.status.code(), Some(2), "a .parquet input needs --benchmark");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--benchmark"));
    let same = ok(&["eval", "compare", full_s, full_s, "--resamples", "2000"]);
    assert!(same.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| metric")).all(|l| l.ends_with("| no |")), "{same}");
    assert!(same.contains("| +0.0000 |"), "a model against itself differs by 0:\n{same}");
    // A report without per-query values (as `eval --out` writes by default) is refused with the
    // command that makes one.
    let mut report = read(&full);
    report.as_object_mut().unwrap().remove("per_query");
    std::fs::write(&plain, report.to_string()).unwrap();
    let out = hybrid_ir(&["eval", "compare", full_s, plain.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no per-query values") && stderr.contains("--per-query"), "{stderr}");
    // Usage errors exit 2.
    let out = hybrid_ir(&["eval", "compare", full_s, cut_s, "--resamples", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
