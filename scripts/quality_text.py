#!/usr/bin/env python3
"""English prose from Debian's documentation packages, for the quantization quality recipe
(scripts/quality-data.sh): the Python documentation's reStructuredText sources (python3-doc:
/usr/share/doc/python3.X/html/_sources, *.rst.txt) and Perl's manual pages in POD (perl-doc:
/usr/share/perl/5.X/pod, *.pod but the per-release perl*delta change logs).

Keeps paragraphs of running text: drops directives (and POD commands), literal and indented blocks,
tables, headings and interactive sessions, turns inline roles (:func:`len`), links and POD's
formatting codes (C<len>, L<text|target>, C<< $a >>) into their text, and keeps a
paragraph when it is at least 80 characters, mostly letters and spaces. Each source file is one
document; a file goes to eval when the SHA-1 of its path (under its source folder, with the
folder's own name in front) is 0 mod 20 (held-out documents, the same split on every machine),
else to train, up to --max-train-chars.

Also writes calib.jsonl: the first --calib-chars of the training documents (GPTQ's calibration
text, a part of the training data as GPTQ calibrates in practice).

Usage: quality_text.py OUT_DIR SOURCES_DIR... [--max-train-chars N] [--calib-chars N]
  -> OUT_DIR/{train,eval,calib}.jsonl
"""
import argparse
import hashlib
import json
import os
import re

ROLE = re.compile(r":[a-z:]+:`!?~?([^`<]*?)(?:\s*<[^>]*>)?`")
LINK = re.compile(r"`([^`]*?)(?:\s*<[^>]*>)?`_*")
SKIP_START = (" ", "\t", "..", "*", "=", "-", "+", "|", ">>>", "#")
POD_CODE = re.compile(r"[A-Z]<(?:<+\s(.*?)\s>+|([^<>]*))>")  # innermost first: nested codes unwrap in turns


def pod_text(text):
    """POD's formatting codes replaced by their text (L<text|target>: the text)."""
    while True:
        plain = POD_CODE.sub(lambda m: (m.group(1) or m.group(2) or "").split("|")[0], text)
        if plain == text:
            return text
        text = plain


def source_text(path):
    """The prose of one source file, or None when the file is not a document of the recipe."""
    name = os.path.basename(path)
    if name.endswith(".rst.txt"):
        raw = open(path, encoding="utf-8", errors="replace").read()
    elif name.endswith(".pod") and not name.endswith("delta.pod"):
        raw = pod_text(open(path, encoding="utf-8", errors="replace").read())
    else:
        return None
    return prose(raw) or None


def prose(text):
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        if not lines or lines[0].startswith(SKIP_START):
            continue
        p = " ".join(line.strip() for line in lines)
        p = LINK.sub(r"\1", ROLE.sub(r"\1", p).replace("``", ""))
        if len(p) >= 80 and sum(c.isalpha() or c == " " for c in p) >= 0.85 * len(p):
            paragraphs.append(p)
    return "\n\n".join(paragraphs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--max-train-chars", type=int, default=None, help="default: all")
    ap.add_argument("--calib-chars", type=int, default=400_000)
    args = ap.parse_args()
    docs = []
    for root in args.sources:
        for dirpath, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                text = source_text(path)
                if text:
                    docs.append((os.path.join(os.path.basename(root), os.path.relpath(path, root)), text))
    os.makedirs(args.out, exist_ok=True)
    chars = {"train": 0, "eval": 0}
    counts = {"train": 0, "eval": 0}
    path = lambda name: os.path.join(args.out, name)
    with open(path("train.jsonl"), "w") as train, open(path("eval.jsonl"), "w") as ev, open(path("calib.jsonl"), "w") as calib:
        for rel, text in docs:
            split = "eval" if int(hashlib.sha1(rel.encode()).hexdigest(), 16) % 20 == 0 else "train"
            if split == "train" and args.max_train_chars is not None and chars["train"] + len(text) > args.max_train_chars:
                continue
            line = json.dumps({"text": text}) + "\n"
            (ev if split == "eval" else train).write(line)
            if split == "train" and chars["train"] < args.calib_chars:
                calib.write(line)
            chars[split] += len(text)
            counts[split] += 1
    for split in ("train", "eval"):
        print(f"quality_text: {split}: {counts[split]} documents, {chars[split]} characters")


if __name__ == "__main__":
    main()
