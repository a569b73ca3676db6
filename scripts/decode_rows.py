#!/usr/bin/env python3
"""Markdown rows of the decode benchmark for scripts/device-tests.sh:
    decode_rows.py OURS.jsonl PEER.log
OURS.jsonl holds decode_bench's RESULT objects (one per line), PEER.log torch_peer_decode.py's
output. One row per run of ours: tokens/s, where a step's time goes (wall / model run / GPU ms),
the compiled peer's tokens/s at the same shape and batch, and the ratio."""
import json
import sys

ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peer = {}
for line in open(sys.argv[2]):
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
        peer[(r["shape"], r["batch"], r["mode"], r["prompt"])] = r


def label(r):
    """The small-M gemm kernel (TESSERA_SMALL_M) when not the default, the fused decode ops off
    (TESSERA_FUSED_DECODE=0), overlapping kernels (TESSERA_PDL) and profiled runs."""
    kernel = r.get("small_m", "auto")
    return (("" if kernel == "auto" else f", small-M {kernel}") + (", unfused" if r.get("fused", 1) == 0 else "")
            + (", pdl" if r.get("pdl") else "")
            + (", profiled" if r.get("profile") else ""))


print("| decode (shape, batch, prompt, graphs) | tessera tok/s | ms per step: wall / run / GPU | graph replays "
      "| prefill tok/s | hf static+compile tok/s | tessera / compiled |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in ours:
    p = peer.get((r["shape"], r["batch"], "static", r["prompt"]))
    theirs = p["decode_tok_per_s"] if p else None
    ratio = f'{r["decode_tok_per_s"] / theirs:.2f}x' if theirs else "-"
    print(f'| {r["shape"]}, {r["batch"]}, {r["prompt"]}, {"on" if r["graphs"] else "off"}{label(r)} | {r["decode_tok_per_s"]:.0f} '
          f'| {r["wall_ms_per_step"]:.2f} / {r["run_ms_per_step"]:.2f} / {r["gpu_ms_per_step"]:.2f} '
          f'| {r["graph_replays"]} | {r["prefill_tok_per_s"]:.0f} | {theirs if theirs else "-"} | {ratio} |')
