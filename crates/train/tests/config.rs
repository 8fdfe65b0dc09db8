//! Config parsing and validation: unknown keys and impossible values are refused, each naming
//! the field; the reference config is complete and valid.

mod common;

use std::path::Path;

use hybrid_ir_train::{TrainConfig, TrainError};

fn minimal(extra: &str) -> String {
    format!(
        "output_dir = \"/tmp/x\"\n[model]\ndir = \"{}\"\n[data]\ncorpora = [\"xquad-r\"]\n[sampler]\nkind = \"hybrid\"\n{extra}",
        common::model_dir("all-MiniLM-L6-v2").display()
    )
}

fn parse(text: &str) -> Result<TrainConfig, TrainError> {
    TrainConfig::from_toml_str(text, Path::new("test.toml"))
}

fn problems(config: &TrainConfig) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(TrainError::ConfigInvalid { problems }) => problems,
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[test]
fn minimal_config_gets_the_paper_defaults() {
    let c = parse(&minimal("")).unwrap();
    assert!(problems(&c).is_empty(), "{:?}", problems(&c));
    assert_eq!(c.optim.lr, 3e-5);
    assert_eq!(c.optim.weight_decay, 0.01);
    assert_eq!(c.optim.eps, 1e-8);
    assert_eq!(c.sampler.alpha, 0.5);
    assert_eq!(c.sampler.batch_size, 100);
    assert_eq!(c.loss.temperature, 0.05);
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    for (extra, key) in [("[optim]\nlearning_rate = 1e-4\n", "learning_rate"), ("[sampler2]\nx = 1\n", "sampler2")] {
        let err = parse(&minimal(extra)).unwrap_err().to_string();
        assert!(err.contains(key), "error does not name `{key}`: {err}");
    }
    let err = parse(&minimal("").replace("kind = \"hybrid\"", "kind = \"hybrid\"\nalfa = 0.5")).unwrap_err().to_string();
    assert!(err.contains("alfa"), "{err}");
}

#[test]
fn impossible_values_are_all_reported() {
    let mut c = parse(&minimal("")).unwrap();
    c.optim.lr = -1.0;
    c.sampler.batch_size = 0;
    c.sampler.alpha = 1.5;
    c.model.dir = "/nonexistent/model".into();
    c.loss.temperature = 0.0;
    c.schedule.steps = 0;
    c.optim.grad_accum = 0;
    let p = problems(&c).join("\n");
    for needle in [
        "optim.lr",
        "batch_size",
        "alpha",
        "/nonexistent/model",
        "fetch-models",
        "loss.temperature",
        "schedule.steps",
        "grad_accum",
    ] {
        assert!(p.contains(needle), "`{needle}` not reported in:\n{p}");
    }
}

#[test]
fn wrong_types_and_enum_values_are_refused() {
    let err = parse(&minimal("[optim]\nlr = \"fast\"\n")).unwrap_err().to_string();
    assert!(err.contains("lr"), "{err}");
    let err = parse(&minimal("").replace("\"hybrid\"", "\"sideways\"")).unwrap_err().to_string();
    assert!(err.contains("sideways"), "{err}");
}

#[test]
fn overrides_apply_and_unknown_override_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, minimal("")).unwrap();
    let c =
        TrainConfig::load(&path, &["optim.lr=1e-4".into(), "sampler.kind=cross".into(), "data.languages=[\"en\",\"de\"]".into()])
            .unwrap();
    assert_eq!(c.optim.lr, 1e-4);
    assert_eq!(c.sampler.kind, hybrid_ir_data::sampler::SamplerKind::Cross);
    assert_eq!(c.data.languages, vec!["en", "de"]);
    let err = TrainConfig::load(&path, &["optim.lrr=1".into()]).unwrap_err().to_string();
    assert!(err.contains("lrr"), "{err}");
    let err = TrainConfig::load(&path, &["no-equals-sign".into()]).unwrap_err().to_string();
    assert!(err.contains("key=value"), "{err}");
}

