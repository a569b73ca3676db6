#!/usr/bin/env python3
"""Summary rows of scripts/device-tests.sh's train section, for one model shape:
    train_rows.py OUT SHAPE GOAL PEAK_JSONS MODEL_BENCH EAGER COMPILED LABEL=LOG=METRICS.jsonl [...]
SHAPE: the rows' label ("1B shape"); GOAL: the speed goal against the compiled peer (1.3);
PEAK_JSONS: gemm_bench RESULT objects, one a line (the measured bf16 gemm peak is their best);
MODEL_BENCH, EAGER, COMPILED: RESULT objects of bench/model_bench and torch_peer.py --mode full
(eager, --compile); each LABEL=LOG=FILE a `tessera train` run (LABEL may hold '='): its log OUT/LOG.log, its log.metrics_file.
Prints, next to both peers: tokens/s, TFLOP/s, MFU against the measured peak, peak memory (and what
the caching allocator held from the driver at the end, "reserved"); then where
each run's step went (median of the steps after two warm-up steps): its device time of forward +
backward and of what follows it (forward_backward_s, update_s), and the share outside forward +
backward, both against the forward + backward alone (model_bench) and within the step; then the
fastest variant."""
import json, re, statistics, sys

TOKENS = 4 * 2048  # configs/llama-1b-full.yaml: micro-batch 4, seq 2048, one rank


def load(text):
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}


def run_figures(out, name, metrics, warmup=2):
    try:
        rows = [json.loads(l) for l in open(metrics) if '"tokens_per_s"' in l][warmup:]
    except OSError:
        rows = []
    if not rows:
        return None
    med = lambda k: statistics.median(r[k] for r in rows if r.get(k) is not None)
    try:
        log = open(f"{out}/{name}.log").read()
    except OSError:
        log = ""
    peak, reserved = re.findall(r"peak memory ([0-9.]+) GiB", log), re.findall(r"\(([0-9.]+) GiB reserved\)", log)
    return {"tok": med("tokens_per_s"), "tflops": med("tflops_per_rank"), "loss": rows[-1]["loss"],
            "gib": float(peak[-1]) if peak else max(r["peak_memory_gib"] for r in rows),
            "reserved": float(reserved[-1]) if reserved else None,
            "fwd_bwd": med("forward_backward_s") if "forward_backward_s" in rows[0] else None,
            "update": med("update_s") if "update_s" in rows[0] else None,
            **{k: med(f"{k}_s") if f"{k}_s" in rows[0] else None for k in ("norm", "adamw", "behind", "data")},
            "losses": [r["loss"] for r in rows]}


def cell(x, f="{:.0f}"):
    return f.format(x) if x is not None else "n/a"


def main():
    out, shape, goal = sys.argv[1], sys.argv[2], sys.argv[3]
    peaks, fb, eager, compiled = sys.argv[4], load(sys.argv[5]), load(sys.argv[6]), load(sys.argv[7])
    runs = [(label, run_figures(out, log, f)) for label, log, f in (a.rsplit("=", 2) for a in sys.argv[8:])]
    peak = max([load(l).get("tflops", 0) for l in peaks.splitlines()] + [0]) or None
    mfu = lambda t: f"{100 * t / peak:.1f}%" if peak and t else "n/a"
    ratio = lambda a, b: f"{a / b:.3f}" if a and b else "n/a"
    et, ct = eager.get("tok_per_s_per_gpu"), compiled.get("tok_per_s_per_gpu")
    print(f"| {shape}, seq 2048, mbs 4, 1 GPU | tokens/s | TFLOP/s | MFU (measured bf16 gemm peak {cell(peak, '{:.0f}')} TFLOP/s) "
          f"| peak GiB | / torch eager | / torch.compile |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in runs:
        if r is None:
            print(f"| tessera train, {name} | no metrics | | | | | |")
            continue
        held = f" (reserved {r['reserved']:.2f})" if r["reserved"] is not None else ""
        print(f"| tessera train, {name} (loss {r['loss']:.3f}) | {r['tok']:.0f} | {r['tflops']:.1f} | {mfu(r['tflops'])} | "
              f"{r['gib']:.2f}{held} | {ratio(r['tok'], et)} | {ratio(r['tok'], ct)} (goal {goal}) |")
    fbt = fb.get("tok_per_s")
    print(f"| tessera forward + backward alone (model_bench) | {cell(fbt)} | {fb.get('tflops', 'n/a')} | {mfu(fb.get('tflops'))} | "
          f"{fb.get('peak_mem_gib', 'n/a')} | {ratio(fbt, et)} | {ratio(fbt, ct)} |")
    for label, p, t in (("torch_peer --mode full, eager", eager, et), ("torch_peer --mode full --compile", compiled, ct)):
        print(f"| {label} | {cell(t)} | {p.get('tflops_per_gpu', 'n/a')} | {mfu(p.get('tflops_per_gpu'))} | "
              f"{p.get('peak_mem_gib', 'n/a')} | {ratio(t, et)} | {ratio(t, ct)} |")
    print()
    print(f"| {shape} step split, median of steps 3-12 | step s | forward + backward s (device) | after it s (device): "
          "norm + adamw | host and gaps s (of it data) | last AdamW behind s | outside fwd+bwd: vs fwd+bwd alone / within the step (goal < 4%) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    fb_step = TOKENS / fbt if fbt else None
    for name, r in runs:
        if r is None:
            continue
        step = TOKENS / r["tok"]
        host = step - r["fwd_bwd"] - r["update"] if r["fwd_bwd"] is not None and r["update"] is not None else None
        vs_alone = f"{100 * (1 - fb_step / step):.1f}%" if fb_step else "n/a"
        within = f"{100 * (1 - r['fwd_bwd'] / step):.1f}%" if r["fwd_bwd"] is not None else "n/a"
        f4 = lambda x: cell(x, "{:.4f}")
        print(f"| {name} | {step:.4f} | {f4(r['fwd_bwd'])} | {f4(r['update'])}: {f4(r['norm'])} + {f4(r['adamw'])} | "
              f"{f4(host)} ({f4(r['data'])}) | {f4(r['behind'])} | {vs_alone} / {within} |")
    done = [(r["tok"], n) for n, r in runs if r]
    if done:
        best = max(done)
        print(f"| fastest variant: **{best[1]}** | " + " / ".join(f"{n} {t:.0f}" for t, n in done) + " tok/s | | | | | |")
    for name, r in runs[1:]:
        if r and runs[0][1]:
            a, b = r["losses"], runs[0][1]["losses"]
            diff = max(abs(x - y) / max(abs(y), 1e-9) for x, y in zip(a, b))
            print(f"| losses, {name} vs {runs[0][0]}: largest relative difference | {diff:.2e} | | | | | |")


main()
