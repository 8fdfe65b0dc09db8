//! The retrieval view of a LAReQA benchmark: queries, the pooled multilingual candidate set and
//! relevance, exactly as LAReQA defines them (see the crate README for the recipe).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

use crate::Lang;
use crate::lareqa::LareqaDataset;

/// One query: a question in one language.
#[derive(Debug, Clone)]
pub struct BenchmarkQuery {
    /// Query language.
    pub lang: Lang,
    /// Parallel id (shared by the translations of the question).
    pub id: Arc<str>,
    /// Question text.
    pub text: Arc<str>,
    /// Indices into [`RetrievalBenchmark::candidates`] of every relevant candidate (the answer
    /// sentence in each language where the id exists), ascending.
    pub relevant: Vec<u32>,
}

/// One candidate: a sentence of a paragraph of one language.
#[derive(Debug, Clone)]
pub struct BenchmarkCandidate {
    /// `{lang}_{p}_{s}`: p = 0-based paragraph index in file order across all articles,
    /// s = 0-based sentence index within the paragraph.
    pub id: String,
    /// Candidate language.
    pub lang: Lang,
    /// The sentence (LAReQA's `sentences` entry, verbatim).
    pub sentence: Arc<str>,
    /// Its paragraph (verbatim; shared with the paragraph's other sentences).
    pub context: Arc<str>,
    /// Parallel ids of the questions this sentence answers (a set: ~250 XQuAD-R sentences per
    /// language answer two or more questions).
    pub answers: Vec<Arc<str>>,
}

/// Queries, candidates and relevance of a LAReQA-style benchmark.
///
/// Queries and candidates are stored grouped by language, in [`Self::languages`] order, so the
/// queries or candidates of one language are a contiguous range.
#[derive(Debug, Clone)]
pub struct RetrievalBenchmark {
    /// Benchmark name.
    pub name: String,
    /// Languages, sorted by code.
    pub languages: Vec<Lang>,
    /// All queries, grouped by language.
    pub queries: Vec<BenchmarkQuery>,
    /// The pooled multilingual candidate set, grouped by language.
    pub candidates: Vec<BenchmarkCandidate>,
    query_ranges: Vec<Range<usize>>,
    candidate_ranges: Vec<Range<usize>>,
}

/// The counts `hybrid-ir data stats` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchmarkStats {
    /// Benchmark name.
    pub benchmark: String,
    /// Languages.
    pub languages: Vec<String>,
    /// Number of queries (all languages).
    pub queries: usize,
    /// Number of candidates in the multilingual pool.
    pub candidates: usize,
    /// Number of distinct parallel ids.
    pub distinct_ids: usize,
    /// Histogram: number of relevant candidates per query -> number of queries.
    pub relevant_per_query: std::collections::BTreeMap<usize, usize>,
    /// Histogram: number of languages an id exists in -> number of ids.
    pub ids_by_language_count: std::collections::BTreeMap<usize, usize>,
    /// Per-language counts.
    pub per_language: std::collections::BTreeMap<String, LanguageStats>,
}

/// Per-language counts of a benchmark.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LanguageStats {
    /// Questions in this language.
    pub queries: usize,
    /// Candidate sentences in this language.
    pub candidates: usize,
    /// Paragraphs in this language.
    pub paragraphs: usize,
    /// Articles in this language.
    pub articles: usize,
}

