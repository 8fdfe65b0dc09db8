//! Loader for the LAReQA files (XQuAD-R and MLQA-R): one SQuAD-style JSON file per language.
//!
//! Format facts that shape this code (measured on every file, see the project's data notes):
//! - `answer_start` and `sentence_breaks` are Unicode **code point** offsets, so they are compared
//!   with `chars().count()`, never with byte offsets.
//! - Two Turkish XQuAD-R breaks are off by two (a mojibake character in the context). The
//!   `sentences` strings are therefore the candidate texts; breaks are used only to find which
//!   sentence holds an answer start, which still gives the right sentence there.
//! - Some contexts start with whitespace; contexts are kept verbatim so offsets stay valid.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::Lang;
use crate::error::{DataError, Result};
use crate::text::UTF8_BOM;

/// The two LAReQA benchmarks shipped with the project's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LareqaBenchmark {
    /// XQuAD-R: 11 languages, every question in every language.
    XquadR,
    /// MLQA-R (MLQA dev): 7 languages, each id in English plus 1–3 others.
    MlqaR,
}

impl LareqaBenchmark {
    /// Name used on the command line and as the folder name under the data root.
    pub fn name(self) -> &'static str {
        match self {
            LareqaBenchmark::XquadR => "xquad-r",
            LareqaBenchmark::MlqaR => "mlqa-r",
        }
    }

    /// Every built-in benchmark.
    pub const ALL: [LareqaBenchmark; 2] = [LareqaBenchmark::XquadR, LareqaBenchmark::MlqaR];

    /// Parses `xquad-r` / `mlqa-r`; an unknown name's error suggests the closest one.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "xquad-r" | "xquad_r" | "xquadr" => Ok(LareqaBenchmark::XquadR),
            "mlqa-r" | "mlqa_r" | "mlqar" => Ok(LareqaBenchmark::MlqaR),
            other => Err(DataError::Config(format!(
                "unknown benchmark `{other}` (expected `xquad-r` or `mlqa-r`){}",
                Self::suggestion(other)
            ))),
        }
    }

    /// The benchmark whose name is within a few edits of `name` (a typo), if any.
    pub fn closest(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .map(|b| (edit_distance(&name, b.name()), b))
            .filter(|&(d, _)| d <= 3)
            .min_by_key(|&(d, _)| d)
            .map(|(_, b)| b)
    }

    /// `"; did you mean `xquad-r`?"` for a name close to a benchmark's, else nothing.
    pub(crate) fn suggestion(name: &str) -> String {
        Self::closest(name).map(|b| format!("; did you mean `{b}`?")).unwrap_or_default()
    }

    /// Folder of this benchmark under a data root.
    pub fn dir(self, data_root: &Path) -> PathBuf {
        data_root.join(self.name())
    }

    /// Loads every language file of this benchmark from a data root.
    pub fn load(self, data_root: &Path) -> Result<LareqaDataset> {
        LareqaDataset::load_dir(self.name(), &self.dir(data_root))
    }
}

/// Levenshtein distance in characters (names are short; O(n·m) is nothing).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl std::fmt::Display for LareqaBenchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// ---- raw file layout (deserialised by key name: the two datasets order keys differently) ----

#[derive(Deserialize)]
struct RawFile {
    data: Vec<RawArticle>,
}

#[derive(Deserialize)]
struct RawArticle {
    #[serde(default)]
    title: String,
    paragraphs: Vec<RawParagraph>,
}

#[derive(Deserialize)]
struct RawParagraph {
    context: String,
    // `default` so that plain SQuAD/XQuAD files parse; a paragraph without sentences is then
    // reported by the validation below instead of by serde.
    #[serde(default)]
    sentences: Vec<String>,
    #[serde(default)]
    sentence_breaks: Vec<[usize; 2]>,
    qas: Vec<RawQa>,
}

#[derive(Deserialize)]
struct RawQa {
    id: String,
    question: String,
    answers: Vec<RawAnswer>,
}

#[derive(Deserialize)]
struct RawAnswer {
    text: String,
    answer_start: usize,
}

// ---- parsed, validated view ----

/// One paragraph of one language file.
#[derive(Debug, Clone)]
pub struct LareqaParagraph {
    /// 0-based index of the article in file order.
    pub article: usize,
    /// Article title (the same across languages in XQuAD-R).
    pub title: Arc<str>,
    /// The paragraph, verbatim (leading whitespace kept: offsets point into it).
    pub context: Arc<str>,
    /// LAReQA's sentence split of the paragraph: these are the retrieval candidates.
    pub sentences: Vec<Arc<str>>,
    /// `[start, end)` code-point offsets of each sentence in `context` (two Turkish XQuAD-R
    /// breaks are off by two; they are used only to locate answers).
    pub sentence_breaks: Vec<[usize; 2]>,
}

