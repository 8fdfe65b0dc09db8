//! Ctrl-C during `hybrid-ir train`: the run saves a checkpoint at the step it reached, exits
//! cleanly, and `--resume` continues from exactly that step.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{last_checkpoint_step, resume_one_more_step, train_events, workspace};

#[test]
fn sigint_saves_a_checkpoint_and_resume_continues_from_it() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    assert!(model.join("model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = std::env::temp_dir().join(format!("hybrid-ir-ctrlc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run");
    let config = dir.join("train.toml");
    // Long enough that it cannot finish before the signal; small enough to step quickly.
    std::fs::write(
        &config,
        format!(
            "seed = 1\noutput_dir = {run:?}\n[model]\ndir = {model:?}\nquery_max_len = 16\npassage_max_len = 24\n\
             [data]\ncorpora = [\"xquad-r\"]\nlanguages = [\"en\", \"de\"]\nholdout_every = 0\n\
             [sampler]\nkind = \"hybrid\"\nbatch_size = 4\n[schedule]\nsteps = 100000\nval_every = 0\nsave_every = 0\n",
            run = run.display().to_string(),
            model = model.display().to_string()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_hybrid-ir");
    let mut child = Command::new(bin)
        .args(["train", "--config", config.to_str().unwrap(), "--no-progress"])
        .current_dir(workspace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while train_events(&run) < 2 {
        assert!(started.elapsed() < Duration::from_secs(300), "no training steps logged within 300 s");
        assert!(child.try_wait().unwrap().is_none(), "training exited before the signal");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Ctrl-C must exit cleanly:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Interrupted"), "{stdout}");

    // The last checkpoint is the step the run reached, and every logged step is in it.
    let step = last_checkpoint_step(&run);
    assert!(step >= 2, "checkpoint at step {step}");
    assert_eq!(train_events(&run) as u64, step, "metrics.jsonl and the checkpoint agree on the step");

    // Resume continues from that step: one more step, then stop.
    resume_one_more_step(&run, step);
    assert_eq!(train_events(&run) as u64, step + 1);
    std::fs::remove_dir_all(&dir).ok();
}
