//! Peak memory and time of one cached vs. uncached contrastive step on a randomly initialised
//! BERT-shaped encoder (model crate), to check that caching bounds activation memory.
//!
//! ```text
//! cargo run --release -p hybrid-ir-loss --example cached_memory -- cached 32 8
//! cargo run --release -p hybrid-ir-loss --example cached_memory -- uncached 32 8
//! ```
//! Arguments: `cached|uncached`, batch size B (queries; positives and one hard negative each),
//! chunk size. Run each mode in its own process: the printed peak RSS (`VmHWM`) is per process.

use std::ops::Range;
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use hybrid_ir_loss::{CachedLoss, ChunkedEncoder, EmbeddingRole, LossConfig};
use hybrid_ir_model::{BertConfig, BertEncoder, PoolingConfig};

const SEQ: usize = 64;
const VOCAB: usize = 1000;

struct RandomTexts {
    rows: [usize; 3],
    device: Device,
}

impl ChunkedEncoder<BertEncoder> for RandomTexts {
    fn rows(&self, role: EmbeddingRole) -> usize {
        self.rows[EmbeddingRole::ALL.iter().position(|&r| r == role).unwrap()]
    }

    fn embed(&self, model: &BertEncoder, role: EmbeddingRole, rows: Range<usize>) -> Tensor<2> {
        // Deterministic pseudo-tokens from (role, row, position); every token is real.
        let salt = role as i64 * 7919;
        let ids: Vec<i64> =
            rows.clone().flat_map(|r| (0..SEQ).map(move |p| (salt + r as i64 * 131 + p as i64 * 17) % VOCAB as i64)).collect();
        let n = rows.len();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, SEQ]), &self.device);
        let mask = Tensor::<2, Int>::ones([n, SEQ], &self.device);
        model.embed_with(ids, mask, PoolingConfig::default())
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("cached", String::as_str);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let chunk: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);

    let device = Device::flex().autodiff();
    // Same initial weights in every process, so the two modes' losses are comparable.
    device.seed(0);
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": VOCAB, "hidden_size": 384, "num_hidden_layers": 4, "num_attention_heads": 12,
        "intermediate_size": 1536, "max_position_embeddings": 128
    }))
    .expect("config");
    let model = BertEncoder::new(&config, false, &device);
    let texts = RandomTexts { rows: [batch, batch, batch], device: device.clone() };
    let keys: Vec<u64> = (0..batch as u64).collect();
    let cached = CachedLoss::new(LossConfig::default().build().expect("loss"), chunk).expect("chunk");

    let before = peak_rss_mib();
    let start = Instant::now();
    let step = match mode {
        "cached" => cached.step(&model, &texts, Some(&keys), 1),
        "uncached" => cached.uncached_step(&model, &texts, Some(&keys), 1),
        other => panic!("mode must be cached or uncached, got {other}"),
    }
    .expect("step");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "mode={mode} B={batch} chunk={chunk} seq={SEQ} loss={:.6} grads={} time={secs:.2}s peak_rss_before={before:.0}MiB peak_rss={:.0}MiB",
        step.loss,
        step.grads.len(),
        peak_rss_mib()
    );
}
