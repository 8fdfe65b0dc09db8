//! The training view: a parallel corpus. One [`ParallelGroup`] per parallel id holds the
//! translations of one example, a (question, answer passage[, hard negative]) per language.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::Lang;
use crate::error::{DataError, Result};
use crate::lareqa::LareqaDataset;

/// One language version of a parallel example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The question.
    pub query: Arc<str>,
    /// The relevant passage (for LAReQA: the answer sentence).
    pub positive: Arc<str>,
    /// The positive's surrounding paragraph, when the corpus has one (LAReQA does).
    pub context: Option<Arc<str>>,
    /// An optional hard negative passage in the same language.
    pub negative: Option<Arc<str>>,
}

/// All language versions of one parallel id.
#[derive(Debug, Clone)]
pub struct ParallelGroup {
    /// The parallel id.
    pub id: Arc<str>,
    /// `(language index into ParallelCorpus::languages, example)`, sorted by language index.
    pub versions: Vec<(u16, Example)>,
    /// Answer cluster: groups that share an answer passage (same language, same text) get the
    /// same value. Two groups of one cluster must never meet in a batch, since each one's
    /// positive is a relevant passage of the other (a false negative for the loss).
    pub cluster: u32,
}

impl ParallelGroup {
    /// The version in the language at `lang`, if the id exists there.
    pub fn version(&self, lang: u16) -> Option<&Example> {
        self.versions.binary_search_by_key(&lang, |(l, _)| *l).ok().map(|i| &self.versions[i].1)
    }

    /// Language indices where this id exists, ascending.
    pub fn languages(&self) -> impl ExactSizeIterator<Item = u16> + '_ {
        self.versions.iter().map(|(l, _)| *l)
    }
}

/// How to attach a hard negative to LAReQA-derived examples (the files have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NegativePolicy {
    /// No hard negatives: only in-batch negatives are used.
    #[default]
    None,
    /// The next sentence of the answer's paragraph (the previous one for a paragraph's last
    /// sentence): topically close but not the answer. Paragraphs of one sentence get none.
    SameParagraph,
}

/// A parallel QA corpus: groups of translations sharing one id.
#[derive(Debug, Clone)]
pub struct ParallelCorpus {
    name: Arc<str>,
    languages: Vec<Lang>,
    groups: Vec<ParallelGroup>,
    groups_by_language: Vec<Vec<u32>>,
    /// [`Self::fingerprint`], computed on first use: the corpus is immutable once built, and
    /// hashing every text of a large corpus at each checkpoint would be wasted work.
    fingerprint: OnceLock<u64>,
}

/// Counts describing a [`ParallelCorpus`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CorpusStats {
    /// Corpus name.
    pub corpus: String,
    /// Languages.
    pub languages: Vec<String>,
    /// Distinct parallel ids.
    pub ids: usize,
    /// (id, language) examples = monolingual pairs.
    pub examples: usize,
    /// Ordered cross-lingual (query language != passage language) pairs.
    pub cross_pairs: usize,
    /// Examples per language.
    pub per_language: BTreeMap<String, usize>,
    /// Number of languages an id exists in -> number of ids.
    pub ids_by_language_count: BTreeMap<usize, usize>,
    /// Examples with a hard negative.
    pub with_negative: usize,
    /// Answer clusters holding more than one id (see [`ParallelGroup::cluster`]).
    pub shared_answer_clusters: usize,
}

/// Incremental construction of a [`ParallelCorpus`]; rejects duplicate (id, language) entries.
#[derive(Debug, Default)]
pub struct ParallelCorpusBuilder {
    name: String,
    languages: Vec<Lang>,
    lang_index: HashMap<Lang, u16>,
    groups: Vec<ParallelGroup>,
    group_index: HashMap<Arc<str>, u32>,
}

impl ParallelCorpusBuilder {
    /// Starts an empty corpus.
    pub fn new(name: impl Into<String>) -> Self {
        ParallelCorpusBuilder { name: name.into(), ..Default::default() }
    }

