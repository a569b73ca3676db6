#!/usr/bin/env bash
# Run on the GPU machine from the repo root, with .device/ carried there (scripts/device-prepare.sh):
# every GPU test and benchmark in one go, builds nothing. summary.md and logs.tgz (every log) go
# to $OUT (or device-out/); the summary table is printed last. `bash scripts/device-tests.sh offload`
# runs only the offload section, `... nvme` only the NVMe swap benchmark, `... attention` only the
# attention tests and benchmark, `... train` the optimizer and recompute kernel tests and the 1B
# and 3B training and model benchmarks next to PyTorch, `... largest` only the 8B run, `... largest_nvme` the largest model with its
# optimizer on disk, `... quant` the quantization kernels, benchmarks and quality recipe, `... lora`
# PEFT parity both ways and the 1B LoRA benchmark, `... qlora` the 8B QLoRA and LoRA benchmarks,
# `... qlora_70b` the Llama-3-70B shape QLoRA on one GPU,
# `... generate` greedy parity of tessera generate with transformers, the decode tests and the 1B
# decode benchmark, `... decode_8b` the 8B decode benchmark, `... skinny` the small-M gemm kernels'
# tests and their side-by-side benchmark (which kernel wins per projection and M),
# `... paged_attention` the paged KV cache kernels' tests and the decode attention benchmark,
# `... metrics` the trainer's metrics port on GPUs, `... quant_kernels` the fused packed gemv's tests
# and the packed projections next to bf16, `... decode_quant` batch-1 decoding with packed weights,
# `... serve_load` tessera serve under Poisson load, `... sample` the GPU sampling kernel's
# tests and benchmark, `... int4_size` the 8B shape's int4 checkpoint size next to bf16,
# `... gptq` GPTQ quantization on the GPU,
# `... quality` the quantization quality recipe (scripts/quality.sh), `... adapters` the batched
# multi-adapter LoRA kernel's tests and benchmark, `... qat_scales` QAT with learned scales (kernel
# tests; fixed vs learned scales training speed), `... fused_decode` the fused decode ops' tests and
# decoding with them and without.
set -uo pipefail
cd "$(dirname "$0")/.."
source .device/env.sh
[ -d .device/bin ] || tar xzf .device/bin.tgz -C .device
export TESSERA_TEST_DATA=$PWD/tests/data
dest=${OUT:-device-out}
out=$(mktemp -d)
mkdir -p "$dest"
rm -f /tmp/tessera-*.jsonl  # metrics files append: a warm machine still has the last call's
summary=$out/summary.md
gpus=$(nvidia-smi -L | wc -l)
mpi=(mpirun --bind-to none --oversubscribe)
echo "| check | result |" > "$summary"
echo "| --- | --- |" >> "$summary"

# Runs a test command, keeps its log, and adds its gtest tally (or pass/FAIL) to the summary.
check() {
  local name=$1; shift
  echo "== $name: $*"
  if "$@" > "$out/$name.log" 2>&1; then status=pass; else status=FAIL; fi
  tally=$(grep -E '^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \]' "$out/$name.log" | tr '\n' ' ')
  tail -3 "$out/$name.log"
  echo "| $name | $status $tally |" >> "$summary"
}

# Runs a benchmark, appends its output to $out/LOG, and adds one summary row per RESULT {json}
# line, FORMAT being a Python %-format over the json's keys.
result_rows() {
  local log=$1 format=$2; shift 2
  "$@" | tee -a "$out/$log" | sed -n 's/^RESULT //p' | python3 -c 'import json, sys
for l in sys.stdin:
    print(sys.argv[1] % json.loads(l))' "$format" >> "$summary"
}

