"""Loads a folder written by `tessera export` with transformers and compares its logits with the
output of `tessera forward` on the same ids (run on the GPU machine, which has transformers).
Usage: python3 tests/tools/check_export_with_transformers.py EXPORT_DIR IDS.safetensors FORWARD_OUT.safetensors
Prints RESULT {json} and exits non-zero if the relative error of the logits exceeds 1e-4."""
import json, sys
import torch
import transformers
from safetensors.torch import load_file

folder, ids_file, forward_file = sys.argv[1:4]
model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64, attn_implementation="eager")
ids = load_file(ids_file)["input_ids"]
with torch.no_grad():
    logits = model(input_ids=ids).logits.float()
ours = load_file(forward_file)["logits"]
err = float((ours - logits).norm() / logits.norm())
print("RESULT " + json.dumps(dict(what="export_vs_transformers", rel_error=err, shape=list(logits.shape))))
sys.exit(0 if err <= 1e-4 else 1)
