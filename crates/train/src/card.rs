//! The model card (`README.md`) that `hybrid-ir export` writes next to the model, as
//! sentence-transformers does on save: YAML front matter the Hugging Face hub reads (languages,
//! `library_name`, `pipeline_tag`, tags, base model), then what was trained and how, how it scored,
//! how to load it, and the paper to cite.
//!
//! Everything comes from the run directory: `config.toml` (base model, corpora, sampler, loss,
//! optimiser, schedule, seed), the exported checkpoint's state (its step), and the run's
//! evaluation when it has one: `final_eval.json`, else the `reproduce` `results.json` two levels up
//! that names this run, else the last `eval` line of `metrics.jsonl` (macro figures only).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hybrid_ir_metrics::{LareqaReport, Scores};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::export::RunModel;
use crate::runlog::MetricsEvent;

/// The paper this project implements, as the card cites it (`../shared/docs/paper.md` §1.1: the
/// arXiv v1 author block).
pub const CITATION_BIBTEX: &str = "@article{elmahdy2024synergistic,
  title   = {Synergistic Approach for Simultaneous Optimization of Monolingual, Cross-lingual, and
             Multilingual Information Retrieval},
  author  = {Elmahdy, Adel and Lin, Sheng-Chieh and Ahmad, Amin},
  journal = {arXiv preprint arXiv:2408.10536},
  year    = {2024},
  url     = {https://arxiv.org/abs/2408.10536}
}";

/// Hugging Face hub ids of the base models `cargo xtask fetch-models` provides, by directory
/// name. The hub checks `base_model` against its models, so a local directory name is never
/// written there; an unknown base model is named in the text only (or given with `--base-model`).
const KNOWN_BASE_MODELS: [(&str, &str); 2] = [
    ("multilingual-e5-small", "intfloat/multilingual-e5-small"),
    ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
];

/// Where the card's evaluation figures come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CardEvaluation {
    /// A full LAReQA report (`final_eval.json` or `reproduce`'s `results.json`).
    Report {
        /// The file it was read from.
        source: PathBuf,
        /// The report.
        report: Box<LareqaReport>,
    },
    /// Only the macro figures of the last `eval` line of `metrics.jsonl`.
    Macro {
        /// Step of the evaluation.
        step: u64,
        /// Benchmark name.
        benchmark: String,
        /// mAP mono / cross / multi.
        map: [f64; 3],
        /// Mean rank distance (multilingual).
        rank_distance: Option<f64>,
    },
}

/// What a card says, gathered from a run; [`ModelCard::render`] writes it.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// Name of the exported model (the output directory's name).
    pub name: String,
    /// The run's config.
    pub config: TrainConfig,
    /// Base model directory name.
    pub base_name: String,
    /// Hub id of the base model, when known.
    pub base_model_id: Option<String>,
    /// Backbone kind (`bert`, `static`), dimension, pooling and max length.
    pub backbone: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Pooling, e.g. `mean, normalized`.
    pub pooling: String,
    /// Query / passage truncation in tokens.
    pub max_len: (usize, usize),
    /// Query / passage prefixes.
    pub prefixes: (String, String),
    /// Tokenizer pipeline followed.
    pub tokenizer: String,
    /// Languages of the training corpora.
    pub train_languages: Vec<String>,
    /// Step of the exported checkpoint and which pointer it was (`best` / `last`).
    pub checkpoint: (u64, String),
    /// The evaluation, when the run has one.
    pub evaluation: Option<CardEvaluation>,
    /// File name of the mAP heatmap written next to the card, when there is a full report.
    pub heatmap_file: Option<String>,
}

