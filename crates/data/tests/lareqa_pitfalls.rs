//! The LAReQA format's pitfalls on the real files, and clear errors on malformed input.

mod support;

use std::path::Path;

use hybrid_ir_data::lareqa::load_language;
use hybrid_ir_data::{DataError, LareqaBenchmark};

/// `text[start..end]` in code points.
fn slice_chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

#[test]
fn answer_offsets_are_code_points_into_the_unstripped_context() {
    // context[answer_start .. + len(answer)] == answer for all 17,289 answers when offsets are
    // code points into the verbatim context; byte offsets or a stripped context break it.
    let root = support::data_root();
    let mut answers = 0;
    let mut leading_ws = 0;
    for benchmark in [LareqaBenchmark::XquadR, LareqaBenchmark::MlqaR] {
        for lang in &benchmark.load(&root).unwrap().languages {
            for q in &lang.questions {
                let para = &lang.paragraphs[q.paragraph];
                let n = q.answer.chars().count();
                assert_eq!(
                    slice_chars(&para.context, q.answer_start, q.answer_start + n),
                    &*q.answer,
                    "{} {}",
                    lang.path.display(),
                    q.id
                );
                let [s, e] = para.sentence_breaks[q.sentence];
                assert!(s <= q.answer_start && q.answer_start < e);
                answers += 1;
            }
            if benchmark == LareqaBenchmark::XquadR {
                leading_ws += lang.paragraphs.iter().filter(|p| p.context.starts_with(char::is_whitespace)).count();
            }
        }
    }
    assert_eq!(answers, 17_289);
    assert!(leading_ws >= 26, "22 zh + 4 ar XQuAD-R contexts start with whitespace, kept verbatim");
}

#[test]
fn only_the_two_turkish_victoria_breaks_disagree_with_the_sentences() {
    let root = support::data_root();
    let mut mismatches = Vec::new();
    for benchmark in [LareqaBenchmark::XquadR, LareqaBenchmark::MlqaR] {
        for lang in &benchmark.load(&root).unwrap().languages {
            for (pi, para) in lang.paragraphs.iter().enumerate() {
                for (si, (sentence, &[s, e])) in para.sentences.iter().zip(&para.sentence_breaks).enumerate() {
                    if slice_chars(&para.context, s, e) != **sentence {
                        mismatches.push((benchmark, lang.lang.to_string(), para.title.to_string(), pi, si));
                    }
                }
            }
        }
    }
    assert_eq!(mismatches.len(), 2, "{mismatches:?}");
    for (benchmark, lang, title, _, _) in &mismatches {
        assert_eq!((*benchmark, lang.as_str(), title.as_str()), (LareqaBenchmark::XquadR, "tr", "Victoria_(Australia)"));
    }
    // The candidates there are the `sentences` strings themselves, so the loader serves the right
    // text; and answers in that paragraph still land in the sentence holding their start.
    let tr = load_language(&root.join("xquad-r/tr.json"), "tr").unwrap();
    let p = mismatches[0].3;
    for q in tr.questions.iter().filter(|q| q.paragraph == p) {
        let first: String = q.answer.chars().take(5).collect();
        assert!(tr.paragraphs[p].sentences[q.sentence].contains(&first), "id {}", q.id);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"{"version": "1.1", "data": [{"title": "T", "paragraphs": [{
  "context": " Alpha beta. Gamma delta.",
  "sentences": ["Alpha beta.", "Gamma delta."],
  "sentence_breaks": [[1, 12], [13, 25]],
  "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Gamma", "answer_start": 13}]}]
}]}]}"#;

#[test]
fn a_small_valid_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let lang = load_language(&write(dir.path(), "en.json", GOOD), "en").unwrap();
    assert_eq!(lang.questions[0].sentence, 1);
    assert_eq!(&*lang.paragraphs[0].context, " Alpha beta. Gamma delta.");
}

fn load_err(text: &str) -> (String, DataError) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "xx.json", text);
    let err = load_language(&path, "xx").unwrap_err();
    (err.to_string(), err)
}