    /// Adds the `lang` version of parallel id `id`. Errors (with a message meant to be wrapped
    /// with the file and row by the caller) on an empty or whitespace-only id, language or text,
    /// or a duplicate (id, lang).
    pub fn push(&mut self, id: &str, lang: &str, example: Example) -> std::result::Result<(), String> {
        // Whitespace-only ids and languages are refused like empty ones: they are invisible in
        // logs and error messages, so two of them would be indistinguishable to the user.
        if id.trim().is_empty() {
            return Err("empty `id`".into());
        }
        if lang.trim().is_empty() {
            return Err("empty `lang`".into());
        }
        let texts = [
            ("query", Some(&example.query)),
            ("positive", Some(&example.positive)),
            ("negative", example.negative.as_ref()),
            ("context", example.context.as_ref()),
        ];
        for (field, text) in texts {
            if text.is_some_and(|t| t.trim().is_empty()) {
                return Err(format!("empty `{field}` text"));
            }
        }
        let li = match self.lang_index.get(lang) {
            Some(&li) => li,
            None => {
                let li = u16::try_from(self.languages.len()).map_err(|_| "more than 65535 languages")?;
                let lang: Lang = lang.into();
                self.languages.push(lang.clone());
                self.lang_index.insert(lang, li);
                li
            }
        };
        let gi = match self.group_index.get(id) {
            Some(&gi) => gi,
            None => {
                let gi = self.groups.len() as u32;
                let id: Arc<str> = id.into();
                self.groups.push(ParallelGroup { id: id.clone(), versions: Vec::new(), cluster: gi });
                self.group_index.insert(id, gi);
                gi
            }
        };
        let versions = &mut self.groups[gi as usize].versions;
        if versions.iter().any(|(l, _)| *l == li) {
            return Err(format!("duplicate (id, lang) = ({id}, {lang})"));
        }
        versions.push((li, example));
        Ok(())
    }

    /// Finishes the corpus: languages sorted by code, answer clusters computed.
    pub fn build(self) -> ParallelCorpus {
        // Sort languages by code and renumber versions.
        let mut order: Vec<usize> = (0..self.languages.len()).collect();
        order.sort_by(|&a, &b| self.languages[a].cmp(&self.languages[b]));
        let mut renumber = vec![0u16; order.len()];
        for (new, &old) in order.iter().enumerate() {
            renumber[old] = new as u16;
        }
        let languages: Vec<Lang> = order.iter().map(|&i| self.languages[i].clone()).collect();
        let mut groups = self.groups;
        for g in &mut groups {
            for v in &mut g.versions {
                v.0 = renumber[v.0 as usize];
            }
            g.versions.sort_by_key(|(l, _)| *l);
        }
        assign_answer_clusters(&mut groups);
        let mut groups_by_language = vec![Vec::new(); languages.len()];
        for (gi, g) in groups.iter().enumerate() {
            for l in g.languages() {
                groups_by_language[l as usize].push(gi as u32);
            }
        }
        ParallelCorpus { name: self.name.into(), languages, groups, groups_by_language, fingerprint: OnceLock::new() }
    }
}

/// Union-find over groups that share a positive passage in some language.
fn assign_answer_clusters(groups: &mut [ParallelGroup]) {
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    let mut parent: Vec<u32> = (0..groups.len() as u32).collect();
    let mut owner: HashMap<(u16, &str), u32> = HashMap::new();
    for (gi, g) in groups.iter().enumerate() {
        for (l, ex) in &g.versions {
            match owner.get(&(*l, &*ex.positive)) {
                Some(&other) => {
                    let (a, b) = (find(&mut parent, gi as u32), find(&mut parent, other));
                    parent[a.max(b) as usize] = a.min(b);
                }
                None => {
                    owner.insert((*l, &ex.positive), gi as u32);
                }
            }
        }
    }
    let roots: Vec<u32> = (0..groups.len() as u32).map(|g| find(&mut parent, g)).collect();
    for (g, root) in groups.iter_mut().zip(roots) {
        g.cluster = root;
    }
}

