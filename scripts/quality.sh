#!/usr/bin/env bash
# The quantization quality recipe (#16 section 6): held-out perplexity of one small model in bf16
# and quantized six ways, and the goals derived from them.
#   1. configs/quality-small.yaml trained from scratch on data/quality (scripts/quality-data.sh).
#   2. From its weights, four fine-tunes of the same steps, data and schedule: bf16 (the
#      baseline, so that it trains as long as QAT), QAT int4 g32 (with fixed and with learned
#      scales: quant.qat.learnable_scales) and QAT q4_0.
#   3. The bf16 baseline quantized after training: RTN int4 g32, GPTQ int4 g32 (calibrated on
#      training text), RTN q4_0 and RTN int8; each QAT job exported on its own grid.
#   With --seeds N, steps 2 and 3 run N times, with the fine-tunes' data order from train.seed 1..N:
#   at this model size RTN costs about 0.1% of perplexity, the order of two fine-tunes' spread, so a
#   recovered share from one seed is noisy; the table then gives means and each seed's share.
#   4. `tessera eval --json` of each on the held-out eval.tsd, then the goals (every model is kept
#      and evaluated in fp32 apart from its quantized projections, so the table measures their
#      quantization alone):
#      QAT recovers >= 70% of the perplexity RTN loses, GPTQ beats RTN, int8 within 0.5% of bf16.
# Prints a markdown table (and RESULT lines of JSON) on stdout; logs go to OUT/logs.
#
# Usage: scripts/quality.sh [--tessera BIN] [--data DIR] [--out DIR] [--tiny] [--base-steps N] [--ft-steps N]
#                           [--ft-lr LR] [--seeds N] [--set key=value ...]
#   --tiny: a smoke run for the CPU (a 2-layer model of width 64, a few steps); --base-steps /
#   --ft-steps / --ft-lr: the base training's and the fine-tunes' length and the fine-tunes' peak
#   learning rate (2000, 300, 3.0e-4; their floor is a tenth of it); --seeds: 5 (--tiny: 1) unless given; --set: overrides
#   for every training job (e.g. --set train.device=cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
tessera=build/bin/tessera
[ -x "$tessera" ] || tessera=build-cpu/bin/tessera
data=data/quality out=runs/quality tiny=0
base_steps= ft_steps= ft_lr=3.0e-4 calib_samples=128 seeds=
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --tessera) tessera=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --base-steps) base_steps=$2; shift 2 ;;
    --ft-steps) ft_steps=$2; shift 2 ;;
    --ft-lr) ft_lr=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "quality: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$data/train.tsd" ] && [ -f "$data/eval.tsd" ] && [ -f "$data/calib.jsonl" ] \
  || { echo "quality: $data lacks train.tsd, eval.tsd or calib.jsonl (run scripts/quality-data.sh)" >&2; exit 1; }
if [ "$tiny" = 1 ]; then
  base_steps=${base_steps:-30} ft_steps=${ft_steps:-10} seeds=${seeds:-1} calib_samples=8
  sets+=(--set model.init.hidden_size=64 --set model.init.intermediate_size=192 --set model.init.num_hidden_layers=2
         --set model.init.num_attention_heads=4 --set model.init.num_key_value_heads=4 --set train.micro_batch_size=4)
fi
base_steps=${base_steps:-2000} ft_steps=${ft_steps:-300} seeds=${seeds:-5}
rm -rf "$out" && mkdir -p "$out/logs"
log() { echo "quality: $*" >&2; }
run() {  # run NAME CMD...: the command's output into logs/NAME.log; its failure ends the recipe, naming the log
  local name=$1; shift
  "$@" > "$out/logs/$name.log" 2>&1 || { log "$name failed (see $out/logs/$name.log):"; tail -5 "$out/logs/$name.log" >&2; exit 1; }
}

t0=$SECONDS
log "training the base model ($base_steps steps)"
run base "$tessera" train configs/quality-small.yaml --set data.train="$data" --set data.eval="$data" \
  --set train.steps=$base_steps --set checkpoint.dir="$out/base" --set checkpoint.every_steps=$base_steps "${sets[@]}"
