//! Batch samplers: how training batches are built from parallel corpora.
//!
//! Every built-in sampler is an endless, seeded stream of batches with these guarantees:
//! - **No false negatives by construction.** A batch never holds two pairs of one answer cluster
//!   ([`crate::ParallelGroup::cluster`]): not two translations of one id, and not two ids that
//!   share an answer passage. Each [`Pair::group_key`] is the cluster, for the loss's masking.
//! - **Epochs.** Ids are drawn from shuffled epoch queues: each id is used once per epoch of its
//!   queue, and a queue that runs out is reshuffled and starts its next epoch, independently of
//!   the others. An id that clashes with the batch being built keeps its turn for the next batch.
//!   See each sampler for which queues it keeps (e.g. [`Monolingual`] keeps one per language, so
//!   a small language starts its next epoch while a large one is still in its first).
//! - **Availability.** Languages are drawn only among those where the id exists (MLQA-R ids exist
//!   in 2–4 languages). A batch can be smaller than the batch size only when the pool it draws
//!   from has fewer usable ids than that (e.g. a monolingual batch of a language with 60 ids).
//! - **Resumable.** [`BatchSampler::state`] serialises everything (RNG position, queues); a
//!   sampler restored from it yields the same batches as one that never stopped. The state also
//!   records each corpus's [`ParallelCorpus::fingerprint`], and [`BatchSampler::restore`]
//!   refuses a state saved over a corpus whose content has changed since (its queues would
//!   point at other examples), or one whose queues do not fit the corpus; a refused restore
//!   leaves the sampler as it was.
//! - **Bounded memory.** What a batch reserves is bounded by the corpus, not by the requested
//!   batch size: a batch size larger than the corpus (even `usize::MAX`) yields batches of every
//!   usable id.

mod cross;
mod hybrid;
mod mixed;
mod mixer;
mod mono;
pub mod queue;
pub mod rng;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use cross::{CrossLingual, CrossPairing};
pub use hybrid::Hybrid;
pub use mixed::MixedLanguage;
pub use mixer::{CorpusMixer, CorpusSize};
pub use mono::Monolingual;

use crate::Lang;
use crate::corpus::{Example, ParallelCorpus};
use crate::error::{DataError, Result};

/// Which batching scheme produced a batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchKind {
    /// X-X-mono: every pair in one language, the same for the whole batch.
    Mono,
    /// X-Y: every pair has query language != passage language.
    Cross,
    /// LAReQA's X-X: each pair monolingual, languages mixed within the batch.
    Mixed,
    /// A user-defined sampler's label.
    Custom(String),
}

impl BatchKind {
    /// Short label (`mono`, `cross`, `mixed` or the custom name).
    pub fn label(&self) -> &str {
        match self {
            BatchKind::Mono => "mono",
            BatchKind::Cross => "cross",
            BatchKind::Mixed => "mixed",
            BatchKind::Custom(name) => name,
        }
    }
}

/// One (query, positive[, hard negative]) training pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Parallel id of the example.
    pub id: Arc<str>,
    /// Masking key for the loss: pairs with equal keys are translations or share an answer, so
    /// one's passage must not serve as the other's negative. Within one batch built by the
    /// samplers here keys are distinct; a loss may still mask by them for user batches.
    pub group_key: u64,
    /// Language of the query.
    pub query_lang: Lang,
    /// Language of the positive (and of the hard negative).
    pub passage_lang: Lang,
    /// The query text (no prefix: the model adds its own).
    pub query: Arc<str>,
    /// The positive passage.
    pub positive: Arc<str>,
    /// The positive's paragraph, if the corpus has one.
    pub context: Option<Arc<str>>,
    /// A hard negative in the passage language, if the corpus has one.
    pub negative: Option<Arc<str>>,
}

/// A training batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// How it was built.
    pub kind: BatchKind,
    /// Name of the corpus it was drawn from.
    pub corpus: Arc<str>,
    /// The pairs.
    pub pairs: Vec<Pair>,
}