/// One question of one language file.
#[derive(Debug, Clone)]
pub struct LareqaQuestion {
    /// Parallel id, shared by the translations of this question.
    pub id: Arc<str>,
    /// The question text.
    pub question: Arc<str>,
    /// Index into [`LareqaLanguage::paragraphs`] (0-based, file order across all articles).
    pub paragraph: usize,
    /// Index of the sentence whose break holds `answer_start`.
    pub sentence: usize,
    /// The answer span text.
    pub answer: Arc<str>,
    /// Code-point offset of the answer in the paragraph's context.
    pub answer_start: usize,
}

/// Everything one language file holds.
#[derive(Debug, Clone)]
pub struct LareqaLanguage {
    /// Language code, taken from the file name (`de.json` -> `de`).
    pub lang: Lang,
    /// File it was read from.
    pub path: PathBuf,
    /// Number of articles.
    pub articles: usize,
    /// Paragraphs in file order across all articles.
    pub paragraphs: Vec<LareqaParagraph>,
    /// Questions in file order.
    pub questions: Vec<LareqaQuestion>,
}

impl LareqaLanguage {
    /// Number of candidate sentences in this language.
    pub fn num_sentences(&self) -> usize {
        self.paragraphs.iter().map(|p| p.sentences.len()).sum()
    }
}

/// A whole LAReQA benchmark: one [`LareqaLanguage`] per file, sorted by language code.
#[derive(Debug, Clone)]
pub struct LareqaDataset {
    /// Benchmark name (`xquad-r`, `mlqa-r` or a user-given name).
    pub name: String,
    /// Languages sorted by code.
    pub languages: Vec<LareqaLanguage>,
}

impl LareqaDataset {
    /// Loads every `<lang>.json` file of a directory (other files such as `README.md`,
    /// `LICENSE` are ignored). The language is the file stem.
    pub fn load_dir(name: &str, dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(dir, e))?;
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(DataError::Format {
                path: dir.to_path_buf(),
                place: "directory".into(),
                message: "no `<lang>.json` files found".into(),
            });
        }
        files.sort();
        let languages = files
            .iter()
            .map(|path| {
                // The language code is the file stem; one that is not UTF-8 (possible on Unix)
                // cannot be a language code, and must not silently become an empty one.
                let lang = path.file_stem().and_then(|s| s.to_str()).ok_or_else(|| DataError::Format {
                    path: path.clone(),
                    place: "file name".into(),
                    message: "the file name (the language code) is not valid UTF-8".into(),
                })?;
                load_language(path, lang)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LareqaDataset { name: name.to_string(), languages })
    }

    /// Loads a chosen set of language files `<dir>/<lang>.json`.
    pub fn load_languages(name: &str, dir: &Path, langs: &[&str]) -> Result<Self> {
        let mut sorted: Vec<&str> = langs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let languages =
            sorted.iter().map(|lang| load_language(&dir.join(format!("{lang}.json")), lang)).collect::<Result<Vec<_>>>()?;
        Ok(LareqaDataset { name: name.to_string(), languages })
    }

    /// Language codes in order.
    pub fn language_codes(&self) -> Vec<Lang> {
        self.languages.iter().map(|l| l.lang.clone()).collect()
    }
}