# Attention alone: Tessera's fused kernel next to PyTorch's scaled_dot_product_attention (flash),
# the 1B and 3B shapes' heads, without and with packed documents of 700 tokens (segment ids; each
# document its own sequence for SDPA); one row per Hopper kernel variant (TESSERA_ATTN_FWD / _BWD).
attention_bench() {
  if [ -x .device/bin/attention_bench ]; then
    echo "| attention (B S Hq Hkv D, doc_len, variant) | tessera fwd / bwd TFLOP/s | torch fwd / bwd TFLOP/s | fwd / bwd ratio |" >> "$summary"
    echo "| --- | --- | --- | --- |" >> "$summary"
    local shape doc line theirs
    for shape in "4 2048 32 8 64" "4 4096 32 8 64" "4 2048 16 8 128" "4 4096 16 8 128"; do
      for doc in 0 700; do
        theirs=$(python3 bench/torch_attention.py $shape bf16 20 $doc | tee -a "$out/attention.log" | sed -n 's/^RESULT //p')
        .device/bin/attention_bench $shape bf16 20 $doc | tee -a "$out/attention.log" | sed -n 's/^RESULT //p' |
          while read -r line; do
            python3 scripts/side_by_side.py "$shape, $doc, $(sed 's/.*"variant":"\([^"]*\)".*/\1/' <<< "$line")" "$line" \
              "$theirs" fwd_tflops bwd_tflops >> "$summary"
          done
      done
    done
  fi
}

# Training next to PyTorch (issue #17), seq 2048, micro-batch 4 on one GPU, for the Llama-3.2-1B
# shape and the 3B shape (hidden 3072, 28 layers, 24/8 heads, inter 8192, tied): `tessera train`
# (ZeRO-3, AdamW, fp32 master weights) in a few variants, one forward + backward alone
# (model_bench), PyTorch + transformers' full step eager and compiled, all in this call; MFU
# against the bf16 gemm peak measured here (gemm_bench); each run's step split (device time of
# forward + backward and of what follows it) and the share outside forward + backward (goal < 4%);
# the fastest variant. Variants: `spans` the sequential step (one AdamW launch per unit), `overlap`
# zero.overlap_step with the compute stream at the highest priority (TESSERA_COMPUTE_PRIORITY=high,
# the AdamW stream at the lowest; its update zeroes the gradient, so backward skips that fill); at 3B
# all with train.recompute_norms_swiglu (`recompute`: the sequential step; `recompute_first10`: in the
# first 10 layers only, the fastest under the compiled peer's memory, session 13 call C), and model_bench with the
# same recompute. optimizer_bench first: the AdamW pass's TB/s next to a plain copy's, whether it
# can run beside gemms at all, and the gradient fill.
train_variant() {  # TAG NAME "VAR=value ..." [--set ...]: one run, log train_TAG_NAME, its metrics file
  local tag=$1 name=$2 envs=$3 x=() e; shift 3
  for e in $envs; do x+=(-x "$e"); done
  check "train_${tag}_$name" "${mpi[@]}" "${x[@]}" -np 1 .device/bin/tessera train configs/llama-1b-full.yaml \
    --set log.metrics_file=/tmp/tessera-$tag-$name.jsonl "$@"
}

train_shape() {  # TAG LABEL GOAL "PEER/MODEL_BENCH SHAPE ARGS" "--set ... (tessera's shape)" "MODEL_BENCH ARGS" VARIANT...
  local tag=$1 label=$2 goal=$3 shape=$4 sets=$5 bench=$6 v name envs extra rows=() ours eager="" compiled; shift 6
  for v in "$@"; do
    IFS='|' read -r name envs extra <<< "$v"
    # shellcheck disable=SC2086  # the --set lists split on purpose
    train_variant "$tag" "$name" "$envs" $sets $extra
    grep -E "done:" "$out/train_${tag}_$name.log" | tail -1 | sed "s/^/| train_${tag}_$name | /; s/$/ |/" >> "$summary"
    rows+=("$name${envs:+ ($envs)}${extra:+ $extra}=train_${tag}_$name=/tmp/tessera-$tag-$name.jsonl")
  done
  # shellcheck disable=SC2086
  ours=$(.device/bin/model_bench $shape $bench | tee -a "$out/model_$tag.log" | sed -n 's/^RESULT //p')
  # TRAIN_EAGER=0 skips the eager peer (the compiled one is the one to beat; device time is scarce).
  # shellcheck disable=SC2086
  [ "${TRAIN_EAGER:-1}" = 0 ] || eager=$(python3 .device/peers/torch_peer.py --mode full $shape --steps 5 2>&1 \
          | tee -a "$out/model_$tag.log" | sed -n 's/^RESULT //p')
  # shellcheck disable=SC2086
  compiled=$(python3 .device/peers/torch_peer.py --mode full --compile $shape --steps 5 2>&1 | tee -a "$out/model_$tag.log" \
             | sed -n 's/^RESULT //p')
  python3 scripts/train_rows.py "$out" "$label" "$goal" "$peaks" "$ours" "$eager" "$compiled" "${rows[@]}" >> "$summary"
  # What the train runs' batches add: segment ids (one document per sequence), as text data gives.
  # shellcheck disable=SC2086
  result_rows "model_$tag.log" "| $label forward + backward alone with segment ids of one document (model_bench $bench --segment-ids) | %(tok_per_s)s tok/s | %(tflops)s TFLOP/s | %(peak_mem_gib)s GiB |" \
    .device/bin/model_bench $shape $bench --segment-ids
}

peaks=""
train() {
  check overlap_step_gpu "${mpi[@]}" -np 1 .device/bin/test_gpu_comm --gtest_filter='OverlapStepGpu*'
  for i in $(seq 300); do cat README.md; done > /tmp/tessera-corpus.txt
  local tb
  for tb in 0 1; do
    peaks+=$(.device/bin/gemm_bench 8192 8192 8192 bf16 $tb | tee -a "$out/train_peak.log" | sed -n 's/^RESULT //p')$'\n'
  done
  # TRAIN_SHAPES picks the shapes (default "1b 3b"); TRAIN_OPTIMIZER_BENCH=0 skips optimizer_bench.
  local shapes=${TRAIN_SHAPES:-1b 3b}
  [ "${TRAIN_OPTIMIZER_BENCH:-1}" = 0 ] || optimizer_rows
  local fast="TESSERA_COMPUTE_PRIORITY=high" over="--set zero.overlap_step=true" r="--set train.recompute_norms_swiglu=true"
  [[ " $shapes " != *" 1b "* ]] || train_shape 1b "1B shape" 1.3 "" "" "" "spans||" "overlap|$fast|$over"
  [[ " $shapes " != *" 3b "* ]] || train_shape 3b "3B shape" 1.45 "--hidden 3072 --layers 28 --heads 24 --kv 8 --inter 8192" \
    "--set model.init.hidden_size=3072 --set model.init.num_hidden_layers=28 --set model.init.num_attention_heads=24" \
    --recompute-norms-swiglu "recompute||$r" "recompute_first10||$r --set train.recompute_norms_swiglu_layers=10" \
    "overlap|$fast|$r $over"
}

# optimizer_bench: the AdamW pass's TB/s next to a copy's, beside gemms, and the gradient fill.
optimizer_rows() {
  local s k
  for s in 1b 3b; do
    for k in ranges spans; do TESSERA_ADAMW=$k .device/bin/optimizer_bench $s > "$out/optimizer_${s}_$k.log" 2>&1; done
  done
  local logs=("$out"/optimizer_*.log)
  result_rows optimizer.log '| copy 4 GiB on the device | %(ms).2f ms | %(tb_per_s)s TB/s |' \
    grep -h '"what":"copy"' "${logs[0]}"
  result_rows optimizer.log '| optimizer_bench %(what)s %(shape)s %(kernel)s | %(ms).2f ms | %(tb_per_s)s TB/s |' \
    grep -h '"what":"adamw"' "${logs[@]}"
  result_rows optimizer.log '| optimizer_bench %(what)s %(shape)s | %(ms).2f ms | %(tb_per_s)s TB/s |' \
    grep -h '"what":"sum_squares"' "${logs[0]}" "${logs[2]}"
  result_rows optimizer.log '| optimizer_bench overlap %(shape)s %(kernel)s, gemm stream %(gemm_stream)s | gemm %(gemm_ms).1f + adamw %(adamw_ms).1f ms, together %(both_ms).1f ms | hidden %(hidden).2f |' \
    grep -h '"what":"overlap"' "${logs[@]}"
  result_rows optimizer.log '| optimizer_bench fill of every gradient %(shape)s | %(ms).2f ms | %(tb_per_s)s TB/s |' \
    grep -h '"what":"fill"' "${logs[1]}" "${logs[3]}"
}

only=${1:-all}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
if [ "$only" = train ]; then
  for k in ranges spans; do
    TESSERA_ADAMW=$k check "kernels_train_$k" .device/bin/test_kernels --gtest_filter='Optimizer*:Recompute*:ModelParity*'
  done
  train
fi
if [ "$only" = attention ]; then
  check kernels_attention .device/bin/test_kernels --gtest_filter='*Attention*'
  attention_bench
fi
if [ "$only" = all ]; then
check kernels .device/bin/test_kernels
check nccl_np1 "${mpi[@]}" -np 1 .device/bin/test_gpu_comm
if [ "$gpus" -ge 2 ]; then
  check nccl_np$gpus "${mpi[@]}" -np "$gpus" .device/bin/test_gpu_comm
else
  echo "| nccl_np2 | not run: this machine has $gpus GPU |" >> "$summary"
fi
check selftest "${mpi[@]}" -np "$gpus" .device/bin/tessera selftest

# gemm: Tessera's op table next to PyTorch's matmul, same shapes, same call.
echo "| gemm (M N K dtype trans_b) | tessera TFLOP/s | torch TFLOP/s | ratio |" >> "$out/gemm.md"
echo "| --- | --- | --- | --- |" >> "$out/gemm.md"
for shape in "8192 8192 8192 bf16 0" "8192 8192 8192 bf16 1" "16384 2048 2048 bf16 1" "4096 4096 4096 f32 0"; do
  ours=$(.device/bin/gemm_bench $shape | tee -a "$out/gemm.log" | sed -n 's/^RESULT //p')
  theirs=$(python3 bench/torch_gemm.py $shape | tee -a "$out/gemm.log" | sed -n 's/^RESULT //p')
  python3 scripts/side_by_side.py "$shape" "$ours" "$theirs" tflops >> "$out/gemm.md"
done
cat "$out/gemm.md" >> "$summary"
attention_bench

# Tokenizer speed on this machine's CPU, next to the Python `tokenizers` library on the same text.
if [ -x .device/bin/tokenizer_bench ]; then
  echo "| tokenizer (Llama 3, multilingual text x200) | tessera MB/s | tokenizers MB/s | ratio |" >> "$summary"
  echo "| --- | --- | --- | --- |" >> "$summary"
  text=tests/data/tokenizer/multilingual.txt
  for threads in 1 $(nproc); do
    ours=$(.device/bin/tokenizer_bench .device/tokenizers/llama3 $text 200 $threads | tee -a "$out/tokenizer.log" | sed -n 's/^RESULT //p')
    theirs=$(python3 bench/tokenizer_bench.py .device/tokenizers/llama3 $text 200 $threads | tee -a "$out/tokenizer.log" \
             | sed -n 's/^RESULT //p' | grep "\"threads\": $threads" | tail -1)
    python3 scripts/side_by_side.py "$threads thread(s)" "$ours" "$theirs" mb_per_s >> "$summary"
  done
fi

# One training run on the GPU: the tiny job, bf16, ZeRO-3, loss must fall.
check train_gpu "${mpi[@]}" -np 1 .device/bin/tessera train configs/tiny-cpu.yaml --set train.device=cuda \
  --set train.dtype=bf16 --set train.steps=30 --set log.every_steps=10

# The trained tiny model, exported: transformers loads it and its logits match `tessera forward`.
ckpt=$(ls -d runs/tiny-cpu/step-* 2>/dev/null | sort -t- -k2 -n | tail -1)
if [ -n "$ckpt" ]; then
  python3 -c "import torch; from safetensors.torch import save_file; save_file({'input_ids': torch.randint(0, 259, (2, 33))}, '/tmp/ids.safetensors')"
  check export_hf bash -c ".device/bin/tessera export --checkpoint $ckpt --out /tmp/export --dtype fp32 &&
    .device/bin/tessera forward --model /tmp/export --input-ids /tmp/ids.safetensors --output /tmp/fwd.safetensors --device cpu &&
    python3 tests/tools/check_export_with_transformers.py /tmp/export /tmp/ids.safetensors /tmp/fwd.safetensors"
  grep RESULT "$out/export_hf.log" >> "$summary"
fi

train

# Two GPUs: the same 1B job with ZeRO-3 on 2 ranks (micro-batch 4 per GPU) next to FSDP2
# (torch_peer.py --fsdp under torchrun) and the 1-GPU figures above: per-GPU tokens/s (goal: >= 95%
# of one GPU's, i.e. communication hidden) and rank 0's peak memory.
if [ "$gpus" -ge 2 ]; then
  check train_1b_2gpu "${mpi[@]}" -np 2 .device/bin/tessera train configs/llama-1b-full.yaml \
    --set log.metrics_file=/tmp/tessera-1b-2gpu.jsonl
  check fsdp_2gpu python3 -m torch.distributed.run --nproc_per_node 2 .device/peers/torch_peer.py --mode full --fsdp \
    --steps 10
  python3 - /tmp/tessera-1b-seq.jsonl "$out/train_1b_seq.log" /tmp/tessera-1b-2gpu.jsonl "$out/train_1b_2gpu.log" \
    "$out/model_1b.log" "$out/fsdp_2gpu.log" >> "$summary" <<'PY'
import json, sys
def tessera(metrics, log, world):
    try:
        rows = [json.loads(l) for l in open(metrics) if '"tokens_per_s"' in l][2:]  # after 2 warm-up steps
        peak = re.findall(r"peak memory ([0-9.]+) GiB", open(log).read())
        return statistics.median(r["tokens_per_s"] for r in rows) / world, float(peak[-1]) if peak else None
    except (OSError, ValueError, statistics.StatisticsError):
        return None, None
def torch(log, fsdp):
    try:
        for line in open(log):
            if line.startswith("RESULT ") and '"mode"' in line:
                r = json.loads(line[7:])
                if r.get("fsdp") == fsdp:
                    return r["tok_per_s_per_gpu"], r["peak_mem_gib"]
    except OSError:
        pass
    return None, None
runs = [("tessera ZeRO-3, 1 GPU", *tessera(sys.argv[1], sys.argv[2], 1)),
        ("tessera ZeRO-3, 2 GPUs", *tessera(sys.argv[3], sys.argv[4], 2)),
        ("torch_peer full, 1 GPU", *torch(sys.argv[5], False)),
        ("torch_peer FSDP2, 2 GPUs", *torch(sys.argv[6], True))]
one = {"tessera": runs[0][1], "torch": runs[2][1]}
fmt = lambda v, f="{:.0f}": f.format(v) if v else "-"
print("| 1B shape, seq 2048, mbs 4 per GPU | tokens/s per GPU | of the same code on 1 GPU | peak GiB (rank 0) |")
print("| --- | --- | --- | --- |")
for name, tok, peak in runs:
    base = one[name.split()[0].split("_")[0]]
    print(f"| {name} | {fmt(tok)} | {fmt(tok / base * 100 if tok and base else None, '{:.1f}%')} | {fmt(peak, '{:.2f}')} |")
if runs[1][1] and runs[3][1]:
    print(f"| ratio tessera / FSDP2, 2 GPUs | {runs[1][1] / runs[3][1]:.2f} | | "
          f"{fmt(runs[1][2] / runs[3][2] if runs[1][2] and runs[3][2] else None, '{:.2f}')} |")
PY
else
  echo "| train_1b_2gpu, fsdp_2gpu | not run: this machine has $gpus GPU |" >> "$summary"
fi
fi  # all

# Offload: the CPU AdamW next to torch's CPU AdamW and this host's bandwidth; training with the
# optimizer in pinned host memory next to the same jobs without it.
if [ "$only" = all ] || [ "$only" = offload ]; then
  ours=$(.device/bin/cpu_adamw_bench 250 5 | tee -a "$out/offload.log" | sed -n 's/^RESULT //p')
  theirs=$(python3 .device/peers/torch_peer_infer.py 2>&1 | tee -a "$out/offload.log" | grep torch_cpu_adamw | sed 's/^RESULT //')
  python3 - "$ours" "$theirs" >> "$summary" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1] or "{}"), json.loads(sys.argv[2] or "{}")
