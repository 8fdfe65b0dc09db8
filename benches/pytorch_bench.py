#!/usr/bin/env python3
"""PyTorch peer of the hybrid-ir speed benchmark.

The Rust side writes already-tokenized data (JSON, token ids with special tokens and prefixes, not
padded), so both engines see identical token ids. This script runs the same work with PyTorch and a
Hugging Face `BertModel` and prints exactly ONE JSON line on stdout; all logs go to stderr.

Subcommands
  train-step  contrastive (in-batch InfoNCE) training steps on pre-tokenized query/passage batches
  encode      inference pass (mean pooling + L2 normalisation) over pre-tokenized sequences
  gemm        f32 matmul throughput (the machine's GEMM ceiling)

Input formats
  train-step --batches FILE: {"pad_id": 1, "batches": [{"queries": [[id, ...], ...],
                                                        "passages": [[id, ...], ...]}, ...]}
  encode --sequences FILE:   {"pad_id": 1, "sequences": [[id, ...], ...]}

Conventions (what the Rust side must match)
  * Right padding with pad_id; attention_mask 1 on real tokens, 0 on pads.
  * token_type_ids all 0; position ids 0..L-1 (BertModel's default), so real tokens get 0..len-1.
  * Mean pooling over last_hidden_state weighted by attention_mask (pads excluded), computed in f32,
    then F.normalize (L2, eps 1e-12).
  * Loss: logits = q @ p.T / tau, cross_entropy(logits, arange(B)) (query -> passage only).

Works with torch >= 2.4 and transformers 5.x, on CPU or CUDA.
"""
import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import sys
import time

_REAL_STDOUT = sys.stdout


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# common helpers
# --------------------------------------------------------------------------------------------------

def op_counter():
    """The operator counter `speed op-count` preloads (benches/opcount/op_counter.cpp), or None.

    Returns (phase, out): phase(name or None) starts counting under a phase name (None stops);
    the counts are written to `out` by write_op_counts."""
    out = os.environ.get("HYBRID_IR_OPCOUNT_OUT")
    if not out:
        return None
    import ctypes
    lib = ctypes.CDLL(None)
    try:
        phase = lib.hybrid_ir_opcount_phase
    except AttributeError:
        raise SystemExit("HYBRID_IR_OPCOUNT_OUT is set but the operator counter is not loaded (LD_PRELOAD)")
    phase.argtypes = [ctypes.c_char_p]
    return (lambda name: phase(name.encode() if name else None)), out


def write_op_counts(counter):
    import ctypes
    write = ctypes.CDLL(None).hybrid_ir_opcount_write
    write.argtypes = [ctypes.c_char_p]
    if write(counter[1].encode()) != 0:
        raise SystemExit(f"{counter[1]}: cannot write the operator counts")


def setup_torch(args):
    """Import torch, apply --threads / --matmul-precision, return (torch, device)."""
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit("--threads must be >= 1")
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(args.threads)
        except RuntimeError as e:  # only allowed once, before any inter-op work
            log(f"warning: set_num_interop_threads({args.threads}) not applied: {e}")
    if getattr(args, "matmul_precision", None):
        torch.set_float32_matmul_precision(args.matmul_precision)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
        device = torch.device("cuda")
    else:
        device = torch.device("cpu")
    if getattr(args, "seed", None) is not None:
        torch.manual_seed(args.seed)
    return torch, device


def sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(torch, device):
    """Wall clock after all queued device work is done."""
    sync(torch, device)
    return time.perf_counter()


def peak_rss_bytes():
    # Linux: ru_maxrss is in KiB.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def peak_cuda_bytes(torch, device):
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def device_name(torch, device):
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def autocast_dtype(torch, name):
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def autocast_ctx(torch, device, dtype_name):
    dt = autocast_dtype(torch, dtype_name)
    if dt is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dt)