impl ParallelCorpus {
    /// Builds the training view of a LAReQA dataset: per id and language, the question, its
    /// answer sentence (the positive) and the paragraph (the context).
    ///
    /// Data from [`LareqaDataset::load_dir`] always converts; a dataset assembled or edited by
    /// hand (its fields are public) can still hold what the loader refuses — the same id twice
    /// in one language (two entries for one language), an empty id or text, a question pointing
    /// past its paragraphs or sentences — and is then refused with the file and the question.
    pub fn from_lareqa(dataset: &LareqaDataset, negatives: NegativePolicy) -> Result<Self> {
        let mut builder = ParallelCorpusBuilder::new(dataset.name.clone());
        for language in &dataset.languages {
            for (qi, q) in language.questions.iter().enumerate() {
                let error = |message: String| DataError::Format {
                    path: language.path.clone(),
                    place: format!("questions[{qi}] (id {:?})", &*q.id),
                    message,
                };
                let para = language.paragraphs.get(q.paragraph).ok_or_else(|| {
                    error(format!("paragraph {} does not exist ({} paragraphs)", q.paragraph, language.paragraphs.len()))
                })?;
                let positive = para.sentences.get(q.sentence).cloned().ok_or_else(|| {
                    error(format!("sentence {} does not exist in its paragraph ({} sentences)", q.sentence, para.sentences.len()))
                })?;
                let negative = match negatives {
                    NegativePolicy::None => None,
                    NegativePolicy::SameParagraph => {
                        let n = para.sentences.len();
                        let neighbour = if q.sentence + 1 < n { Some(q.sentence + 1) } else { q.sentence.checked_sub(1) };
                        neighbour.map(|s| para.sentences[s].clone()).filter(|s| *s != positive)
                    }
                };
                let example = Example { query: q.question.clone(), positive, context: Some(para.context.clone()), negative };
                builder.push(&q.id, &language.lang, example).map_err(error)?;
            }
        }
        Ok(builder.build())
    }

