#!/usr/bin/env bash
# The quantization quality recipe's data (#16 section 6; scripts/quality.sh runs the recipe):
# English prose from Debian's python3-doc and perl-doc (the Python documentation's reStructuredText
# sources and Perl's manual pages; 6.2M characters: the model sees it about 2.6 times in its 2000 steps,
# where python3-doc alone, 2.5M, was seen 6.6 times and overfitted), installed with apt when they are
# not there, extracted by scripts/quality_text.py (held-out documents for eval), and packed by
# `tessera prepare-data` with the byte tokenizer at configs/quality-small.yaml's seq_len into
# data/quality/{train,eval}.tsd (git-ignored; about 80 MB: a .tsd holds 3 int32 per token), plus data/quality/calib.jsonl (GPTQ's calibration text,
# the start of the training documents).
#
# The GPU machine has no network, so this runs here: scripts/device-prepare.sh then packs
# data/quality into .device/quality.tgz (a few MB compressed) when it exists, and
# `scripts/device-tests.sh quality` unpacks it and runs scripts/quality.sh on it.
#
# Usage: scripts/quality-data.sh [TESSERA]   (default build-cpu/bin/tessera, else build/bin/tessera)
set -euo pipefail
cd "$(dirname "$0")/.."
tessera=${1:-build-cpu/bin/tessera}
[ -x "$tessera" ] || tessera=build/bin/tessera
[ -x "$tessera" ] || { echo "quality-data: no tessera binary (scripts/build.sh first)" >&2; exit 1; }
# doc_dir PACKAGE GLOB: the folder GLOB names, installing PACKAGE with apt when it is not there.
doc_dir() {
  local dir
  dir=$(ls -d $2 2>/dev/null | head -1 || true)
  if [ -z "$dir" ]; then
    echo "quality-data: installing $1" >&2
    apt-get install -y --no-install-recommends "$1" >/dev/null
    dir=$(ls -d $2 | head -1)
  fi
  echo "$dir"
}
python_docs=$(doc_dir python3-doc '/usr/share/doc/python3*/html/_sources')
perl_docs=$(doc_dir perl-doc '/usr/share/perl/5.*/pod')
out=data/quality
rm -rf "$out" && mkdir -p "$out/text"
python3 scripts/quality_text.py "$out/text" "$python_docs" "$perl_docs"
"$tessera" prepare-data --config configs/quality-small.yaml --set data.train="$out/text/train.jsonl" \
  --set data.eval="$out/text/eval.jsonl" --out "$out"
mv "$out/text/calib.jsonl" "$out/" && rm -rf "$out/text"
du -sh "$out"/*
