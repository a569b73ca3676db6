#!/usr/bin/env bash
# Run here, before a GPU-machine call: packs into .device/ (git-ignored) what the run needs and
# the GPU machine lacks: Open MPI (relocatable through OPAL_PREFIX) and the shared libraries our
# binaries link, in the layout ../shared/device/env.sh expects, plus the GPU test and benchmark
# binaries and the PyTorch peers. The device call then carries ".device" and runs
# `bash scripts/device-tests.sh`. (Same recipe as ../shared/device/prepare.sh, whose
# `ldconfig -p | awk '{...; exit}'` under pipefail dies of SIGPIPE now and then.)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${TESSERA_SHARED:-../shared}
bins=(build/bin/tessera build/bin/test_kernels build/bin/test_gpu_comm build/bin/gemm_bench build/bin/attention_bench
      build/bin/model_bench build/bin/tokenizer_bench build/bin/cpu_adamw_bench build/bin/nvme_bench
      build/bin/paged_attention_bench build/bin/decode_bench build/bin/quant_gemv_bench build/bin/skinny_gemm_bench
      build/bin/lora_batched_bench build/bin/sample_bench)
for b in "${bins[@]}"; do [ -x "$b" ] || { echo "device-prepare: $b is missing: run scripts/build.sh first" >&2; exit 1; }; done
command -v orterun >/dev/null || { echo "device-prepare: Open MPI is not installed (scripts/setup.sh)" >&2; exit 1; }

dev=.device
exclude=$(git rev-parse --git-path info/exclude)  # a worktree's .git is a file
mkdir -p "$(dirname "$exclude")"
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >> "$exclude"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
stage_bins=$stage/bin
rm -rf "$dev" && mkdir -p "$dev/peers" "$stage_bins"
B=$stage/mpi
mkdir -p "$B/usr/bin" "$B/lib" "$B/etc/openmpi" "$B/usr/share" "$B/usr/lib/x86_64-linux-gnu/openmpi"
cp -L /usr/bin/orterun /usr/bin/orted "$B/usr/bin/"
ln -s orterun "$B/usr/bin/mpirun"
ln -s orterun "$B/usr/bin/mpiexec"
cp -r /usr/lib/x86_64-linux-gnu/openmpi/lib "$B/usr/lib/x86_64-linux-gnu/openmpi/"
cp -r /usr/share/openmpi "$B/usr/share/"
cp /etc/openmpi/* "$B/etc/openmpi/"
[ -d /usr/lib/x86_64-linux-gnu/pmix2 ] && cp -r /usr/lib/x86_64-linux-gnu/pmix2 "$B/usr/lib/x86_64-linux-gnu/"

# The shared-library closure of MPI, its plugins and our binaries, less what the GPU machine has
# (libc and friends, CUDA, cuBLAS, NCCL).
libs=$stage/libs.txt
{
  ldd "$B/usr/bin/orterun" "$B/usr/bin/orted" "${bins[@]}"
  find "$B/usr/lib" -name '*.so*' -type f -exec ldd {} \;
} 2>/dev/null > "$stage/ldd.txt" || true
awk '/=>/ && $3 ~ /^\// {print $3}' "$stage/ldd.txt" | sort -u \
  | grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/usr/local/cuda|libcuda\.so|libnccl|libcublas' \
  > "$libs"
while read -r l; do cp -L "$l" "$B/lib/"; done < "$libs"
tar czf "$dev/mpi-bundle.tgz" -C "$stage" mpi
cp "$shared/device/env.sh" "$dev/env.sh"
cp "$shared/peers/"*.py "$dev/peers/"
# Binaries travel compressed (mostly CUDA fatbins, about 3.5x smaller); device-tests.sh unpacks them.
cp "${bins[@]}" "$stage_bins/"
# One real tokenizer for the tokenizer benchmark (tests/data/tokenizers is fetched, not committed).
[ -f tests/data/tokenizers/llama3/tokenizer.json ] || scripts/fetch-tokenizers.sh
mkdir -p "$dev/tokenizers" && cp -r tests/data/tokenizers/llama3 "$dev/tokenizers/"
# The quantization quality recipe's data (scripts/quality-data.sh makes data/quality here; the GPU
# machine has no network): about 1.6 MB compressed, unpacked by `device-tests.sh quality`.
if [ -f data/quality/train.tsd ]; then tar czf "$dev/quality.tgz" -C data quality; fi
strip --strip-all "$stage_bins"/*
tar czf "$dev/bin.tgz" -C "$stage" bin
echo "device-prepare: $(du -sh "$dev" | cut -f1) in $dev ($(wc -l < "$libs") libraries; the limit for a call is 64 MiB)"