/// Parses and validates one language file. A UTF-8 byte order mark at its start is skipped
/// (editors on Windows write one; JSON itself does not allow it).
///
/// Besides well-formed JSON in the LAReQA layout, every record must be usable for training and
/// evaluation: question ids and questions non-empty, every sentence non-blank (each one is a
/// retrieval candidate, and an answer sentence is a training positive), every context non-blank,
/// ids unique in the file,
/// and each answer at its offset inside a sentence break.
pub fn load_language(path: &Path, lang: &str) -> Result<LareqaLanguage> {
    let format_err = |place: String, message: String| DataError::Format { path: path.to_path_buf(), place, message };
    if lang.trim().is_empty() {
        return Err(format_err("file name".into(), "empty language code (it is the file stem)".into()));
    }
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if reader.fill_buf().map_err(|e| DataError::io(path, e))?.starts_with(UTF8_BOM) {
        reader.consume(UTF8_BOM.len());
    }
    let raw: RawFile = serde_json::from_reader(reader).map_err(|e| DataError::json(path, &e))?;

    let mut paragraphs = Vec::new();
    let mut questions = Vec::new();
    let mut seen_ids = HashSet::new();
    let articles = raw.data.len();
    for (a, article) in raw.data.into_iter().enumerate() {
        let title: Arc<str> = article.title.into();
        for (pi, para) in article.paragraphs.into_iter().enumerate() {
            let place = |extra: &str| format!("data[{a}] \"{title}\" paragraphs[{pi}]{extra}");
            let context_chars = para.context.chars().count();
            if para.sentences.is_empty() {
                return Err(format_err(place(""), "paragraph has no `sentences`".into()));
            }
            // The training view uses the paragraph as every answer's context, and refuses a blank
            // one: refusing it here keeps `data stats` (which only counts) from accepting a file
            // that `data sample` and training then reject.
            if para.context.trim().is_empty() {
                return Err(format_err(place(""), "blank context: every paragraph must have text".into()));
            }
            if para.sentences.len() != para.sentence_breaks.len() {
                return Err(format_err(
                    place(""),
                    format!("{} sentences but {} sentence_breaks", para.sentences.len(), para.sentence_breaks.len()),
                ));
            }
            for (si, sentence) in para.sentences.iter().enumerate() {
                if sentence.trim().is_empty() {
                    return Err(format_err(
                        place(&format!(" sentences[{si}]")),
                        "blank sentence: every sentence is a retrieval candidate and must have text".into(),
                    ));
                }
            }
            for (si, [start, end]) in para.sentence_breaks.iter().copied().enumerate() {
                if start > end || end > context_chars {
                    return Err(format_err(
                        place(&format!(" sentence_breaks[{si}]")),
                        format!("break [{start}, {end}) does not fit the context ({context_chars} code points)"),
                    ));
                }
            }
            let p_index = paragraphs.len();
            for (qi, qa) in para.qas.into_iter().enumerate() {
                let qplace = place(&format!(" qas[{qi}] (id {})", qa.id));
                if qa.id.trim().is_empty() {
                    return Err(format_err(qplace, "empty question id".into()));
                }
                if qa.question.trim().is_empty() {
                    return Err(format_err(qplace, "empty question".into()));
                }
                let [answer] = <[RawAnswer; 1]>::try_from(qa.answers).map_err(|answers| {
                    format_err(qplace.clone(), format!("expected exactly 1 answer, found {}", answers.len()))
                })?;
                if answer.answer_start >= context_chars {
                    return Err(format_err(
                        qplace,
                        format!(
                            "answer_start {} is past the end of the context ({context_chars} code points)",
                            answer.answer_start
                        ),
                    ));
                }
                // The offsets are only trustworthy if they point at the answer text.
                let n = answer.text.chars().count();
                if !para.context.chars().skip(answer.answer_start).take(n).eq(answer.text.chars()) {
                    return Err(format_err(
                        qplace,
                        format!("answer text {:?} is not at code point {} of the context", answer.text, answer.answer_start),
                    ));
                }
                let sentence = para
                    .sentence_breaks
                    .iter()
                    .position(|&[s, e]| s <= answer.answer_start && answer.answer_start < e)
                    .ok_or_else(|| {
                        format_err(qplace.clone(), format!("answer_start {} lies in no sentence break", answer.answer_start))
                    })?;
                if !seen_ids.insert(qa.id.clone()) {
                    return Err(format_err(qplace, "duplicate question id in this file".into()));
                }
                questions.push(LareqaQuestion {
                    id: qa.id.into(),
                    question: qa.question.into(),
                    paragraph: p_index,
                    sentence,
                    answer: answer.text.into(),
                    answer_start: answer.answer_start,
                });
            }
            paragraphs.push(LareqaParagraph {
                article: a,
                title: title.clone(),
                context: para.context.into(),
                sentences: para.sentences.into_iter().map(Arc::from).collect(),
                sentence_breaks: para.sentence_breaks,
            });
        }
    }
    // An empty file (`{"data": []}`, or paragraphs without questions) would load as a language
    // with nothing to ask: its scores and batches would silently leave it out.
    if questions.is_empty() {
        return Err(format_err("file".into(), "no questions: a LAReQA language file holds at least one".into()));
    }
    Ok(LareqaLanguage { lang: lang.into(), path: path.to_path_buf(), articles, paragraphs, questions })
}
