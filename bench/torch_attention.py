"""PyTorch's flash SDPA on the same problem as bench/attention_bench, for the side-by-side ratio.
Usage: python3 bench/torch_attention.py B S Hq Hkv D [dtype=bf16] [iters=20]
Tensors are made in our [B, S, H, D] layout and transposed to torch's [B, H, S, D] outside the
timed region; kv heads are expanded to Hq (enable_gqa needs torch >= 2.5) also outside it."""
import json, sys, time
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F

b, s, hq, hkv, d = (int(x) for x in sys.argv[1:6])
dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[sys.argv[6] if len(sys.argv) > 6 else "bf16"]
iters = int(sys.argv[7]) if len(sys.argv) > 7 else 20
q = torch.randn(b, s, hq, d, device="cuda", dtype=dtype).transpose(1, 2).contiguous().requires_grad_()
k = torch.randn(b, s, hkv, d, device="cuda", dtype=dtype).transpose(1, 2)
v = torch.randn(b, s, hkv, d, device="cuda", dtype=dtype).transpose(1, 2)
k = k.repeat_interleave(hq // hkv, dim=1).contiguous().requires_grad_()
v = v.repeat_interleave(hq // hkv, dim=1).contiguous().requires_grad_()
dout = torch.randn(b, hq, s, d, device="cuda", dtype=dtype)


def timed(fn):
    for _ in range(3): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(iters): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / iters


with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    fwd = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    bwd = timed(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
flops = 4 * b * hq * s * s * d / 2
print("RESULT " + json.dumps(dict(what="torch_attention", b=b, s=s, hq=hq, hkv=hkv, d=d, dtype=str(dtype).split(".")[-1],
                                  fwd_ms=round(fwd * 1e3, 4), bwd_ms=round(bwd * 1e3, 4),
                                  fwd_tflops=round(flops / fwd / 1e12, 1), bwd_tflops=round(2.5 * flops / bwd / 1e12, 1))))
