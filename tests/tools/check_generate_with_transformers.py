"""Greedy parity of `tessera generate` with transformers' generate on the parity models
(tests/data/hf): the same input_ids, 24 new tokens, EOS not stopping either side. fp32 on the CPU
must agree on every token; on a GPU in bf16 the two agree up to near-ties, so the script reports
the tokens agreeing before the first difference and fails only below --min-bf16 of them.
Usage: python3 check_generate_with_transformers.py TESSERA_BIN [--device cuda] [--min-bf16 0.5]
Prints one `RESULT {json}` line per model and device."""
import argparse, json, os, subprocess, sys, tempfile
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("tessera")
p.add_argument("--device", default="cpu")
p.add_argument("--min-bf16", type=float, default=0.5)
p.add_argument("--new", type=int, default=24)
a = p.parse_args()
root = os.path.join(os.path.dirname(__file__), "..", "data", "hf")
failed = False
for name in sorted(os.listdir(root)):
    folder = os.path.join(root, name)
    dtype = torch.float32 if a.device == "cpu" else torch.bfloat16
    m = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype).to(a.device).eval()
    m.generation_config.eos_token_id = None
    vocab = m.config.vocab_size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (3, 9), generator=g)
    with torch.no_grad():
        want = m.generate(x.to(a.device), max_new_tokens=a.new, do_sample=False, pad_token_id=0,
                          attention_mask=torch.ones_like(x).to(a.device))[:, x.shape[1]:].cpu()
    with tempfile.TemporaryDirectory() as tmp:
        save_file({"input_ids": x.contiguous()}, os.path.join(tmp, "in.safetensors"))
        out = os.path.join(tmp, "out.safetensors")
        subprocess.run([a.tessera, "generate", "--model", folder, "--input-ids", os.path.join(tmp, "in.safetensors"),
                        "--output", out, "--temperature", "0", "--max-new-tokens", str(a.new), "--device", a.device,
                        "--dtype", "fp32" if a.device == "cpu" else "bf16"], check=True)
        got = load_file(out)["generated"]
    agree = []
    for r in range(x.shape[0]):
        diff = (got[r] != want[r]).nonzero()
        agree.append(int(diff[0]) if len(diff) else a.new)
    frac = sum(agree) / (a.new * x.shape[0])
    ok = frac == 1.0 if a.device == "cpu" else frac >= a.min_bf16
    failed |= not ok
    print("RESULT " + json.dumps(dict(model=name, device=a.device, agree_before_first_difference=agree,
                                      fraction=round(frac, 3), ok=ok)), flush=True)
sys.exit(1 if failed else 0)
