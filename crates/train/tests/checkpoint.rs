//! Corrupt or truncated checkpoints are refused with an error naming the file; a non-finite
//! loss stops the run without writing a checkpoint.

mod common;

use std::path::Path;

use hybrid_ir_train::checkpoint::{CheckpointDir, Pointer, verify};
use hybrid_ir_train::{RunOptions, StopReason, TrainError, train};

fn resume_error(config: &hybrid_ir_train::TrainConfig) -> String {
    train(config, &RunOptions { resume: true, ..Default::default() }).unwrap_err().to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Two steps, no validation split, no warm-up: a run whose checkpoints come quickly.
fn two_step_config(run: &Path) -> hybrid_ir_train::TrainConfig {
    let mut config = common::small_config(run, 2);
    config.schedule.val_every = 0;
    config.data.holdout_every = 0;
    config.optim.warmup_steps = 0;
    config
}

#[test]
fn corrupt_truncated_or_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = two_step_config(&run);
    let summary = train(&config, &RunOptions { stop_after_step: Some(1), ..Default::default() }).unwrap();
    assert_eq!(summary.step, 1);
    let ckpt = CheckpointDir::of_run(&run).resolve(Pointer::Last).unwrap().unwrap();
    verify(&ckpt).expect("a fresh checkpoint verifies");
    let pristine = dir.path().join("pristine");
    copy_dir(&run, &pristine);
    let restore = || {
        std::fs::remove_dir_all(&run).unwrap();
        copy_dir(&pristine, &run);
    };

    // One flipped byte in the middle of the weights.
    let model = ckpt.join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&model, &bytes).unwrap();
    let err = resume_error(&config);
    assert!(err.contains("model.bpk") && err.contains("corrupt"), "{err}");
    restore();

    // Truncated optimizer state.
    let optim = ckpt.join("optimizer.bpk");
    let len = std::fs::metadata(&optim).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&optim).unwrap().set_len(len / 3).unwrap();
    let err = resume_error(&config);
    assert!(err.contains("optimizer.bpk") && err.contains("truncated"), "{err}");
    restore();

    // Missing state, garbage manifest, dangling pointer.
    std::fs::remove_file(ckpt.join("state.json")).unwrap();
    let err = resume_error(&config);
    assert!(err.contains("state.json") && err.contains("missing"), "{err}");
    restore();
    std::fs::write(ckpt.join("manifest.json"), b"{not json").unwrap();
    let err = resume_error(&config);
    assert!(err.contains("manifest.json"), "{err}");
    restore();
    std::fs::write(run.join("checkpoints/last"), b"step-999999\n").unwrap();
    let err = resume_error(&config);
    assert!(err.contains("step-999999"), "{err}");
    restore();

    // Export refuses the corrupt checkpoint too.
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&model, &bytes).unwrap();
    let err = hybrid_ir_train::export_run(&run, &dir.path().join("hf"), true).unwrap_err().to_string();
    assert!(err.contains("model.bpk"), "{err}");
    restore();

    // A different config may not resume this run.
    let mut other = config.clone();
    other.optim.lr = 5e-5;
    let err = resume_error(&other);
    assert!(err.contains("different config"), "{err}");

    // The untouched copy resumes and finishes.
    let summary = train(&config, &RunOptions { resume: true, ..Default::default() }).unwrap();
    assert_eq!(summary.step, 2);
}

#[test]
fn non_finite_loss_stops_with_the_step_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::small_config(dir.path(), 3);
    config.schedule.val_every = 0;
    config.data.holdout_every = 0;
    // cosine / 1e-38 overflows f32: the logits are infinite.
    config.loss.temperature = 1e-38;
    let err = train(&config, &RunOptions::default()).unwrap_err();
    // Depending on how the loss stabilises its log-sum-exp, the loss or its gradient is the
    // first non-finite value; either must stop the run at step 1.
    match &err {
        TrainError::NonFiniteLoss { step, last_good_step, .. } | TrainError::NonFiniteGradient { step, last_good_step } => {
            assert_eq!(*step, 1);
            assert_eq!(*last_good_step, None);
        }
        other => panic!("expected a non-finite loss or gradient error, got {other}"),
    }
    assert!(err.to_string().contains("step 1"), "{err}");
    assert!(CheckpointDir::of_run(dir.path()).resolve(Pointer::Last).unwrap().is_none());
}