impl ModelCard {
    /// Gathers the card of `run` (read from `run_dir`, exported as `out_dir`). `base_model_id`
    /// overrides the hub id of the base model. `train_languages` are the training corpora's
    /// languages (the caller loads the corpora; an empty list leaves them out).
    pub fn from_run(
        run_dir: &Path,
        run: &RunModel,
        out_dir: &Path,
        base_model_id: Option<&str>,
        train_languages: Vec<String>,
    ) -> Result<Self> {
        let base_name = dir_name(&run.config.model.dir);
        let base_model_id = base_model_id
            .map(str::to_owned)
            .or_else(|| KNOWN_BASE_MODELS.iter().find(|(n, _)| *n == base_name).map(|(_, id)| (*id).to_owned()));
        if let Some(id) = &base_model_id
            && !valid_hub_id(id)
        {
            return Err(TrainError::Other(format!(
                "base model id {id:?} is not a Hugging Face model id (owner/name: letters, digits, '-', '_', '.')"
            )));
        }
        let pooling = &run.pipeline.pooling;
        let evaluation = find_evaluation(run_dir)?;
        let heatmap_file = matches!(evaluation, Some(CardEvaluation::Report { .. })).then(|| "heatmap.svg".to_string());
        Ok(Self {
            name: dir_name(out_dir),
            config: run.config.clone(),
            base_name,
            base_model_id,
            backbone: run.info.kind().to_string(),
            dim: run.info.dim(),
            pooling: format!("{}{}", format!("{:?}", pooling.mode).to_lowercase(), if pooling.normalize { ", L2-normalised" } else { "" }),
            max_len: (run.pipeline.query_tokenizer.max_len(), run.pipeline.passage_tokenizer.max_len()),
            prefixes: (run.pipeline.prefixes.query.clone(), run.pipeline.prefixes.passage.clone()),
            tokenizer: run.pipeline.passage_tokenizer.reference().describe(),
            train_languages,
            checkpoint: (run.step, run.pointer.clone()),
            evaluation,
            heatmap_file,
        })
    }

    /// Every language the card names: training and evaluation, sorted, each once.
    pub fn languages(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.train_languages.iter().cloned().collect();
        if let Some(CardEvaluation::Report { report, .. }) = &self.evaluation {
            all.extend(report.languages.iter().cloned());
        }
        all.into_iter().collect()
    }

    /// The mAP heatmap (query language × candidate language) of the full report, if any.
    pub fn heatmap_svg(&self) -> Option<String> {
        match &self.evaluation {
            Some(CardEvaluation::Report { report, .. }) => {
                let title = format!("{}: mAP of {} by query and candidate language", report.benchmark, self.name);
                Some(hybrid_ir_metrics::heatmap::heatmap_svg(&title, &report.languages, &report.map_matrix()))
            }
            _ => None,
        }
    }

