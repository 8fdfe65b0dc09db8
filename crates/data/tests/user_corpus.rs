//! User corpora from JSONL, Parquet and Arrow IPC: good files load, bad rows are reported with
//! file and row, nothing is dropped.

use std::path::{Path, PathBuf};

use hybrid_ir_data::load_user_corpus;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD_JSONL: &str = r#"{"id": "a", "lang": "en", "query": "Where?", "positive": "Here.", "negative": "There."}
{"id": "a", "lang": "de", "query": "Wo?", "positive": "Hier."}

{"id": "b", "lang": "en", "query": "Who?", "positive": "Me.", "extra": 3}
"#;

#[test]
fn jsonl_loads_and_groups_translations() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = load_user_corpus(&write(dir.path(), "pairs.jsonl", GOOD_JSONL)).unwrap();
    assert_eq!(corpus.name(), "pairs");
    let stats = corpus.stats();
    assert_eq!((stats.ids, stats.examples, stats.cross_pairs, stats.with_negative), (2, 3, 2, 1));
    assert_eq!(corpus.languages().iter().map(|l| &**l).collect::<Vec<_>>(), ["de", "en"]);
}

fn jsonl_err(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    load_user_corpus(&write(dir.path(), "bad.jsonl", text)).unwrap_err().to_string()
}

