//! TensorBoard event files: the same scalars as `metrics.jsonl`, in TFRecord framing that reads
//! back with both CRCs of every record checked. Set `HYBRID_IR_TENSORBOARD_SAMPLE=DIR` to keep a
//! run directory with an event file (for a check with TensorBoard's own reader).

use hybrid_ir_train::runlog::{MetricsEvent, MetricsLog};
use hybrid_ir_train::tensorboard::{FILE_VERSION, read_events, read_records};

fn events() -> Vec<MetricsEvent> {
    let mut v = vec![MetricsEvent::Val { step: 0, loss: 2.5, best: true }];
    for step in 1..=20u64 {
        let loss = 2.5 / (1.0 + step as f64 / 5.0);
        v.push(MetricsEvent::Train {
            step,
            loss,
            lr: 3e-5 * step as f64 / 20.0,
            grad_norm: 1.0 + 0.1 * step as f64,
            batch_kind: if step % 2 == 0 { "mono".into() } else { "cross".into() },
            examples_per_s: 100.0 + step as f64,
        });
        if step % 10 == 0 {
            v.push(MetricsEvent::Val { step, loss: loss + 0.1, best: true });
        }
    }
    v.push(MetricsEvent::Eval {
        step: 20,
        benchmark: "xquad-r".into(),
        map_mono: 0.81,
        map_cross: 0.62,
        map_multi: 0.55,
        rank_distance: Some(41.5),
    });
    v
}

#[test]
fn event_file_holds_the_metrics_jsonl_scalars() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("HYBRID_IR_TENSORBOARD_SAMPLE") {
        Some(d) => {
            let d = std::path::PathBuf::from(d);
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => tmp.path().to_path_buf(),
    };
    let mut log = MetricsLog::open(&dir, None).unwrap();
    let file = log.enable_tensorboard().unwrap();
    assert_eq!(file.parent().unwrap(), dir.join("tensorboard"));
    let name = file.file_name().unwrap().to_str().unwrap();
    let rest = name.strip_prefix("events.out.tfevents.").unwrap_or_else(|| panic!("{name}"));
    let (secs, host) = rest.split_once('.').unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_600_000_000 && !host.is_empty(), "{name}");
    for e in events() {
        log.push(e).unwrap();
    }

    // Framing: every record's length and data CRCs check (read_records refuses a mismatch).
    let bytes = std::fs::read(&file).unwrap();
    let records = read_records(&bytes).unwrap();
    let read = read_events(&file).unwrap();
    assert_eq!(read.len(), records.len());
    assert_eq!(read[0].file_version.as_deref(), Some(FILE_VERSION));
    assert!(read[0].scalars.is_empty());

    // The scalars: one event per metrics.jsonl line, same step, same values (as f32).
    // (Compared with the events pushed: serde_json reads a float back to within an ulp.)
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let lines = events();
    assert_eq!(jsonl.lines().count(), lines.len());
    assert_eq!(read.len(), 1 + lines.len());
    for (event, line) in read[1..].iter().zip(&lines) {
        assert_eq!(event.step, line.step() as i64);
        assert!(event.file_version.is_none());
        let expected: Vec<(String, f32)> = line.scalars().into_iter().map(|(t, v)| (t, v as f32)).collect();
        assert_eq!(event.scalars, expected);
        assert!(event.wall_time > 1.6e9);
    }
    let tags: Vec<&str> = read.iter().flat_map(|e| e.scalars.iter().map(|(t, _)| t.as_str())).collect();
    for tag in ["train/loss", "train/lr", "train/grad_norm", "train/examples_per_s", "val/loss", "eval/xquad-r/map_mono"] {
        assert!(tags.contains(&tag), "{tag} missing");
    }
    assert!(tags.contains(&"eval/xquad-r/rank_distance"));

    // A second writer (a resumed run) starts its own file beside the first.
    let mut resumed = MetricsLog::open(&dir, Some(20)).unwrap();
    let second = resumed.enable_tensorboard().unwrap();
    assert_ne!(second, file);
    resumed.push(MetricsEvent::Val { step: 21, loss: 1.0, best: true }).unwrap();
    assert_eq!(read_events(&second).unwrap()[1].scalars, vec![("val/loss".to_string(), 1.0f32)]);
    assert_eq!(read_events(&file).unwrap().len(), read.len(), "the first file is left as it was");
}

#[test]
fn no_event_file_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = MetricsLog::open(tmp.path(), None).unwrap();
    log.push(MetricsEvent::Val { step: 0, loss: 1.0, best: true }).unwrap();
    assert!(!tmp.path().join("tensorboard").exists());
}