    /// The card: YAML front matter, then Markdown.
    pub fn render(&self) -> String {
        let c = &self.config;
        let mut s = String::from("---\n");
        let languages = self.languages();
        if !languages.is_empty() {
            s += "language:\n";
            for l in &languages {
                s += &format!("- {}\n", yaml_str(l));
            }
        }
        s += "library_name: sentence-transformers\npipeline_tag: sentence-similarity\ntags:\n";
        for tag in [
            "sentence-transformers",
            "sentence-similarity",
            "feature-extraction",
            "dense-retrieval",
            "multilingual",
            "hybrid-batch-training",
            "hybrid-ir",
        ] {
            s += &format!("- {tag}\n");
        }
        if let Some(id) = &self.base_model_id {
            s += &format!("base_model: {}\n", yaml_str(id));
        }
        s += "---\n\n";

        let sampler = serde_name(&c.sampler.kind);
        let batches = match sampler.as_str() {
            "mono" => "monolingual batches (X-X-mono: one language per batch)".to_string(),
            "cross" => "cross-lingual batches (X-Y: query language differs from passage language)".to_string(),
            "hybrid" => format!(
                "hybrid batches (X-X-mono with probability α = {}, else X-Y), so that one model serves monolingual, \
                 cross-lingual and multilingual retrieval",
                c.sampler.alpha
            ),
            other => format!("{other} batches"),
        };
        s += &format!("# {}\n\n", self.name);
        s += &format!(
            "A dense retriever fine-tuned from `{}` by hybrid-ir with {batches}, following \
             [arXiv 2408.10536](https://arxiv.org/abs/2408.10536). It maps a text to a {}-dimensional vector; compare \
             vectors by cosine similarity.\n\n",
            self.base_name, self.dim
        );

        s += "## Model\n\n| | |\n|---|---|\n";
        let base = match &self.base_model_id {
            Some(id) => format!("[{id}](https://huggingface.co/{id}) (local directory `{}`)", c.model.dir.display()),
            None => format!("`{}`", c.model.dir.display()),
        };
        s += &format!("| base model | {base} |\n");
        s += &format!("| backbone | {}, {} dimensions, {} pooling |\n", self.backbone, self.dim, self.pooling);
        s += &format!("| max length | queries {} tokens, passages {} tokens |\n", self.max_len.0, self.max_len.1);
        s += &format!("| prefixes | query {}, passage {} |\n", md_code(&self.prefixes.0), md_code(&self.prefixes.1));
        s += &format!("| tokenizer | {} |\n", self.tokenizer);
        s += &format!("| exported checkpoint | `{}`, step {} |\n\n", self.checkpoint.1, self.checkpoint.0);

        s += "## Training\n\n| | |\n|---|---|\n";
        s += &format!("| corpora | {} |\n", c.data.corpora.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", "));
        if !self.train_languages.is_empty() {
            s += &format!("| languages | {} ({}) |\n", self.train_languages.join(", "), self.train_languages.len());
        }
        let alpha = if sampler == "hybrid" {
            format!(", α = {} (probability of a monolingual batch)", c.sampler.alpha)
        } else {
            String::new()
        };
        s += &format!("| sampler | {sampler}{alpha} |\n");
        s += &format!(
            "| loss | {}, {} score, temperature τ = {}{} |\n",
            serde_name(&c.loss.kind),
            serde_name(&c.loss.score),
            c.loss.temperature,
            if c.loss.mask_same_group { ", translations of the positive masked" } else { "" }
        );
        s += &format!("| steps | {} planned, checkpoint at step {} |\n", c.schedule.steps, self.checkpoint.0);
        s += &format!(
            "| batch size | {} pairs (in-batch negatives), gradient accumulation {} |\n",
            c.sampler.batch_size, c.optim.grad_accum
        );
        s += &format!(
            "| optimiser | AdamW, learning rate {}, weight decay {}, warm-up {} steps, {} decay{} |\n",
            c.optim.lr,
            c.optim.weight_decay,
            c.optim.warmup_steps,
            serde_name(&c.optim.decay),
            c.optim.grad_clip_norm.filter(|n| *n > 0.0).map(|n| format!(", gradient norm clipped at {n}")).unwrap_or_default()
        );
        let layers = match c.model.trainable_layers {
            Some(k) if k > 0 => format!("top {k} transformer layers"),
            _ => "all layers".to_string(),
        };
        s += &format!("| trained | {layers}{} |\n", if c.model.freeze_embeddings { ", embeddings frozen" } else { "" });
        s += &format!("| seed | {} |\n\n", c.seed);

        s += &self.render_evaluation();

        s += "## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\n";
        s += &format!("model = SentenceTransformer(\"{}\")\n", self.base_model_hint());
        let (q_prompt, p_prompt) = if self.prefixes.0.is_empty() && self.prefixes.1.is_empty() {
            ("", "")
        } else {
            (", prompt_name=\"query\"", ", prompt_name=\"passage\"")
        };
        s += &format!("queries = model.encode([\"Where is the Eiffel Tower?\"]{q_prompt})\n");
        let passages = "[\"La tour Eiffel se trouve à Paris.\", \"Der Eiffelturm steht in Paris.\"]";
        s += &format!("passages = model.encode({passages}{p_prompt})\n");
        s += "print(model.similarity(queries, passages))\n```\n\n";
        if !q_prompt.is_empty() {
            s += &format!(
                "The prompts `query` ({}) and `passage` ({}) are stored in `config_sentence_transformers.json`; they are \
                 the prefixes the model was trained with.\n\n",
                md_code(&self.prefixes.0),
                md_code(&self.prefixes.1)
            );
        }
        s += "With hybrid-ir: `hybrid-ir encode --model DIR --input texts.jsonl --out vectors.parquet`.\n\n";