/// Saved state of a sampler (opaque JSON; only the sampler that wrote it can read it).
pub type SamplerState = serde_json::Value;

/// A source of training batches. Implement it to plug your own batching scheme into the
/// trainer; see the crate README for a complete example.
pub trait BatchSampler: Send {
    /// A short description for logs, e.g. `hybrid(alpha=0.5: mono | cross)`.
    fn describe(&self) -> String;

    /// The next batch. Samplers are endless: epochs roll over (see the module docs).
    fn next_batch(&mut self) -> Batch;

    /// Everything needed to continue exactly where this sampler is now. The trainer saves it in
    /// every checkpoint. The default refuses: a sampler that does not implement it cannot be
    /// checkpointed, and the trainer stops at its first checkpoint with this error rather than
    /// resume inexactly later.
    fn state(&self) -> Result<SamplerState> {
        Err(DataError::State(format!(
            "sampler `{}` cannot save its state, so the run cannot be checkpointed or resumed exactly: implement \
             BatchSampler::state and BatchSampler::restore",
            self.describe()
        )))
    }

    /// Restores a state saved by [`Self::state`] of a sampler built with the same configuration.
    /// The built-in samplers refuse, with [`DataError::State`], a state saved over a corpus
    /// whose content changed since (its fingerprint differs) or one that does not fit them, and
    /// leave themselves unchanged when they refuse. The default refuses every state.
    fn restore(&mut self, state: &SamplerState) -> Result<()> {
        let _ = state;
        Err(DataError::State(format!("sampler `{}` cannot restore a saved state (it implements no restore)", self.describe())))
    }

    /// The corpora this sampler draws from, with their content fingerprints, in a fixed order
    /// (for logs and checkpoints; the built-in samplers also check them in
    /// [`Self::restore`]). Defaults to none for samplers that do not report theirs.
    fn corpora(&self) -> Vec<CorpusFingerprint> {
        Vec::new()
    }
}

/// A corpus's name and content fingerprint, as sampler states record them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusFingerprint {
    /// Corpus name (informative: a renamed corpus with the same content still matches).
    pub corpus: String,
    /// [`ParallelCorpus::fingerprint`] as 16 lowercase hex digits (a string, since JSON tools
    /// often read numbers as doubles and would round a u64).
    pub fingerprint: String,
}

impl CorpusFingerprint {
    /// The fingerprint of `corpus`.
    pub fn of(corpus: &ParallelCorpus) -> Self {
        CorpusFingerprint { corpus: corpus.name().to_string(), fingerprint: format!("{:016x}", corpus.fingerprint()) }
    }
}

/// Checks that a state saved over the corpora `saved` can be restored into a sampler over
/// `current`. `sampler` names the sampler in the message.
pub(crate) fn check_corpora(sampler: &str, saved: &[CorpusFingerprint], current: &[CorpusFingerprint]) -> Result<()> {
    if saved.len() != current.len() {
        return Err(DataError::State(format!(
            "{sampler}: the state was saved over {} corpora, this sampler draws from {}",
            saved.len(),
            current.len()
        )));
    }
    for (was, now) in saved.iter().zip(current) {
        if was.fingerprint != now.fingerprint {
            return Err(DataError::State(format!(
                "{sampler}: corpus `{}` changed since the checkpoint: its content fingerprint is now {}, \
                 the state was saved over corpus `{}` with fingerprint {}; resume with the data the \
                 checkpoint was trained on, or start a new run",
                now.corpus, now.fingerprint, was.corpus, was.fingerprint
            )));
        }
    }
    Ok(())
}

/// The corpus lists of several child samplers, concatenated without repeats (a hybrid's two
/// children usually share one corpus).
pub(crate) fn union_corpora<'a>(children: impl IntoIterator<Item = &'a dyn BatchSampler>) -> Vec<CorpusFingerprint> {
    let mut all: Vec<CorpusFingerprint> = Vec::new();
    for child in children {
        for c in child.corpora() {
            if !all.contains(&c) {
                all.push(c);
            }
        }
    }
    all
}

