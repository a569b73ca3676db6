#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test this machine can run: unit, mpi
# (2 and 3 ranks through mpirun) and gpu (each GPU test skips with its reason where no GPU is).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch-tokenizers.sh
scripts/setup-llamacpp.sh   # node-llama-cpp for the GGUF checks against llama.cpp
scripts/build.sh
cd build
ctest -j"$(nproc)" --output-on-failure --timeout 900
