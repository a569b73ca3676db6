#!/usr/bin/env python3
"""Writes reference encodings from the Python `tokenizers` library for the C++ exactness tests.

For every <dir>/<name>/tokenizer.json found under --tokenizers and under --text-dir (the small
hand-made tokenizers are committed there), encodes multilingual.txt and every case of
edge_cases.json and writes <out>/reference_<name>.json:
  {"tokenizer": name, "tokenizers_version": ..., "cases": [
     {"name", "text", "ids" (no special tokens), "ids_with_special",
      "decoded" (ids_with_special, skip_special_tokens=False), "decoded_skip_special" (=True)}]}

Usage (on a machine with `pip install tokenizers`; no network needed):
  python3 tests/tools/tokenizer_reference.py --tokenizers tests/data/tokenizers \
      --text-dir tests/data/tokenizer --out tests/data/tokenizer
"""
import argparse
import json
import pathlib
import sys

import tokenizers


def find_tokenizers(dirs):
    found = {}
    for d in dirs:
        for path in sorted(pathlib.Path(d).glob("*/tokenizer.json")):
            found[path.parent.name] = path
    return found


def load_cases(text_dir):
    text_dir = pathlib.Path(text_dir)
    # newline="" keeps the CRLF line endings of the text as they are.
    with open(text_dir / "multilingual.txt", encoding="utf-8", newline="") as f:
        cases = [{"name": "multilingual", "text": f.read()}]
    with open(text_dir / "edge_cases.json", encoding="utf-8") as f:
        cases += json.load(f)
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", required=True, help="folder with one sub-folder per tokenizer")
    ap.add_argument("--text-dir", required=True, help="folder with multilingual.txt and edge_cases.json")
    ap.add_argument("--out", required=True, help="folder for reference_<name>.json")
    args = ap.parse_args()

    found = find_tokenizers([args.tokenizers, args.text_dir])
    if not found:
        sys.exit(f"tokenizer_reference: no */tokenizer.json under {args.tokenizers} or {args.text_dir}")
    cases = load_cases(args.text_dir)
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        tok = tokenizers.Tokenizer.from_file(str(path))
        results = []
        for case in cases:
            ids = tok.encode(case["text"], add_special_tokens=False).ids
            ids_special = tok.encode(case["text"], add_special_tokens=True).ids
            results.append({
                "name": case["name"],
                "text": case["text"],
                "ids": ids,
                "ids_with_special": ids_special,
                "decoded": tok.decode(ids_special, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids_special, skip_special_tokens=True),
            })
        out = out_dir / f"reference_{name}.json"
        head = {"tokenizer": name, "tokenizers_version": tokenizers.__version__}
        with open(out, "w", encoding="utf-8") as f:
            # One case per line keeps the file small and its diffs readable.
            f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n')
            f.write(",\n".join(json.dumps(r, ensure_ascii=False) for r in results))
            f.write("\n]}\n")
        print(f"tokenizer_reference: {name}: {len(results)} cases -> {out}")


if __name__ == "__main__":
    main()
