//! A config-driven BERT-family transformer encoder (BERT, XLM-R, LaBSE layouts) in burn.
//!
//! The module tree mirrors Hugging Face `BertModel` names so checkpoints map with two renames
//! (`attention.self` -> `attention.self_attention`, `LayerNorm` -> `layer_norm`). The layer is
//! hand-written post-LN, as in HF: dropout on the embeddings, on attention probabilities and on
//! both residual branches (none after GELU). Attention is matmul + an additive mask + softmax
//! (not burn's `attention` op, whose boolean mask is inverted on LibTorch); the attention core
//! and the LayerNorm blocks go through [`crate::kernels`], which runs them as libtorch's fused
//! kernels (forward and backward) on LibTorch devices.
//! Dropout acts only on autodiff devices (see burn's `Dropout`), so the same module trains on an
//! autodiff device and runs deterministic inference on a plain one.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, FloatDType, Int, Tensor};

use crate::backbone::Backbone;
use crate::config::BertConfig;
use crate::kernels;
use crate::pooling::{PoolingConfig, PoolingMode, cls_pool, l2_normalize, mean_pool};

/// Additive attention bias for padding keys: large enough that `exp` underflows to 0 in f32.
const MASKED_SCORE: f32 = -1e9;

/// `linear` applied to every token of `x [B, L, in]` as one `[B·L, in] x [in, out]` product,
/// with an f32 result; in `compute` precision when given (bf16 operands, the f32 weights stay
/// the master copy and get f32 gradients).
///
/// Why not `linear.forward(x)`: for 3-D input burn keeps a batched matmul against the broadcast
/// weight whenever `L` fills its row tiles (e.g. `L` = 128), and the weight gradient of a
/// broadcast matmul is a `[B, in, out]` batched product summed afterwards: `B` times the memory
/// and a fresh, page-faulted allocation per layer. Flattened, the gradient is one GEMM.
fn token_linear(linear: &Linear, x: Tensor<3>, compute: Option<FloatDType>) -> Tensor<3> {
    to_f32(token_product(linear, x, compute), compute)
}

/// [`token_linear`] with the result left in `compute` precision (for operands of a further
/// product, which would otherwise be cast to f32 and straight back).
fn token_product(linear: &Linear, x: Tensor<3>, compute: Option<FloatDType>) -> Tensor<3> {
    let [batch, len, d_in] = x.dims();
    let x = x.reshape([batch * len, d_in]);
    let y = match compute {
        None => kernels::linear(linear, x),
        Some(dtype) => burn::tensor::module::linear(
            x.cast(dtype),
            linear.weight.val().cast(dtype),
            linear.bias.as_ref().map(|b| b.val().cast(dtype)),
        ),
    };
    let [_, d_out] = y.dims();
    y.reshape([batch, len, d_out])
}

/// A `compute`-precision result back in f32 (unchanged when `compute` is `None`).
fn to_f32<const D: usize>(t: Tensor<D>, compute: Option<FloatDType>) -> Tensor<D> {
    if compute.is_some() { t.cast(FloatDType::F32) } else { t }
}

/// Word + position + token-type embeddings, LayerNorm, dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab, hidden]`.
    pub word_embeddings: Embedding,
    /// `[max_positions, hidden]`.
    pub position_embeddings: Embedding,
    /// `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding,
    /// Output LayerNorm.
    pub layer_norm: LayerNorm,
    /// Output dropout.
    pub dropout: Dropout,
    /// The LayerNorm's epsilon (burn's `LayerNorm` keeps its own private).
    pub layer_norm_eps: f64,
    /// First position id (0 for BERT, `padding_idx + 1` for XLM-R).
    pub position_offset: usize,
}

