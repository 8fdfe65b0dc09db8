//! Text prefixes that tell an asymmetric encoder whether it reads a query or a passage.

use serde::{Deserialize, Serialize};

/// What kind of text is encoded; decides which prefix is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    /// A search query: the query prefix is added.
    Query,
    /// A candidate passage: the passage prefix is added.
    Passage,
    /// The text as given, no prefix.
    Raw,
}

impl std::str::FromStr for TextKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "query" => Ok(Self::Query),
            "passage" => Ok(Self::Passage),
            "raw" => Ok(Self::Raw),
            other => Err(format!("unknown text kind {other:?} (query | passage | raw)")),
        }
    }
}

/// Query and passage prefixes (default: none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixConfig {
    /// Added before queries.
    pub query: String,
    /// Added before passages.
    pub passage: String,
}

impl PrefixConfig {
    /// e5's native prefixes: `"query: "` / `"passage: "`.
    pub fn e5() -> Self {
        Self { query: "query: ".into(), passage: "passage: ".into() }
    }

    /// The capitalised prefixes of the hybrid-batch paper: `"Query: "` / `"Passage: "`.
    pub fn paper() -> Self {
        Self { query: "Query: ".into(), passage: "Passage: ".into() }
    }

    /// No prefixes (symmetric models such as all-MiniLM-L6-v2).
    pub fn none() -> Self {
        Self { query: String::new(), passage: String::new() }
    }

    /// The prefix for `kind`.
    pub fn prefix(&self, kind: TextKind) -> &str {
        match kind {
            TextKind::Query => &self.query,
            TextKind::Passage => &self.passage,
            TextKind::Raw => "",
        }
    }

    /// `text` with the prefix for `kind`.
    pub fn apply(&self, kind: TextKind, text: &str) -> String {
        format!("{}{}", self.prefix(kind), text)
    }
}

/// Which query/passage prefixes to add before tokenizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PrefixStyle {
    /// What the model directory says (sentence-transformers `prompts`), else none. Default.
    #[default]
    Model,
    /// e5's `query: ` / `passage: `.
    E5,
    /// The paper's `Query: ` / `Passage: `.
    Paper,
    /// No prefixes.
    None,
    /// `query_prefix` / `passage_prefix` as given.
    Custom,
}

impl PrefixStyle {
    /// The prefixes of this style: `model_default` (what the model directory says) for `Model`,
    /// `custom` for `Custom`, the fixed pairs otherwise.
    pub fn resolve(self, model_default: &PrefixConfig, custom: PrefixConfig) -> PrefixConfig {
        match self {
            Self::Model => model_default.clone(),
            Self::E5 => PrefixConfig::e5(),
            Self::Paper => PrefixConfig::paper(),
            Self::None => PrefixConfig::none(),
            Self::Custom => custom,
        }
    }
}

impl std::str::FromStr for PrefixStyle {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "model" => Ok(Self::Model),
            "e5" => Ok(Self::E5),
            "paper" => Ok(Self::Paper),
            "none" => Ok(Self::None),
            "custom" => Ok(Self::Custom),
            other => Err(format!("unknown prefix style {other:?}: expected model, paper, e5, none or custom")),
        }
    }
}
