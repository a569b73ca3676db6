"""Builds tiny random Hugging Face models of each family Tessera supports and writes, for each, a
model folder plus reference logits, loss and gradients computed by transformers in float64.

Run on the GPU machine (it has torch and transformers; no network needed):
    python3 tests/tools/make_hf_references.py --out tests/data/hf
Each tests/data/hf/<name>/ holds config.json, model.safetensors (fp32, or bf16 for *_bf16),
inputs.safetensors (input_ids int64 [2, 16]) and reference.safetensors (logits f32 [2, 16, V],
loss f32 [1] = mean next-token cross-entropy over 2 x 15 positions, grad.<HF name> f32 for every
parameter (tied embeddings have one gradient, under model.embed_tokens.weight), and the rotary
embedding's rope.inv_freq and rope.attention_scaling).
Sizes are kept tiny (about 2 MB for all) but head_dim is 64 so the CUDA attention path runs too."""
import argparse, json, os
import torch
import transformers
from safetensors.torch import save_file

V5 = int(transformers.__version__.split(".")[0]) >= 5
COMMON = dict(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=2,
              num_key_value_heads=1, head_dim=64, max_position_embeddings=128, rms_norm_eps=1e-6,
              initializer_range=0.08, tie_word_embeddings=False)

# name -> (config class, overrides, rope settings, weights dtype)
FAMILIES = {
    "llama_gqa": ("LlamaConfig", dict(num_hidden_layers=2), dict(rope_theta=10000.0), torch.float32),
    "llama3_rope": ("LlamaConfig", {}, dict(rope_theta=500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=8), torch.float32),
    "llama_yarn": ("LlamaConfig", {}, dict(rope_theta=10000.0, rope_type="yarn", factor=4.0,
                                         original_max_position_embeddings=8), torch.float32),
    "mistral_linear": ("MistralConfig", dict(sliding_window=None), dict(rope_theta=10000.0, rope_type="linear", factor=2.0),
                       torch.float32),
    "qwen2_bias_tied": ("Qwen2Config", dict(num_attention_heads=1, head_dim=None, tie_word_embeddings=True),
                        dict(rope_theta=1000000.0), torch.float32),
    "qwen3_qknorm_bf16": ("Qwen3Config", dict(num_attention_heads=2, head_dim=64, hidden_size=32),
                          dict(rope_theta=1000000.0), torch.bfloat16),
}


def make_config(cls_name, overrides, rope):
    kwargs = {**COMMON, **overrides}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    rope = dict(rope)
    theta = rope.pop("rope_theta")
    if V5:
        kwargs["rope_parameters"] = {"rope_type": rope.pop("rope_type", "default"), "rope_theta": theta, **rope}
    else:
        kwargs["rope_theta"] = theta
        if rope:
            kwargs["rope_scaling"] = {"rope_type": rope.pop("rope_type"), **rope}
    config = getattr(transformers, cls_name)(**kwargs)
    config._attn_implementation = "eager"
    return config


def build(name, cls_name, overrides, rope, dtype, out_dir, seed):
    torch.manual_seed(seed)
    config = make_config(cls_name, overrides, rope)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(dtype)
    folder = os.path.join(out_dir, name)
    model.save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(folder, extra)):
            os.remove(os.path.join(folder, extra))
    model = model.to(torch.float64)  # the stored weights, exactly, now in float64
    # .to() also cast the rotary inv_freq buffer (to bf16 for the bf16 model); rebuild it as
    # loading the checkpoint would, in fp32, and keep it for the RoPE tests.
    rotary = type(model.model.rotary_emb)(config=config)
    model.model.rotary_emb = rotary
    ids = torch.randint(0, config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(seed + 1))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    ref = {"logits": out.logits.detach().float().contiguous(), "loss": out.loss.detach().float().reshape(1),
           "rope.inv_freq": rotary.inv_freq.float().contiguous(),
           "rope.attention_scaling": torch.tensor([float(rotary.attention_scaling)], dtype=torch.float32)}
    for pname, p in model.named_parameters():
        ref["grad." + pname] = p.grad.detach().float().contiguous()
    save_file({"input_ids": ids.contiguous()}, os.path.join(folder, "inputs.safetensors"))
    save_file(ref, os.path.join(folder, "reference.safetensors"))
    print(json.dumps(dict(name=name, params=sum(p.numel() for p in model.parameters()), loss=float(out.loss.detach()),
                          transformers=transformers.__version__)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/hf")
    args = ap.parse_args()
    for i, (name, spec) in enumerate(FAMILIES.items()):
        build(name, *spec, args.out, seed=1000 + i)