impl BertEmbeddings {
    /// `input_ids [B, L]` -> `[B, L, H]`. Token types are all 0 (single-segment inputs).
    pub fn forward(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, len] = input_ids.dims();
        let device = input_ids.device();
        let start = self.position_offset as i64;
        let positions = Tensor::<1, Int>::arange(start..start + len as i64, &device).reshape([1, len]);
        let types = Tensor::<2, Int>::zeros([1, len], &device);
        let words = self.word_embeddings.forward(input_ids);
        // [1, L, H] position/type rows broadcast over the batch.
        let x = words + self.position_embeddings.forward(positions) + self.token_type_embeddings.forward(types);
        kernels::layer_norm_dropout(x, &self.layer_norm, self.layer_norm_eps, &self.dropout)
    }
}

/// Multi-head self-attention (Q, K, V projections and the probability dropout).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Dropout on attention probabilities.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

impl BertSelfAttention {
    /// `x [B, L, H]`, `bias [B, 1, 1, L]` (0 or [`MASKED_SCORE`]) -> context `[B, L, H]`;
    /// products in `compute` precision when given (see [`BertEncoder::bf16_matmuls`]).
    pub fn forward(&self, x: Tensor<3>, bias: Tensor<4>, compute: Option<FloatDType>) -> Tensor<3> {
        let [batch, len, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let split = |t: Tensor<3>| t.reshape([batch, len, self.num_heads, head_dim]).swap_dims(1, 2);
        // q, k, v stay in `compute` precision: they are operands of the attention products.
        let q = split(token_product(&self.query, x.clone(), compute));
        let k = split(token_product(&self.key, x.clone(), compute));
        let v = split(token_product(&self.value, x, compute));
        let bias = match compute {
            Some(dtype) => bias.cast(dtype),
            None => bias,
        };
        let context = to_f32(kernels::attention(q, k, v, bias, &self.dropout), compute);
        context.swap_dims(1, 2).reshape([batch, len, hidden])
    }
}

/// Attention output projection, dropout, residual and LayerNorm.
#[derive(Module, Debug)]
pub struct BertSelfOutput {
    /// Output projection.
    pub dense: Linear,
    /// Post-residual LayerNorm.
    pub layer_norm: LayerNorm,
    /// Residual-branch dropout.
    pub dropout: Dropout,
    /// The LayerNorm's epsilon.
    pub layer_norm_eps: f64,
}

/// Self-attention block (`attention.self` + `attention.output` in HF).
#[derive(Module, Debug)]
pub struct BertAttention {
    /// Q/K/V and softmax (`attention.self` in HF checkpoints).
    pub self_attention: BertSelfAttention,
    /// Output projection and LayerNorm.
    pub output: BertSelfOutput,
}

/// FFN up-projection (`intermediate` in HF), followed by exact GELU.
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// `hidden -> intermediate`.
    pub dense: Linear,
}

/// FFN down-projection, dropout, residual and LayerNorm (`output` in HF).
#[derive(Module, Debug)]
pub struct BertOutput {
    /// `intermediate -> hidden`.
    pub dense: Linear,
    /// Post-residual LayerNorm.
    pub layer_norm: LayerNorm,
    /// Residual-branch dropout.
    pub dropout: Dropout,
    /// The LayerNorm's epsilon.
    pub layer_norm_eps: f64,
}

/// One post-LN transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Attention block.
    pub attention: BertAttention,
    /// FFN up-projection.
    pub intermediate: BertIntermediate,
    /// FFN down-projection and LayerNorm.
    pub output: BertOutput,
}

impl BertLayer {
    /// `x [B, L, H]` -> `[B, L, H]`; products in `compute` precision when given.
    pub fn forward(&self, x: Tensor<3>, bias: Tensor<4>, compute: Option<FloatDType>) -> Tensor<3> {
        let ctx = self.attention.self_attention.forward(x.clone(), bias, compute);
        let out = &self.attention.output;
        let x = kernels::add_dropout_layer_norm(
            token_linear(&out.dense, ctx, compute),
            x,
            &out.dropout,
            &out.layer_norm,
            out.layer_norm_eps,
        );
        let h = kernels::gelu(token_linear(&self.intermediate.dense, x.clone(), compute));
        let o = &self.output;
        kernels::add_dropout_layer_norm(token_linear(&o.dense, h, compute), x, &o.dropout, &o.layer_norm, o.layer_norm_eps)
    }
}

