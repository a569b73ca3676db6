#!/usr/bin/env python3
"""scripts/quality_text.py on a made-up python3-doc and perl-doc tree: prose kept with its inline
markup turned to text, code / directives / POD commands / delta logs dropped, every document in
exactly one split, and the split the same when run again."""
import json
import os
import subprocess
import sys
import tempfile

script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "quality_text.py")
LONG = "This paragraph of running English text is long enough for the recipe to keep it as prose"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def run(out, *sources):
    subprocess.run([sys.executable, script, out, *sources], check=True, capture_output=True)
    docs = {}
    for split in ("train", "eval"):
        with open(os.path.join(out, split + ".jsonl")) as f:
            docs[split] = [json.loads(line)["text"] for line in f]
    return docs


def main():
    with tempfile.TemporaryDirectory() as tmp:
        rst, pod = os.path.join(tmp, "_sources"), os.path.join(tmp, "pod")
        for i in range(30):
            write(os.path.join(rst, f"lib{i}.rst.txt"),
                  f".. function:: f{i}()\n\n   indented code\n\n{LONG}, see :func:`len` number {i}.\n")
            write(os.path.join(pod, f"perl{i}.pod"),
                  f"=head1 NAME\n\n    my $code = 1;\n\n{LONG}: C<print> and L<the manual|perlfunc> and "
                  f"C<< $a <=> $b >> number {i}.\n")
        write(os.path.join(pod, "perl5360delta.pod"), f"{LONG}, a change log.\n")
        docs = run(os.path.join(tmp, "a"), rst, pod)
        texts = docs["train"] + docs["eval"]
        assert len(texts) == 60, f"expected 60 documents (the delta log dropped), got {len(texts)}"
        assert docs["eval"], "no held-out documents among 60"
        assert not any("change log" in t for t in texts), "a perl*delta.pod was kept"
        for t in texts:
            assert "code" not in t and "NAME" not in t and "function::" not in t, f"markup or code kept: {t!r}"
        assert any("prose, see len number 3." in t for t in texts), "an rst role not turned into its text"
        assert any("C<" not in t and ": print and the manual and $a <=> $b number 7." in t for t in texts), \
            "POD formatting codes not turned into their text"
        assert run(os.path.join(tmp, "b"), rst, pod) == docs, "the split changed between two runs"
    print("quality_text: ok")


if __name__ == "__main__":
    main()
