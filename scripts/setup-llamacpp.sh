#!/usr/bin/env bash
# Installs the pinned node-llama-cpp 3.21.1 (prebuilt llama.cpp CPU binaries, no GPU builds) into
# tests/llamacpp/node_modules for the GGUF checks (ctest -R LlamaCpp). Needs node >= 20 and npm.
# Idempotent: skipped when the installed tree matches package-lock.json; npm keeps its download
# cache (~/.npm) between runs, so a reinstall is quick.
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/llamacpp"
stamp="$dir/node_modules/.tessera-lock"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$dir/package-lock.json"; then
  echo "setup-llamacpp: node-llama-cpp already installed in $dir/node_modules"
  exit 0
fi
command -v npm >/dev/null || { echo "setup-llamacpp: npm is not installed (needed for the llama.cpp checks)" >&2; exit 1; }
# --omit=optional skips the CUDA/Vulkan/other-platform binaries (hundreds of MB); the CPU one is a
# direct dependency. --ignore-scripts: the postinstall would only look for binaries we already have.
(cd "$dir" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
cp "$dir/package-lock.json" "$stamp"
echo "setup-llamacpp: installed node-llama-cpp in $dir/node_modules"
