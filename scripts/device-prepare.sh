#!/usr/bin/env bash
# Run here, before a GPU-machine call: packs into .device/ (git-ignored) what the run needs and
# the GPU machine lacks: Open MPI and the shared libraries our binaries link (through
# ../shared/device/prepare.sh), and the GPU test and benchmark binaries from build/.
# The device call then carries ".device" and runs: bash scripts/device-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${TESSERA_SHARED:-../shared}
bins=(build/bin/tessera build/bin/test_kernels build/bin/test_gpu_comm build/bin/gemm_bench build/bin/attention_bench
      build/bin/model_bench)
for b in "${bins[@]}"; do [ -x "$b" ] || { echo "device-prepare: $b is missing: run scripts/build.sh first" >&2; exit 1; }; done
DEVICE_BINS="${bins[*]}" "$shared/device/prepare.sh" "$PWD"
mkdir -p .device/bin
cp "${bins[@]}" .device/bin/
strip --strip-debug .device/bin/*
echo "device-prepare: $(du -sh .device | cut -f1) in .device (the limit for a call is 64 MiB)"