/// The layer stack (`encoder` in HF).
#[derive(Module, Debug)]
pub struct BertStack {
    /// Layers, `encoder.layer.{i}` in HF.
    pub layer: Vec<BertLayer>,
}

/// BERT's pooler: `tanh(dense(h_cls))`.
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `hidden -> hidden`.
    pub dense: Linear,
}

/// A BERT-family encoder: token ids and attention mask in, token states or pooled embeddings out.
///
/// Build it with [`BertEncoder::new`] (random weights, for training from scratch or tests) or
/// load a Hugging Face directory with [`crate::hf::load_hf_dir`].
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// Embedding block.
    pub embeddings: BertEmbeddings,
    /// Transformer layers.
    pub encoder: BertStack,
    /// Optional BERT pooler (checkpoints without one, such as the Q4 e5, have none).
    pub pooler: Option<BertPooler>,
    /// Mixed precision: the transformer layers' matrix products (the linear layers and the
    /// attention core) run on bf16 copies of their operands, everything else (embeddings,
    /// LayerNorm, residuals, pooling, the loss, the weights and their gradients) in f32: what
    /// PyTorch's bf16 autocast does. Off by default; pays on GPUs and on CPUs with bf16 units.
    pub bf16_matmuls: bool,
    /// How token states become one embedding ([`Backbone::embed`] applies it): from the
    /// sentence-transformers files of the model directory, mean + L2 by default.
    #[module(skip)]
    pub pooling: PoolingConfig,
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

fn layer_norm(config: &BertConfig, device: &Device) -> LayerNorm {
    LayerNormConfig::new(config.hidden_size).with_epsilon(config.layer_norm_eps).init(device)
}