/// Restores each child from its state, all or nothing: when one refuses its state, the children
/// restored before it are put back to where they were, so a failed restore changes nothing.
pub(crate) fn restore_children(children: &mut [&mut Box<dyn BatchSampler>], states: &[&SamplerState]) -> Result<()> {
    let before: Vec<SamplerState> = children.iter().map(|c| c.state()).collect::<Result<_>>()?;
    for i in 0..children.len() {
        if let Err(err) = children[i].restore(states[i]) {
            for (child, state) in children[..i].iter_mut().zip(&before) {
                // A state the child itself just wrote always restores; were it ever refused, the
                // original error is still the one to report.
                let _ = child.restore(state);
            }
            return Err(err);
        }
    }
    Ok(())
}

/// Built-in sampler kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// X-X-mono ([`Monolingual`]).
    Mono,
    /// X-Y ([`CrossLingual`]).
    Cross,
    /// LAReQA X-X ([`MixedLanguage`]).
    Mixed,
    /// The paper's hybrid: mono with probability alpha, cross otherwise ([`Hybrid`]).
    Hybrid,
}

impl SamplerKind {
    /// Parses `mono|cross|mixed|hybrid` (also the paper's names `x-x-mono`, `x-y`, `x-x`).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "mono" | "x-x-mono" | "monolingual" => SamplerKind::Mono,
            "cross" | "x-y" | "cross-lingual" | "crosslingual" => SamplerKind::Cross,
            "mixed" | "x-x" | "mixed-language" => SamplerKind::Mixed,
            "hybrid" => SamplerKind::Hybrid,
            other => {
                return Err(DataError::Config(format!("unknown sampler `{other}` (expected mono, cross, mixed or hybrid)")));
            }
        })
    }
}

fn default_alpha() -> f64 {
    0.5
}
fn default_batch_size() -> usize {
    100
}

/// Serde configuration of the built-in samplers (the `[sampler]` table of a training config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Batching scheme.
    pub kind: SamplerKind,
    /// Probability of a monolingual batch for `hybrid` (paper: 0.5). Ignored otherwise.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Pairs per batch (paper: 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Seed of the whole stream.
    #[serde(default)]
    pub seed: u64,
    /// X-Y language pairing: a pair per row (default) or one pair for the whole batch.
    #[serde(default)]
    pub cross_pairing: CrossPairing,
    /// How several corpora are weighted (one corpus per batch, chosen in proportion to size).
    #[serde(default)]
    pub corpus_size: CorpusSize,
}

impl SamplerConfig {
    /// A config of `kind` with the paper's defaults (alpha 0.5, batch 100, seed 0).
    pub fn new(kind: SamplerKind) -> Self {
        SamplerConfig {
            kind,
            alpha: default_alpha(),
            batch_size: default_batch_size(),
            seed: 0,
            cross_pairing: CrossPairing::default(),
            corpus_size: CorpusSize::default(),
        }
    }

