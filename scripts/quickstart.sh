#!/usr/bin/env bash
# The main job on a tiny built-in default: installs what is missing, builds, then proves the
# stack end to end on this machine with two ranks (GPUs are used where present).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
tessera=build/bin/tessera
echo "== tessera version"; $tessera version
echo "== two ranks, one line each"; scripts/mpirun.sh -np 2 $tessera env
echo "== a job config, validated and resolved"; $tessera config configs/tiny-cpu.yaml --set train.steps=6 | head -20
echo "== op table and collectives on every rank"; scripts/mpirun.sh -np 2 $tessera selftest
echo "quickstart: done"
