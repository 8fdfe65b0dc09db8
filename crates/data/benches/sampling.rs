//! Sampler throughput on the real MLQA-R and XQuAD-R training views (batch 100).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hybrid_ir_data::sampler::{SamplerConfig, SamplerKind};
use hybrid_ir_data::{LareqaBenchmark, NegativePolicy, ParallelCorpus, resolve_data_dir};

fn corpus(benchmark: LareqaBenchmark) -> Arc<ParallelCorpus> {
    let root = resolve_data_dir(None);
    let dataset = benchmark.load(&root).unwrap_or_else(|e| panic!("{e} (set HYBRID_IR_DATA)"));
    Arc::new(ParallelCorpus::from_lareqa(&dataset, NegativePolicy::SameParagraph).unwrap())
}

fn sampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("sampler");
    group.throughput(Throughput::Elements(100));
    for benchmark in [LareqaBenchmark::MlqaR, LareqaBenchmark::XquadR] {
        let corpus = corpus(benchmark);
        for kind in [SamplerKind::Mono, SamplerKind::Cross, SamplerKind::Mixed, SamplerKind::Hybrid] {
            let mut sampler = SamplerConfig::new(kind).build(corpus.clone()).unwrap();
            group.bench_function(format!("{benchmark}/{kind:?}/next_batch"), |b| b.iter(|| sampler.next_batch()));
        }
        let mut sampler = SamplerConfig::new(SamplerKind::Hybrid).build(corpus.clone()).unwrap();
        // Snapshot once; each iteration restores it and takes a new snapshot (what a checkpoint does).
        let snapshot = sampler.state().unwrap();
        group.bench_function(format!("{benchmark}/Hybrid/restore+state"), |b| {
            b.iter(|| {
                sampler.restore(&snapshot).unwrap();
                sampler.state().unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sampling);
criterion_main!(benches);
