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

/// Query and passage prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
