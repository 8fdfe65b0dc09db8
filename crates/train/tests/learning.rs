//! A short CPU run on a real model lowers the validation loss, and leaves a complete run dir.

mod common;

use hybrid_ir_train::{RunOptions, StopReason, train};

#[test]
fn short_run_lowers_validation_loss_and_writes_the_run_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::small_config(dir.path(), 16);
    config.schedule.val_every = 8;
    let summary = train(&config, &RunOptions::default()).expect("training runs");
    assert_eq!(summary.stop, StopReason::Completed);
    assert_eq!(summary.step, 16);
    let vals = &summary.val_history;
    assert_eq!(vals.iter().map(|v| v.0).collect::<Vec<_>>(), vec![0, 8, 16], "validation at 0, 8, 16: {vals:?}");
    let (start, end) = (vals[0].1, vals[2].1);
    eprintln!("validation loss {start:.4} -> {end:.4}");
    assert!(end < start, "validation loss did not go down: {vals:?}");
    let (best_step, best) = summary.best_val.unwrap();
    assert!(best_step > 0 && best <= end + 1e-12);

    for file in ["config.toml", "metrics.jsonl", "loss.svg", "run.md", "checkpoints/last", "checkpoints/best"] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let train_lines = lines.lines().filter(|l| l.contains("\"kind\":\"train\"")).count();
    assert_eq!(train_lines, 16);
    let card = std::fs::read_to_string(dir.path().join("run.md")).unwrap();
    assert!(card.contains("all-MiniLM-L6-v2") && card.contains("validation loss"), "{card}");
    let svg = std::fs::read_to_string(dir.path().join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
}
