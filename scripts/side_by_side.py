#!/usr/bin/env python3
"""One markdown row of a benchmark next to its PyTorch peer, for scripts/device-tests.sh:
    side_by_side.py LABEL OURS_JSON THEIRS_JSON KEY [KEY ...]
prints | LABEL | ours[k1] / ours[k2] ... | theirs[...] | ratio ours/theirs per key |, with 0 for a
missing figure and - for a ratio without one (a run that failed still leaves its row)."""
import json
import sys

label, ours, theirs, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
a, b = json.loads(ours or "{}"), json.loads(theirs or "{}")
cells = lambda d: " / ".join(str(d.get(k, 0)) for k in keys)
ratio = lambda k: f"{a[k] / b[k]:.2f}" if a.get(k) and b.get(k) else "-"
print(f"| {label} | {cells(a)} | {cells(b)} | {' / '.join(ratio(k) for k in keys)} |")