run base_export "$tessera" export --checkpoint "$out/base/step-$base_steps" --format safetensors --dtype fp32 --out "$out/base-hf"

# The fine-tunes: the base config with the trained weights in place of model.init.
finetune() {  # finetune NAME [qat scheme [learned]], into $run_dir (fine-tune data order from train.seed $seed)
  local name=$1 scheme=${2:-} learned=${3:-} config=$run_dir/$1.yaml
  sed -n '/^data:/,$p' configs/quality-small.yaml > "$config.rest"
  { echo "model:"; echo "  path: $out/base-hf"; echo "  tokenizer: bytes"; cat "$config.rest"
    if [ -n "$scheme" ]; then
      echo "quant:"; echo "  qat:"; echo "    weights: $scheme"
      [ "$scheme" = int4 ] && echo "    group_size: 32"
      echo "    modules: [all-linear]"
      [ -n "$learned" ] && echo "    learnable_scales: true"
    fi; } > "$config"
  rm "$config.rest"
  local model_sets=() i
  for ((i = 1; i < ${#sets[@]}; i += 2)); do [[ ${sets[i]} == model.init.* ]] || model_sets+=(--set "${sets[i]}"); done
  log "fine-tuning $name ($ft_steps steps, seed $seed)"
  run "${name}_s$seed" "$tessera" train "$config" --set data.train="$data" --set data.eval="$data" --set train.steps=$ft_steps \
    --set train.lr=$ft_lr --set train.schedule.warmup_steps=10 --set train.schedule.min_lr=$(python3 -c "print(f'{$ft_lr / 10:g}')") \
    --set train.seed=$seed --set checkpoint.dir="$run_dir/$name" --set checkpoint.every_steps=$ft_steps "${model_sets[@]}"
}

evaluate() {  # evaluate MODEL_DIR NAME: held-out perplexity into NAME.json
  "$tessera" eval --model "$1" --data "$data" --tokenizer bytes --dtype fp32 --batch-size 16 --json \
    > "$2.json" 2> "$out/logs/eval_$(basename "$2")_$seed.log" || { log "eval of $1 failed:"; tail -3 "$out/logs/eval_$(basename "$2")_$seed.log" >&2; exit 1; }
}

# Steps 2-3 for one seed, into $out/seed$seed: the fine-tunes, the quantized models, their evaluations.
seed_runs() {
  run_dir=$out/seed$seed
  mkdir -p "$run_dir"
  finetune bf16
  finetune qat_int4 int4
  finetune qat_int4_ls int4 learned
  finetune qat_q4_0 q4_0
  local baseline=$run_dir/bf16/step-$ft_steps
  local q=("$tessera" quantize --checkpoint "$baseline" --dtype fp32)
  log "quantizing (seed $seed)"
  run rtn_int4_s$seed "${q[@]}" --scheme int4 --group-size 32 --out "$run_dir/rtn_int4"
  run gptq_int4_s$seed "${q[@]}" --scheme int4 --group-size 32 --method gptq \
    --calib "$data/calib.jsonl" --calib-samples $calib_samples --calib-seq-len 512 --out "$run_dir/gptq_int4"
  run rtn_q4_0_s$seed "${q[@]}" --scheme q4_0 --out "$run_dir/rtn_q4_0"
  run rtn_int8_s$seed "${q[@]}" --scheme int8 --out "$run_dir/rtn_int8"
  local m
  for m in qat_int4 qat_int4_ls qat_q4_0; do
    run ${m}_export_s$seed "$tessera" export --checkpoint "$run_dir/$m/step-$ft_steps" --format quantized --dtype fp32 \
      --out "$run_dir/${m}_q"
  done
  log "evaluating (seed $seed)"
  evaluate "$baseline" "$run_dir/bf16"
  for m in rtn_int4 gptq_int4 rtn_q4_0 rtn_int8 qat_int4_q qat_int4_ls_q qat_q4_0_q; do evaluate "$run_dir/$m" "$run_dir/$m"; done
}

for ((seed = 1; seed <= seeds; seed++)); do seed_runs; done
evaluate "$out/base/step-$base_steps" "$out/base"
echo "quality recipe: base $base_steps steps, fine-tunes $ft_steps steps at peak lr $ft_lr, $seeds seed(s)"
python3 - "$out" "$seeds" "$((SECONDS - t0))" <<'PY'
import json, statistics, sys
out, seeds, t_all = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = ["bf16", "rtn_int4", "gptq_int4", "rtn_q4_0", "rtn_int8", "qat_int4_q", "qat_int4_ls_q", "qat_q4_0_q"]
def read(path):
    return json.loads(open(path).read().strip().splitlines()[-1])["perplexity"]
runs = [{n: read(f"{out}/seed{s}/{n}.json") for n in names} for s in range(1, seeds + 1)]
ppl = {n: statistics.mean(r[n] for r in runs) for n in names}
ppl["base"] = read(f"{out}/base.json")
rows = [("bf16 (base + fine-tune steps)", "bf16"), ("RTN int4 g32", "rtn_int4"), ("GPTQ int4 g32", "gptq_int4"),
        ("QAT int4 g32", "qat_int4_q"), ("QAT int4 g32, learned scales", "qat_int4_ls_q"), ("RTN q4_0", "rtn_q4_0"), ("QAT q4_0", "qat_q4_0_q"), ("RTN int8", "rtn_int8"),
        ("bf16 base (before the fine-tune steps)", "base")]
print(f"| quality: held-out perplexity (byte-level{', mean of %d seeds' % seeds if seeds > 1 else ''}) | perplexity | vs bf16 |")
print("| --- | --- | --- |")
for label, n in rows:
    print(f"| {label} | {ppl[n]:.4f} | {100 * (ppl[n] / ppl['bf16'] - 1):+.2f}% |")
def recovered(p, rtn, qat):
    lost = p[rtn] - p["bf16"]
    return (p[rtn] - p[qat]) / lost if lost > 0 else float("nan")
# Each goal: of the seeds' mean perplexities, and (with several seeds) each seed's own value.
goals = [
    ("QAT int4 g32 recovers >= 70% of what RTN int4 g32 loses", lambda p: recovered(p, "rtn_int4", "qat_int4_q"), lambda v: v >= 0.7, "{:.0%}"),
    ("QAT int4 g32 with learned scales recovers >= 70% of what RTN int4 g32 loses", lambda p: recovered(p, "rtn_int4", "qat_int4_ls_q"), lambda v: v >= 0.7, "{:.0%}"),
    ("QAT q4_0 recovers >= 70% of what RTN q4_0 loses", lambda p: recovered(p, "rtn_q4_0", "qat_q4_0_q"), lambda v: v >= 0.7, "{:.0%}"),
    ("GPTQ int4 g32 beats RTN int4 g32 (perplexity ratio)", lambda p: p["gptq_int4"] / p["rtn_int4"], lambda v: v < 1, "{:.4f}"),
    ("int8 within 0.5% of bf16", lambda p: p["rtn_int8"] / p["bf16"] - 1, lambda v: abs(v) <= 0.005, "{:+.3%}"),
]
print("| quality goal | measured | met |" + (" each seed |" if seeds > 1 else ""))
print("| --- | --- | --- |" + (" --- |" if seeds > 1 else ""))
for label, f, ok, fmt in goals:
    v = f(ppl)
    each = (" " + ", ".join(fmt.format(f(r)) for r in runs) + " |") if seeds > 1 else ""
    print(f"| {label} | {fmt.format(v)} | {'yes' if ok(v) else 'NO'} |{each}")
print(f"| quality recipe time | {t_all} s | |")
print("RESULT " + json.dumps({"perplexity": ppl, "seeds": runs, "goals": {g[0]: g[1](ppl) for g in goals}, "seconds": t_all}))
PY
