#!/usr/bin/env python3
"""A Llama-shaped Hugging Face folder of random bf16 weights (config.json, model.safetensors), for
measuring sizes and speeds where only the shapes matter: written in a minute for the 8B shape, with
the standard library only (no torch). Values are of random sign and magnitude 0.002 to 0.06; the
norms are near 1.

    random_model.py --preset llama3-8b --out DIR
    random_model.py --config config.json --out DIR
"""
import argparse
import json
import os
import random
import struct

PRESETS = {
    "llama3-8b": {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                  "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                  "max_position_embeddings": 8192, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
                  "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
}
CHUNK = 1 << 26  # elements written at a time


def tensors(c):
    """(name, shape) of every parameter, in Hugging Face's names."""
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    d = c.get("head_dim", h // c["num_attention_heads"])
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    out = [("model.embed_tokens.weight", [v, h])]
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        out += [(p + "input_layernorm.weight", [h]), (p + "self_attn.q_proj.weight", [q, h]),
                (p + "self_attn.k_proj.weight", [kv, h]), (p + "self_attn.v_proj.weight", [kv, h]),
                (p + "self_attn.o_proj.weight", [h, q]), (p + "post_attention_layernorm.weight", [h]),
                (p + "mlp.gate_proj.weight", [i, h]), (p + "mlp.up_proj.weight", [i, h]),
                (p + "mlp.down_proj.weight", [h, i])]
    out.append(("model.norm.weight", [h]))
    if not c.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", [v, h]))
    return out


# bf16's high byte: the sign as drawn, exponent 118-121 (with the low byte's top bit).
HIGH = bytes((b & 0x80) | (0x3B + (b & 1)) for b in range(256))


def write_values(f, count, norm, rng):
    while count > 0:
        n = min(count, CHUNK)
        if norm:  # 1.0 is 0x3F80
            f.write(b"\x80\x3f" * n)
        else:
            pair = bytearray(2 * n)
            pair[0::2] = rng.randbytes(n)
            pair[1::2] = rng.randbytes(n).translate(HIGH)
            f.write(pair)
        count -= n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--config", help="a config.json to take the shapes from")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if bool(a.preset) == bool(a.config):
        p.error("give one of --preset and --config")
    config = PRESETS[a.preset] if a.preset else json.load(open(a.config))
    os.makedirs(a.out, exist_ok=True)
    header, offset = {}, 0
    for name, shape in tensors(config):
        size = 2
        for s in shape:
            size *= s
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    rng = random.Random(a.seed)
    tmp = os.path.join(a.out, "model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in tensors(config):
            count = 1
            for s in shape:
                count *= s
            write_values(f, count, name.endswith("norm.weight"), rng)
    os.replace(tmp, os.path.join(a.out, "model.safetensors"))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(dict(config, architectures=["LlamaForCausalLM"]), f, indent=1)
    print(f"{a.out}: {len(header)} tensors, {offset} bytes of bf16 weights")


if __name__ == "__main__":
    main()