        s += "## Citation\n\n```bibtex\n";
        s += CITATION_BIBTEX;
        s += "\n```\n";
        s
    }

    fn base_model_hint(&self) -> String {
        format!("path/to/{}", self.name)
    }

    fn render_evaluation(&self) -> String {
        let Some(evaluation) = &self.evaluation else {
            return "## Evaluation\n\nThe run has no retrieval evaluation (set `[eval] benchmark` in the config, or use \
                    `hybrid-ir eval --model DIR`).\n\n"
                .to_string();
        };
        let mut s = String::from("## Evaluation\n\n");
        match evaluation {
            CardEvaluation::Report { source, report } => {
                s += &format!(
                    "LAReQA protocol on {} ({} languages, {} queries, {} candidates; from `{}`). mAP over the full ranking; \
                     monolingual: queries against candidates of their own language; cross-lingual: mean over ordered \
                     language pairs X ≠ Y; multilingual: against the pooled candidates of every language.\n\n",
                    report.benchmark,
                    report.languages.len(),
                    report.num_queries,
                    report.num_candidates,
                    source.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
                );
                s += "| setting | mAP | MRR@10 | R@1 | R@10 |\n|---|---|---|---|---|\n";
                let st = &report.settings;
                for (name, sc) in [("monolingual", &st.mono), ("cross-lingual", &st.cross), ("multilingual", &st.multi)] {
                    s += &format!("| {name} | {} |\n", score_cells(sc));
                }
                s += "\n### Language bias\n\n";
                s += "Rank distance in the multilingual setting: the mean gap between the ranks of a query's relevant \
                      passages in different languages (0 = no preference for any language; lower is better).\n\n";
                s += &format!("Mean rank distance: **{}**.\n\n", fmt_opt(st.multi.rank_distance, 1));
                s += "| query language | mAP mono | mAP cross | mAP multi | rank distance |\n|---|---|---|---|---|\n";
                for (lang, l) in &report.per_language {
                    s += &format!(
                        "| {lang} | {:.4} | {:.4} | {:.4} | {} |\n",
                        l.mono.map,
                        l.cross.map,
                        l.multi.map,
                        fmt_opt(l.multi.rank_distance, 1)
                    );
                }
                if let Some(file) = &self.heatmap_file {
                    s += "\nmAP per query language (rows) and candidate language (columns):\n\n";
                    s += &format!("![mAP heatmap]({file})\n");
                }
                s += "\n";
            }
            CardEvaluation::Macro { step, benchmark, map, rank_distance } => {
                s += &format!("{benchmark} at step {step} (from `metrics.jsonl`):\n\n");
                s += "| mAP mono | mAP cross | mAP multi | rank distance (language bias) |\n|---|---|---|---|\n";
                s += &format!("| {:.4} | {:.4} | {:.4} | {} |\n\n", map[0], map[1], map[2], fmt_opt(*rank_distance, 1));
            }
        }
        s
    }
}