impl BertEncoder {
    /// A freshly initialised encoder for `config`; `with_pooler` adds the BERT pooler.
    /// Parameters are lazy: they materialise on first use or are replaced by a checkpoint load.
    pub fn new(config: &BertConfig, with_pooler: bool, device: &Device) -> Self {
        let h = config.hidden_size;
        let hidden_dropout = || DropoutConfig::new(config.hidden_dropout_prob).init();
        let layers = (0..config.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: linear(h, h, device),
                        key: linear(h, h, device),
                        value: linear(h, h, device),
                        dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
                        num_heads: config.num_attention_heads,
                    },
                    output: BertSelfOutput {
                        dense: linear(h, h, device),
                        layer_norm: layer_norm(config, device),
                        dropout: hidden_dropout(),
                        layer_norm_eps: config.layer_norm_eps,
                    },
                },
                intermediate: BertIntermediate { dense: linear(h, config.intermediate_size, device) },
                output: BertOutput {
                    dense: linear(config.intermediate_size, h, device),
                    layer_norm: layer_norm(config, device),
                    dropout: hidden_dropout(),
                    layer_norm_eps: config.layer_norm_eps,
                },
            })
            .collect();
        Self {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
                position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h).init(device),
                token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
                layer_norm: layer_norm(config, device),
                dropout: hidden_dropout(),
                layer_norm_eps: config.layer_norm_eps,
                position_offset: config.position_offset(),
            },
            encoder: BertStack { layer: layers },
            pooler: with_pooler.then(|| BertPooler { dense: linear(h, h, device) }),
            bf16_matmuls: false,
            pooling: PoolingConfig::default(),
        }
    }

    /// The structure `meta` describes (its config, pooler and pooling) with fresh weights: what
    /// [`crate::load_weights`] fills from `model.safetensors` and what a checkpoint is loaded into.
    pub fn for_meta(meta: &crate::hf::ModelMeta, device: &Device) -> Self {
        let mut encoder = Self::new(&meta.config, meta.has_pooler, device);
        encoder.pooling = meta.pooling;
        encoder
    }

    /// The precision of the layers' matrix products: `Some(bf16)` with [`Self::bf16_matmuls`],
    /// else `None` (f32). Pass it to [`BertLayer::forward`] when running layers by hand.
    pub fn compute_dtype(&self) -> Option<FloatDType> {
        self.bf16_matmuls.then_some(FloatDType::BF16)
    }

    /// Hidden size (embedding dimension).
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.dims()[1]
    }

    /// Last-layer token states: `input_ids [B, L]`, `attention_mask [B, L]` (1 = token, 0 = pad)
    /// -> `[B, L, H]`.
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let [batch, len] = attention_mask.dims();
        // (1 - mask) * MASKED_SCORE, shaped [B, 1, 1, L] to broadcast over heads and queries.
        let bias = (attention_mask.float().neg().add_scalar(1.0) * MASKED_SCORE).reshape([batch, 1, 1, len]);
        let mut x = self.embeddings.forward(input_ids);
        let compute = self.compute_dtype();
        for layer in &self.encoder.layer {
            x = layer.forward(x, bias.clone(), compute);
        }
        x
    }

    /// Pools token states into `[B, H]` and optionally L2-normalises.
    ///
    /// # Panics
    /// With [`PoolingMode::Pooler`] on an encoder without pooler weights (the loader refuses that
    /// combination up front).
    pub fn pool(&self, states: Tensor<3>, attention_mask: Tensor<2, Int>, pooling: PoolingConfig) -> Tensor<2> {
        let pooled = match pooling.mode {
            PoolingMode::Mean => mean_pool(states, attention_mask),
            PoolingMode::Cls => cls_pool(states),
            PoolingMode::Pooler => {
                let pooler = self.pooler.as_ref().expect("pooling = pooler needs pooler weights");
                pooler.dense.forward(cls_pool(states)).tanh()
            }
        };
        if pooling.normalize { l2_normalize(pooled) } else { pooled }
    }

    /// Token ids and mask -> embeddings `[B, H]` pooled as `pooling` says (the model's own
    /// pooling is [`BertEncoder::pooling`], which [`Backbone::embed`] uses).
    pub fn embed_with(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>, pooling: PoolingConfig) -> Tensor<2> {
        let states = self.forward(input_ids, attention_mask.clone());
        self.pool(states, attention_mask, pooling)
    }

    /// Freezes the embeddings (when `freeze_embeddings`) and all but the top `trainable_layers`
    /// layers (`None` or `Some(0)`: all layers train). Frozen parts also run without dropout: a deterministic
    /// feature extractor, faster (burn Flex draws dropout masks on one thread), and it lets
    /// evaluation cache their outputs across models that share them.
    pub fn with_trainable_layers(self, trainable_layers: Option<usize>, freeze_embeddings: bool) -> Self {
        let Self { embeddings, mut encoder, pooler, bf16_matmuls, pooling } = self;
        let n = encoder.layer.len();
        let trainable = trainable_layers.filter(|&k| k > 0).unwrap_or(n).min(n);
        let embeddings = if freeze_embeddings || trainable < n { embeddings.freeze() } else { embeddings };
        encoder.layer = std::mem::take(&mut encoder.layer)
            .into_iter()
            .enumerate()
            .map(|(i, l)| if i < n - trainable { l.freeze() } else { l })
            .collect();
        Self { embeddings, encoder, pooler, bf16_matmuls, pooling }
    }
}

impl Backbone for BertEncoder {
    fn embed(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        self.embed_with(input_ids, attention_mask, self.pooling)
    }

    fn dim(&self) -> usize {
        self.hidden_size()
    }

    fn vocab_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.dims()[0]
    }

    fn kind(&self) -> &'static str {
        "bert"
    }
}
