"""PEFT parity both ways (run on the GPU machine, which has transformers and peft):
  1. peft -> Tessera: a tiny random Llama (fp32) and a peft LoRA adapter with random A and B on
     every projection; `tessera forward --adapter` gives transformers + peft's logits within 1e-4
     (relative, fp32) and the LoRA gradients of the mean next-token loss within 1e-3.
  2. Tessera -> peft: `tessera train` fine-tunes LoRA adapters on that model for a few steps,
     `tessera export --format peft` writes them, peft loads them, and its logits are Tessera's
     (`tessera forward --adapter` on the exported adapter) within 1e-4.
Usage: python3 tests/tools/check_peft_parity.py TESSERA_BINARY [WORK_DIR]
Prints one RESULT {json} line per check and exits non-zero if any exceeds its tolerance."""
import json, os, subprocess, sys, tempfile
import torch
import transformers
import peft
from safetensors.torch import load_file, save_file

tessera = os.path.abspath(sys.argv[1])
work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="tessera-peft-")
os.makedirs(work, exist_ok=True)
readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
torch.manual_seed(0)
failed = False


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def report(what, err, tol, **extra):
    global failed
    ok = err <= tol
    failed |= not ok
    print("RESULT " + json.dumps(dict(what=what, rel_error=err, tolerance=tol, ok=ok, **extra)), flush=True)


def run(*args):
    r = subprocess.run([tessera, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tessera {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


# A tiny untied Llama whose vocabulary holds the byte tokenizer's 259 ids.
base = os.path.join(work, "base")
config = transformers.LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                  tie_word_embeddings=False)
transformers.LlamaForCausalLM(config).to(torch.float32).save_pretrained(base)
ids = torch.randint(0, 259, (2, 24), dtype=torch.int64)
ids_file = os.path.join(work, "ids.safetensors")
save_file({"input_ids": ids}, ids_file)
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peft_model(adapter=None):
    model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    if adapter:
        return peft.PeftModel.from_pretrained(model, adapter, is_trainable=True)
    # init_lora_weights=False: B random too, so that the adapter changes the model.
    lora = peft.LoraConfig(r=8, lora_alpha=16, target_modules=targets, lora_dropout=0.0, init_lora_weights=False,
                           task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lora)


def forward(adapter, name, grads=False):
    out = os.path.join(work, name + ".safetensors")
    run("forward", "--model", base, "--adapter", adapter, "--input-ids", ids_file, "--output", out, "--device", "cuda",
        *(["--grads"] if grads else []))
    return load_file(out)


# 1. peft -> Tessera.
made = peft_model()
made_dir = os.path.join(work, "peft-made")
made.save_pretrained(made_dir)
out = made(input_ids=ids, labels=ids)
out.loss.backward()
ours = forward(made_dir, "peft-made", grads=True)
report("peft adapter in tessera forward: logits", rel(ours["logits"], out.logits.detach()), 1e-4)
worst = 0.0
for name, p in made.named_parameters():
    if "lora_" not in name:
        continue
    key = "grad." + name.replace(".default", "")
    if key not in ours:
        sys.exit(f"tessera forward --grads wrote no {key}")
    worst = max(worst, rel(ours[key], p.grad))
report("peft adapter in tessera forward: LoRA gradients (worst tensor)", worst, 1e-3)

# 2. Tessera -> peft.
job = os.path.join(work, "lora.yaml")
with open(job, "w") as f:
    f.write(f"""model: {{path: {base}, tokenizer: bytes}}
data: {{train: {readme}, format: text, seq_len: 64}}
train: {{steps: 4, micro_batch_size: 2, lr: 1.0e-2, schedule: {{type: constant}}, seed: 3, device: cuda, dtype: fp32}}
zero: {{stage: 3}}
checkpoint: {{dir: {work}/run, every_steps: 4}}
log: {{every_steps: 1}}
lora: {{r: 8, alpha: 16, target_modules: all-linear}}
""")
run("train", job)
exported = os.path.join(work, "tessera-adapter")
run("export", "--checkpoint", os.path.join(work, "run", "step-4"), "--format", "peft", "--out", exported)
ours = forward(exported, "tessera-made")
with torch.no_grad():
    theirs = peft_model(exported)(input_ids=ids).logits
plain = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
with torch.no_grad():
    untouched = plain(input_ids=ids).logits
report("tessera adapter in peft: logits", rel(theirs, ours["logits"]), 1e-4,
       changed_by_training=rel(ours["logits"], untouched))
sys.exit(1 if failed else 0)