/// The run's evaluation, most complete first (see the module docs).
pub fn find_evaluation(run_dir: &Path) -> Result<Option<CardEvaluation>> {
    let final_eval = run_dir.join("final_eval.json");
    if final_eval.is_file() {
        let bytes = std::fs::read(&final_eval).map_err(|e| TrainError::io(&final_eval, e))?;
        let report: LareqaReport =
            serde_json::from_slice(&bytes).map_err(|e| TrainError::Other(format!("{}: {e}", final_eval.display())))?;
        return Ok(Some(CardEvaluation::Report { source: final_eval, report: Box::new(report) }));
    }
    if let Some(found) = reproduce_report(run_dir) {
        return Ok(Some(found));
    }
    let metrics = run_dir.join("metrics.jsonl");
    if metrics.is_file() {
        let text = std::fs::read_to_string(&metrics).map_err(|e| TrainError::io(&metrics, e))?;
        // A line that does not parse is skipped here: the card is a summary, and the trainer
        // itself reports a damaged log when it resumes.
        let mut evals = text.lines().filter_map(|l| serde_json::from_str::<MetricsEvent>(l).ok()).filter_map(|e| match e {
            MetricsEvent::Eval { step, benchmark, map_mono, map_cross, map_multi, rank_distance } => {
                Some(CardEvaluation::Macro { step, benchmark, map: [map_mono, map_cross, map_multi], rank_distance })
            }
            _ => None,
        });
        return Ok(evals.next_back());
    }
    Ok(None)
}

/// The report of this run in a `reproduce` directory's `results.json` (`OUT/train-X/LABEL` →
/// `OUT/results.json`). Absent or unreadable files are no evaluation, not an error: the run
/// may not come from `reproduce` at all.
fn reproduce_report(run_dir: &Path) -> Option<CardEvaluation> {
    let results = run_dir.parent()?.parent()?.join("results.json");
    let bytes = std::fs::read(&results).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    // `results.json` is `[options, [direction, ...]]`.
    let directions = value.get(1)?.as_array()?;
    let same = |p: &str| {
        let p = Path::new(p);
        p == run_dir || (p.canonicalize().ok().is_some_and(|a| run_dir.canonicalize().ok().is_some_and(|b| a == b)))
    };
    for d in directions {
        for m in d.get("models")?.as_array()? {
            if m.get("run_dir").and_then(|r| r.as_str()).is_some_and(same) {
                let report: LareqaReport = serde_json::from_value(m.get("report")?.clone()).ok()?;
                return Some(CardEvaluation::Report { source: results, report: Box::new(report) });
            }
        }
    }
    None
}

fn score_cells(s: &Scores) -> String {
    format!("{:.4} | {:.4} | {:.4} | {:.4}", s.map, s.mrr_at_10, s.recall_at_1, s.recall_at_10)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "–".into())
}

/// A serde enum's name as it is written in the config (`hybrid`, `in_batch`, …).
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// A YAML scalar in double quotes (JSON string syntax is valid YAML), so no value can be read as
/// a number, a boolean or a YAML construct (`no`, `1e5`, `: `).
fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `text` as inline code, or "none".
fn md_code(text: &str) -> String {
    if text.is_empty() { "none".into() } else { format!("`{}`", text.replace('`', "'")) }
}

fn dir_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// `owner/name` as the hub allows: letters, digits, `-`, `_`, `.`; no part starting or ending with
/// `-` or `.`, and no `--` or `..`.
fn valid_hub_id(id: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !part.starts_with(['-', '.'])
            && !part.ends_with(['-', '.'])
            && !part.contains("--")
            && !part.contains("..")
    };
    matches!(id.split('/').collect::<Vec<_>>()[..], [owner, name] if ok(owner) && ok(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_are_quoted_and_hub_ids_checked() {
        // Values YAML would otherwise read as a boolean, a number or a mapping stay strings.
        assert_eq!(yaml_str("no"), "\"no\"");
        assert_eq!(yaml_str("1e5"), "\"1e5\"");
        assert_eq!(yaml_str("a: \"b\""), "\"a: \\\"b\\\"\"");
        assert!(valid_hub_id("intfloat/multilingual-e5-small"));
        assert!(valid_hub_id("me/model_v1.2"));
        for bad in ["multilingual-e5-small", "a/b/c", "/x", "x/", "me/my model", "../x"] {
            assert!(!valid_hub_id(bad), "{bad}");
        }
    }
}