print("| CPU AdamW, 250M params | Mparams/s | GB/s moved | host triad GB/s |")
print("| --- | --- | --- | --- |")
print(f"| tessera ({a.get('threads')} threads) | {a.get('Mparams_per_s')} | {a.get('GB_per_s')} | {a.get('triad_GB_per_s')} |")
print(f"| torch.optim.AdamW CPU ({b.get('threads')} threads) | {b.get('Mparams_per_s')} | | |")
if a.get('Mparams_per_s') and b.get('Mparams_per_s'):
    print(f"| ratio tessera / torch | {a['Mparams_per_s'] / b['Mparams_per_s']:.2f} | of triad: {a['of_bandwidth']} | |")
PY
  tiny=(configs/tiny-cpu.yaml --set train.device=cuda --set train.dtype=bf16 --set train.steps=30 --set log.every_steps=30
        --set checkpoint.resume=never --set checkpoint.dir= --set log.metrics_file=)
  swap=$(mktemp -d /tmp/tessera-swap.XXXX)
  check tiny_device "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}"
  check tiny_offload "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}" --set zero.offload_optimizer.device=cpu
  check tiny_offload_grads_device "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}" \
    --set zero.offload_optimizer.device=cpu --set zero.offload_optimizer.gradients=device
  check tiny_offload_accum "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}" \
    --set zero.offload_optimizer.device=cpu --set train.grad_accum=2 --set train.micro_batch_size=4
  check tiny_device_accum "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}" \
    --set train.grad_accum=2 --set train.micro_batch_size=4
  check tiny_params_cpu "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}" --set zero.offload_params.device=cpu
  check tiny_optimizer_nvme "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}" \
    --set zero.offload_optimizer.device=nvme --set zero.offload_optimizer.path="$swap"
  check tiny_all_nvme "${mpi[@]}" -np 1 .device/bin/tessera train "${tiny[@]}" \
    --set zero.offload_optimizer.device=nvme --set zero.offload_optimizer.path="$swap" \
    --set zero.offload_params.device=nvme --set zero.offload_params.path="$swap"
  for run in tiny_device tiny_offload tiny_offload_grads_device tiny_params_cpu tiny_optimizer_nvme tiny_all_nvme \
             tiny_device_accum tiny_offload_accum; do
    echo "| $run | $(grep -o 'last loss [0-9.]*' "$out/$run.log") |" >> "$summary"
  done
  for i in $(seq 300); do cat README.md; done > /tmp/tessera-corpus.txt
  check train_1b_offload "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-1b-full.yaml \
    --set zero.offload_optimizer.device=cpu --set log.metrics_file=/tmp/tessera-1b-offload.jsonl
  python3 - /tmp/tessera-1b-offload.jsonl >> "$summary" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l][2:]
if rows:
    print(f"| tessera train 1B, optimizer offloaded to CPU: median tokens/s | {statistics.median(r['tokens_per_s'] for r in rows):.0f} | loss {rows[-1]['loss']:.3f} |")
PY
  grep -E "done:" "$out/train_1b_offload.log" | tail -1 >> "$summary"
  check train_1b_nvme "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-1b-full.yaml \
    --set zero.offload_optimizer.device=nvme --set zero.offload_optimizer.path="$swap" \
    --set log.metrics_file=/tmp/tessera-1b-nvme.jsonl
  grep -E "done:" "$out/train_1b_nvme.log" | tail -1 | sed 's/^/| 1B, optimizer on NVMe | /; s/$/ |/' >> "$summary"
  rm -rf "$swap"
fi

# The largest model: the Llama-3-8B shape on this one GPU, optimizer state in pinned host memory.
if [ "$only" = all ] || [ "$only" = largest ]; then
  for i in $(seq 300); do cat README.md; done > /tmp/tessera-corpus.txt
  .device/bin/tessera estimate-memory configs/llama-8b-offload.yaml --ranks 1 > "$out/estimate_8b.log" 2>&1
  check train_8b_offload timeout 420 "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-8b-offload.yaml
  python3 - /tmp/tessera-8b-offload-metrics.jsonl >> "$summary" <<'PY'
import json, statistics, sys
try:
    rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l][1:]
except OSError:
    rows = []
if rows:
    print(f"| tessera train 8B shape, 1 GPU, optimizer on CPU: median tokens/s | {statistics.median(r['tokens_per_s'] for r in rows):.0f} | loss {rows[-1]['loss']:.3f} |")
PY
  grep -E "done:" "$out/train_8b_offload.log" | tail -1 | sed 's/^/| 8B | /; s/$/ |/' >> "$summary"
fi

# The largest model with the optimizer state on disk: the disk (64 GB here), not the GPU, bounds
# it; the 4.4B shape's state takes 53 GB. The swap files go to TESSERA_NVME_DIR (default /tmp).
if [ "$only" = all ] || [ "$only" = largest_nvme ]; then
  for i in $(seq 300); do cat README.md; done > /tmp/tessera-corpus.txt
  swap=$(mktemp -d "${TESSERA_NVME_DIR:-/tmp}/tessera-swap.XXXX")
  df -h "$swap" | tee "$out/disk.log"
  .device/bin/tessera estimate-memory configs/llama-4b-nvme.yaml --ranks 1 > "$out/estimate_4b.log" 2>&1
  check train_4b_nvme timeout 420 "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-4b-nvme.yaml \
    --set zero.offload_optimizer.path="$swap"
  python3 - /tmp/tessera-4b-nvme-metrics.jsonl >> "$summary" <<'PY'
import json, statistics, sys
try:
    rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
except OSError:
    rows = []
if rows:
    print(f"| tessera train 4.4B shape, 1 GPU, optimizer on disk: median tokens/s | {statistics.median(r['tokens_per_s'] for r in rows):.0f} | loss {rows[-1]['loss']:.3f} |")
PY
  grep -E "done:" "$out/train_4b_nvme.log" | tail -1 | sed 's/^/| 4.4B, optimizer on disk | /; s/$/ |/' >> "$summary"
  rm -rf "$swap"
fi

# NVMe swap: the offload I/O layer (io_uring, O_DIRECT) next to dd on the same disk; the goal is
# at least 80% of dd. TESSERA_NVME_DIR picks the folder (default /tmp), TESSERA_NVME_GIB the size.
if [ "$only" = all ] || [ "$only" = nvme ]; then
  nvme_dir=${TESSERA_NVME_DIR:-/tmp} nvme_gib=${TESSERA_NVME_GIB:-8}
  .device/bin/nvme_bench "$nvme_dir" "$nvme_gib" > "$out/nvme.txt" 2>> "$out/nvme.log"
  bench/nvme_dd.sh "$nvme_dir" "$nvme_gib" >> "$out/nvme.txt" 2>> "$out/nvme.log"
  tee -a "$out/nvme.log" < "$out/nvme.txt"
  awk '{gbps[$1" "$2] = $5} END {printf "| nvme swap, tessera / dd | write %.2f | read %.2f |\n",
       gbps["tessera write"] / (gbps["dd write"] + 1e-9), gbps["tessera read"] / (gbps["dd read"] + 1e-9)}' \
      "$out/nvme.txt" >> "$summary"
  sed -E 's/^(\S+) +(\S+) +(\S+ GiB) +(.*)$/| nvme: \1 \2 \3 | \4 |/' "$out/nvme.txt" >> "$summary"