#[test]
fn one_writer_per_run_directory_and_stale_temporaries_go() {
    use hybrid_ir_train::checkpoint::RunDirLock;
    let dir = tempfile::tempdir().unwrap();
    let held = RunDirLock::acquire(dir.path()).unwrap();
    let err = RunDirLock::acquire(dir.path()).unwrap_err().to_string();
    assert!(err.contains("in use by another run") && err.contains(&std::process::id().to_string()), "{err}");
    drop(held);
    let again = RunDirLock::acquire(dir.path()).expect("a released lock can be taken again");
    drop(again);

    // A temporary checkpoint directory left by a killed process is removed at the next start.
    let ckpts = CheckpointDir::of_run(dir.path());
    std::fs::create_dir_all(ckpts.root().join(".tmp-step-000003-99999")).unwrap();
    assert_eq!(ckpts.remove_stale_temporaries().unwrap(), 1);
    assert!(!ckpts.root().join(".tmp-step-000003-99999").exists());
}

#[test]
fn a_manifest_entry_outside_the_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("step-000001");
    std::fs::create_dir_all(&ckpt).unwrap();
    let manifest = serde_json::json!({"files": [
        {"file": "model.bpk", "bytes": 0, "sha256": ""},
        {"file": "optimizer.bpk", "bytes": 0, "sha256": ""},
        {"file": "state.json", "bytes": 0, "sha256": ""},
        {"file": "../outside", "bytes": 0, "sha256": ""},
    ]});
    std::fs::write(ckpt.join("manifest.json"), manifest.to_string()).unwrap();
    let err = verify(&ckpt).unwrap_err().to_string();
    assert!(err.contains("not a file name inside the checkpoint"), "{err}");
}

#[test]
fn a_corrupt_last_names_the_newest_intact_checkpoint_and_can_fall_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = two_step_config(&run);
    train(&config, &RunOptions { stop_after_step: Some(1), ..Default::default() }).unwrap();
    let ckpts = run.join("checkpoints");
    copy_dir(&ckpts.join("step-000001"), &dir.path().join("keep"));
    train(&config, &RunOptions { resume: true, ..Default::default() }).unwrap();
    // Put the step-1 checkpoint back beside `last` (step 2), then corrupt step 2.
    copy_dir(&dir.path().join("keep"), &ckpts.join("step-000001"));
    let model = ckpts.join("step-000002/model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&model, &bytes).unwrap();

    let err = resume_error(&config);
    assert!(err.contains("model.bpk") && err.contains("step-000001") && err.contains("--resume-intact"), "{err}");
    let resumed = train(&config, &RunOptions { resume: true, resume_intact: true, ..Default::default() }).unwrap();
    assert_eq!(resumed.step, 2, "resumed from step 1 and trained step 2 again");
    verify(&CheckpointDir::of_run(&run).resolve(Pointer::Last).unwrap().unwrap()).expect("the new last verifies");
}

/// `loss.cached` switched between stop and resume (moving a plain-step run onto MPI ranks, which
/// need the cached step) resumes instead of being refused as another config.
#[test]
fn a_run_resumes_with_the_cached_step_switched() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::small_config(&dir.path().join("run"), 2);
    config.loss.cached = false;
    let half = train(&config, &RunOptions { stop_after_step: Some(1), ..Default::default() }).unwrap();
    assert_eq!((half.step, half.stop), (1, StopReason::StopAfter));
    config.loss.cached = true;
    let rest = train(&config, &RunOptions { resume: true, ..Default::default() }).unwrap();
    assert_eq!((rest.step, rest.stop), (2, StopReason::Completed));
    // A real change of the run is still refused.
    config.sampler.alpha = if config.sampler.alpha == 0.25 { 0.75 } else { 0.25 };
    let err = train(&config, &RunOptions { resume: true, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("different config"), "{err}");
}
