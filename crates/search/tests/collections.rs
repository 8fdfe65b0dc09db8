//! The collection and topics readers: every accepted layout, and an error naming file and line
//! (or row) for each kind of bad input.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use hybrid_ir_search::{Document, DocumentTemplate, IndexOptions, Place, build_index, count_documents, read_documents, read_queries};

fn docs(path: &Path) -> Vec<Document> {
    read_documents(path).unwrap().map(Result::unwrap).collect()
}

fn first_error(path: &Path) -> String {
    match read_documents(path) {
        Err(e) => e.to_string(),
        Ok(mut it) => it.find_map(Result::err).expect("an error").to_string(),
    }
}

#[test]
fn jsonl_tsv_and_parquet_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("c.jsonl");
    std::fs::write(
        &jsonl,
        "{\"docid\": \"1#0\", \"title\": \"Paris\", \"text\": \"Capital.\"}\n\n{\"_id\": 7, \"text\": \"Seven\", \"extra\": 1}\n\
         {\"id\": \"x\", \"title\": null, \"text\": \"X\"}\n",
    )
    .unwrap();
    let got = docs(&jsonl);
    assert_eq!(got.iter().map(|d| d.docid.as_str()).collect::<Vec<_>>(), ["1#0", "7", "x"]);
    assert_eq!(got[0].place, Place::Line(1));
    assert_eq!(got[1].place, Place::Line(3));
    assert_eq!(DocumentTemplate::default().render(&got[0]), "Paris Capital.");
    assert_eq!(DocumentTemplate::default().render(&got[1]), "Seven");
    assert_eq!(count_documents(&jsonl).unwrap(), 3);

    let tsv = dir.path().join("c.tsv");
    std::fs::write(&tsv, "id\ttext\ttitle\n1\tfirst text\tT1\n2\tsecond\n").unwrap();
    let got = docs(&tsv);
    assert_eq!((got[0].docid.as_str(), got[0].title.as_str(), got[1].text.as_str()), ("1", "T1", "second"));
    assert_eq!(count_documents(&tsv).unwrap(), 2);

    let parquet = dir.path().join("c.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("docid", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(StringArray::from(vec![Some("A"), None])),
            Arc::new(StringArray::from(vec![Some("alpha"), Some("beta")])),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&parquet).unwrap(), schema.clone(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let got = docs(&parquet);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].title.as_str(), got[1].title.as_str(), got[1].place), ("A", "", Place::Row(2)));
    assert_eq!(count_documents(&parquet).unwrap(), 2);

    // A row without text in Parquet names the row.
    let bad = dir.path().join("bad.parquet");
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(StringArray::from(vec![None::<&str>, None])),
            Arc::new(StringArray::from(vec![Some("alpha"), None])),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&bad).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = first_error(&bad);
    assert!(err.contains("bad.parquet, row 2") && err.contains("`b` has no text"), "{err}");
}

#[test]
fn bad_documents_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("a.jsonl", "{\"docid\": \"1\", \"text\": \"ok\"}\n{\"docid\": \"2\", \"text\": \"  \"}\n", "line 2", "has no text"),
        ("b.jsonl", "{\"docid\": \"1\", \"text\": \"ok\"}\n{\"text\": \"no id\"}\n", "line 2", "no document id"),
        ("c.jsonl", "{\"docid\": \"1\", \"text\": \"ok\"\n", "line 1", "not valid JSON"),
        ("d.jsonl", "[1, 2]\n", "line 1", "expected a JSON object"),
        ("e.jsonl", "{\"docid\": \"a b\", \"text\": \"t\"}\n", "line 1", "contains whitespace"),
        ("f.jsonl", "{\"docid\": [1], \"text\": \"t\"}\n", "line 1", "string or a number"),
        ("g.tsv", "1\tok\n2\n", "line 2", "found 1 tab-separated fields"),
        ("h.jsonl", "{\"docid\": \"1\", \"text\": \"\u{e9}\"}\n", "", ""),
    ];
    for (name, text, place, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        if place.is_empty() {
            assert_eq!(docs(&path).len(), 1);
            continue;
        }
        let err = first_error(&path);
        assert!(err.contains(&format!("{name}, {place}")) && err.contains(message), "{name}: {err}");
    }
    let latin1 = dir.path().join("l.jsonl");
    std::fs::write(&latin1, b"{\"docid\": \"1\", \"text\": \"ok\"}\n{\"docid\": \"2\", \"text\": \"caf\xE9\"}\n").unwrap();
    let err = first_error(&latin1);
    assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
    let unknown = dir.path().join("c.csv");
    std::fs::write(&unknown, "x").unwrap();
    assert!(first_error(&unknown).contains("unknown file type `.csv`"));
}

#[test]
fn a_duplicate_docid_is_refused_with_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("dup.jsonl");
    std::fs::write(&corpus, "{\"docid\": \"1\", \"text\": \"a\"}\n{\"docid\": \"2\", \"text\": \"b\"}\n{\"docid\": \"1\", \"text\": \"c\"}\n").unwrap();
    let err = build_index(&corpus, &dir.path().join("i"), &mut common::TrigramEncoder::new(8), &IndexOptions::default(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("dup.jsonl, line 3") && err.contains("`1` was already used at line 1"), "{err}");
}

#[test]
fn topics_in_tsv_and_jsonl_with_errors_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("topics.tsv");
    std::fs::write(&tsv, "0\tWhat is it?\n29\tما هي منظمة الاوبك ؟\n").unwrap();
    let q = read_queries(&tsv).unwrap();
    assert_eq!((q[1].qid.as_str(), q[1].text.as_str()), ("29", "ما هي منظمة الاوبك ؟"));
    let jsonl = dir.path().join("q.jsonl");
    std::fs::write(&jsonl, "{\"_id\": \"q1\", \"text\": \"one\"}\n{\"query_id\": 2, \"query\": \"two\"}\n").unwrap();
    assert_eq!(read_queries(&jsonl).unwrap().iter().map(|q| q.qid.as_str()).collect::<Vec<_>>(), ["q1", "2"]);
    for (name, text, want) in [
        ("dup.tsv", "1\ta\n1\tb\n", "line 2: query id `1` was already used on line 1"),
        ("empty.tsv", "1\ta\n2\t \n", "line 2: query `2` has no text"),
        ("notab.tsv", "1 a\n", "line 1: expected `qid<TAB>query`"),
        ("none.tsv", "\n", "holds no queries"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = read_queries(&path).unwrap_err().to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
}
