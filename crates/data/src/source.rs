//! What a corpus name means: a built-in benchmark (`xquad-r`, `mlqa-r`, read from the data root)
//! or a corpus file. `hybrid-ir data sample --corpus`, the training config's `data.corpora` and
//! the library resolve names here, so a typo is reported the same way everywhere: as a name that
//! is neither, with the closest benchmark, never as "unknown file format".

use std::path::{Path, PathBuf};

use crate::corpus::{NegativePolicy, ParallelCorpus};
use crate::error::{DataError, Result};
use crate::lareqa::LareqaBenchmark;
use crate::user_corpus::load_user_corpus;

/// A corpus named on the command line or in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorpusSource {
    /// A built-in benchmark's training view.
    Benchmark(LareqaBenchmark),
    /// A `.jsonl`, `.parquet` or `.arrow` file.
    File(PathBuf),
}

impl CorpusSource {
    /// A benchmark name, else an existing file; anything else is [`DataError::UnknownCorpus`].
    pub fn parse(name: &str) -> Result<Self> {
        if let Ok(benchmark) = LareqaBenchmark::parse(name) {
            return Ok(CorpusSource::Benchmark(benchmark));
        }
        let path = Path::new(name);
        if path.is_file() {
            return Ok(CorpusSource::File(path.to_path_buf()));
        }
        let builtin = LareqaBenchmark::ALL.map(LareqaBenchmark::name).join(", ");
        let message = if path.is_dir() {
            format!("is a directory; a corpus is a built-in benchmark ({builtin}) or a .jsonl, .parquet or .arrow file")
        } else {
            format!("is neither a built-in benchmark ({builtin}) nor an existing file{}", LareqaBenchmark::suggestion(name))
        };
        Err(DataError::UnknownCorpus { name: name.to_string(), message })
    }

    /// Loads the corpus; benchmarks from `data_root` with `negatives` (files carry their own).
    pub fn load(&self, data_root: &Path, negatives: NegativePolicy) -> Result<ParallelCorpus> {
        match self {
            CorpusSource::Benchmark(benchmark) => ParallelCorpus::from_lareqa(&benchmark.load(data_root)?, negatives),
            CorpusSource::File(path) => load_user_corpus(path),
        }
    }
}

/// [`CorpusSource::parse`] then [`CorpusSource::load`].
pub fn load_corpus(name: &str, data_root: &Path, negatives: NegativePolicy) -> Result<ParallelCorpus> {
    CorpusSource::parse(name)?.load(data_root, negatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_benchmark_is_neither_and_gets_the_closest_name() {
        let err = CorpusSource::parse("xquad-rr").unwrap_err().to_string();
        assert_eq!(
            err,
            "`xquad-rr` is neither a built-in benchmark (xquad-r, mlqa-r) nor an existing file; did you mean `xquad-r`?"
        );
        let err = CorpusSource::parse("MLQA_R2").unwrap_err().to_string();
        assert!(err.ends_with("did you mean `mlqa-r`?"), "{err}");
        let err = CorpusSource::parse("no/such/pairs.jsonl").unwrap_err().to_string();
        assert!(err.contains("no/such/pairs.jsonl") && !err.contains("did you mean"), "{err}");
        let err = CorpusSource::parse(".").unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        assert_eq!(CorpusSource::parse("xquad_r").unwrap(), CorpusSource::Benchmark(LareqaBenchmark::XquadR));
        let err = LareqaBenchmark::parse("mlqa").unwrap_err().to_string();
        assert!(err.contains("unknown benchmark `mlqa`") && err.ends_with("did you mean `mlqa-r`?"), "{err}");
    }
}
