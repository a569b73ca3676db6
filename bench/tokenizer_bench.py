#!/usr/bin/env python3
"""Speed of the Python `tokenizers` library, to compare with bench/tokenizer_bench.cpp.

Usage: tokenizer_bench.py TOKENIZER_JSON_OR_DIR TEXT_FILE REPEATS THREADS
Encodes the text file's lines REPEATS times: one by one with encode() (single thread), and with
encode_batch() (Rayon threads, limited by RAYON_NUM_THREADS=THREADS). Prints one RESULT line each.
"""
import json
import os
import pathlib
import sys
import time


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    path, text_file, repeats, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # must be set before tokenizers starts its pool
    import tokenizers

    p = pathlib.Path(path)
    tok = tokenizers.Tokenizer.from_file(str(p / "tokenizer.json" if p.is_dir() else p))
    with open(text_file, encoding="utf-8", newline="") as f:
        docs = f.read().splitlines(keepends=True) * repeats
    total_bytes = sum(len(d.encode("utf-8")) for d in docs)

    def report(what, n_threads, seconds, n_tokens):
        print("RESULT " + json.dumps({"what": what, "threads": n_threads,
                                      "mb_per_s": round(total_bytes / seconds / 1e6, 3),
                                      "tokens_per_s": round(n_tokens / seconds)}))

    tok.encode(docs[0])  # warm-up
    start = time.perf_counter()
    n = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
    report("hf_tokenizers_encode", 1, time.perf_counter() - start, n)

    start = time.perf_counter()
    n = sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
    report("hf_tokenizers_encode_batch", threads, time.perf_counter() - start, n)


if __name__ == "__main__":
    main()
