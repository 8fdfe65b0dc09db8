#!/usr/bin/env python3
"""Checks `hybrid-ir index` + `search` against independent references on XQuAD-R as a collection.

  make   writes the collection: every XQuAD-R answer-candidate sentence of the 11 languages as a
         document (docid `<lang>_<paragraph>_<sentence>`), every question as a topic (qid
         `<lang>-<id>`, TSV for `search`, JSONL for `encode`), and qrels: a question's relevant
         documents are its answer sentence in every language (LAReQA's multilingual setting).
  check  reads the index shards, the query embeddings written by `hybrid-ir encode --kind query`,
         the run and the report written by `hybrid-ir search --qrels`, and compares:
           (a) nDCG@10, Recall@100, MAP and MRR@10 with pytrec_eval (trec_eval's code) on the run;
           (b) the top-100 lists with a numpy brute-force search (full sort, earlier document
               first on equal scores);
           (c) the top-100 ids with FAISS IndexFlatIP.
         Lists may differ only where scores tie within 1e-5 (float rounding of different kernels).

    python -m pip install numpy pyarrow faiss-cpu pytrec-eval-terrier
    python scripts/search_reference.py make --data ../shared/data/xquad-r --out target/xq
    hybrid-ir index --model M --corpus target/xq/corpus.jsonl --out target/xq/index --max-len 128
    hybrid-ir encode --model M --input target/xq/topics.jsonl --kind query --out target/xq/queries.parquet --max-len 128
    hybrid-ir search --model M --index target/xq/index --queries target/xq/topics.tsv --out target/xq/run.trec \\
        --qrels target/xq/qrels.tsv --max-len 128
    python scripts/search_reference.py check --dir target/xq
"""
import argparse
import glob
import json
import os
import sys

LANGS = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]


def make(args):
    os.makedirs(args.out, exist_ok=True)
    answers = {}  # question id -> [docid per language]
    topics = []
    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8") as corpus:
        for lang in LANGS:
            data = json.load(open(os.path.join(args.data, f"{lang}.json"), encoding="utf-8"))["data"]
            p = 0
            for article in data:
                for para in article["paragraphs"]:
                    for s, sentence in enumerate(para["sentences"]):
                        corpus.write(json.dumps({"docid": f"{lang}_{p}_{s}", "text": sentence}, ensure_ascii=False) + "\n")
                    for qa in para["qas"]:
                        start = qa["answers"][0]["answer_start"]
                        s = next(i for i, (a, b) in enumerate(para["sentence_breaks"]) if a <= start <= b)
                        answers.setdefault(qa["id"], []).append(f"{lang}_{p}_{s}")
                        topics.append((f"{lang}-{qa['id']}", lang, qa["question"].replace("\t", " ").replace("\n", " ")))
                    p += 1
    with open(os.path.join(args.out, "topics.tsv"), "w", encoding="utf-8") as tsv, \
         open(os.path.join(args.out, "topics.jsonl"), "w", encoding="utf-8") as jsonl:
        for qid, lang, q in topics:
            tsv.write(f"{qid}\t{q}\n")
            jsonl.write(json.dumps({"id": qid, "lang": lang, "text": q}, ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "qrels.tsv"), "w") as qrels:
        for qid, _, _ in topics:
            for doc in sorted(set(answers[qid.split("-", 1)[1]])):
                qrels.write(f"{qid}\t0\t{doc}\t1\n")
    print(f"{len(topics)} topics, {sum(1 for _ in open(os.path.join(args.out, 'corpus.jsonl')))} documents in {args.out}")


def matrix(table, column="embedding"):
    import numpy as np
    col = table.column(column).combine_chunks()
    return np.array(col.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, col.type.list_size)


def check(args):
    import faiss
    import numpy as np
    import pyarrow.parquet as pq
    import pytrec_eval

    d = args.dir
    shards = sorted(glob.glob(os.path.join(d, "index", "shard-*.parquet")))
    tables = [pq.read_table(s) for s in shards]
    docids = [x for t in tables for x in t.column("docid").to_pylist()]
    docs = np.concatenate([matrix(t) for t in tables])
    qt = pq.read_table(os.path.join(d, "queries.parquet"))
    qids = qt.column("id").to_pylist()
    queries = matrix(qt)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = 100

    run = {}
    for line in open(os.path.join(d, "run.trec")):
        qid, _, doc, rank, score, _ = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    qrels = {}
    for line in open(os.path.join(d, "qrels.tsv")):
        qid, _, doc, rel = line.split()
        qrels.setdefault(qid, {})[doc] = int(rel)
    ours = json.load(open(os.path.join(d, "run.trec.eval.json")))["metrics"]
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map", "recip_rank"})
    per_query = ev.evaluate(run)
    # MRR@10: pytrec_eval's recip_rank has no cutoff; cut the run at 10 in trec_eval's order
    # (score descending, then docid descending).
    run10 = {q: dict(sorted(v.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10]) for q, v in run.items()}
    rr10 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run10)
    reference = {
        "ndcg@10": np.mean([v["ndcg_cut_10"] for v in per_query.values()]),
        "recall@100": np.mean([v["recall_100"] for v in per_query.values()]),
        "map": np.mean([v["map"] for v in per_query.values()]),
        "mrr@10": np.mean([v["recip_rank"] for v in rr10.values()]),
    }
    print("metric | hybrid-ir | pytrec_eval | |diff|")
    worst = 0.0
    for name, value in reference.items():
        diff = abs(ours[name] - value)
        worst = max(worst, diff)
        print(f"{name} | {ours[name]:.6f} | {value:.6f} | {diff:.1e}")

    ours_lists = {q: [doc for doc, _ in sorted(v.items(), key=lambda x: -x[1])] for q, v in run.items()}
    ours_scores = {q: sorted(v.values(), reverse=True) for q, v in run.items()}
    scores = queries @ docs.T
    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(docs)
    faiss_scores, faiss_ids = index.search(queries, k)
    report = {}
    for name in ["numpy", "faiss"]:
        identical = ties = different = 0
        for i, qid in enumerate(qids):
            if name == "numpy":
                order = np.lexsort((np.arange(len(docids)), -scores[i]))[:k]
                ref_ids, ref_scores = [docids[j] for j in order], scores[i][order]
            else:
                ref_ids, ref_scores = [docids[j] for j in faiss_ids[i]], faiss_scores[i]
            mine, mine_scores = ours_lists[qid], ours_scores[qid]
            if set(mine) == set(ref_ids):
                identical += 1
            elif all(abs(mine_scores[r] - ref_scores[r]) <= 1e-5 for r in range(k) if mine[r] != ref_ids[r]) and \
                    abs(mine_scores[-1] - ref_scores[-1]) <= 1e-5:
                ties += 1
            else:
                different += 1
        report[name] = (identical, ties, different)
        print(f"top-{k} vs {name}: {identical} identical sets, {ties} differ only among scores within 1e-5, {different} different")
    ok = worst <= 1e-9 and all(r[2] == 0 for r in report.values())
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--data", required=True)
    m.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    args = ap.parse_args()
    return make(args) if args.cmd == "make" else check(args)


if __name__ == "__main__":
    sys.exit(main())
