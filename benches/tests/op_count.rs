//! Smoke test of `speed op-count` (the tch pass of `cargo xtask test`; it needs LibTorch and a
//! C++ compiler, which that pass has). The figures themselves live in the benchmark
//! (docs/benchmarks.md), not here: these tests check that the counter counts exactly and that
//! the counted and tiny steps run end to end on a real model.
#![cfg(feature = "tch")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace() -> PathBuf {
    hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn speed(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_speed")).args(args).current_dir(workspace()).output().expect("run speed");
    assert!(out.status.success(), "speed {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn table<'a>(tables: &'a Value, phase: &str, kind: &str) -> &'a serde_json::Map<String, Value> {
    tables["phases"][phase][kind].as_object().unwrap_or_else(|| panic!("no {phase}/{kind} table in {tables}"))
}

#[test]
fn the_counter_counts_a_known_sequence_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let tables: Value = serde_json::from_str(&speed(&["op-count-probe", "--out", &dir.path().display().to_string()])).unwrap();
    // Three times: mm, view, relu (whose CPU kernel is clamp_min), add. Creating the inputs
    // happened before the phase began and is not counted.
    let all = table(&tables, "probe", "all");
    let launching = table(&tables, "probe", "launching");
    for op in ["aten::mm", "aten::view", "aten::relu", "aten::clamp_min", "aten::add"] {
        assert_eq!(all.get(op).and_then(Value::as_u64), Some(3), "{op} in all: {all:?}");
    }
    let expected: Vec<(&str, u64)> = vec![("aten::add", 3), ("aten::clamp_min", 3), ("aten::mm", 3)];
    let got: Vec<(&str, u64)> = launching.iter().map(|(k, v)| (k.as_str(), v.as_u64().unwrap())).collect();
    assert_eq!(got, expected, "launching: a view is metadata, relu is counted at the clamp_min it calls");
    assert!(table(&tables, "probe", "host_reads").is_empty());
    let metadata: Vec<&str> = tables["metadata_ops"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(metadata.contains(&"aten::view") && metadata.contains(&"aten::reshape"));
}

/// Two pairs of 8 tokens: ids inside e5-small-enpt's vocabulary, `<s>` first and `</s>` last.
fn write_tiny_batches(path: &Path) {
    let seq = |k: u32| -> Vec<u32> { [0].into_iter().chain((0..6).map(|i| 100 + 37 * i + k)).chain([2]).collect() };
    let batches = serde_json::json!({"pad_id": 1, "batches": [{"queries": [seq(0), seq(1)], "passages": [seq(2), seq(3)]}]});
    std::fs::write(path, batches.to_string()).unwrap();
}

#[test]
fn op_count_runs_the_counted_and_the_tiny_step_on_a_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let batches = dir.path().join("batches.json");
    write_tiny_batches(&batches);
    let out = dir.path().join("out");
    let (b, o) = (batches.display().to_string(), out.display().to_string());
    let args = ["op-count", "--no-pytorch", "--model", "models/e5-small-enpt", "--batches", &b, "--out", &o, "--steps", "1", "--tiny-steps", "3"];
    let printed = speed(&args);
    assert!(printed.contains("| total |"), "{printed}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("op-count.json")).unwrap()).unwrap();
    for phase in ["forward", "backward", "optimizer"] {
        let launching = report["per_step"][phase]["hybrid-ir"]["launching"].as_f64().unwrap();
        assert!(launching > 0.0, "no operators counted in the {phase} phase: the step's phase marks are lost");
    }
    let total = &report["per_step"]["total"]["hybrid-ir"];
    assert!(total["all"].as_f64().unwrap() >= total["launching"].as_f64().unwrap());
    for model in ["model", "one_head"] {
        assert!(report["tiny_step"][model]["hybrid_ir_step_s_median"].as_f64().unwrap() > 0.0, "{}", report["tiny_step"]);
    }
    assert!(report["machine"]["cpu"].is_string(), "every figure names its machine: {}", report["machine"]);
}