fi

# Quantization: the quant kernels against their CPU references, and the committed NF4 pinning
# vectors' 8-bit dynamic map rebuilt with torch as bitsandbytes builds it (must be 0 mismatches).
quant() {
  check kernels_quant .device/bin/test_kernels --gtest_filter='*Quant*:*GemmPacked*:*FakeQuant*'
  check nf4_dynamic_map_torch python3 tests/tools/nf4_reference.py --check-torch tests/data/quant/nf4_reference.json
  grep RESULT "$out/nf4_dynamic_map_torch.log" | sed 's/^RESULT /| nf4 dynamic map vs torch | /; s/$/ |/' >> "$summary"
}
if [ "$only" = all ] || [ "$only" = quant ]; then quant; fi

# GPTQ on the GPU (tessera quantize --method gptq: Hessians from bf16 calibration activations on the
# device, sequential layer by layer): a small byte-level model trained here on README.md, then
# quantized int4 g32 (projections and lm_head) by RTN, GPTQ and GPTQ with act-order, each
# evaluated (fp32, on the GPU) on README.md's start. GPTQ must evaluate below RTN. About a minute.
# (Runs in /tmp/tessera-gptq; only the logs come back.)
gptq() {
  local d=/tmp/tessera-gptq T=.device/bin/tessera  # the checkpoints stay out of logs.tgz
  rm -rf "$d" && mkdir -p "$d"
  check gptq_train "$T" train configs/tiny-cpu.yaml --set data.train=README.md --set train.device=cuda \
    --set train.dtype=bf16 --set model.init.hidden_size=256 --set model.init.intermediate_size=768 \
    --set model.init.num_hidden_layers=4 --set model.init.tie_word_embeddings=false --set train.steps=300 \
    --set train.micro_batch_size=16 --set log.metrics_file= --set checkpoint.every_steps=300 \
    --set checkpoint.dir="$d/ckpt"
  python3 - "$d" <<'PY'
import json, sys
paras = [p for p in open("README.md").read().split("\n\n") if len(p) > 40]
with open(sys.argv[1] + "/calib.jsonl", "w") as f:
    for p in paras: f.write(json.dumps({"text": p}) + "\n")
open(sys.argv[1] + "/eval.txt", "w").write(open("README.md").read()[:20000])
PY
  local q="--checkpoint $d/ckpt/step-300 --scheme int4 --modules all-linear lm_head --dtype fp32"
  local g="--method gptq --calib $d/calib.jsonl --calib-samples 128 --calib-seq-len 128"
  check gptq_rtn "$T" quantize $q --out "$d/rtn"
  local t0=$(date +%s%N)
  check gptq_gptq "$T" quantize $q $g --out "$d/gptq"
  local t1=$(date +%s%N)
  check gptq_act_order "$T" quantize $q $g --act-order --out "$d/act"
  for m in ckpt/step-300 rtn gptq act; do
    "$T" eval --model "$d/$m" --tokenizer bytes --data "$d/eval.txt" --seq-len 128 --batch-size 32 --json \
      --device cuda --dtype fp32 2>"$out/gptq_eval_${m//\//_}.log" | tail -1 > "$d/$m.json"
  done
  python3 - "$d" "$(( (t1 - t0) / 1000000 ))" >> "$summary" <<'PY'
import json, sys
d = sys.argv[1]
loss = {}
for m in ["ckpt/step-300", "rtn", "gptq", "act"]:
    try: loss[m] = json.load(open(f"{d}/{m}.json"))["loss"]
    except Exception: loss[m] = float("nan")
ok = loss["gptq"] < loss["rtn"] and loss["act"] < loss["rtn"]
print(f"| gptq int4 g32 on the GPU (eval loss: bf16-trained / rtn / gptq / gptq act-order; gptq quantize s) | "
      f"{'pass' if ok else 'FAIL'} {loss['ckpt/step-300']:.5f} / {loss['rtn']:.5f} / {loss['gptq']:.5f} / "
      f"{loss['act']:.5f}; {int(sys.argv[2]) / 1000:.1f} s |")
PY
}
if [ "$only" = all ] || [ "$only" = gptq ]; then gptq; fi

# The quantization quality recipe (#16 section 6, scripts/quality.sh): a 25M-parameter byte-level
# model trained on python3-doc and perl-doc prose, then held-out perplexity for bf16, RTN / GPTQ / QAT int4 g32
# (QAT with fixed and with learned scales), RTN / QAT q4_0 and RTN int8, and the goals. Its data come as .device/quality.tgz (made here by
# scripts/quality-data.sh, packed by device-prepare.sh). The runs (checkpoints of a few hundred
# MB) stay in /tmp; only the logs and the table come back. About 4 minutes (5 seeds). QUALITY_ARGS
# adds quality.sh flags (e.g. --seeds 3).
quality() {
  if [ ! -f .device/quality.tgz ]; then
    echo "| quality | SKIPPED: no .device/quality.tgz (scripts/quality-data.sh, then device-prepare.sh) |" >> "$summary"
    return
  fi
  local d=/tmp/tessera-quality
  rm -rf "$d" && mkdir -p "$d" && tar xzf .device/quality.tgz -C "$d"
  echo "== quality: scripts/quality.sh"
  if bash scripts/quality.sh --tessera .device/bin/tessera --data "$d/quality" --out "$d/run" ${QUALITY_ARGS:-} > "$out/quality.md" \
      2> "$out/quality.log"; then
    grep '^|' "$out/quality.md" >> "$summary"
  else
    echo "| quality | FAIL: $(tail -1 "$out/quality.log") |" >> "$summary"
  fi
  cp -r "$d/run/logs" "$out/quality_logs" 2>/dev/null || true
  (cd "$d/run" && find . -name "*.json" -exec cp --parents {} "$out/quality_logs/" \;) 2>/dev/null || true
  tail -20 "$out/quality.md" "$out/quality.log"
}
if [ "$only" = all ] || [ "$only" = quality ]; then quality; fi

