#!/usr/bin/env python3
"""FAISS IndexFlatIP on the same embeddings as `speed search`: the exact-search peer.

Reads the index shards written by hybrid-ir (`shard-*.parquet`: docid, embedding) and a queries
file in the same layout, adds the documents to `faiss.IndexFlatIP` (vectors are unit length, so
inner product = cosine), searches top-k with `--threads` OpenMP threads, and prints one JSON line:
seconds of search (adding excluded), queries/s, peak RSS, and writes the hit positions
(uint32, queries x k, row-major, little endian) and scores (float32) to --out-prefix.{ids,scores}.

    ~/.cache/hybrid-ir/torch-venv/bin/pip install faiss-cpu pyarrow
"""
import argparse
import glob
import json
import os
import resource
import sys
import time

import numpy as np
import pyarrow.parquet as pq


def matrix(path):
    table = pq.read_table(path, columns=["embedding"])
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    return np.asarray(col.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out-prefix", required=True)
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    shards = sorted(glob.glob(os.path.join(args.index, "shard-*.parquet")))
    queries = np.ascontiguousarray(matrix(args.queries))
    index = faiss.IndexFlatIP(queries.shape[1])
    for s in shards:
        index.add(np.ascontiguousarray(matrix(s)))
    t0 = time.perf_counter()
    scores, ids = index.search(queries, args.top_k)
    seconds = time.perf_counter() - t0
    ids.astype("<u4").tofile(args.out_prefix + ".ids")
    scores.astype("<f4").tofile(args.out_prefix + ".scores")
    print(json.dumps({
        "engine": f"faiss-cpu {faiss.__version__} IndexFlatIP",
        "queries": int(queries.shape[0]), "documents": int(index.ntotal), "dim": int(queries.shape[1]),
        "threads": args.threads, "seconds": seconds, "queries_per_s": queries.shape[0] / seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