#[test]
fn jsonl_errors_name_file_and_line() {
    let line2 = |s: &str| format!("{}\n{s}\n", GOOD_JSONL.lines().next().unwrap());
    let cases = [
        (line2(r#"{"id": 7, "lang": "en", "query": "q", "positive": "p"}"#), "row 2: field `id` is a number, expected a string"),
        (line2(r#"{"id": "x", "lang": "en", "query": "  ", "positive": "p"}"#), "row 2: empty `query` text"),
        (line2(r#"{"id": "x", "lang": "en", "query": "q"}"#), "row 2: missing required field `positive`"),
        (
            line2(r#"{"id": "a", "lang": "en", "query": "q", "positive": "p"}"#),
            "row 2: duplicate (id, lang) = (a, en); first seen at row 1",
        ),
        (line2(r#"["not", "an", "object"]"#), "row 2: expected a JSON object, found array"),
        (line2(r#"{"id": "x", "lang": "en", "#), "bad.jsonl:2:"),
    ];
    for (text, expected) in cases {
        let msg = jsonl_err(&text);
        assert!(msg.contains("bad.jsonl") && msg.contains(expected), "expected {expected:?} in {msg:?}");
    }
    assert!(jsonl_err("\n\n").contains("no rows"));
}

#[test]
fn unknown_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let msg = load_user_corpus(&write(dir.path(), "pairs.csv", "id,lang\n")).unwrap_err().to_string();
    assert!(msg.contains("unknown corpus format"), "{msg}");
}

#[test]
fn jsonl_refuses_blank_ids_and_texts_and_bad_utf8_with_file_and_line() {
    let line1 = GOOD_JSONL.lines().next().unwrap();
    let line2 = |s: &str| format!("{line1}\n{s}\n");
    let cases = [
        (line2(r#"{"id": "  ", "lang": "en", "query": "q", "positive": "p"}"#), "row 2: empty `id`"),
        (line2(r#"{"id": "", "lang": "en", "query": "q", "positive": "p"}"#), "row 2: empty `id`"),
        (line2(r#"{"id": "x", "lang": " ", "query": "q", "positive": "p"}"#), "row 2: empty `lang`"),
        (line2(r#"{"id": "x", "lang": "en", "query": "q", "positive": "p", "context": "\n\t"}"#), "row 2: empty `context` text"),
        (line2(r#"{"id": "x", "lang": "en", "query": "q", "positive": "p", "negative": " "}"#), "row 2: empty `negative` text"),
    ];
    for (text, expected) in cases {
        let msg = jsonl_err(&text);
        assert!(msg.contains("bad.jsonl") && msg.contains(expected), "expected {expected:?} in {msg:?}");
    }
    // A Latin-1 byte on line 3: the error names the line, not just "stream did not contain valid UTF-8".
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let mut bytes = format!("{line1}\n\n").into_bytes();
    bytes.extend_from_slice(b"{\"id\": \"x\", \"lang\": \"en\", \"query\": \"caf\xe9\", \"positive\": \"p\"}\n");
    std::fs::write(&path, bytes).unwrap();
    let msg = load_user_corpus(&path).unwrap_err().to_string();
    let offset = line1.len() + 2 + 39;
    assert!(msg.contains(&format!("bad.jsonl: line 3, column 40 (byte offset {offset}): not valid UTF-8")), "{msg}");
}

#[test]
fn jsonl_accepts_a_byte_order_mark_and_crlf_line_ends() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("\u{feff}{}", GOOD_JSONL.replace('\n', "\r\n"));
    let corpus = load_user_corpus(&write(dir.path(), "pairs.jsonl", &text)).unwrap();
    assert_eq!(corpus.stats().examples, 3);
    assert!(corpus.groups().iter().all(|g| !g.id.starts_with('\u{feff}')));
    // A mark anywhere else is a JSON error with its line.
    let mut lines = GOOD_JSONL.lines();
    let msg = jsonl_err(&format!("{}\n\u{feff}{}\n", lines.next().unwrap(), lines.next().unwrap()));
    assert!(msg.contains("bad.jsonl:2:1:"), "{msg}");
}

/// Without the `parquet` feature, columnar files are refused with the file and the feature.
#[cfg(not(feature = "parquet"))]
#[test]
fn columnar_files_name_the_missing_feature() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pairs.parquet", "pairs.arrow", "pairs.feather"] {
        let msg = load_user_corpus(&write(dir.path(), name, "not read")).unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains("needs the `parquet` feature of hybrid-ir-data"), "{msg}");
    }
}

/// Parquet and Arrow IPC (feature `parquet`, on by default).
#[cfg(feature = "parquet")]
mod columnar {
    use std::path::Path;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use hybrid_ir_data::load_user_corpus;

    fn string_col(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn write_parquet(path: &Path, batch: &RecordBatch) {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    fn good_batch() -> RecordBatch {
        batch(vec![
            ("id", string_col(&[Some("a"), Some("a"), Some("b")])),
            ("lang", string_col(&[Some("en"), Some("es"), Some("en")])),
            ("query", string_col(&[Some("Where?"), Some("¿Dónde?"), Some("Who?")])),
            ("positive", string_col(&[Some("Here."), Some("Aquí."), Some("Me.")])),
            ("negative", string_col(&[None, Some("Allí."), None])),
        ])
    }

    #[test]
    fn parquet_and_arrow_ipc_load() {
        let dir = tempfile::tempdir().unwrap();
        let pq = dir.path().join("pairs.parquet");
        write_parquet(&pq, &good_batch());
        let ipc = dir.path().join("pairs.arrow");
        {
            let file = std::fs::File::create(&ipc).unwrap();
            let mut w = arrow::ipc::writer::FileWriter::try_new(file, &good_batch().schema()).unwrap();
            w.write(&good_batch()).unwrap();
            w.finish().unwrap();
        }
        for path in [pq, ipc] {
            let corpus = load_user_corpus(&path).unwrap();
            let s = corpus.stats();
            assert_eq!((s.ids, s.examples, s.cross_pairs, s.with_negative), (2, 3, 2, 1), "{}", path.display());
            let es = corpus.language_index("es").unwrap();
            let a = corpus.groups().iter().find(|g| &*g.id == "a").unwrap();
            assert_eq!(a.version(es).unwrap().negative.as_deref(), Some("Allí."));
        }
    }

    #[test]
    fn parquet_errors_name_column_or_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let good = good_batch();
        let names = ["id", "lang", "query", "positive", "negative"];
        let mut cols: Vec<(&str, ArrayRef)> = names.into_iter().zip(good.columns().to_vec()).collect();

        // Wrong column type.
        let mut wrong = cols.clone();
        wrong[0] = ("id", Arc::new(Int64Array::from(vec![1, 1, 2])) as ArrayRef);
        write_parquet(&path, &batch(wrong));
        let msg = load_user_corpus(&path).unwrap_err().to_string();
        assert!(msg.contains("bad.parquet: column `id`: unsupported type Int64"), "{msg}");

        // Missing column.
        write_parquet(&path, &batch(cols[..3].to_vec()));
        let msg = load_user_corpus(&path).unwrap_err().to_string();
        assert!(msg.contains("column `positive`: missing"), "{msg}");

        // Null required value, empty text, duplicate.
        cols[2] = ("query", string_col(&[Some("Where?"), None, Some("Who?")]));
        write_parquet(&path, &batch(cols.clone()));
        let msg = load_user_corpus(&path).unwrap_err().to_string();
        assert!(msg.contains("bad.parquet: row 2: `query` is null"), "{msg}");

        cols[2] = ("query", string_col(&[Some("Where?"), Some("x"), Some("")]));
        write_parquet(&path, &batch(cols.clone()));
        let msg = load_user_corpus(&path).unwrap_err().to_string();
        assert!(msg.contains("row 3: empty `query` text"), "{msg}");

        cols[2] = ("query", string_col(&[Some("Where?"), Some("x"), Some("y")]));
        cols[1] = ("lang", string_col(&[Some("en"), Some("es"), Some("es")]));
        cols[0] = ("id", string_col(&[Some("a"), Some("a"), Some("a")]));
        write_parquet(&path, &batch(cols));
        let msg = load_user_corpus(&path).unwrap_err().to_string();
        assert!(msg.contains("row 3: duplicate (id, lang) = (a, es); first seen at row 2"), "{msg}");
    }

    #[test]
    fn columnar_blank_ids_are_refused_with_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let good = good_batch();
        let names = ["id", "lang", "query", "positive", "negative"];
        let mut cols: Vec<(&str, ArrayRef)> = names.into_iter().zip(good.columns().to_vec()).collect();
        cols[0] = ("id", string_col(&[Some("a"), Some(" "), Some("b")]));
        write_parquet(&path, &batch(cols));
        let msg = load_user_corpus(&path).unwrap_err().to_string();
        assert!(msg.contains("bad.parquet: row 2: empty `id`"), "{msg}");
    }
}

/// A written corpus (JSONL and Parquet) loads back with the same rows, the first negative in
/// `negative`; more negatives and the scores travel as extra columns the loader ignores; the
/// file appears whole (no temporary file left beside it).
#[test]
fn written_corpora_load_back_with_their_first_negative() {
    use hybrid_ir_data::{CorpusRow, RowScores, write_user_corpus};
    use std::sync::Arc;
    let row = |id: &str, lang: &str, negatives: &[&str]| CorpusRow {
        id: id.into(),
        lang: lang.into(),
        query: format!("q {id} {lang}").into(),
        positive: format!("p {id} {lang}").into(),
        context: (lang == "en").then(|| Arc::from("a paragraph")),
        negatives: negatives.iter().map(|n| Arc::from(*n)).collect(),
        scores: Some(RowScores { positive: 0.9, negatives: negatives.iter().map(|_| 0.5f32).collect() }),
    };
    let rows = vec![row("a", "en", &["n1", "n2"]), row("a", "de", &["m1"]), row("b", "en", &["k1", "k2"])];
    let dir = tempfile::tempdir().unwrap();
    for name in ["mined.jsonl", "mined.parquet"] {
        let path = dir.path().join(name);
        write_user_corpus(&path, &rows).unwrap();
        let corpus = load_user_corpus(&path).unwrap();
        let stats = corpus.stats();
        assert_eq!((stats.ids, stats.examples, stats.with_negative), (2, 3, 3), "{name}");
        let de = corpus.language_index("de").unwrap();
        let en = corpus.language_index("en").unwrap();
        let a = corpus.groups().iter().find(|g| &*g.id == "a").unwrap();
        assert_eq!(a.version(en).unwrap().negative.as_deref(), Some("n1"), "{name}");
        assert_eq!(a.version(de).unwrap().negative.as_deref(), Some("m1"), "{name}");
        assert_eq!(a.version(en).unwrap().context.as_deref(), Some("a paragraph"), "{name}");
        assert_eq!(a.version(de).unwrap().query.as_ref(), "q a de", "{name}");
    }
    let text = std::fs::read_to_string(dir.path().join("mined.jsonl")).unwrap();
    assert!(text.lines().next().unwrap().contains(r#""negative_2":"n2""#), "{text}");
    assert!(text.contains(r#""negative_2_score":0.5"#), "{text}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");

    // Refused before anything is written.
    let bad = dir.path().join("x.csv");
    assert!(write_user_corpus(&bad, &rows).unwrap_err().to_string().contains("use .jsonl or .parquet"));
    assert!(write_user_corpus(&dir.path().join("none.jsonl"), &[]).unwrap_err().to_string().contains("no rows"));
    let mut mismatched = rows.clone();
    mismatched[1].scores = Some(RowScores { positive: 0.9, negatives: vec![] });
    let err = write_user_corpus(&dir.path().join("m.jsonl"), &mismatched).unwrap_err().to_string();
    assert!(err.contains("row 2") && err.contains("1 negatives but 0 negative scores"), "{err}");
    assert!(!bad.exists() && !dir.path().join("m.jsonl").exists());
}