#[test]
fn reference_config_parses_validates_and_round_trips() {
    let path = hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("configs/reference.toml");
    let model = common::model_dir("multilingual-e5-small");
    let c = TrainConfig::load(&path, &[format!("model.dir=\"{}\"", model.display())]).unwrap();
    assert!(problems(&c).is_empty(), "{:?}", problems(&c));
    let again = TrainConfig::from_toml_str(&c.to_toml().unwrap(), Path::new("roundtrip")).unwrap();
    assert_eq!(again, c);
    assert_eq!(again.fingerprint().unwrap(), c.fingerprint().unwrap());
    let mut other = c.clone();
    other.sampler.alpha = 0.25;
    assert_ne!(other.fingerprint().unwrap(), c.fingerprint().unwrap());
}

#[test]
fn a_config_that_is_not_utf8_names_the_line_and_a_bom_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = minimal("");
    let line = text.lines().position(|l| l.starts_with("kind")).unwrap();
    let mut bytes = text.replace("kind = \"hybrid\"", "kind = \"hybr\u{0}\"").into_bytes();
    let at = bytes.iter().position(|&b| b == 0).unwrap();
    bytes[at] = 0xE9; // Latin-1 é
    std::fs::write(&path, &bytes).unwrap();
    let err = TrainConfig::load(&path, &[]).unwrap_err().to_string();
    let expected = format!("c.toml: line {}, column 13 (byte offset {at}): not valid UTF-8", line + 1);
    assert!(err.contains(&expected), "expected {expected:?} in {err}");
    assert_eq!(TrainConfig::read(&path).unwrap_err().to_string(), err);
    std::fs::write(&path, format!("\u{feff}{text}")).unwrap();
    assert_eq!(TrainConfig::read(&path).unwrap().sampler.kind, hybrid_ir_data::sampler::SamplerKind::Hybrid);
}

#[test]
fn log_section_is_optional_and_not_in_the_fingerprint() {
    let plain = parse(&minimal("")).unwrap();
    assert!(!plain.log.tensorboard);
    assert!(!plain.to_toml().unwrap().contains("[log]"), "a default [log] is left out of config.toml");
    let logged = parse(&minimal("[log]\ntensorboard = true\n")).unwrap();
    assert!(logged.log.tensorboard);
    assert!(logged.to_toml().unwrap().contains("tensorboard = true"));
    assert_eq!(parse(&logged.to_toml().unwrap()).unwrap(), logged);
    // Logging does not change the run: a run may be resumed with it switched on or off.
    assert_eq!(logged.fingerprint().unwrap(), plain.fingerprint().unwrap());
    let err = parse(&minimal("[log]\ntensorbord = true\n")).unwrap_err().to_string();
    assert!(err.contains("tensorbord"), "{err}");
}

#[test]
fn the_cached_step_is_not_in_the_fingerprint() {
    let cached = parse(&minimal("")).unwrap();
    let mut plain = cached.clone();
    plain.loss.cached = !cached.loss.cached;
    // The same run either way (same loss and dropout masks): resumable with it switched, e.g.
    // onto MPI ranks, which need the cached step.
    assert_eq!(plain.fingerprint().unwrap(), cached.fingerprint().unwrap());
    // A plain-step checkpoint written before carries the hash of the whole config; it resumes.
    let (on, off) = if cached.loss.cached { (&cached, &plain) } else { (&plain, &cached) };
    assert!(on.earlier_fingerprints().unwrap().is_empty());
    let earlier = off.earlier_fingerprints().unwrap();
    assert_eq!(earlier.len(), 1);
    assert_ne!(earlier[0], off.fingerprint().unwrap());
    let mut other = off.clone();
    other.loss.chunk_size += 1;
    assert_ne!(other.fingerprint().unwrap(), off.fingerprint().unwrap(), "the chunk size stays in: it moves dropout masks");
}
