//! `mpiexec -n 2 hybrid-ir train --config ...` with no other flag trains as two ranks; when one
//! rank is killed in the middle of the run, the other stops within 60 s with a non-zero exit, the
//! launcher's message names the lost process (our log maps it to its rank), and the last
//! checkpoint is intact: one process resumes from it (another world size, same global batch).
#![cfg(feature = "mpi")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{last_checkpoint_step, resume_one_more_step, train_events, workspace};

/// The PID the training log gives for `rank` ("... rank 1: pid 1234 ...").
fn pid_of_rank(log: &str, rank: usize) -> Option<u32> {
    let tag = format!("rank {rank}: pid ");
    let at = log.find(&tag)? + tag.len();
    log[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[test]
fn a_killed_rank_stops_the_others_and_the_last_checkpoint_resumes() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    assert!(model.join("model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = dir.path().join("train.toml");
    std::fs::write(
        &config,
        format!(
            "seed = 1\noutput_dir = {run:?}\n[model]\ndir = {model:?}\nquery_max_len = 16\npassage_max_len = 24\n\
             [data]\ncorpora = [\"xquad-r\"]\nlanguages = [\"en\", \"de\"]\nholdout_every = 0\n\
             [sampler]\nkind = \"hybrid\"\nbatch_size = 4\n[loss]\nchunk_size = 2\n\
             [schedule]\nsteps = 100000\nval_every = 0\nsave_every = 2\n",
            run = run.display().to_string(),
            model = model.display().to_string()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_hybrid-ir");
    let log_path = dir.path().join("stderr.log");
    let mut launcher = Command::new(hybrid_ir_collective::testing::mpiexec())
        .args(["-n", "2", bin, "train", "--config", config.to_str().unwrap(), "--no-progress"])
        .current_dir(workspace())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while train_events(&run) < 3 {
        assert!(started.elapsed() < Duration::from_secs(300), "no training steps logged within 300 s");
        if let Some(status) = launcher.try_wait().unwrap() {
            panic!("the ranks exited ({status}) before the kill:\n{}", std::fs::read_to_string(&log_path).unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    let victim = pid_of_rank(&log, 1).unwrap_or_else(|| panic!("no PID of rank 1 in the log:\n{log}"));
    assert!(log.contains("data-parallel training over rank 0: pid"), "{log}");
    assert!(Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap().success());
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = launcher.try_wait().unwrap() {
            break status;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "rank 0 still runs 60 s after rank 1 was killed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut launcher.stdout.take().unwrap(), &mut said).unwrap();
    said += &std::fs::read_to_string(&log_path).unwrap();
    assert!(!status.success(), "the launcher must fail when a rank is lost:\n{said}");
    // MPICH's Hydra: "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES / PID <pid> ...".
    assert!(said.contains(&format!("PID {victim}")), "the launcher does not name the lost process {victim}:\n{said}");
    // Rank 1 logs warnings only: the log is rank 0's.
    assert_eq!(said.matches("loaded start model").count(), 1, "{said}");

    // The last checkpoint verifies, and one process continues from it.
    let step = last_checkpoint_step(&run);
    assert!(step >= 2 && step % 2 == 0, "last checkpoint at step {step}");
    resume_one_more_step(&run, step);
}

/// `mpiexec -n 2 hybrid-ir eval --model ...`: each rank encodes every other batch, rank 0
/// reports; the embeddings (saved) and the report equal one process's, bit for bit.
#[test]
fn two_ranks_split_the_encoding_and_report_what_one_process_reports() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    assert!(model.join("model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_hybrid-ir");
    let eval = |launcher: Option<&str>, tag: &str| -> (serde_json::Value, Vec<u8>, String) {
        let (report, embeddings) = (dir.path().join(format!("{tag}.json")), dir.path().join(format!("{tag}.parquet")));
        let args = [
            "eval", "--benchmark", "xquad-r", "--languages", "en,de", "--model", model.to_str().unwrap(), "--max-len", "48",
            "--batch-size", "32", "--out", report.to_str().unwrap(), "--save-embeddings", embeddings.to_str().unwrap(),
        ];
        let out = match launcher {
            Some(mpiexec) => Command::new(mpiexec).args(["-n", "2", bin]).args(args).current_dir(workspace()).output(),
            None => Command::new(bin).args(args).current_dir(workspace()).output(),
        }
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (report, std::fs::read(&embeddings).unwrap(), stdout.into_owned())
    };
    let (one, one_embeddings, one_said) = eval(None, "one");
    let mpiexec = hybrid_ir_collective::testing::mpiexec();
    let (two, two_embeddings, two_said) = eval(Some(&mpiexec), "two");
    // Rank 0 alone prints the tables: the same output as one process.
    assert!(one_said.contains("mAP"), "{one_said}");
    assert_eq!(one_said, two_said);
    assert_eq!(one["settings"], two["settings"]);
    assert_eq!(one["per_language"], two["per_language"]);
    assert!(one_embeddings == two_embeddings, "the saved embeddings differ between one process and two ranks");
    assert!(one["settings"]["mono"]["map"].as_f64().unwrap() > 0.1);
}

/// `mpiexec -n 2 hybrid-ir reproduce`: the models train over both ranks (validation losses close
/// to one process's), the evaluation encoding (through the frozen-bottom cache) is split
/// over them, and rank 0 alone prints and writes. Re-run over two ranks on the one-process
/// output (its finished runs are reused), the tables and reports are one process's, bit for bit.
#[test]
fn two_ranks_reproduce_what_one_process_reproduces() {
    let model = workspace().join("models/all-MiniLM-L6-v2");
    assert!(model.join("model.safetensors").exists(), "run `cargo xtask fetch-models` first");
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_hybrid-ir");
    let mpiexec = hybrid_ir_collective::testing::mpiexec();
    let reproduce = |launcher: Option<&str>, tag: &str| -> (serde_json::Value, String) {
        let out = dir.path().join(tag);
        let args = [
            "reproduce", "--model", model.to_str().unwrap(), "--train", "mlqa-r", "--eval", "xquad-r", "--one-way",
            "--eval-languages", "en,de", "--alphas", "1,0", "--steps", "2", "--batch-size", "6", "--trainable-layers", "1",
            "--query-max-len", "16", "--passage-max-len", "32", "--eval-batch-size", "32", "--resamples", "200", "--no-progress",
            "--out", out.to_str().unwrap(),
        ];
        let run = match launcher {
            Some(mpiexec) => Command::new(mpiexec).args(["-n", "2", bin]).args(args).current_dir(workspace()).output(),
            None => Command::new(bin).args(args).current_dir(workspace()).output(),
        }
        .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
        let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
        (results[1][0]["models"].clone(), stdout)
    };
    // The tables without their first line (the wall time) and the `written to` line (the path).
    let tables = |stdout: &str| -> String {
        stdout.lines().skip(1).filter(|l| !l.starts_with("written to")).collect::<Vec<_>>().join("\n")
    };
    let field = |model: &serde_json::Value, key: &str| model[key].clone();

    let (one, one_said) = reproduce(None, "one");
    let labels: Vec<_> = one.as_array().unwrap().iter().map(|m| field(m, "label")).collect();
    assert_eq!(labels, ["start", "X-X-mono", "X-Y"]);
    assert_eq!(one_said.matches("Table 1 style").count(), 1, "{one_said}");

    // Trained over two ranks from scratch.
    let (two, two_said) = reproduce(Some(&mpiexec), "two");
    assert_eq!(two_said.matches("Table 1 style").count(), 1, "rank 0 alone prints:\n{two_said}");
    let (one, two) = (one.as_array().unwrap(), two.as_array().unwrap());
    assert_eq!(one[0]["report"], two[0]["report"], "the start model is encoded over two ranks as by one process");
    for (a, b) in one[1..].iter().zip(&two[1..]) {
        let losses = |m: &serde_json::Value| -> Vec<f64> {
            let val = &m["val"];
            [&val[0][1], &val[1][1]].iter().map(|v| v.as_f64().unwrap()).collect()
        };
        // Dropout is on and each rank sorts its own rows by length, so the masks fall on other
        // rows than in one process (docs/distributed.md; exactness with matching chunks is
        // crates/train/tests/distributed.rs): the same training, not the same draws.
        let (start, best) = (losses(a), losses(b));
        assert_eq!(start[0], best[0], "{}: the validation loss before training is the same", a["label"]);
        eprintln!("{}: best validation loss {} (one process) vs {} (two ranks)", a["label"], start[1], best[1]);
        assert!((start[1] - best[1]).abs() <= 1e-2 * start[1].abs(), "{}: {start:?} vs {best:?}", a["label"]);
        for setting in ["mono", "cross", "multi"] {
            let map = |m: &serde_json::Value| m["report"]["settings"][setting]["map"].as_f64().unwrap();
            assert!((map(a) - map(b)).abs() < 1e-2, "{} {setting}: mAP {} vs {}", a["label"], map(a), map(b));
        }
    }

    // The one-process runs again (reused, not retrained), now evaluated over two ranks: one
    // process's tables and reports exactly.
    let (again, again_said) = reproduce(Some(&mpiexec), "one");
    for (a, b) in one.iter().zip(again.as_array().unwrap()) {
        for key in ["label", "seed", "val", "report"] {
            assert_eq!(field(a, key), field(b, key), "{}: {key}", a["label"]);
        }
    }
    assert_eq!(tables(&one_said), tables(&again_said));
}
