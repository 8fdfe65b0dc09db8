//! Loss forward + backward on Flex for a batch of B = 100 queries at dim 384 (e5-small) and 768
//! (base models): `cargo bench -p hybrid-ir-loss --bench loss`.
//!
//! One iteration = make the three embedding tensors gradient leaves, compute the loss, backward,
//! and read the query gradient back to the host (so all work is really done).

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hybrid_ir_loss::{ContrastiveBatch, LossConfig, LossKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 100;

fn random(rng: &mut ChaCha8Rng, rows: usize, dim: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = (0..rows * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::<2>::from_data(TensorData::new(data, [rows, dim]), device)
}

fn bench_losses(c: &mut Criterion) {
    let device = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // Parallel ids with groups of 4 (as in a hybrid batch of translations), so masking is on.
    let keys: Vec<u64> = (0..BATCH as u64).map(|i| i / 4).collect();
    let cases = [
        ("in_batch", LossKind::InBatch, false),
        ("in_batch+hn", LossKind::InBatch, true),
        ("paper+hn", LossKind::Paper, true),
        ("symmetric", LossKind::Symmetric, false),
    ];

    let mut group = c.benchmark_group("loss_fwd_bwd_b100");
    for dim in [384, 768] {
        let q = random(&mut rng, BATCH, dim, &device);
        let p = random(&mut rng, BATCH, dim, &device);
        let n = random(&mut rng, BATCH, dim, &device);
        for (name, kind, with_negatives) in cases {
            let loss = LossConfig { kind, ..LossConfig::default() }.build().unwrap();
            group.bench_with_input(BenchmarkId::new(name, dim), &dim, |b, _| {
                b.iter(|| {
                    let leaf = |t: &Tensor<2>| t.clone().autodiff().require_grad();
                    let ql = leaf(&q);
                    let mut batch = ContrastiveBatch::new(ql.clone(), leaf(&p)).with_group_keys(&keys);
                    if with_negatives {
                        batch = batch.with_negatives(leaf(&n));
                    }
                    let value = loss.forward(batch).unwrap();
                    let grads = value.backward();
                    black_box(ql.grad(&grads).unwrap().into_data())
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_losses
}
criterion_main!(benches);
