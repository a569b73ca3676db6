#!/usr/bin/env bash
# The main job on a tiny built-in default: installs what is missing, builds, then trains a tiny
# Llama-shaped model from scratch with ZeRO-3 on two ranks (GPUs where there are some, else the
# CPU) on this project's README with the built-in byte tokenizer: the loss falls, the 60-step run
# stops after step 30 with a checkpoint, resumes from it with the same lr schedule, and the result
# is exported as a Hugging Face model and evaluated, continues a prompt (tessera generate) and
# answers a client over HTTP (tessera serve); it is quantized to a GGUF q8_0 file (llama.cpp's
# format) and a Tessera int8 checkpoint, each continuing the prompt.
# Then a LoRA fine-tune of that model (its base frozen, a few seconds), exported as a PEFT adapter
# and merged; the first run is drawn as an SVG (tessera plot).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
tessera=build/bin/tessera
job=configs/tiny-cpu.yaml
gpu=()
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then gpu=(--set train.dtype=bf16); fi
rm -rf runs/tiny-cpu runs/tiny-lora
echo "== tessera version"; $tessera version
echo "== two ranks"; scripts/mpirun.sh -np 2 $tessera env
echo "== op table and collectives on every rank"; scripts/mpirun.sh -np 2 $tessera selftest
echo "== train with ZeRO-3 on 2 ranks; the 60-step schedule stops after step 30 with a checkpoint"
scripts/mpirun.sh -np 2 $tessera train $job "${gpu[@]}" --set train.stop_after=30 --set log.every_steps=10
echo "== resume from that checkpoint on 3 ranks and go on to step 60"
scripts/mpirun.sh -np 3 $tessera train $job "${gpu[@]}" --set log.every_steps=10
echo "== export the last checkpoint as a Hugging Face model"
$tessera export --checkpoint runs/tiny-cpu/step-60 --out runs/tiny-cpu/export --dtype fp32
ls -l runs/tiny-cpu/export
echo "== evaluate it: loss and perplexity over the README, the data split over 2 ranks"
scripts/mpirun.sh -np 2 $tessera eval --model runs/tiny-cpu/step-60 --data README.md --json
echo "== continue a prompt with it (sampled with a seed, streamed to stdout)"
$tessera generate --model runs/tiny-cpu/step-60 --prompt "Tessera trains" --max-new-tokens 48 --temperature 0.8 --top-k 20 --seed 1
echo
echo "== serve it over HTTP and ask one question with a client (Python's standard library)"
$tessera serve --model runs/tiny-cpu/step-60 --port 0 > runs/tiny-cpu/serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 300); do grep -q "serve: ready" runs/tiny-cpu/serve.log && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\).*/\1/p' runs/tiny-cpu/serve.log | head -1)
python3 -c '
import json, sys, urllib.request
body = json.dumps({"model": "step-60", "prompt": "Tessera trains", "max_tokens": 24, "temperature": 0.8, "top_k": 20, "seed": 1}).encode()
r = json.load(urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/completions", body,
                                                            {"Content-Type": "application/json"}), timeout=60))
print("served:", repr(r["choices"][0]["text"]), r["usage"])' "$port"
kill -TERM $serve_pid && wait $serve_pid
echo "== quantize it: GGUF q8_0 (llama.cpp's grid) and a Tessera int8 checkpoint, each continuing the prompt (the same seed)"
$tessera export --checkpoint runs/tiny-cpu/step-60 --format gguf --quant q8_0 --out runs/tiny-cpu/model-q8_0.gguf
$tessera generate --model runs/tiny-cpu/model-q8_0.gguf --prompt "Tessera trains" --max-new-tokens 48 --temperature 0.8 --top-k 20 --seed 1
echo
$tessera export --checkpoint runs/tiny-cpu/step-60 --format quantized --scheme int8 --out runs/tiny-cpu/int8
$tessera generate --model runs/tiny-cpu/int8 --tokenizer bytes --prompt "Tessera trains" --max-new-tokens 48 --temperature 0.8 --top-k 20 --seed 1
echo
echo "== LoRA fine-tune of that model: r 8 adapters on every projection, the base frozen, 20 steps on 2 ranks"
lora=(--set model.init= --set model.path=runs/tiny-cpu/export --set model.tokenizer=bytes --set lora.r=8
      --set lora.alpha=16 --set train.steps=20 --set train.lr=1e-2 --set checkpoint.dir=runs/tiny-lora
      --set checkpoint.every_steps=20 --set log.metrics_file=runs/tiny-lora/metrics.jsonl)
scripts/mpirun.sh -np 2 $tessera train $job "${gpu[@]}" "${lora[@]}"
echo "== export the adapter for PEFT, and the model with the adapter merged in"
$tessera export --checkpoint runs/tiny-lora/step-20 --format peft --out runs/tiny-lora/adapter
$tessera export --checkpoint runs/tiny-lora/step-20 --out runs/tiny-lora/merged --dtype fp32
ls -l runs/tiny-lora/adapter runs/tiny-lora/merged
echo "== the first run as a picture"
$tessera plot runs/tiny-cpu/metrics.jsonl --out runs/tiny-cpu/metrics.svg
echo "quickstart: done (metrics in runs/tiny-cpu/metrics.jsonl, drawn in runs/tiny-cpu/metrics.svg)"
