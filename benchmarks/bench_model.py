"""Benchmark: the project's MMN inference path against a plain reference forward.

Three forwards, same weights, same inputs:

- ``reference``: :func:`reference_forward` below, a plain transcription of
  ``docs/mmn-computation.md`` §2–6 written the straightforward way the authors' code is (tensors
  (B, C, T, V), a permute around every Linear, the four head mixes as four einsums, BatchNorm
  applied on its own). It reads the checkpoint's state dict directly, so it is also an
  independent check of the model code.
- ``fast``: :class:`mmn.fast.FastMMN`, the project's inference path (what
  :class:`mmn.Recognizer` runs), with its defaults (CPU: ``--threads`` single-threaded workers).
- with ``--with-mmn``: :class:`mmn.MMN` in eval mode, the plain trainable module;
  with ``--ablation``: ``fast_intraop``, FastMMN with ``workers=1`` (every op split over the
  ``--threads`` intra-op threads of the calling thread instead).

For each batch size the models run interleaved (one forward each per round, so that they see
the same machine load), ``--repeats`` rounds after a warm-up; the table shows medians. CPU
runs use ``torch.set_num_threads(--threads)``; with CUDA present the fast path is also timed
on the GPU in fp32 and under bf16/fp16 autocast (and with a CUDA graph at small batches).
The JSON has every timing, the machine, the load average before/after and the max abs logit
difference of each forward against the reference (and against the golden logits).

    python benchmarks/bench_model.py [--threads 2] [--batches 1,8,64] [--repeats 5]
        [--with-mmn] [--ablation] [--json benchmarks/results/bench_model.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mmn  # noqa: E402
from benchmarks.machine import machine_info as common_machine_info  # noqa: E402
from mmn.fast import FastMMN  # noqa: E402

GOLDEN = ROOT.parent / "shared" / "fixtures" / "mmn_ma52"


# --------------------------------------------------------------------------------------------
# Reference forward: mmn-reference.md §2–6 transcribed, no optimisation.
# --------------------------------------------------------------------------------------------
def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], training=False, eps=1e-5)


def _conv(x, sd, p, **kw):
    return F.conv2d(x, sd[p + ".weight"], sd.get(p + ".bias"), **kw)


def _linear_cl(x, sd, p):
    """Linear over channels of (B, C, T, V): to channels-last, Linear, back."""
    return F.linear(x.permute(0, 2, 3, 1), sd[p + ".weight"], sd[p + ".bias"]).permute(0, 3, 1, 2)


def _ref_block(x, sd, p, heads):
    b, c, t, v = x.shape
    q = c // 4
    # 1. u = Linear(LayerNorm(r)), r = x channels-last
    r = x.permute(0, 2, 3, 1)
    u = F.linear(F.layer_norm(r, (c,), sd[p + "norm_1.weight"], sd[p + "norm_1.bias"]),
                 sd[p + "mapping.weight"], sd[p + "mapping.bias"]).permute(0, 3, 1, 2)
    g, h, m = u[:, :q], u[:, q:2 * q], u[:, 2 * q:]
    # 2. skeletal branch: head k mixes its C/16 channels over joints with A_k
    gs = q // heads
    x_gc = torch.cat([torch.einsum("nctu,vu->nctv", g[:, k * gs:(k + 1) * gs], sd[p + "gconv"][k])
                      for k in range(heads)], dim=1)
    # 3. temporal branch: grouped (3,1) conv
    x_tc = _conv(h, sd, p + "tconv", padding=(1, 0), groups=heads)
    # 4. motion: frame difference, last repeated; depthwise conv, BN, GELU
    d = m[:, :, 1:] - m[:, :, :-1]
    d = torch.cat((d, d[:, :, -1:]), dim=2)
    motion = F.gelu(_bn(_conv(d, sd, p + "Motion.0", padding=(1, 0), groups=2 * q), sd, p + "Motion.1"))
    # 5. MSM: joint w scaled by the column sum of adj (einsum), Linear, tanh, BN
    ms = torch.einsum("vw,btwc->btwc", sd[p + "MSM.adj"], motion.permute(0, 2, 3, 1))
    ms = torch.tanh(F.linear(ms, sd[p + "MSM.fc.weight"], sd[p + "MSM.fc.bias"])).permute(0, 3, 1, 2)
    gamma_s, beta_s = _bn(ms, sd, p + "MSM.bn").chunk(2, dim=1)
    # 6. MTM: conv (3,1), tanh, BN
    mt = _bn(torch.tanh(_conv(motion, sd, p + "MTM.0", padding=(1, 0))), sd, p + "MTM.2")
    gamma_t, beta_t = mt.chunk(2, dim=1)

    # 7. modulation with per-sample, per-channel mean and unbiased std over (T, V)
    def standardise(z):
        return (z - z.mean(dim=(2, 3), keepdim=True)) / (z.std(dim=(2, 3), keepdim=True) + 1e-6)

    x_gcm = standardise(x_gc) * (1 + gamma_s) + beta_s
    x_tcm = standardise(x_tc) * (1 + gamma_t) + beta_t
    # 8. gate
    a = _conv(torch.cat((x_tcm, x_gcm, motion), dim=1), sd, p + "aggregation_gate.0")
    a = _conv(F.relu(_bn(a, sd, p + "aggregation_gate.1")), sd, p + "aggregation_gate.3")
    a = torch.sigmoid(a)
    # 9. aggregation of the unmodulated branches
    agg = _conv(torch.cat((x_tc * a[:, 0:1], x_gc * a[:, 1:2], motion * a[:, 2:3]), dim=1), sd,
                p + "aggregation.0")
    agg = F.gelu(_bn(agg, sd, p + "aggregation.1"))
    # 10. residuals
    x = x + _linear_cl(agg, sd, p + "proj")
    r = F.layer_norm(x.permute(0, 2, 3, 1), (c,), sd[p + "norm_2.weight"], sd[p + "norm_2.bias"])
    hid = F.gelu(F.linear(r, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
    return x + F.linear(hid, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"]).permute(0, 3, 1, 2)


def reference_forward(sd: dict, x: torch.Tensor, index_t: torch.Tensor, heads: int = 4,
                      depths=(3, 3, 3, 3)) -> torch.Tensor:
    """Logits (B, K) of MMN for ``x`` (B, 2, T, V[, 1]) and ``index_t`` (B, T), eval mode."""
    if x.dim() == 5:
        x = x[..., 0]
    c = sd["STPE"].shape[0]
    # §2 embedding
    p = _conv(F.gelu(_conv(F.gelu(_conv(x, sd, "projection.0")), sd, "projection.2")), sd, "projection.4")
    j = torch.arange(0, c, 2, dtype=torch.float32, device=x.device)
    angle = index_t.float()[..., None] * torch.exp(-j * (math.log(10000.0) / c))
    te = torch.stack((torch.sin(angle), torch.cos(angle)), dim=-1).flatten(2)  # (B, T, C)
    s = p + te.permute(0, 2, 1)[..., None] * sd["STPE"][:, None, :]
    # §3 four scales chained on the embedding; §4 three blocks per stage
    feats = []
    for i, depth in enumerate(depths):
        if i > 0:
            s = _bn(_conv(F.pad(s, (0, 0, 1, 1), mode="replicate"), sd, f"DSs.{i - 1}.reduction",
                          stride=(2, 1)), sd, f"DSs.{i - 1}.bn")
        f = s
        for blk in range(depth):
            f = _ref_block(f, sd, f"MFM.{i}.blocks.{blk}.", heads)
        feats.append(f)
    # §5 fusion
    scales = [F.relu(_bn(_conv(feats[i], sd, f"fusion.down{i + 1}.0", stride=(k, 1)), sd, f"fusion.down{i + 1}.1"))
              for i, k in enumerate((8, 4, 2))]
    scales.append(F.relu(_bn(feats[3], sd, "fusion.f4_proc.0")))
    w = _conv(torch.cat(scales, dim=1), sd, "fusion.gate_conv.0")
    w = _conv(F.relu(_bn(w, sd, "fusion.gate_conv.1")), sd, "fusion.gate_conv.3")
    w = torch.softmax(w, dim=1)
    z = sum(w[:, i:i + 1] * scales[i] for i in range(4)) + _conv(scales[3], sd, "fusion.res_conv")
    # §6 head
    return F.linear(z.mean(dim=(2, 3)), sd["head.weight"], sd["head.bias"])


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
def machine_info(threads: int) -> dict:
    info = {**common_machine_info(), "torch_threads": threads, "torch": torch.__version__, "numpy": np.__version__}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def make_inputs(golden: dict, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` clips: the six golden clips tiled, each copy after the first perturbed a little."""
    x = torch.from_numpy(golden["joint"])
    t = torch.from_numpy(golden["index_t"])
    reps = -(-batch // x.shape[0])
    xs = x.repeat(reps, 1, 1, 1, 1)[:batch].clone()
    ts = t.repeat(reps, 1)[:batch].clone()
    gen = torch.Generator().manual_seed(batch)
    if batch > x.shape[0]:
        xs[x.shape[0]:] += 0.02 * torch.randn(xs[x.shape[0]:].shape, generator=gen)
    return xs.to(device), ts.to(device)


def time_interleaved(fns: dict, repeats: int, sync=None, budget_s: float = 1e9, calls: int = 1) -> dict:
    """Rounds in which each fn takes its turn; returns name → list of seconds.

    With ``calls`` > 1 a turn is one untimed call and then ``calls`` timed calls back to back:
    the steady state of a stream of requests. (A single call right after a *different* forward
    pays for that forward having evicted its weights and buffers from the caches; at batch 1
    that costs the fast path 25–80% on the 2-core VM here, the plain forwards less.) Rounds
    alternate the fns so that load drifts hit them alike.
    """
    times = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    if sync:
        sync()
    start = time.perf_counter()
    for i in range(repeats):
        for name, fn in fns.items():
            if calls > 1:
                fn()
                if sync:
                    sync()
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                if sync:
                    sync()
                times[name].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and i >= 4:
            break
    return times


def summarise(times: list[float], batch: int) -> dict:
    med = statistics.median(times)
    return {"runs": len(times), "median_ms": med * 1e3, "min_ms": min(times) * 1e3,
            "max_ms": max(times) * 1e3, "clips_per_s": batch / med, "times_ms": [t * 1e3 for t in times]}


def bench_cpu(args, sd, models: dict, golden) -> list[dict]:
    rows = []
    for batch in args.batches:
        x, t = make_inputs(golden, batch, "cpu")
        with torch.inference_mode():
            ref = reference_forward(sd, x, t)
            outs = {name: m(x, t) for name, m in models.items()}
            fns = {"reference": lambda: reference_forward(sd, x, t)}
            fns.update({name: (lambda m=m: m(x, t)) for name, m in models.items()})
            load0 = os.getloadavg()
            calls = args.calls if batch <= 8 else 1  # a batch of 64 takes seconds: its own warm-up
            times = time_interleaved(fns, args.repeats, budget_s=args.budget_s, calls=calls)
            load1 = os.getloadavg()
        row = {"device": "cpu", "batch": batch, "calls_per_turn": calls, "load_before": load0, "load_after": load1}
        for name, ts in times.items():
            row[name] = summarise(ts, batch)
            if name != "reference":
                row[name]["max_abs_diff_vs_reference"] = float((outs[name] - ref).abs().max())
        if batch <= 6:
            gold = torch.from_numpy(golden["logits_joint"][:batch])
            row["reference"]["max_abs_diff_vs_golden"] = float((ref - gold).abs().max())
            row["fast"]["max_abs_diff_vs_golden"] = float((outs["fast"] - gold).abs().max())
        for name in models:
            row[f"speedup_{name}_vs_reference"] = row["reference"]["median_ms"] / row[name]["median_ms"]
        rows.append(row)
        print_row(row, flush=True)
    return rows


def bench_cuda(args, sd, model, golden, device: str = "cuda") -> list[dict]:
    """GPU timings: reference fp32, fast fp32 (also with TF32 matmuls), fast under bf16/fp16
    autocast, and the fp32 fast path replayed as a CUDA graph (``--cuda-compile``: also
    ``torch.compile``). ``device`` other than CUDA only for smoke tests (no graph, no TF32)."""
    dev = torch.device(device)
    is_cuda = dev.type == "cuda"
    sd_dev = {k: v.to(dev) for k, v in sd.items()}
    model = copy.deepcopy(model).to(dev)
    fast = FastMMN.from_model(model)
    sync = torch.cuda.synchronize if is_cuda else None
    rows = []
    for batch in args.cuda_batches:
        x, t = make_inputs(golden, batch, dev)
        variants = {"reference": lambda: reference_forward(sd_dev, x, t), "fast": lambda: fast(x, t)}
        if is_cuda:
            def tf32():
                old = torch.backends.cuda.matmul.allow_tf32
                torch.backends.cuda.matmul.allow_tf32 = True
                try:
                    return fast(x, t)
                finally:
                    torch.backends.cuda.matmul.allow_tf32 = old
            variants["fast_tf32"] = tf32
        for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            def run(dtype=dtype):
                with torch.autocast(dev.type, dtype=dtype):
                    return fast(x, t)
            variants[f"fast_autocast_{dtype_name}"] = run
        errors = {}
        if is_cuda:
            try:  # CUDA graph of the fp32 fast path (static input and output tensors)
                static_x, static_t = x.clone(), t.clone()
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.inference_mode(), torch.cuda.stream(s):
                    for _ in range(3):
                        fast(static_x, static_t)
                torch.cuda.current_stream().wait_stream(s)
                graph = torch.cuda.CUDAGraph()
                with torch.inference_mode(), torch.cuda.graph(graph):
                    static_out = fast(static_x, static_t)

                def replay():
                    graph.replay()
                    return static_out
                variants["fast_cuda_graph"] = replay
            except Exception as e:  # noqa: BLE001 - report, don't fail the benchmark
                errors["fast_cuda_graph"] = f"{type(e).__name__}: {e}"
            if args.cuda_compile:
                try:
                    compiled = torch.compile(fast, dynamic=False)
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        compiled(x, t)
                    sync()
                    errors["fast_compile_seconds"] = time.perf_counter() - t0
                    variants["fast_compiled"] = lambda: compiled(x, t)
                except Exception as e:  # noqa: BLE001
                    errors["fast_compiled"] = f"{type(e).__name__}: {e}"
        with torch.inference_mode():
            ref = reference_forward(sd_dev, x, t)
            diffs = {k: float((fn().float() - ref).abs().max()) for k, fn in variants.items() if k != "reference"}
            times = time_interleaved(variants, args.repeats, sync=sync, budget_s=args.budget_s)
        row = {"device": dev.type, "batch": batch}
        for name, ts in times.items():
            row[name] = summarise(ts, batch)
            if name in diffs:
                row[name]["max_abs_diff_vs_reference"] = diffs[name]
        if errors:
            row["notes"] = errors
        rows.append(row)
        print_row(row, flush=True)
    return rows


def print_header():
    print(f"{'device':6s} {'batch':>5s} {'forward':24s} {'clips/s':>9s} {'median ms':>10s} "
          f"{'ms/clip':>8s} {'speed-up':>8s} {'max|Δ| vs ref':>13s}")


def print_row(row: dict, flush: bool = False):
    ref_ms = row["reference"]["median_ms"]
    for name, r in row.items():
        if not isinstance(r, dict) or "median_ms" not in r:
            continue
        diff = r.get("max_abs_diff_vs_reference")
        print(f"{row['device']:6s} {row['batch']:5d} {name:24s} {r['clips_per_s']:9.1f} {r['median_ms']:10.1f} "
              f"{r['median_ms'] / row['batch']:8.2f} {ref_ms / r['median_ms']:7.2f}× "
              f"{'—' if diff is None else f'{diff:.1e}':>13s}", flush=flush)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(GOLDEN / "weights.pt"))
    ap.add_argument("--vectors", default=str(GOLDEN / "vectors.npz"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--cuda-batches", default="1,256")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3,
                    help="timed calls per turn at batch <= 8, after an untimed one (1: single cold-ish calls)")
    ap.add_argument("--budget-s", type=float, default=60.0,
                    help="stop adding rounds for a batch size after this long (at least 5 rounds)")
    ap.add_argument("--with-mmn", action="store_true", help="also time the plain mmn.MMN module")
    ap.add_argument("--ablation", action="store_true",
                    help="also time FastMMN with workers=1 (intra-op threads in the calling thread)")
    ap.add_argument("--no-cuda", action="store_true")
    ap.add_argument("--cuda-compile", action="store_true", help="also time torch.compile(FastMMN) on CUDA")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_model.json"))
    args = ap.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b]
    args.cuda_batches = [int(b) for b in args.cuda_batches.split(",") if b]

    torch.set_num_threads(args.threads)
    with np.load(args.vectors) as z:
        golden = {k: z[k] for k in z.files}
    model = mmn.load_official(args.weights)  # eval mode, CPU
    sd = {k: v for k, v in torch.load(args.weights, map_location="cpu", weights_only=True).items()}
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    fast = FastMMN.from_model(model)
    models = {"fast": fast}
    if args.ablation:
        models["fast_intraop"] = FastMMN.from_model(model, workers=1)
    if args.with_mmn:
        models["mmn"] = model

    result = {"machine": machine_info(args.threads), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "weights": Path(args.weights).name, "load_start": os.getloadavg(), "repeats": args.repeats,
              "calls_per_turn_small_batches": args.calls,
              "fast": {"chunk_size": fast.chunk_size, "workers": fast.workers}, "rows": []}
    print(f"# {result['machine']['cpu']}, {result['machine']['logical_cpus']} logical CPUs, "
          f"torch {torch.__version__}, {args.threads} threads; load average (1, 5, 15 min) "
          f"{tuple(round(v, 2) for v in result['load_start'])}; medians of {args.repeats} rounds "
          f"(× {args.calls} back-to-back calls per turn at batch <= 8)")
    print_header()
    result["rows"] += bench_cpu(args, sd, models, golden)
    if torch.cuda.is_available() and not args.no_cuda:
        result["rows"] += bench_cuda(args, sd, model, golden)
    result["load_end"] = os.getloadavg()
    print(f"# load average (1, 5, 15 min) at the end: {tuple(round(v, 2) for v in result['load_end'])}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
        print(f"# wrote {path}")
    return result


if __name__ == "__main__":
    main()