#[test]
fn truncated_json_names_file_and_position() {
    let (msg, err) = load_err(&GOOD[..GOOD.len() / 2]);
    assert!(matches!(err, DataError::Json { line: 3.., .. }), "{msg}");
    assert!(msg.contains("xx.json:") && msg.contains("EOF"), "{msg}");
}

#[test]
fn wrong_type_names_the_field() {
    let (msg, _) = load_err(&GOOD.replace(r#""answer_start": 13"#, r#""answer_start": "13""#));
    assert!(msg.contains("xx.json:5:") && msg.contains("invalid type: string"), "{msg}");
}

#[test]
fn missing_field_is_named() {
    let (msg, _) = load_err(&GOOD.replace(r#""question": "What?", "#, ""));
    assert!(msg.contains("missing field `question`"), "{msg}");
}

#[test]
fn answer_outside_every_break_is_reported_with_its_place() {
    let (msg, _) = load_err(&GOOD.replace("[13, 25]", "[14, 25]"));
    assert!(msg.contains(r#"data[0] "T" paragraphs[0] qas[0] (id q1)"#), "{msg}");
    assert!(msg.contains("lies in no sentence break"), "{msg}");
}

#[test]
fn answer_text_not_at_its_offset_is_reported() {
    let (msg, _) = load_err(&GOOD.replace(r#""text": "Gamma""#, r#""text": "Delta""#));
    assert!(msg.contains(r#"answer text "Delta" is not at code point 13"#), "{msg}");
}

#[test]
fn sentence_and_break_counts_must_agree() {
    let (msg, _) = load_err(&GOOD.replace("[[1, 12], [13, 25]]", "[[1, 12]]"));
    assert!(msg.contains("2 sentences but 1 sentence_breaks"), "{msg}");
}

#[test]
fn break_past_the_context_end_is_reported() {
    let (msg, _) = load_err(&GOOD.replace("[13, 25]", "[13, 99]"));
    assert!(msg.contains("sentence_breaks[1]") && msg.contains("does not fit the context (25 code points)"), "{msg}");
}

#[test]
fn multiple_answers_are_refused() {
    let two = r#""answers": [{"text": "Gamma", "answer_start": 13}, {"text": "Alpha", "answer_start": 1}]"#;
    let (msg, _) = load_err(&GOOD.replace(r#""answers": [{"text": "Gamma", "answer_start": 13}]"#, two));
    assert!(msg.contains("expected exactly 1 answer, found 2"), "{msg}");
}

#[test]
fn missing_directory_names_the_path() {
    let err = LareqaBenchmark::XquadR.load(Path::new("/nonexistent/data")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/data/xquad-r"), "{err}");
}

// ---- records the loader must refuse, because they would break the training view later ----

#[test]
fn empty_question_id_is_refused_with_file_and_record() {
    // It used to load, then panic in ParallelCorpus::from_lareqa ("validated LAReQA data rejected").
    let (msg, err) = load_err(&GOOD.replace(r#""id": "q1""#, r#""id": """#));
    assert!(matches!(err, DataError::Format { .. }), "{msg}");
    assert!(msg.contains("xx.json") && msg.contains(r#"data[0] "T" paragraphs[0] qas[0]"#), "{msg}");
    assert!(msg.contains("empty question id"), "{msg}");
}

#[test]
fn blank_answer_sentence_is_refused_with_file_and_record() {
    // The answer still sits at its offset in the context; only the candidate text is blank.
    let (msg, _) = load_err(&GOOD.replace(r#""Gamma delta.""#, r#""   ""#));
    assert!(msg.contains("xx.json") && msg.contains(r#"paragraphs[0] sentences[1]"#), "{msg}");
    assert!(msg.contains("blank sentence"), "{msg}");
    // A blank neighbour would have become a blank hard negative.
    let (msg, _) = load_err(&GOOD.replace(r#""Alpha beta.""#, "\"\\t \""));
    assert!(msg.contains("sentences[0]") && msg.contains("blank sentence"), "{msg}");
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "en.json", &format!("\u{feff}{GOOD}"));
    let lang = load_language(&path, "en").unwrap();
    assert_eq!(lang.questions.len(), 1);
}

#[test]
fn empty_language_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "en.json", GOOD);
    let msg = load_language(&path, " ").unwrap_err().to_string();
    assert!(msg.contains("en.json: file name: empty language code"), "{msg}");
}

#[cfg(unix)]
#[test]
fn non_utf8_file_name_is_refused_not_turned_into_an_empty_language() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"\xff\xfe.json");
    std::fs::write(dir.path().join(name), GOOD).unwrap();
    // It used to load as language "", then panic in ParallelCorpus::from_lareqa.
    let err = hybrid_ir_data::LareqaDataset::load_dir("t", dir.path()).unwrap_err().to_string();
    assert!(err.contains("file name") && err.contains("not valid UTF-8"), "{err}");
}

fn good_language() -> hybrid_ir_data::lareqa::LareqaLanguage {
    let dir = tempfile::tempdir().unwrap();
    load_language(&write(dir.path(), "en.json", GOOD), "en").unwrap()
}

#[test]
fn from_lareqa_refuses_duplicate_ids_instead_of_panicking() {
    use hybrid_ir_data::{LareqaDataset, NegativePolicy, ParallelCorpus};
    let en = good_language();
    // Two entries for one language (a hand-assembled dataset): id q1 twice in `en`.
    let dataset = LareqaDataset { name: "t".into(), languages: vec![en.clone(), en] };
    let err = ParallelCorpus::from_lareqa(&dataset, NegativePolicy::None).unwrap_err().to_string();
    assert!(err.contains("en.json") && err.contains(r#"(id "q1")"#), "{err}");
    assert!(err.contains("duplicate (id, lang) = (q1, en)"), "{err}");
}

#[test]
fn from_lareqa_refuses_hand_edited_records_instead_of_panicking() {
    use hybrid_ir_data::{LareqaDataset, NegativePolicy, ParallelCorpus};
    let edit = |f: &dyn Fn(&mut hybrid_ir_data::lareqa::LareqaLanguage)| {
        let mut en = good_language();
        f(&mut en);
        let dataset = LareqaDataset { name: "t".into(), languages: vec![en] };
        ParallelCorpus::from_lareqa(&dataset, NegativePolicy::SameParagraph).unwrap_err().to_string()
    };
    let msg = edit(&|en| en.questions[0].id = "".into());
    assert!(msg.contains("en.json") && msg.contains("empty `id`"), "{msg}");
    let msg = edit(&|en| en.paragraphs[0].sentences[1] = "  ".into());
    assert!(msg.contains("empty `positive` text"), "{msg}");
    let msg = edit(&|en| en.paragraphs[0].sentences[0] = " ".into());
    assert!(msg.contains("empty `negative` text"), "{msg}");
    let msg = edit(&|en| en.questions[0].sentence = 7);
    assert!(msg.contains("sentence 7 does not exist"), "{msg}");
    let msg = edit(&|en| en.questions[0].paragraph = 3);
    assert!(msg.contains("paragraph 3 does not exist"), "{msg}");
}

/// A paragraph whose context is blank but whose answer (a space) still sits at its offset.
pub const BLANK_CONTEXT: &str = r#"{"data": [{"title": "T", "paragraphs": [{
  "context": "     ", "sentences": ["x"], "sentence_breaks": [[0, 5]],
  "qas": [{"id": "q1", "question": "What?", "answers": [{"text": " ", "answer_start": 0}]}]
}]}]}"#;

#[test]
fn blank_context_is_refused_by_the_loader_not_only_by_the_training_view() {
    // It loaded (so `data stats` counted it) and was refused only by ParallelCorpus::from_lareqa
    // (so `data sample` and training stopped on it).
    let (msg, err) = load_err(BLANK_CONTEXT);
    assert!(matches!(err, DataError::Format { .. }), "{msg}");
    assert!(msg.contains(r#"xx.json: data[0] "T" paragraphs[0]: blank context"#), "{msg}");
}

#[test]
fn a_file_without_questions_is_refused() {
    for text in [
        r#"{"data": []}"#.to_string(),
        GOOD.replace(
            r#""qas": [{"id": "q1", "question": "What?", "answers": [{"text": "Gamma", "answer_start": 13}]}]"#,
            r#""qas": []"#,
        ),
    ] {
        let (msg, _) = load_err(&text);
        assert!(msg.contains("xx.json: file: no questions"), "{msg}");
    }
}
