#!/usr/bin/env python3
"""PyTorch side of the forward-throughput bench (crates/model/benches/forward.rs).

Usage: python forward_torch.py MODEL_DIR BATCH LEN WARMUP ITERS
Runs transformers' AutoModel on the same synthetic [BATCH, LEN] ids as the Rust bench (all real
tokens), mean pooling + L2 as in hybrid-ir, and prints one JSON line with the median seconds.
"""
import json
import statistics
import sys
import time

import torch
from transformers import AutoModel


def main():
    model_dir, batch, length, warmup, iters = sys.argv[1], *map(int, sys.argv[2:6])
    torch.set_num_threads(torch.get_num_threads())
    model = AutoModel.from_pretrained(model_dir).eval()
    # Same ids as the Rust bench: 5 + (i * 7919 + j * 104729) % 30000.
    ids = torch.tensor([[5 + (i * 7919 + j * 104729) % 30000 for j in range(length)] for i in range(batch)])
    mask = torch.ones_like(ids)
    times = []
    with torch.inference_mode():
        for k in range(warmup + iters):
            t = time.perf_counter()
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            e = torch.nn.functional.normalize((h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True), dim=1)
            e.sum().item()
            if k >= warmup:
                times.append(time.perf_counter() - t)
    print(json.dumps({"median_s": statistics.median(times), "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
