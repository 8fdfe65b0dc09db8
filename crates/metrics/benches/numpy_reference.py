#!/usr/bin/env python3
"""A straightforward numpy implementation of the paper's protocol, timed against the Rust crate.

Called by `benches/xquad_scale.rs` with a folder holding queries.npy, candidates.npy (float32),
query_lang.npy (int32), cand_start.npy (int64, language start offsets + end) and relevant.npy
(int32, padded with -1). It does what a user would write: cosine via normalised rows, one
float32 GEMM per query language, a stable argsort (descending score, ties: earlier candidate
first) per pool, and the metrics from the positions of the relevant candidates. Prints JSON.
"""
import json
import sys
import time

import numpy as np


def metrics(pos, rel_mask):
    """pos: (n, k) 1-based ranks of relevant candidates, rel_mask: (n, k) valid entries."""
    big = np.iinfo(np.int64).max
    r = np.where(rel_mask, pos, big)
    r.sort(axis=1)
    n_rel = rel_mask.sum(axis=1)
    valid = np.arange(r.shape[1])[None, :] < n_rel[:, None]
    i = np.arange(1, r.shape[1] + 1)[None, :]
    ap = np.where(valid, i / np.where(valid, r, 1), 0.0).sum(axis=1) / n_rel
    first = r[:, 0]
    rr10 = np.where(first <= 10, 1.0 / first, 0.0)
    r1 = ((r <= 1) & valid).sum(axis=1) / n_rel
    r10 = ((r <= 10) & valid).sum(axis=1) / n_rel
    last = np.take_along_axis(r, (n_rel - 1)[:, None], axis=1)[:, 0]
    rd = (last - first).astype(np.float64)
    return ap, rr10, r1, r10, rd


def ranks_of(scores):
    """1-based rank of every candidate: stable argsort of -scores (ties: earlier first)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, scores.shape[1] + 1)[None, :]
    return ranks


def main(folder):
    Q = np.load(f"{folder}/queries.npy")
    C = np.load(f"{folder}/candidates.npy")
    qlang = np.load(f"{folder}/query_lang.npy")
    cstart = np.load(f"{folder}/cand_start.npy")
    rel = np.load(f"{folder}/relevant.npy")
    nl = len(cstart) - 1

    t0 = time.perf_counter()
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    Cn = C / np.linalg.norm(C, axis=1, keepdims=True)
    pair_map = np.full((nl, nl), np.nan)
    multi_map, multi_r10, multi_rd = np.zeros(nl), np.zeros(nl), np.zeros(nl)
    pair_r1 = np.full((nl, nl), np.nan)
    gemm_time = 0.0
    for x in range(nl):
        idx = np.nonzero(qlang == x)[0]
        tg = time.perf_counter()
        S = Qn[idx] @ Cn.T
        gemm_time += time.perf_counter() - tg
        R = rel[idx]
        mask = R >= 0
        safe = np.where(mask, R, 0)
        # Multilingual pool.
        ranks = ranks_of(S)
        pos = np.take_along_axis(ranks, safe, axis=1)
        ap, rr10, r1, r10, rd = metrics(pos, mask)
        multi_map[x], multi_r10[x], multi_rd[x] = ap.mean(), r10.mean(), rd.mean()
        # Mono / cross pools.
        for y in range(nl):
            lo, hi = cstart[y], cstart[y + 1]
            in_y = mask & (R >= lo) & (R < hi)
            keep = in_y.any(axis=1)
            if not keep.any():
                continue
            ranks = ranks_of(S[keep][:, lo:hi])
            local = np.where(in_y[keep], R[keep] - lo, 0)
            pos = np.take_along_axis(ranks, local, axis=1)
            ap, rr10, r1, r10, rd = metrics(pos, in_y[keep])
            pair_map[x, y], pair_r1[x, y] = ap.mean(), r1.mean()
    elapsed = time.perf_counter() - t0
    off = ~np.eye(nl, dtype=bool)
    out = {
        "time_s": elapsed,
        "gemm_time_s": gemm_time,
        "numpy": np.__version__,
        "mono_map": float(np.nanmean(np.diag(pair_map))),
        "cross_map": float(np.nanmean(pair_map[off])),
        "multi_map": float(multi_map.mean()),
        "mono_r1": float(np.nanmean(np.diag(pair_r1))),
        "cross_r1": float(np.nanmean(pair_r1[off])),
        "multi_r10": float(multi_r10.mean()),
        "rank_distance": float(multi_rd.mean()),
    }
    try:
        from threadpoolctl import threadpool_info
        out["blas"] = [
            {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")} for i in threadpool_info()
        ]
    except ImportError:
        out["blas"] = "threadpoolctl not installed"
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
