#!/usr/bin/env bash
# Runs on the GPU machine (see scripts/gpu-check.sh, which fills .gpu/ here first). Every
# measurement prints one JSON line; all of them are also written to $OUT/gpu-results.jsonl.
#   - tch-cuda embeddings vs tch-cpu (max |diff| <= 1e-3),
#   - training step at the paper's batch size 100 (hybrid-ir tch-cuda; PyTorch fp32, bf16),
#   - full XQuAD-R encode + evaluation (hybrid-ir) and the candidate encoding (both engines),
#   - operators per training step, both engines counted by the same RecordFunction callback
#     (`speed op-count`, tables in $OUT/op-count.md), and the tiny step's host time,
#   - with GPU_TRAIN_RUNS=1: two short full fine-tuning runs with `hybrid-ir train` (MLQA-R ->
#     XQuAD-R, batch 100, lr 3e-5), with and without frozen embeddings: lever 2's quality side.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=/tmp/hybrid-ir-gpu; mkdir -p "$W"
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
R="$OUT/gpu-results.jsonl"; : > "$R"
S=$W/speed; H=$W/hybrid-ir; M=$W/e5-small-enpt; D=$W/data; B=$W/in/batches.json; Q=$W/in/sequences.json
record() { echo "== $*" >&2; "$@" | tee -a "$R"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
mkdir -p "$D" && tar xzf .gpu/data.tgz -C "$D"
for b in speed hybrid-ir; do  # xz-compressed by gpu-check.sh; python's lzma needs no xz binary
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' ".gpu/$b.xz" "$W/$b"
  chmod +x "$W/$b"
done
.gpu/xtask convert-e5 --bin .gpu/e5-small-enpt-q4.bin --tokenizer .gpu/tokenizer.json --out "$M"
record $S prepare --model "$M" --data "$D" --out "$W/in" --batch 100 --batches 4 --sequences 0
# GPU_QUICK=1: only the GEMM, the training step (fp32, bf16), fp32 encoding and the operator
# counts (a second run in one session, when device time is short).
Q1=${GPU_QUICK:-0}
[ "$Q1" = 1 ] || record $S compare-devices --model "$M" --sequences "$Q" --a tch-cpu --b tch-cuda:0 --limit 512
record $S gemm --device tch-cuda:0 --n 4096 --reps 20
record python3 benches/pytorch_bench.py gemm --device cuda --n 4096 --reps 20
variants=("" "--bf16" "--burn-kernels" "--sort-by-length --chunk-size 25" "--sort-by-length --chunk-size 25 --freeze-embeddings")
[ "$Q1" = 1 ] && variants=("" "--bf16")
for extra in "${variants[@]}"; do
  record $S train-step --device tch-cuda:0 --model "$M" --batches "$B" --warmup 3 --steps 10 $extra
done
record python3 benches/pytorch_bench.py train-step --device cuda --model "$M" --batches "$B" --warmup 3 --steps 10
[ "$Q1" = 1 ] || record python3 benches/pytorch_bench.py train-step --device cuda --model "$M" --batches "$B" --warmup 3 --steps 10 --freeze-embeddings
record python3 benches/pytorch_bench.py train-step --device cuda --model "$M" --batches "$B" --warmup 3 --steps 10 --dtype bf16
record $S encode --device tch-cuda:0 --model "$M" --sequences "$Q" --batch 64
[ "$Q1" = 1 ] || record $S encode --device tch-cuda:0 --model "$M" --sequences "$Q" --batch 64 --bf16
record python3 benches/pytorch_bench.py encode --device cuda --model "$M" --sequences "$Q" --batch 64
[ "$Q1" = 1 ] || record python3 benches/pytorch_bench.py encode --device cuda --model "$M" --sequences "$Q" --batch 64 --dtype bf16
[ "$Q1" = 1 ] || record $S eval --device tch-cuda:0 --model "$M" --data "$D" --benchmark xquad-r
echo "== speed op-count" >&2
$S op-count --device tch-cuda:0 --model "$M" --batches "$B" --python python3 --counter .gpu/op-counter.so \
  --steps 2 --tiny-steps 100 --out "$OUT/op-count" > "$OUT/op-count.md" && cat "$OUT/op-count.md"
[ "${GPU_TRAIN_RUNS:-0}" = 1 ] || { echo "done: $R"; exit 0; }
for freeze in false true; do
  run="$W/run-freeze-$freeze"
  echo "== hybrid-ir train, freeze_embeddings=$freeze" >&2
  $H train --config crates/train/configs/reference.toml --no-progress \
    --set output_dir="$run" --set model.dir="$M" --set model.device=tch-cuda:0 \
    --set model.freeze_embeddings=$freeze --set data.data_dir="$D" \
    --set schedule.steps=150 --set schedule.val_every=50 --set schedule.save_every=150 \
    --set loss.cached=false --set loss.chunk_size=25 --set eval.benchmark=xquad-r 2>&1 | tail -n 25
  cp "$run/metrics.jsonl" "$OUT/train-freeze-$freeze.jsonl" 2>/dev/null
  cp "$run/run.md" "$OUT/run-freeze-$freeze.md" 2>/dev/null
done
echo "done: $R"