impl RetrievalBenchmark {
    /// Builds the retrieval view of a loaded LAReQA dataset.
    ///
    /// # Panics
    ///
    /// On a hand-assembled dataset whose question points past its paragraphs or sentences
    /// ([`LareqaDataset::load_dir`] never yields one).
    pub fn from_lareqa(dataset: &LareqaDataset) -> Self {
        let languages: Vec<Lang> = dataset.language_codes();
        let mut candidates = Vec::new();
        let mut candidate_ranges = Vec::new();
        // (lang index, paragraph, sentence) -> candidate index, for labelling.
        let mut first_candidate_of_paragraph: Vec<Vec<usize>> = Vec::new();
        for language in &dataset.languages {
            let start = candidates.len();
            let mut firsts = Vec::with_capacity(language.paragraphs.len());
            for (p, para) in language.paragraphs.iter().enumerate() {
                firsts.push(candidates.len());
                for (s, sentence) in para.sentences.iter().enumerate() {
                    candidates.push(BenchmarkCandidate {
                        id: format!("{}_{p}_{s}", language.lang),
                        lang: language.lang.clone(),
                        sentence: sentence.clone(),
                        context: para.context.clone(),
                        answers: Vec::new(),
                    });
                }
            }
            first_candidate_of_paragraph.push(firsts);
            candidate_ranges.push(start..candidates.len());
        }

        // Label: the sentence holding each question's answer start answers that id.
        let mut relevant_by_id: HashMap<Arc<str>, Vec<u32>> = HashMap::new();
        for (li, language) in dataset.languages.iter().enumerate() {
            for q in &language.questions {
                let c = first_candidate_of_paragraph[li][q.paragraph] + q.sentence;
                if !candidates[c].answers.contains(&q.id) {
                    candidates[c].answers.push(q.id.clone());
                }
                relevant_by_id.entry(q.id.clone()).or_default().push(c as u32);
            }
        }
        for list in relevant_by_id.values_mut() {
            list.sort_unstable();
            list.dedup();
        }

        let mut queries = Vec::new();
        let mut query_ranges = Vec::new();
        for language in &dataset.languages {
            let start = queries.len();
            for q in &language.questions {
                queries.push(BenchmarkQuery {
                    lang: language.lang.clone(),
                    id: q.id.clone(),
                    text: q.question.clone(),
                    relevant: relevant_by_id[&q.id].clone(),
                });
            }
            query_ranges.push(start..queries.len());
        }
        RetrievalBenchmark { name: dataset.name.clone(), languages, queries, candidates, query_ranges, candidate_ranges }
    }

    /// Position of a language code in [`Self::languages`].
    pub fn language_index(&self, lang: &str) -> Option<usize> {
        self.languages.iter().position(|l| &**l == lang)
    }

    /// Range of [`Self::queries`] in the language at `lang_index`.
    pub fn query_range(&self, lang_index: usize) -> Range<usize> {
        self.query_ranges[lang_index].clone()
    }

    /// Range of [`Self::candidates`] in the language at `lang_index`.
    pub fn candidate_range(&self, lang_index: usize) -> Range<usize> {
        self.candidate_ranges[lang_index].clone()
    }

    /// Relevant candidates of query `q` restricted to the language at `lang_index` (the
    /// cross-lingual X→Y view). Empty when the id has no answer in that language (MLQA-R).
    pub fn relevant_in(&self, q: usize, lang_index: usize) -> impl Iterator<Item = u32> + '_ {
        let range = self.candidate_range(lang_index);
        self.queries[q].relevant.iter().copied().filter(move |&c| range.contains(&(c as usize)))
    }

    /// Counts of the benchmark (what `hybrid-ir data stats` prints).
    pub fn stats(&self, dataset: &LareqaDataset) -> BenchmarkStats {
        let mut relevant_per_query = std::collections::BTreeMap::new();
        for q in &self.queries {
            *relevant_per_query.entry(q.relevant.len()).or_insert(0) += 1;
        }
        let mut langs_per_id: HashMap<&str, usize> = HashMap::new();
        for q in &self.queries {
            *langs_per_id.entry(&q.id).or_insert(0) += 1;
        }
        let mut ids_by_language_count = std::collections::BTreeMap::new();
        for &n in langs_per_id.values() {
            *ids_by_language_count.entry(n).or_insert(0) += 1;
        }
        let per_language = dataset
            .languages
            .iter()
            .map(|l| {
                (
                    l.lang.to_string(),
                    LanguageStats {
                        queries: l.questions.len(),
                        candidates: l.num_sentences(),
                        paragraphs: l.paragraphs.len(),
                        articles: l.articles,
                    },
                )
            })
            .collect();
        BenchmarkStats {
            benchmark: self.name.clone(),
            languages: self.languages.iter().map(|l| l.to_string()).collect(),
            queries: self.queries.len(),
            candidates: self.candidates.len(),
            distinct_ids: langs_per_id.len(),
            relevant_per_query,
            ids_by_language_count,
            per_language,
        }
    }
}
