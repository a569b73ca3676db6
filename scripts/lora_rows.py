"""Summary rows of scripts/device-tests.sh's lora and qlora sections: a `tessera train` run's median
tokens/s (after the warm-up steps), peak memory (its log's last "peak memory X GiB") and last loss."""
import json, re, statistics


def ours(out, metrics, log, warmup=2):
    try:
        rows = [json.loads(l) for l in open(metrics) if '"tokens_per_s"' in l][warmup:]
    except OSError:
        rows = []
    try:
        peak = re.findall(r"peak memory ([0-9.]+) GiB", open(f"{out}/{log}.log").read())
    except OSError:
        peak = []
    tok = statistics.median(r["tokens_per_s"] for r in rows) if rows else None
    return tok, (float(peak[-1]) if peak else None), (rows[-1]["loss"] if rows else None)


def fmt(x, f="{:.0f}"):
    return f.format(x) if x is not None else "n/a"
