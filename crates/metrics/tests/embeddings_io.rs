//! The embeddings Parquet format: round trip, and every malformed input is an error naming the
//! row. Uses the real XQuAD-R benchmark (ids and languages) with small random vectors.

mod support;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Builder, ListBuilder, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use hybrid_ir_data::{LareqaBenchmark, RetrievalBenchmark};
use hybrid_ir_metrics::{read_embeddings, write_embeddings, BenchmarkEmbeddings};
use ndarray::Array2;
use support::{benchmark, Xorshift};

/// (kind, lang, id, embedding) rows of a whole benchmark, queries then candidates.
fn rows(bench: &RetrievalBenchmark, dim: usize) -> Vec<(String, String, String, Vec<f32>)> {
    let mut rng = Xorshift(7);
    let mut out = Vec::new();
    for q in &bench.queries {
        out.push(("query".into(), q.lang.to_string(), q.id.to_string(), (0..dim).map(|_| rng.symmetric()).collect()));
    }
    for c in &bench.candidates {
        out.push(("candidate".into(), c.lang.to_string(), c.id.clone(), (0..dim).map(|_| rng.symmetric()).collect()));
    }
    out
}

/// Writes rows with `embedding` as list<float32> (the writer under test uses fixed-size lists).
fn write_rows(path: &std::path::Path, rows: &[(String, String, String, Vec<f32>)]) {
    let mut list = ListBuilder::new(Float32Builder::new());
    for r in rows {
        list.values().append_slice(&r.3);
        list.append(true);
    }
    let list = list.finish();
    let col = |f: fn(&(String, String, String, Vec<f32>)) -> &str| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("embedding", list.data_type().clone(), true),
    ]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![col(|r| &r.0), col(|r| &r.1), col(|r| &r.2), Arc::new(list)]).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn error_of(bench: &RetrievalBenchmark, rows: &[(String, String, String, Vec<f32>)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.parquet");
    write_rows(&path, rows);
    match read_embeddings(&path).and_then(|t| t.align(bench)) {
        Ok(_) => panic!("malformed embeddings were accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trip_in_any_row_order() {
    let bench = benchmark(LareqaBenchmark::XquadR);
    let dim = 4;
    let mut all = rows(&bench, dim);
    let dir = tempfile::tempdir().unwrap();
    // Written by the crate (fixed-size list), read back aligned.
    let emb = BenchmarkEmbeddings {
        queries: Array2::from_shape_fn((bench.queries.len(), dim), |(i, k)| all[i].3[k]),
        candidates: Array2::from_shape_fn((bench.candidates.len(), dim), |(i, k)| all[bench.queries.len() + i].3[k]),
    };
    let path = dir.path().join("fixed.parquet");
    write_embeddings(&path, &bench, &emb).unwrap();
    let back = read_embeddings(&path).unwrap().align(&bench).unwrap();
    assert_eq!(back.queries, emb.queries);
    assert_eq!(back.candidates, emb.candidates);
    // Shuffled rows, list<float32>: same aligned matrices.
    all.reverse();
    all.swap(3, 20_000);
    let path = dir.path().join("list.parquet");
    write_rows(&path, &all);
    let back = read_embeddings(&path).unwrap().align(&bench).unwrap();
    assert_eq!(back.queries, emb.queries);
    assert_eq!(back.candidates, emb.candidates);
}

#[test]
fn malformed_rows_are_named() {
    let bench = benchmark(LareqaBenchmark::XquadR);
    let good = rows(&bench, 3);

    let mut r = good.clone();
    r[5].3[1] = f32::NAN;
    let e = error_of(&bench, &r);
    assert!(e.contains("row 6") && e.contains("NaN"), "{e}");

    let mut r = good.clone();
    r[9].3.push(0.0);
    let e = error_of(&bench, &r);
    assert!(e.contains("row 10") && e.contains("dimension 4"), "{e}");

    let mut r = good.clone();
    r.push(r[2].clone());
    let e = error_of(&bench, &r);
    assert!(e.contains(&format!("row {}", r.len())) && e.contains("already given at row 3"), "{e}");

    let mut r = good.clone();
    r.push(("candidate".into(), "de".into(), "de_9999_0".into(), vec![0.0; 3]));
    let e = error_of(&bench, &r);
    assert!(e.contains(&format!("row {}", r.len())) && e.contains("de_9999_0"), "{e}");

    let mut r = good.clone();
    let missing = r.remove(bench.queries.len() + 17);
    let e = error_of(&bench, &r);
    assert!(e.contains(&format!("no row for candidate {}", missing.2)), "{e}");

    let mut r = good.clone();
    r.remove(0);
    let e = error_of(&bench, &r);
    assert!(e.contains("no row for query") && e.contains(&*bench.queries[0].id), "{e}");

    let mut r = good.clone();
    r[1].0 = "passage".into();
    let e = error_of(&bench, &r);
    assert!(e.contains("row 2") && e.contains("passage"), "{e}");

    let mut r = good.clone();
    let c = bench.queries.len();
    r[c].1 = "xx".into();
    let e = error_of(&bench, &r);
    assert!(e.contains(&format!("row {}", c + 1)) && e.contains("lang"), "{e}");
}