    /// Checks ranges (alpha in [0, 1], batch size > 0).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.alpha) || self.alpha.is_nan() {
            return Err(DataError::Config(format!("alpha must be in [0, 1], got {}", self.alpha)));
        }
        if self.batch_size == 0 {
            return Err(DataError::Config("batch_size must be at least 1".into()));
        }
        Ok(())
    }

    /// Builds the sampler over one corpus.
    pub fn build(&self, corpus: Arc<ParallelCorpus>) -> Result<Box<dyn BatchSampler>> {
        self.build_seeded(corpus, self.seed)
    }

    fn build_seeded(&self, corpus: Arc<ParallelCorpus>, seed: u64) -> Result<Box<dyn BatchSampler>> {
        self.validate()?;
        let b = self.batch_size;
        Ok(match self.kind {
            SamplerKind::Mono => Box::new(Monolingual::new(corpus, b, seed)?),
            SamplerKind::Cross => Box::new(CrossLingual::new(corpus, b, self.cross_pairing, seed)?),
            SamplerKind::Mixed => Box::new(MixedLanguage::new(corpus, b, seed)?),
            SamplerKind::Hybrid => {
                let mono = Monolingual::new(corpus.clone(), b, rng::derive_seed(seed, 1))?;
                let cross = CrossLingual::new(corpus, b, self.cross_pairing, rng::derive_seed(seed, 2))?;
                Box::new(Hybrid::new(self.alpha, Box::new(mono), Box::new(cross), seed)?)
            }
        })
    }

    /// Builds the sampler over several corpora: each batch comes from one corpus, chosen with
    /// probability proportional to its size (the paper's "sampled based on dataset size").
    /// With one corpus this is [`Self::build`].
    pub fn build_multi(&self, corpora: Vec<Arc<ParallelCorpus>>) -> Result<Box<dyn BatchSampler>> {
        match corpora.len() {
            0 => Err(DataError::Config("no training corpus given".into())),
            1 => self.build(corpora.into_iter().next().expect("one corpus")),
            _ => {
                let mut parts = Vec::new();
                for (i, corpus) in corpora.into_iter().enumerate() {
                    let weight = self.corpus_size.of(&corpus);
                    let sampler = self.build_seeded(corpus, rng::derive_seed(self.seed, 100 + i as u64))?;
                    parts.push((sampler, weight));
                }
                Ok(Box::new(CorpusMixer::new(parts, self.seed)?))
            }
        }
    }
}

/// Turns group `g` of `corpus` into a pair with the given query and passage languages.
pub(crate) fn make_pair(corpus: &ParallelCorpus, g: u32, query_lang: u16, passage_lang: u16) -> Pair {
    let group = &corpus.groups()[g as usize];
    // Invariants: queues only ever hold groups of their corpus that exist in the languages
    // drawn for them; `restore` checks a saved queue's items before adopting it.
    let q: &Example = group.version(query_lang).expect("sampler drew a language the id has");
    let p: &Example = group.version(passage_lang).expect("sampler drew a language the id has");
    Pair {
        id: group.id.clone(),
        group_key: group.cluster as u64,
        query_lang: corpus.languages()[query_lang as usize].clone(),
        passage_lang: corpus.languages()[passage_lang as usize].clone(),
        query: q.query.clone(),
        positive: p.positive.clone(),
        context: p.context.clone(),
        negative: p.negative.clone(),
    }
}

/// Saves `value` as a sampler state.
pub(crate) fn to_state<T: Serialize>(value: &T) -> SamplerState {
    serde_json::to_value(value).expect("sampler state serialises")
}

/// Reads a sampler state saved by [`to_state`], checking it belongs to sampler `kind`.
pub(crate) fn from_state<T: for<'de> Deserialize<'de>>(state: &SamplerState, kind: &str) -> Result<T> {
    let found = state.get("sampler").and_then(|v| v.as_str()).unwrap_or("<none>");
    if found != kind {
        return Err(DataError::State(format!("state is for sampler `{found}`, not `{kind}`")));
    }
    serde_json::from_value(state.clone()).map_err(|e| DataError::State(format!("{kind}: {e}")))
}

/// Draws up to `batch_size` groups of pairwise distinct answer clusters from `queue`.
pub(crate) fn draw_distinct_clusters(
    corpus: &ParallelCorpus,
    queue: &mut queue::EpochQueue,
    rng: &mut rng::SamplerRng,
    batch_size: usize,
) -> Vec<u32> {
    // Sized by what the queue can yield, never by the request alone: the batch size comes from
    // the user (`--batch-size 1000000000` must not reserve gigabytes for a corpus of a thousand).
    let mut clusters = std::collections::HashSet::with_capacity(batch_size.min(queue.len()));
    queue.draw(rng, batch_size, |g| clusters.insert(corpus.groups()[g as usize].cluster))
}
