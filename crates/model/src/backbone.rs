//! The [`Backbone`] trait: what training, evaluation, encoding and the benchmarks need from a text
//! encoder, and the generic helpers around any burn [`Module`] (device, parameter counts,
//! burnpack save / load).
//!
//! A backbone is a burn module that maps a padded token batch to one pooled embedding per row.
//! Pooling and normalisation belong to the backbone (a static-embedding model has only a mean;
//! BERT has CLS, mean or pooler), so callers never need to know which kind they hold. Every
//! pipeline stage of the project — the trainer's cached loss, `encode`, `eval --model`,
//! validation, `reproduce`, the speed benchmarks — takes `B: Backbone`.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor};

use crate::error::{ModelError, Result};

/// A text encoder that the whole pipeline can train, evaluate and save.
///
/// Implement it for your own burn module (derive `Module`, then this trait) to train it with
/// `hybrid_ir_train::Trainer`, evaluate it with `hybrid-ir-eval` and encode with
/// [`crate::pipeline::embed_sequences`]. The built-ins are [`crate::BertEncoder`] (BERT, XLM-R,
/// LaBSE layouts), [`crate::StaticEncoder`] (a token-embedding table with mean pooling) and
/// [`crate::AnyEncoder`] (either, chosen at run time from a model directory).
pub trait Backbone: Module + Clone + std::fmt::Debug + Send + 'static {
    /// Pooled (and, if the model says so, L2-normalised) embeddings `[B, D]` of `input_ids
    /// [B, L]` with `attention_mask [B, L]` (1 = token, 0 = padding). On an autodiff device the
    /// result carries the graph (and dropout is active where the model has any).
    fn embed(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2>;

    /// Embedding dimension `D`.
    fn dim(&self) -> usize;

    /// Rows of the token-embedding table: every token id fed to [`Backbone::embed`] must be below
    /// it (the text pipeline checks the tokenizer against it when it is built).
    fn vocab_size(&self) -> usize;

    /// A short name of the architecture for logs and run cards (`bert`, `static`, …).
    fn kind(&self) -> &'static str;

    /// The device the parameters live on (autodiff while training, plain after `valid()`).
    fn device(&self) -> Device {
        module_device(self).unwrap_or_else(Device::flex)
    }
}

/// The device of `module`'s first parameter, or `None` for a module without parameters.
pub fn module_device<M: Module>(module: &M) -> Option<Device> {
    struct First(Option<Device>);
    impl ModuleVisitor for First {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.0.is_none() {
                self.0 = Some(param.val().device());
            }
        }
    }
    let mut visitor = First(None);
    module.visit(&mut visitor);
    visitor.0
}

/// `(all parameters, parameters that train)` of any module.
pub fn count_parameters<M: Module>(module: &M) -> (usize, usize) {
    struct Count(usize, usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let n = t.shape().num_elements();
            self.0 += n;
            if t.is_require_grad() {
                self.1 += n;
            }
        }
    }
    let mut count = Count(0, 0);
    module.visit(&mut count);
    (count.0, count.1)
}

/// Whether every parameter value of `module` is finite: a NaN or infinite weight makes every
/// embedding NaN, which must stop a command rather than be written out.
pub fn first_non_finite_parameter<M: Module>(module: &M) -> Option<String> {
    struct Check(Option<String>, usize);
    impl ModuleVisitor for Check {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1 += 1;
            if self.0.is_some() {
                return;
            }
            let t = param.val();
            // `is_nan` / `is_inf` reductions stay on the device; one scalar comes back.
            let bad = t.clone().is_nan().any().into_scalar::<bool>() || t.is_inf().any().into_scalar::<bool>();
            if bad {
                self.0 = Some(format!("parameter #{} ({:?})", self.1, param.id));
            }
        }
    }
    let mut check = Check(None, 0);
    module.visit(&mut check);
    check.0
}

/// Saves `module`'s weights as a burnpack file (parameter ids kept, for exact resume).
pub fn save_module<M: Module>(module: &M, path: &Path) -> Result<()> {
    module.clone().save_file(path).map_err(|e| ModelError::Record { path: path.to_path_buf(), message: e.to_string() })
}

/// Loads a burnpack file written by [`save_module`] into `module`, which must have the same
/// structure (e.g. the freshly loaded base model the run started from). Which parameters train
/// is a property of the module, not of the file: apply freezing after loading.
pub fn load_module_into<M: Module>(module: M, path: &Path) -> Result<M> {
    module.try_load_file(path).map_err(|e| ModelError::Record { path: path.to_path_buf(), message: e.to_string() })
}