def load_model(torch, device, args):
    from transformers import BertModel

    t0 = time.perf_counter()
    # Master weights in f32 whatever the checkpoint says; --dtype only drives autocast.
    model = BertModel.from_pretrained(args.model, attn_implementation=args.attn,
                                      dtype=torch.float32)
    model.to(device)
    log(f"loaded {args.model} ({sum(p.numel() for p in model.parameters()):,} params, "
        f"attn={model.config._attn_implementation}) in {time.perf_counter() - t0:.2f}s")
    return model


def check_ids(seqs, what, vocab, max_pos):
    for i, s in enumerate(seqs):
        if not isinstance(s, list) or len(s) == 0:
            raise SystemExit(f"{what}[{i}] is empty or not a list")
        if len(s) > max_pos:
            raise SystemExit(f"{what}[{i}] has {len(s)} tokens > max_position_embeddings {max_pos}")
        lo, hi = min(s), max(s)
        if lo < 0 or hi >= vocab:
            raise SystemExit(f"{what}[{i}] has token id out of range [0, {vocab}): {lo}..{hi}")


def pad_batch(torch, seqs, pad_id):
    """Right-pad to the longest sequence. Returns (input_ids, attention_mask) int64 CPU tensors."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def embed(torch, model, ids, mask):
    """Shared encoder -> masked mean pooling (f32) -> L2 normalise."""
    import torch.nn.functional as F

    out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    h = out.last_hidden_state.float()
    m = mask.unsqueeze(-1).to(h.dtype)
    pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=-1)


def finite_or_none(x):
    return x if (x is not None and math.isfinite(x)) else None


def emit(obj):
    line = json.dumps(obj, allow_nan=False, default=lambda o: None)
    _REAL_STDOUT.write(line + "\n")
    _REAL_STDOUT.flush()


def base_record(torch, device, mode):
    return {"engine": "pytorch", "mode": mode, "device": device_name(torch, device),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def read_token_file(path, key):
    """(pad_id, data[key]) of a token file written by `speed prepare`; refuses an empty list."""
    with open(path) as f:
        data = json.load(f)
    items = data[key]
    if not items:
        raise SystemExit(f"{path}: no {key}")
    return int(data["pad_id"]), items


# --------------------------------------------------------------------------------------------------
# train-step
# --------------------------------------------------------------------------------------------------

def cmd_train_step(args):
    torch, device = setup_torch(args)
    import torch.nn.functional as F

    pad_id, raw = read_token_file(args.batches, "batches")
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("--steps must be >= 1 and --warmup >= 0")

    model = load_model(torch, device, args)
    cfg = model.config
    if cfg.pad_token_id is not None and cfg.pad_token_id != pad_id:
        log(f"warning: file pad_id {pad_id} != config pad_token_id {cfg.pad_token_id}")

    # Pad every batch once, up front, and put it on the device: the timed step excludes padding and
    # host->device copies (the Rust side should time from "tensors ready" too).
    batches = []
    for bi, b in enumerate(raw):
        q, p = b["queries"], b["passages"]
        if len(q) != len(p) or len(q) == 0:
            raise SystemExit(f"batch {bi}: {len(q)} queries vs {len(p)} passages")
        check_ids(q, f"batches[{bi}].queries", cfg.vocab_size, cfg.max_position_embeddings)
        check_ids(p, f"batches[{bi}].passages", cfg.vocab_size, cfg.max_position_embeddings)
        qi, qm = pad_batch(torch, q, pad_id)
        pi, pm = pad_batch(torch, p, pad_id)
        batches.append({
            "q": (qi.to(device), qm.to(device)), "p": (pi.to(device), pm.to(device)),
            "labels": torch.arange(len(q), device=device),
            "pairs": len(q),
            "real": int(qm.sum() + pm.sum()),
            "padded": int(qi.numel() + pi.numel()),
            "shapes": [list(qi.shape), list(pi.shape)],
        })
    log(f"{len(batches)} batches; shapes of batch 0: query {batches[0]['shapes'][0]}, "
        f"passage {batches[0]['shapes'][1]}")

    word = model.embeddings.word_embeddings.weight
    if args.freeze_embeddings:
        word.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_kwargs = dict(lr=args.lr, weight_decay=args.weight_decay)
    if args.fused:
        opt_kwargs["fused"] = True
    opt = torch.optim.AdamW(params, **opt_kwargs)
    n_params = sum(p.numel() for p in params)
    log(f"optimizer AdamW({opt_kwargs}) over {len(params)} tensors, {n_params:,} elements "
        f"(pooler included: it gets no grad and is skipped)")

    scaler = None
    if args.dtype == "fp16":
        if device.type == "cpu":
            log("warning: fp16 autocast on CPU has no fast kernels (very slow); meant for --device cuda")
        scaler = torch.amp.GradScaler(device.type)
    amp_skipped = 0

    model.train()
    losses, rows = [], []
    updated = None
    total = args.warmup + args.steps
    counter = op_counter()
    # Counted phases: the timed steps only; the loss read-back belongs to the optimizer phase.
    phase = counter[0] if counter else (lambda name: None)
    for step in range(total):
        b = batches[step % len(batches)]
        counted = step >= args.warmup
        scale_before = scaler.get_scale() if scaler is not None else None
        t0 = now(torch, device)
        if counted:
            phase("forward")
        with autocast_ctx(torch, device, args.dtype):
            q = embed(torch, model, *b["q"])
            p = embed(torch, model, *b["p"])
            logits = (q @ p.T) / args.tau
            loss = F.cross_entropy(logits.float(), b["labels"])
        t1 = now(torch, device)
        if counted:
            phase("backward")
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        t2 = now(torch, device)
        if counted:
            phase("optimizer")
        if updated is None:  # tensors that really receive a gradient (the pooler does not)
            updated = sum(x.numel() for x in params if x.grad is not None)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = now(torch, device)
        lv = float(loss.detach())
        phase(None)
        losses.append(lv)
        timed = step >= args.warmup
        if scaler is not None and scaler.get_scale() < scale_before:
            amp_skipped += 1  # inf/nan grads: GradScaler skipped this optimizer step
            log(f"  (GradScaler skipped step {step}; scale now {scaler.get_scale():g})")
        log(f"{'step' if timed else 'warmup'} {step}: batch {step % len(batches)} loss {lv:.5f} "
            f"step {t3 - t0:.3f}s (fwd {t1 - t0:.3f} bwd {t2 - t1:.3f} opt {t3 - t2:.3f})")
        if timed:
            rows.append({"step": t3 - t0, "fwd": t1 - t0, "bwd": t2 - t1, "opt": t3 - t2,
                         "pairs": b["pairs"], "real": b["real"], "padded": b["padded"]})

    step_all = [r["step"] for r in rows]
    med = statistics.median(step_all)
    pairs_mean = statistics.mean(r["pairs"] for r in rows)
    rec = base_record(torch, device, "train-step")
    rec.update({
        "model": os.path.abspath(args.model),
        "attn": model.config._attn_implementation,
        "dtype": args.dtype,
        "fused": bool(args.fused),
        "freeze_embeddings": bool(args.freeze_embeddings),
        "tau": args.tau, "lr": args.lr, "weight_decay": args.weight_decay,
        "warmup": args.warmup,
        "n_batches": len(batches),
        "optimizer_params": n_params,
        "updated_params": updated,
        "batch_size": pairs_mean,
        "steps": len(rows),
        "step_s_median": med,
        "step_s_all": step_all,
        "fwd_s_median": statistics.median(r["fwd"] for r in rows),
        "bwd_s_median": statistics.median(r["bwd"] for r in rows),
        "opt_s_median": statistics.median(r["opt"] for r in rows),
        "examples_per_s": pairs_mean / med,
        "real_tokens_per_s": sum(r["real"] for r in rows) / sum(step_all),
        "padded_tokens": statistics.mean(r["padded"] for r in rows),
        "real_tokens": statistics.mean(r["real"] for r in rows),
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_bytes": peak_cuda_bytes(torch, device),
        "final_loss": finite_or_none(losses[-1]),
        "losses": [finite_or_none(x) for x in losses],
        "amp_skipped_steps": amp_skipped if scaler is not None else None,
    })
    if counter:
        write_op_counts(counter)
    return rec


# --------------------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------------------

def cmd_encode(args):
    torch, device = setup_torch(args)

    pad_id, seqs = read_token_file(args.sequences, "sequences")
    if args.batch < 1:
        raise SystemExit("--batch must be >= 1")

    model = load_model(torch, device, args)
    cfg = model.config
    if cfg.pad_token_id is not None and cfg.pad_token_id != pad_id:
        log(f"warning: file pad_id {pad_id} != config pad_token_id {cfg.pad_token_id}")
    check_ids(seqs, "sequences", cfg.vocab_size, cfg.max_position_embeddings)
    model.eval()

    def order_of(xs):
        if args.no_sort:
            return list(range(len(xs)))
        # longest first; ties keep input order (stable sort)
        return sorted(range(len(xs)), key=lambda i: -len(xs[i]))

    def run_pass(xs):
        order = order_of(xs)
        out = torch.empty((len(xs), cfg.hidden_size), dtype=torch.float32, device=device)
        real = padded = 0
        for s in range(0, len(order), args.batch):
            idx = order[s: s + args.batch]
            ids, mask = pad_batch(torch, [xs[i] for i in idx], pad_id)
            real += int(mask.sum())
            padded += ids.numel()
            ids, mask = ids.to(device), mask.to(device)
            with autocast_ctx(torch, device, args.dtype):
                e = embed(torch, model, ids, mask)
            out[torch.tensor(idx, device=device)] = e.float()
        return out, real, padded

    with torch.inference_mode():
        if args.warmup > 0:
            first = [seqs[i] for i in order_of(seqs)[: args.batch]]
            for _ in range(args.warmup):
                run_pass(first)
            log(f"warm-up: {args.warmup} x 1 batch of {len(first)}")
        t0 = now(torch, device)
        emb, real, padded = run_pass(seqs)
        t1 = now(torch, device)
    secs = t1 - t0
    log(f"encoded {len(seqs)} sequences in {secs:.3f}s ({len(seqs) / secs:.1f} seq/s), "
        f"{real} real / {padded} padded tokens")

    if args.out_npy:
        import numpy as np
        np.save(args.out_npy, emb.cpu().numpy().astype(np.float32))
        log(f"wrote {args.out_npy} [{emb.shape[0]}, {emb.shape[1]}] float32 (input order)")

    rec = base_record(torch, device, "encode")
    rec.update({
        "model": os.path.abspath(args.model),
        "attn": model.config._attn_implementation,
        "dtype": args.dtype,
        "warmup": args.warmup,
        "sequences": len(seqs),
        "batch": args.batch,
        "sorted": not args.no_sort,
        "seconds": secs,
        "seq_per_s": len(seqs) / secs,
        "real_tokens": real,
        "padded_tokens": padded,
        "real_tokens_per_s": real / secs,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_bytes": peak_cuda_bytes(torch, device),
    })
    return rec


# --------------------------------------------------------------------------------------------------
# gemm
# --------------------------------------------------------------------------------------------------

def cmd_gemm(args):
    torch, device = setup_torch(args)
    n, reps = args.n, args.reps
    if n < 1 or reps < 1 or args.repeats < 1:
        raise SystemExit("--n, --reps and --repeats must be >= 1")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=torch.float32).to(device)
    b = torch.randn(n, n, generator=g, dtype=torch.float32).to(device)
    c = torch.empty(n, n, dtype=torch.float32, device=device)
    for _ in range(2):  # warm-up
        torch.mm(a, b, out=c)
    times = []
    for r in range(args.repeats):
        t0 = now(torch, device)
        for _ in range(reps):
            torch.mm(a, b, out=c)
        t1 = now(torch, device)
        times.append((t1 - t0) / reps)
        log(f"repeat {r}: {times[-1] * 1e3:.3f} ms/mm, {2 * n ** 3 / times[-1] / 1e9:.1f} GFLOP/s")
    med = statistics.median(times)
    rec = base_record(torch, device, "gemm")
    rec.update({
        "n": n, "reps": reps, "repeats": args.repeats,
        "matmul_precision": torch.get_float32_matmul_precision(),
        "s_per_mm_median": med,
        "gflops": 2 * n ** 3 / med / 1e9,
        "gflops_best": 2 * n ** 3 / min(times) / 1e9,
        "gflops_all": [2 * n ** 3 / t / 1e9 for t in times],
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_bytes": peak_cuda_bytes(torch, device),
    })
    return rec


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

def build_parser():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Prints one JSON line on stdout; logs go to stderr.",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="{train-step,encode,gemm}")

    def common(p, model=True):
        p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="default: cpu")
        p.add_argument("--threads", type=int, default=None,
                       help="torch.set_num_threads(N) and set_num_interop_threads(N) "
                            "(default: torch's own choice)")
        p.add_argument("--matmul-precision", choices=["highest", "high", "medium"], default=None,
                       help="torch.set_float32_matmul_precision (CUDA: 'high' allows TF32); "
                            "default: leave as is ('highest')")
        if model:
            p.add_argument("--model", required=True,
                           help="Hugging Face BERT directory (config.json + model.safetensors)")
            p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                           help="attention implementation (default: sdpa)")
            p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                           help="autocast dtype for the forward/loss; weights stay f32 "
                                "(fp16 training uses a GradScaler). Default fp32 = no autocast")

    p = sub.add_parser("train-step", help="time contrastive training steps",
                       description="Time InfoNCE training steps: shared BertModel on queries and "
                                   "passages, masked mean pooling, L2 norm, logits = q@p.T/tau, "
                                   "cross-entropy against the diagonal, AdamW. Step i uses batch "
                                   "i % len(batches); warm-up steps come first and are not timed.")
    common(p)
    p.add_argument("--batches", required=True, help="JSON file {pad_id, batches:[{queries, passages}]}")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    p.add_argument("--freeze-embeddings", action="store_true",
                   help="word_embeddings.weight gets requires_grad=False and is not optimised")
    p.add_argument("--fused", action="store_true", help="AdamW(fused=True)")
    p.add_argument("--tau", type=float, default=0.05, help="temperature (default 0.05)")
    p.add_argument("--lr", type=float, default=3e-5, help="AdamW lr (default 3e-5)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed (dropout); default 0")
    p.set_defaults(func=cmd_train_step)

    p = sub.add_parser("encode", help="time an inference pass",
                       description="Encode pre-tokenized sequences (eval mode, inference_mode): "
                                   "sort by length (longest first) unless --no-sort, batch, pad, "
                                   "mean-pool, L2-normalise; results in input order. The timed pass "
                                   "includes padding and tensor creation, not model load or warm-up.")
    common(p)
    p.add_argument("--sequences", required=True, help="JSON file {pad_id, sequences:[[id,...],...]}")
    p.add_argument("--batch", type=int, default=64, help="sequences per batch (default 64)")
    p.add_argument("--no-sort", action="store_true", help="keep input order when batching")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed passes over the first batch before timing (default 1; 0 = none)")
    p.add_argument("--out-npy", default=None, help="save float32 [n, dim] embeddings, input order")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("gemm", help="f32 matmul throughput",
                       description="n x n @ n x n f32 torch.mm, `reps` times per repeat after 2 "
                                   "warm-ups; GFLOP/s = 2 n^3 / time per mm, median over repeats.")
    common(p, model=False)
    p.add_argument("--n", type=int, default=1024, help="matrix size (default 1024)")
    p.add_argument("--reps", type=int, default=50, help="matmuls per timed repeat (default 50)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default 3)")
    p.set_defaults(func=cmd_gemm)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    # Anything printed to stdout by libraries goes to stderr; stdout carries only the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        rec = args.func(args)
    emit(rec)


if __name__ == "__main__":
    main()