# QAT with learned scales (#16 section 2, quant.qat.learnable_scales): its kernels against the CPU
# reference (RTN's scales, the packed copy from given scales, the straight-through backward), then
# one small int4 g32 QAT job on the GPU (bf16, 4 layers of width 512) trained with fixed and with
# learned scales side by side: median tokens/s after warm-up and the last loss. About a minute.
qat_scales() {
  check kernels_qat_scales .device/bin/test_kernels --gtest_filter='*QuantizeScaled*'
  local v
  for v in fixed learned; do
    check "qat_train_$v" .device/bin/tessera train configs/tiny-cpu.yaml --set data.train=README.md \
      --set train.device=cuda --set train.dtype=bf16 --set model.init.hidden_size=512 \
      --set model.init.intermediate_size=1536 --set model.init.num_hidden_layers=4 \
      --set model.init.num_attention_heads=8 --set model.init.num_key_value_heads=8 --set train.steps=60 \
      --set train.micro_batch_size=16 --set checkpoint.dir= --set log.metrics_file=/tmp/tessera-qat-$v.jsonl \
      --set quant.qat.weights=int4 --set quant.qat.learnable_scales=$([ $v = learned ] && echo true || echo false)
  done
  python3 - /tmp/tessera-qat-fixed.jsonl /tmp/tessera-qat-learned.jsonl >> "$summary" <<'PY'
import json, statistics, sys
def run(path):
    try: rows = [json.loads(l) for l in open(path) if '"tokens_per_s"' in l][5:]
    except OSError: rows = []
    return (statistics.median(r["tokens_per_s"] for r in rows), rows[-1]["loss"]) if rows else (float("nan"), float("nan"))
(tf, lf), (tl, ll) = run(sys.argv[1]), run(sys.argv[2])
print(f"| QAT int4 g32 training, fixed vs learned scales (median tokens/s; last loss) | {tf:.0f} vs {tl:.0f} "
      f"({tl / tf:.2f}x); loss {lf:.4f} vs {ll:.4f} |")
PY
}
if [ "$only" = all ] || [ "$only" = qat_scales ]; then qat_scales; fi
# Quantized projections (#16 section 5): the fused gemv and gemm_packed's choice against the CPU
# reference, then bench/quant_gemv_bench: per scheme, a whole layer's seven projections (q, k, v,
# o, gate, up, down of the 1B and 8B shapes) timed with packed weights next to bf16, at M = 1-16
# rows (decoding; fused gemv and dequantize + cuBLASLt) and 2048 (prefill; the workspace whole or
# in L2-sized blocks of rows), weights from HBM.
# Goals: M = 1 int4 >= 2.5x and int8 >= 1.7x bf16 (and > 2.5 TB/s); prefill >= 0.9x.
quant_kernels() {
  check kernels_quant_gemv .device/bin/test_kernels --gtest_filter='*FusedGemv*:*GemmPacked*'
  timeout 420 .device/bin/quant_gemv_bench 1b 8b > "$out/quant_gemv.log" 2>&1
  python3 - "$out/quant_gemv.log" >> "$summary" <<'PY'
import json, sys
rows = [json.loads(l[7:]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
per_layer = {"q_o": 2, "k_v": 2, "gate_up": 2, "down": 1}
def layer(shape, scheme, m, key):
    got = [r for r in rows if r["shape"] == shape and r["scheme"] == scheme and r["m"] == m]
    if len(got) != 4 or any(r.get(key, 0) <= 0 for r in got): return None
    return sum(per_layer[r["proj"]] * r[key] for r in got)
print("| packed layer vs bf16 (shape scheme) | M=1 fused us (bf16 us) | fused GB/s gate_up, down at M=1 | speedup fused M=1/2/4/8/16 | speedup dequant+gemm M=1/8/16 | prefill M=2048 / bf16: dequant+gemm, chunked |")
print("| --- | --- | --- | --- | --- | --- |")
for shape in ("1b", "8b"):
    for scheme in ("int8", "int4_g32", "int4_g128_asym", "q8_0", "q4_0", "nf4"):
        if not any(r["shape"] == shape and r["scheme"] == scheme for r in rows): continue
        speed = lambda m, key: (lambda b, t: f"{b / t:.2f}" if b and t else "-")(layer(shape, scheme, m, "bf16_us"), layer(shape, scheme, m, key))
        gbps = " / ".join(str(r["fused_gbps"]) for r in rows if r["shape"] == shape and r["scheme"] == scheme and r["m"] == 1 and r["proj"] in ("gate_up", "down"))
        f1, b1 = layer(shape, scheme, 1, "fused_us"), layer(shape, scheme, 1, "bf16_us")
        print(f"| {shape} {scheme} | {f1 and round(f1, 1)} ({b1 and round(b1, 1)}) | {gbps} | "
              + " / ".join(speed(m, "fused_us") for m in (1, 2, 4, 8, 16)) + " | "
              + " / ".join(speed(m, "dequant_us") for m in (1, 8, 16)) + f" | {speed(2048, 'dequant_us')}, {speed(2048, 'chunked_us')} |")
# The fused gemv's variants side by side (TESSERA_PACKED_GEMV): per layer us, x bf16, and at M=1
# the gate_up and down projections' packed GB/s; then each variant's total over every row.
variants = [v for v in ("auto", "v1", "mma", "mma_split", "wide", "wide4", "wide_split", "wide4_split", "wide_w8", "wide4_w8",
                        "group", "group_split")
            if any(v in r.get("variant_us", {}) for r in rows)]
print()
print("| fused variants (shape scheme M) | " + " | ".join(f"{v}: layer us, x bf16 (GB/s gate_up/down)" for v in variants) + " | fastest |")
print("| --- |" + " --- |" * (len(variants) + 1))
totals = {v: 0.0 for v in variants}
for shape in ("1b", "8b"):
    for scheme in ("int8", "int4_g32", "int4_g128_asym", "q8_0", "q4_0"):
        for m in (1, 2, 4, 8):
            got = [r for r in rows if r["shape"] == shape and r["scheme"] == scheme and r["m"] == m]
            if len(got) != 4: continue
            # wide and wide4 run for int4 only: a variant some projection lacks is "-" here
            have = [v for v in variants if all(v in r.get("variant_us", {}) for r in got)]
            if not have: continue
            bf16 = sum(per_layer[r["proj"]] * r["bf16_us"] for r in got)
            cells, layer_us = [], {}
            for v in variants:
                if v not in have:
                    cells.append("-")
                    continue
                us = layer_us[v] = sum(per_layer[r["proj"]] * r["variant_us"][v] for r in got)
                if len(have) == len(variants): totals[v] += us
                gbps = " / ".join(f'{r["packed_mb"] * 1e3 / r["variant_us"][v]:.0f}' for r in got if r["proj"] in ("gate_up", "down"))
                cells.append(f"{us:.1f}, {bf16 / us:.2f}x" + (f" ({gbps})" if m == 1 else ""))
            print(f"| {shape} {scheme} M={m} | " + " | ".join(cells) + f" | {min(layer_us, key=layer_us.get)} |")
if totals and all(totals.values()):
    print(f"| rows with every variant, total us | " + " | ".join(f"{totals[v]:.0f}" for v in variants) + f" | {min(totals, key=totals.get)} |")
# The prefill path's dequantize alone at M=2048 (GB/s of packed + bf16 bytes), gate_up and down.
print()
# and TESSERA_DEQUANTIZE=units (int4, int8; runs is the default): the dequantize alone and the layer's prefill x bf16.
print("| dequantize alone, M=2048 (shape scheme) | gate_up us (GB/s) | down us (GB/s) | units: gate_up us (GB/s) | units: down us (GB/s) | prefill layer x bf16: default / units |")
print("| --- | --- | --- | --- | --- | --- |")
for shape in ("1b", "8b"):
    for scheme in ("int8", "int4_g32", "int4_g128_asym", "q8_0", "q4_0", "nf4"):
        got = {r["proj"]: r for r in rows if r["shape"] == shape and r["scheme"] == scheme and r["m"] == 2048 and r.get("dequantize_us", 0) > 0}
        if "gate_up" in got and "down" in got:
            cell = lambda p, k: f'{got[p][k + "_us"]:.1f} ({got[p][k + "_gbps"]})' if got[p].get(k + "_us", 0) > 0 else "-"
            bf16 = layer(shape, scheme, 2048, "bf16_us")
            default, units = layer(shape, scheme, 2048, "dequant_us"), layer(shape, scheme, 2048, "dequant_units_us")
            ratio = lambda t: f"{bf16 / t:.2f}" if bf16 and t else "-"
            print(f"| {shape} {scheme} | {cell('gate_up', 'dequantize')} | {cell('down', 'dequantize')} | "
                  f"{cell('gate_up', 'dequantize_units')} | {cell('down', 'dequantize_units')} | {ratio(default)} / {ratio(units)} |")
PY
}
if [ "$only" = all ] || [ "$only" = quant_kernels ]; then quant_kernels; fi

# The trainer's metrics port on GPUs (#18): a tiny job on every GPU, scraped while it runs; the
# per-rank NVML series (utilisation, power), memory and MFU must be there.
metrics_gpu() {
  local port=19400 ranks=$(( gpus < 2 ? gpus : 2 ))
  "${mpi[@]}" -np "$ranks" .device/bin/tessera train configs/tiny-cpu.yaml --set train.device=cuda --set train.dtype=bf16 \
    --set train.steps=400 --set checkpoint.dir= --set log.every_steps=5 --set log.metrics_file=/tmp/tessera-metrics-gpu.jsonl \
    --set log.metrics_port=$port > "$out/metrics_gpu.log" 2>&1 &
  local job=$!
  python3 - "$port" "$ranks" >> "$summary" 2>> "$out/metrics_gpu.log" <<'PY'
import re, sys, time, urllib.request
port, ranks = sys.argv[1], int(sys.argv[2])
got = {}
for _ in range(600):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        got = dict(re.findall(r"^(\S+) (\S+)$", text, re.M))
        if f'tessera_train_gpu_power_watts{{rank="{ranks - 1}"}}' in got and float(got.get("tessera_train_step", 0)) > 100:
            break
    except OSError:
        pass
    time.sleep(0.1)
want = [f'{m}{{rank="{r}"}}' for r in range(ranks) for m in
        ("tessera_train_gpu_utilization_ratio", "tessera_train_gpu_power_watts", "tessera_train_memory_peak_bytes")]
missing = [w for w in want if w not in got]
print(f"| metrics port on {ranks} GPU(s) | {'pass' if not missing else 'FAIL missing ' + ' '.join(missing)} | "
      + " ".join(f"{w}={got[w]}" for w in want if w in got) + f" mfu={got.get('tessera_train_mfu_ratio')} |")
PY
  wait "$job"
}
if [ "$only" = all ] || [ "$only" = metrics ]; then metrics_gpu; fi

# Inference: greedy `tessera generate` against transformers' generate on the parity models (fp32
# on the CPU must agree on every token; bf16 on the GPU up to near-ties; decode steps replay CUDA
# graphs there), the decode kernels' and CUDA graphs' tests, and decoding of the 1B shape at
# batches 1/16/64/256 (and 1/16 without graphs), prefill of a 2048-token prompt, next to the
# compiled PyTorch decode peer in the same call (prompt 128, 128 new tokens). decode_8b: the 8B
# shape at batch 1 next to its peer.
generate() {
  check kernels_decode .device/bin/test_kernels --gtest_filter='*ArgmaxRows*:*DecodeGraphs*:*KvWrite*:*AddRmsNorm*:*RopeQk*:CudaGemm*:CudaPagedAttentionOps.DecodeBatches'
  check generate_parity_cpu python3 tests/tools/check_generate_with_transformers.py .device/bin/tessera --device cpu
  check generate_parity_cuda python3 tests/tools/check_generate_with_transformers.py .device/bin/tessera --device cuda
  grep -h RESULT "$out"/generate_parity_*.log | sed 's/^RESULT /| generate parity | /; s/$/ |/' >> "$summary"
  : > "$out/decode.jsonl"
  : > "$out/decode_profile.txt"
  # batch, prompt, graphs, small-M gemm kernel (TESSERA_SMALL_M, kernels/gemm_shape.h), profile
  for run in "1 128 1 auto 0" "16 128 1 auto 0" "64 128 1 auto 0" "256 128 1 auto 0" "1 128 0 auto 0" \
             "16 128 0 auto 0" "1 128 1 cublas 0" "1 2048 1 auto 0" "1 128 0 auto 1" "16 128 0 auto 1"; do
    set -- $run
    new=128; [ "$2" = 2048 ] && new=2; [ "$5" = 1 ] && new=32  # a profiled step holds the stream 20 ms
    TESSERA_SMALL_M=$4 timeout 120 .device/bin/decode_bench --shape 1b --batch "$1" --prompt "$2" --new $new \
      --graphs "$3" --profile "$5" 2>&1 | tee -a "$out/decode.log" > "$out/decode_run.log"
    sed -n 's/^RESULT //p' "$out/decode_run.log" >> "$out/decode.jsonl"
    sed -n "s/^PROFILE | \([^|]*\)|/| profile \1($4) |/p" "$out/decode_run.log" >> "$out/decode_profile.txt"
  done
  timeout 240 python3 .device/peers/torch_peer_decode.py --shape 1b --batches 1,16,64,256 --prompt 128 --new 128 \
    --modes static > "$out/decode_peer.log" 2>&1
  python3 scripts/decode_rows.py "$out/decode.jsonl" "$out/decode_peer.log" >> "$summary"
  profile_table "$out/decode_profile.txt"
}
# decode_bench --profile's lines as a table: each op family's device ms per decode step.
profile_table() {
  echo "| profile (shape batch, small-M kernel) | op | ms per step | share | weight GB/s |" >> "$summary"
  echo "| --- | --- | --- | --- | --- |" >> "$summary"
  cat "$1" >> "$summary"
}
decode_8b() {
  : > "$out/decode_8b.jsonl"
  : > "$out/decode_8b_profile.txt"
  for run in "auto 1 0 128 0" "cublas 1 0 128 0" "auto 1 0 128 1" "auto 0 1 32 0"; do
    set -- $run  # kernel, graphs, profile, new tokens, kernels overlapping (TESSERA_PDL)
    TESSERA_PDL=$5 TESSERA_SMALL_M=$1 timeout 150 .device/bin/decode_bench --shape 8b --batch 1 --prompt 128 --new $4 --graphs $2 \
      --profile $3 2>&1 | tee -a "$out/decode_8b.log" > "$out/decode_run.log"
    sed -n 's/^RESULT //p' "$out/decode_run.log" >> "$out/decode_8b.jsonl"
    sed -n "s/^PROFILE | \([^|]*\)|/| profile \1($1) |/p" "$out/decode_run.log" >> "$out/decode_8b_profile.txt"
  done
  timeout 200 python3 .device/peers/torch_peer_decode.py --shape 8b --batches 1 --prompt 128 --new 128 --modes static \
    > "$out/decode_peer_8b.log" 2>&1
  python3 scripts/decode_rows.py "$out/decode_8b.jsonl" "$out/decode_peer_8b.log" >> "$summary"
  profile_table "$out/decode_8b_profile.txt"
}
# The small-M gemm kernels (kernels/cuda/small_m.h): their tests against the CPU reference, the
# same and the decode graph tests with kernels overlapping their predecessors (TESSERA_PDL=1,
# kernels/launch_overlap.h), every kernel side by side on the 1B and 8B projections at M = 1..64
# (bench/skinny_gemm_bench: us per call, the fastest, and per M a decode step's projections summed
# for each kernel), then 1B decoding with and without overlap for the kernels that compete.
skinny() {
  check kernels_small_m .device/bin/test_kernels --gtest_filter='*SmallMGemm*:*LaunchOverlap*'
  check kernels_decode_pdl env TESSERA_PDL=1 .device/bin/test_kernels \
    --gtest_filter='*SmallMGemm*:*LaunchOverlap*:*DecodeGraphs*:*ArgmaxRows*:*KvWrite*:*AddRmsNorm*:*RopeQk*:CudaPagedAttentionOps.DecodeBatches'
  timeout 150 .device/bin/skinny_gemm_bench 1b 8b > "$out/skinny_gemm.log" 2>&1
  grep '^|' "$out/skinny_gemm.log" >> "$summary"
  : > "$out/decode_pdl.jsonl"
  for run in "1 auto 0" "1 auto 1" "1 cublas 0" "1 cublas 1" "16 auto 0" "16 auto 1" "64 auto 1"; do  # batch, kernel, pdl
    set -- $run
    TESSERA_PDL=$3 TESSERA_SMALL_M=$2 timeout 100 .device/bin/decode_bench --shape 1b --batch "$1" --prompt 128 \
      --new 128 2>&1 | tee -a "$out/decode_pdl.log" | sed -n 's/^RESULT //p' >> "$out/decode_pdl.jsonl"
  done
  python3 scripts/decode_rows.py "$out/decode_pdl.jsonl" /dev/null >> "$summary"
}
# Batch-1 decoding with packed projections (decode_bench --scheme: random weights quantized at start,
# kept packed as a quantized checkpoint loads) next to bf16, 1B and 8B shapes, prompt 128, 128 new.
# Goals (#16): int4 >= 2.5x and int8 >= 1.7x the bf16 tokens/s. The packed projections run the
# default fused gemv (TESSERA_PACKED_GEMV unset: auto), int4 once more with v1 for comparison, and
# int4 / int8 with the lm_head packed in the same scheme (--lm-head: the 1B head is a fifth of
# its bf16 bytes, which caps int4 at ~2.3x and int8 at ~1.65x while it stays bf16).
decode_quant() {
  : > "$out/decode_quant.jsonl"
  for shape in 1b 8b; do
    for run in bf16:auto:bf16 int8:auto:bf16 int4:auto:bf16 q8_0:auto:bf16 q4_0:auto:bf16 int4:v1:bf16 int4:wide:bf16 \
      int4:wide4:bf16 int4:auto:int4 int4:wide:int4 int4:wide4:int4 int8:auto:int8; do
      IFS=: read -r scheme variant head <<< "$run"
      TESSERA_PACKED_GEMV=$variant timeout 100 .device/bin/decode_bench --shape $shape --batch 1 --prompt 128 --new 128 \
        --scheme $scheme --lm-head $head 2>&1 | tee -a "$out/decode_quant.log" \
        | sed -n "s/^RESULT {/{\"variant\":\"$variant\",/p" >> "$out/decode_quant.jsonl"
    done
  done
  python3 - "$out/decode_quant.jsonl" >> "$summary" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| decode batch 1 (shape scheme fused-gemv lm_head) | tok/s | vs bf16 (goal int4 2.5, int8 1.7) | weights GB | weights TB/s | gpu ms/step |")
print("| --- | --- | --- | --- | --- | --- |")
for r in rows:
    base = next((b for b in rows if b["shape"] == r["shape"] and b["scheme"] == "bf16" and b.get("lm_head", "bf16") == "bf16"), None)
    ratio = f'{r["decode_tok_per_s"] / base["decode_tok_per_s"]:.2f}' if base else "-"
    print(f'| {r["shape"]} {r["scheme"]} {r["variant"] if r["scheme"] != "bf16" else ""} {r.get("lm_head", "bf16")} | {r["decode_tok_per_s"]:.0f} | {ratio} | {r["weight_gb"]} | {r["weight_read_tb_per_s"]} | {r["gpu_ms_per_step"]:.3f} |')
PY
}
# The fused decode ops (#15: InferenceOptions::fused_decode, TESSERA_FUSED_DECODE): their tests
# against the CPU and the plain ops (kernels overlapping, the default, and not: TESSERA_PDL=0); decoding the
# 1B shape at batches 1/16/64 and the 8B at 1, fused and not, with and without overlap; one
# profiled step per shape (the op families by name); the small-M kernels side by side at M = 1/4.
# Goals: 1B b1 >= 1,200 tok/s, b16 >= 14.7K, 8B b1 >= 185.
fused_decode() {
  local tests='CudaProjectMany.*:CudaProjectSwiglu.*:CudaRopeKvWrite.*:*SmallMGemm*:*ArgmaxRows*:*DecodeGraphs*:*KvWrite*:*RopeQk*:CudaPagedAttentionOps.DecodeBatches:*ModelParity*'
  check kernels_fused .device/bin/test_kernels --gtest_filter="$tests"
  check kernels_fused_no_pdl env TESSERA_PDL=0 .device/bin/test_kernels --gtest_filter="$tests"
  : > "$out/decode_fused.jsonl"
  : > "$out/decode_fused_profile.txt"
  # shape, batch, fused, pdl, graphs, profile
  for run in "1b 1 1 1 1 0" "1b 1 0 1 1 0" "1b 1 1 0 1 0" "1b 16 1 1 1 0" "1b 16 0 1 1 0" "1b 64 1 1 1 0" \
             "1b 64 0 1 1 0" "8b 1 1 1 1 0" "8b 1 0 1 1 0" "1b 1 1 1 0 1" "1b 16 1 1 0 1" "8b 1 1 1 0 1"; do
    set -- $run
    new=128; [ "$6" = 1 ] && new=32  # a profiled step holds the stream 20 ms
    TESSERA_FUSED_DECODE=$3 TESSERA_PDL=$4 timeout 150 .device/bin/decode_bench --shape $1 \
      --batch $2 --prompt 128 --new $new --graphs $5 --profile $6 2>&1 | tee -a "$out/decode_fused.log" > "$out/decode_run.log"
    sed -n 's/^RESULT //p' "$out/decode_run.log" >> "$out/decode_fused.jsonl"
    sed -n "s/^PROFILE | \([^|]*\)|/| profile \1(fused $3) |/p" "$out/decode_run.log" >> "$out/decode_fused_profile.txt"
  done
  python3 scripts/decode_rows.py "$out/decode_fused.jsonl" /dev/null >> "$summary"
  profile_table "$out/decode_fused_profile.txt"
  timeout 200 .device/bin/skinny_gemm_bench 1b 8b --m 1,4 > "$out/skinny_gemm.log" 2>&1
  grep '^|' "$out/skinny_gemm.log" >> "$summary"
}
if [ "$only" = all ] || [ "$only" = generate ]; then generate; fi
if [ "$only" = all ] || [ "$only" = fused_decode ]; then fused_decode; fi
if [ "$only" = all ] || [ "$only" = decode_quant ]; then decode_quant; fi
if [ "$only" = all ] || [ "$only" = decode_8b ]; then decode_8b; fi
if [ "$only" = all ] || [ "$only" = skinny ]; then skinny; fi
# LoRA and QLoRA: PEFT parity both ways (tests/tools/check_peft_parity.py: a peft-made adapter in
# `tessera forward --adapter`, Tessera's exported adapter in peft); `tessera train` 1B LoRA r16
# all-linear next to the PEFT peer eager and compiled (same job: seq 2048, micro-batch 4); 8B
# QLoRA nf4 (micro-batch 1, seq 2048, activation checkpointing; the goal is <= 7.5 GiB and >= 0.8x
# of 8B bf16 LoRA) next to 8B bf16 LoRA; and the packed base's two products (lora.packed_matmul:
# dequantize into a bf16 workspace + cuBLASLt, or ops::gemm_packed) measured on the 8B job.
lora() {
  check kernels_lora .device/bin/test_kernels --gtest_filter='*Linear*:*Quant*:*GemmPacked*'
  check peft_parity python3 tests/tools/check_peft_parity.py .device/bin/tessera
  grep RESULT "$out/peft_parity.log" | sed 's/^RESULT /| peft parity | /; s/$/ |/' >> "$summary"
  for i in $(seq 300); do cat README.md; done > /tmp/tessera-corpus.txt
  check train_1b_lora "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-1b-lora.yaml
  eager=$(python3 .device/peers/torch_peer.py --mode lora --steps 5 2>&1 | tee -a "$out/peer_lora.log" | sed -n 's/^RESULT //p')
  compiled=$(python3 .device/peers/torch_peer.py --mode lora --compile --steps 5 2>&1 | tee -a "$out/peer_lora.log" \
             | sed -n 's/^RESULT //p')
  python3 - "$out" "$eager" "$compiled" >> "$summary" <<'PY'
import json, sys
sys.path.insert(0, "scripts")
from lora_rows import ours, fmt
out, eager, compiled = sys.argv[1], json.loads(sys.argv[2] or "{}"), json.loads(sys.argv[3] or "{}")
print("| LoRA job | tokens/s | peak GiB | loss |")
print("| --- | --- | --- | --- |")
t1b = ours(out, "/tmp/tessera-1b-lora-metrics.jsonl", "train_1b_lora")
print(f"| tessera train 1B LoRA r16 all-linear, seq 2048, mbs 4 | {fmt(t1b[0])} | {fmt(t1b[1], '{:.2f}')} | {fmt(t1b[2], '{:.3f}')} |")
for name, r in (("eager", eager), ("--compile", compiled)):
    print(f"| torch_peer --mode lora {name} (PEFT) | {r.get('tok_per_s_per_gpu')} | {r.get('peak_mem_gib')} | {r.get('loss')} |")
for name, r in (("eager", eager), ("compiled", compiled)):
    if t1b[0] and r.get("tok_per_s_per_gpu"):
        print(f"| ratio tessera / peer {name} (goal >= 1.5 vs compiled, at no more memory) | {t1b[0] / r['tok_per_s_per_gpu']:.2f} | "
              f"{fmt(t1b[1] / r['peak_mem_gib'] if t1b[1] and r.get('peak_mem_gib') else None, '{:.2f}')} | |")
PY
}

# 8B QLoRA nf4 next to 8B bf16 LoRA (the same job), and the packed base's two products measured.
qlora() {
  for i in $(seq 300); do cat README.md; done > /tmp/tessera-corpus.txt
  .device/bin/tessera estimate-memory configs/llama-8b-qlora.yaml --ranks 1 > "$out/estimate_8b_qlora.log" 2>&1
  check train_8b_qlora timeout 400 "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-8b-qlora.yaml
  # The same job with the frozen embedding on the GPU (as before lora.frozen_embedding): the same
  # losses, 1 GB more device memory.
  check train_8b_qlora_embed_device timeout 300 "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-8b-qlora.yaml \
    --set lora.frozen_embedding=device --set train.steps=4 --set log.metrics_file=/tmp/tessera-8b-qlora-embed-device.jsonl
  check train_8b_qlora_gemm_packed timeout 300 "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-8b-qlora.yaml \
    --set lora.packed_matmul=gemm_packed --set train.steps=6 --set log.metrics_file=/tmp/tessera-8b-qlora-gemm-packed.jsonl
  check train_8b_lora timeout 400 "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-8b-qlora.yaml \
    --set lora.base_quant=none --set train.steps=6 --set log.metrics_file=/tmp/tessera-8b-lora-metrics.jsonl
  python3 - "$out" >> "$summary" <<'PY'
import sys
sys.path.insert(0, "scripts")
from lora_rows import ours, fmt
out = sys.argv[1]
print("| QLoRA job | tokens/s | peak GiB | loss |")
print("| --- | --- | --- | --- |")
q = ours(out, "/tmp/tessera-8b-qlora-metrics.jsonl", "train_8b_qlora")
d = ours(out, "/tmp/tessera-8b-qlora-embed-device.jsonl", "train_8b_qlora_embed_device")
g = ours(out, "/tmp/tessera-8b-qlora-gemm-packed.jsonl", "train_8b_qlora_gemm_packed")
b = ours(out, "/tmp/tessera-8b-lora-metrics.jsonl", "train_8b_lora")
print(f"| tessera 8B QLoRA nf4, mbs 1, seq 2048, act. ckpt (goal <= 7.5 GiB) | {fmt(q[0])} | {fmt(q[1], '{:.2f}')} | {fmt(q[2], '{:.3f}')} |")
print(f"| tessera 8B QLoRA nf4, frozen_embedding device (4 steps) | {fmt(d[0])} | {fmt(d[1], '{:.2f}')} | {fmt(d[2], '{:.3f}')} |")
import json
def losses(path, n):
    try:
        return [json.loads(l)["loss"] for l in open(path) if '"tokens_per_s"' in l][:n]
    except OSError:
        return []
host, dev = losses("/tmp/tessera-8b-qlora-metrics.jsonl", 4), losses("/tmp/tessera-8b-qlora-embed-device.jsonl", 4)
if host and dev:
    # Step 1 is a forward of the same weights: it must be equal. Later steps follow updates from a
    # backward whose sums are not ordered (atomic adds), which may drift them apart by ~1e-4.
    later = max(abs(a - b) for a, b in zip(host[1:], dev[1:]))
    print(f"| frozen embedding host vs device: step 1 loss | {host[0]} vs {dev[0]} | {'same' if host[0] == dev[0] else 'DIFFER'} | "
          f"steps 2-4 differ by up to {later:.1e} |")
print(f"| tessera 8B QLoRA nf4, packed_matmul gemm_packed | {fmt(g[0])} | {fmt(g[1], '{:.2f}')} | {fmt(g[2], '{:.3f}')} |")
print(f"| tessera 8B bf16 LoRA, same job | {fmt(b[0])} | {fmt(b[1], '{:.2f}')} | {fmt(b[2], '{:.3f}')} |")
if q[0] and b[0]:
    print(f"| ratio 8B QLoRA / bf16 LoRA tokens/s (goal >= 0.8) | {q[0] / b[0]:.2f} | | |")
if q[0] and g[0]:
    print(f"| packed_matmul: gemm_packed / dequantize tokens/s | {g[0] / q[0]:.2f} | | |")
PY
  grep -E "^ *3 " "$out/estimate_8b_qlora.log" | sed 's/^/| estimate-memory 8B QLoRA, stage 3 (GiB: working master moments grads gathered activations device) | /; s/$/ |/' >> "$summary"
}
if [ "$only" = all ] || [ "$only" = lora ]; then lora; fi
if [ "$only" = all ] || [ "$only" = qlora ]; then qlora; fi

# Llama-3-70B shape QLoRA on one GPU (configs/llama-70b-qlora.yaml): nf4 base made unit by unit
# from model.init, the frozen embedding on the host, 6 steps (the median of steps 3-6) under a
# 5-minute timeout that includes initialising and quantizing the 68.5B projection weights.
qlora_70b() {
  for i in $(seq 300); do cat README.md; done > /tmp/tessera-corpus.txt
  .device/bin/tessera estimate-memory configs/llama-70b-qlora.yaml --ranks 1 > "$out/estimate_70b_qlora.log" 2>&1
  check train_70b_qlora timeout 300 "${mpi[@]}" -np 1 .device/bin/tessera train configs/llama-70b-qlora.yaml
  python3 - "$out" >> "$summary" <<'PY'
import re, sys
sys.path.insert(0, "scripts")
from lora_rows import ours, fmt
out = sys.argv[1]
t = ours(out, "/tmp/tessera-70b-qlora-metrics.jsonl", "train_70b_qlora")
log = open(f"{out}/train_70b_qlora.log", errors="replace").read()
step1 = re.search(r"\[(\d\d):(\d\d):(\d\d)\.\d+\].*step +1/", log)
start = re.search(r"^\[(\d\d):(\d\d):(\d\d)", log, re.M)
secs = lambda m: int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
init = f"{secs(step1) - secs(start)} s to step 1" if start and step1 else "n/a"
print("| 70B QLoRA job | tokens/s | peak GiB | loss |")
print("| --- | --- | --- | --- |")
print(f"| tessera Llama-3-70B shape QLoRA nf4, 1 GPU, mbs 1, seq 2048, act. ckpt ({init}) | {fmt(t[0])} | {fmt(t[1], '{:.2f}')} | {fmt(t[2], '{:.3f}')} |")
PY
  grep -E "^ *3 " "$out/estimate_70b_qlora.log" | sed 's/^/| estimate-memory 70B QLoRA, stage 3 (GiB: working master moments grads gathered activations device host) | /; s/$/ |/' >> "$summary"
}
if [ "$only" = all ] || [ "$only" = qlora_70b ]; then qlora_70b; fi

# Paged KV cache: the CUDA ops against their CPU references, and decode attention (one query per
# sequence, Llama-3-8B heads: Hq 32, Hkv 8, D 128, bf16) as GB/s of keys and values read, next to
# the copy bandwidth the device reaches (about 4.3 TB/s on an H200), a row per kernel form
# (TESSERA_PAGED_ATTN) alone and with the step's RoPE and KV write (rope_paged_attention).
paged_attention() {
  check kernels_paged_attention .device/bin/test_kernels --gtest_filter='*PagedAttention*'
  if [ -x .device/bin/paged_attention_bench ]; then
    echo "| decode attention (batch, context, op, form) | us per call | KV read MB | GB/s of KV read |" >> "$summary"
    echo "| --- | --- | --- | --- |" >> "$summary"
    for batch in 1 16 64; do
      for context in 256 512 2048 8192; do
        result_rows paged_attention.log \
          "| batch %(batch)s, context %(context)s, %(what)s %(form)s | %(us)s | %(kv_mb)s | %(kv_gb_per_s)s |" \
          .device/bin/paged_attention_bench $batch $context
      done
    done
  fi
}
if [ "$only" = all ] || [ "$only" = paged_attention ]; then paged_attention; fi

# Several LoRA adapters batched in one step (tessera serve's adapters): the CUDA lora_batched op
# (gathered by row, punica's BGMV) against its CPU reference on random inputs: adapters of different
# ranks (one of rank 0), NaN padding never read, rows of every adapter and of none in any order, f32
# and bf16, a batch past the grid's 65535 rows; and its cost next to the shared base gemm and to a
# single adapter's two gemms (bench/lora_batched_bench, 1B and 8B projection shapes).
adapters() {
  check kernels_lora_batched .device/bin/test_kernels --gtest_filter='*LoraBatched*'
  if [ -x .device/bin/lora_batched_bench ]; then
    echo "| lora_batched, bf16, 4 adapters r16 (rows in out) | base gemm us | lora_batched us | one adapter's 2 gemms us | batched / base |" >> "$summary"
    echo "| --- | --- | --- | --- | --- |" >> "$summary"
    for shape in "1 2048 8192" "16 2048 8192" "64 2048 8192" "256 2048 8192" "64 4096 14336" "2048 2048 8192"; do
      result_rows lora_batched.log \
        "| %(rows)s %(in)s %(out)s | %(base_gemm_us)s | %(lora_batched_us)s | %(one_adapter_gemms_us)s | %(batched_over_base)s |" \
        .device/bin/lora_batched_bench $shape
    done
  fi
}
if [ "$only" = all ] || [ "$only" = adapters ]; then adapters; fi

# Sampling on the GPU (ops::sample_rows): its tests against the CPU reference, the decode graphs
# that sample inside the graph, and the time per call for each filter and histogram variant.
sample() {
  check kernels_sample .device/bin/test_kernels --gtest_filter='*CudaSampleRows*:*CudaArgmaxRows*:*CudaDecodeGraphs*'
  if [ -x .device/bin/sample_bench ]; then
    echo "| sample_rows filters, f32 logits | rows | vocab | histogram | us |" >> "$summary"
    echo "| --- | --- | --- | --- | --- |" >> "$summary"
    for rows in 1 64 256; do
      result_rows sample.log "| %(filters)s | %(rows)s | %(vocab)s | %(histogram)s | %(us)s |" \
        .device/bin/sample_bench $rows 128256
    done
  fi
}
if [ "$only" = all ] || [ "$only" = sample ]; then sample; fi

# Serving under load: a random Llama-3.2-1B-shape bf16 folder (transformers writes it, with the
# llama3 tokenizer), `tessera serve` on the GPU, and bench/serve_load.py's Poisson arrivals at
# increasing rates (prompts of 512 random ids, 128 generated tokens each, temperature 1, streamed;
# each rate 10 s of arrivals and at most 20 s more to drain). The server runs once per value of
# SERVE_RELAY (TESSERA_EVENT_RELAY: 0 the events on the engine's thread, 1 on their own; ~45 s
# each). SERVE_RATES, SERVE_DURATION, SERVE_DRAIN and SERVE_SET (the server's --set overrides)
# change it.
serve_load() {
  local model=/tmp/tessera-serve-1b port=8431
  if [ ! -f $model/model.safetensors ]; then
    python3 - $model > "$out/serve_load_model.log" 2>&1 <<'PY'
import sys, torch, transformers
cfg = transformers.LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                               num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
                               tie_word_embeddings=True, rope_theta=500000.0)
torch.manual_seed(0)
with torch.device("cuda"):
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(sys.argv[1], safe_serialization=True)
PY
    cp .device/tokenizers/llama3/* $model/
  fi
  local overrides=(${SERVE_SET:-engine.max_batch_size=256 threads=1024}) sets=()
  for o in "${overrides[@]}"; do sets+=(--set "$o"); done
  for relay in ${SERVE_RELAY:-0 1}; do
    local log="$out/serve_load_relay$relay.log"
    TESSERA_EVENT_RELAY=$relay .device/bin/tessera serve --model $model --port $port --device cuda --no-verify "${sets[@]}" \
      > "$out/serve_load_server_relay$relay.log" 2>&1 &
    local server=$!
    for i in $(seq 120); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null && break; sleep 1; done
    timeout 240 python3 bench/serve_load.py --url http://127.0.0.1:$port --rates ${SERVE_RATES:-8,32,64,128,256} \
      --duration ${SERVE_DURATION:-10} --drain ${SERVE_DRAIN:-20} --vocab 128000 --json "$out/serve_load_relay$relay.json" 2>&1 \
      | tee "$log"
    kill -TERM $server; wait $server
    echo "| serving under load, 1B bf16, prompt 512, 128 new, ${overrides[*]}, TESSERA_EVENT_RELAY=$relay (see $(basename "$log")) | $(grep -c '^| [0-9]' "$log") rates; $(grep KNEE "$log") |" >> "$summary"
    grep '^| ' "$log" >> "$summary"
  done
}
if [ "$only" = serve_load ]; then serve_load; fi

# Issue 16's size goal (int4 <= 0.3x bf16) on the Llama-3-8B shape: a random bf16 folder
# (scripts/random_model.py, 16.1 GB), `tessera quantize --scheme int4` of the projections alone and
# with embed_tokens and lm_head too, each folder's bytes next to bf16's (expect 0.375x and 0.281x,
# as tests/unit/test_quantized_size.cpp computes from the shapes).
int4_size() {
  local dir=/tmp/tessera-8b-bf16
  [ -f $dir/model.safetensors ] || python3 scripts/random_model.py --preset llama3-8b --out $dir > "$out/int4_size.log" 2>&1
  local bf16 q
  bf16=$(du -sb $dir | cut -f1)
  echo "| int4 checkpoint of the 8B shape (--modules) | bytes | over bf16 ($bf16 bytes) | quantize s |" >> "$summary"
  echo "| --- | --- | --- | --- |" >> "$summary"
  for modules in "all-linear" "all-linear embed_tokens lm_head"; do
    rm -rf $dir-int4
    local start=$SECONDS
    .device/bin/tessera quantize --model $dir --scheme int4 --modules $modules --out $dir-int4 >> "$out/int4_size.log" 2>&1
    q=$(du -sb $dir-int4 | cut -f1)
    echo "| $modules | $q | $(python3 -c "print(f'{$q / $bf16:.4f}x')") | $((SECONDS - start)) |" >> "$summary"
  done
  rm -rf $dir-int4
}
if [ "$only" = int4_size ]; then int4_size; fi

tar czf "$dest/logs.tgz" -C "$out" .
cp "$summary" "$dest/summary.md"
echo; cat "$summary"