    /// A content hash of the corpus: every id, language, query, positive, context and negative
    /// text and every answer cluster, in corpus order. Equal corpora give equal fingerprints on
    /// every run and platform (FNV-1a over a fixed byte encoding; std's hasher is randomly
    /// seeded), and any edit — a changed text, a reordered or added row — changes it.
    ///
    /// Sampler states record it so that a checkpoint is not resumed over a corpus that changed
    /// since: their queues hold group indices, which would silently point at other examples.
    /// The name is left out, so a renamed or moved file still resumes. Not a cryptographic hash.
    pub fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| {
            let mut h = Fnv1a::new();
            // A version tag: a future change of the encoding must not collide with this one.
            h.str("hybrid-ir parallel corpus v1");
            h.count(self.languages.len());
            for lang in &self.languages {
                h.str(lang);
            }
            h.count(self.groups.len());
            for g in &self.groups {
                h.str(&g.id);
                h.count(g.cluster as usize);
                h.count(g.versions.len());
                for (lang, ex) in &g.versions {
                    h.count(*lang as usize);
                    h.str(&ex.query);
                    h.str(&ex.positive);
                    h.opt_str(ex.context.as_deref());
                    h.opt_str(ex.negative.as_deref());
                }
            }
            h.finish()
        })
    }

    /// Corpus name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Shared name (cheap to put in every batch).
    pub fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// Languages, sorted by code.
    pub fn languages(&self) -> &[Lang] {
        &self.languages
    }

    /// Index of a language code.
    pub fn language_index(&self, lang: &str) -> Option<u16> {
        self.languages.iter().position(|l| &**l == lang).map(|i| i as u16)
    }

    /// All groups.
    pub fn groups(&self) -> &[ParallelGroup] {
        &self.groups
    }

    /// Indices of the groups that exist in the language at `lang`.
    pub fn groups_in(&self, lang: u16) -> &[u32] {
        &self.groups_by_language[lang as usize]
    }

    /// Number of (id, language) examples.
    pub fn num_examples(&self) -> usize {
        self.groups.iter().map(|g| g.versions.len()).sum()
    }

    /// Keeps only the given languages (e.g. the paper's training languages); ids left with no
    /// version are dropped. Errors on a language the corpus does not have.
    pub fn restrict_languages(&self, keep: &[&str]) -> Result<ParallelCorpus> {
        for lang in keep {
            if self.language_index(lang).is_none() {
                return Err(DataError::Config(format!(
                    "corpus `{}` has no language `{lang}` (it has {})",
                    self.name,
                    self.languages.join(", ")
                )));
            }
        }
        let mut builder = ParallelCorpusBuilder::new(self.name.to_string());
        for g in &self.groups {
            for (l, ex) in &g.versions {
                let lang = &self.languages[*l as usize];
                if keep.contains(&&**lang) {
                    builder.push(&g.id, lang, ex.clone()).map_err(DataError::Config)?;
                }
            }
        }
        Ok(builder.build())
    }

    /// The same corpus with every hard negative removed: to train on in-batch negatives only
    /// from a corpus that carries negatives (e.g. one written by `hybrid-ir mine`). Ids,
    /// languages, group order and answer clusters are unchanged.
    pub fn without_negatives(&self) -> ParallelCorpus {
        let mut groups = self.groups.clone();
        for g in &mut groups {
            for (_, ex) in &mut g.versions {
                ex.negative = None;
            }
        }
        ParallelCorpus {
            name: self.name.clone(),
            languages: self.languages.clone(),
            groups,
            groups_by_language: self.groups_by_language.clone(),
            fingerprint: OnceLock::new(),
        }
    }

    /// Splits off a held-out part by id (for validation loss): every `1/every`-th id, chosen
    /// by a hash of the id so the split is stable across runs and machines.
    pub fn split_holdout(&self, every: u32) -> (ParallelCorpus, ParallelCorpus) {
        let mut train = ParallelCorpusBuilder::new(self.name.to_string());
        let mut held = ParallelCorpusBuilder::new(format!("{}-heldout", self.name));
        for g in &self.groups {
            let target = if every > 0 && fnv1a(g.id.as_bytes()) % every as u64 == 0 { &mut held } else { &mut train };
            for (l, ex) in &g.versions {
                // An invariant, not input validation: every entry of a built corpus passed these
                // same checks once, and each (id, lang) goes to exactly one of the two parts.
                target.push(&g.id, &self.languages[*l as usize], ex.clone()).expect("source corpus is valid");
            }
        }
        (train.build(), held.build())
    }

    /// Counts.
    pub fn stats(&self) -> CorpusStats {
        let mut per_language = BTreeMap::new();
        let mut ids_by_language_count = BTreeMap::new();
        let mut cross_pairs = 0;
        let mut with_negative = 0;
        let mut cluster_sizes: HashMap<u32, usize> = HashMap::new();
        for g in &self.groups {
            let n = g.versions.len();
            *ids_by_language_count.entry(n).or_insert(0) += 1;
            cross_pairs += n * (n - 1);
            for (l, ex) in &g.versions {
                *per_language.entry(self.languages[*l as usize].to_string()).or_insert(0) += 1;
                with_negative += usize::from(ex.negative.is_some());
            }
            *cluster_sizes.entry(g.cluster).or_insert(0) += 1;
        }
        CorpusStats {
            corpus: self.name.to_string(),
            languages: self.languages.iter().map(|l| l.to_string()).collect(),
            ids: self.groups.len(),
            examples: self.num_examples(),
            cross_pairs,
            per_language,
            ids_by_language_count,
            with_negative,
            shared_answer_clusters: cluster_sizes.values().filter(|&&n| n > 1).count(),
        }
    }
}

/// FNV-1a: a tiny stable hash (std's hasher is randomly seeded, which would make splits vary).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.bytes(bytes);
    h.finish()
}

/// Streaming 64-bit FNV-1a. Fields are written with their length first, so that moving text
/// between two neighbouring fields ("ab", "c" vs "a", "bc") changes the hash.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A count, as 8 little-endian bytes (the same on 32- and 64-bit platforms).
    fn count(&mut self, n: usize) {
        self.bytes(&(n as u64).to_le_bytes());
    }

    fn str(&mut self, text: &str) {
        self.count(text.len());
        self.bytes(text.as_bytes());
    }

    fn opt_str(&mut self, text: Option<&str>) {
        match text {
            None => self.bytes(&[0]),
            Some(text) => {
                self.bytes(&[1]);
                self.str(text);
            }
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
