"""PyTorch's flash SDPA on the same problem as bench/attention_bench, for the side-by-side ratio.
Usage: python3 bench/torch_attention.py B S Hq Hkv D [dtype=bf16] [iters=20] [doc_len=0]
Tensors are made in our [B, S, H, D] layout and transposed to torch's [B, H, S, D] outside the
timed region; kv heads are expanded to Hq (enable_gqa needs torch >= 2.5) also outside it.
doc_len > 0 packs documents of doc_len tokens per row (the last one shorter), as attention_bench's
segment ids do: SDPA's flash backend has no document mask, so each document becomes its own
sequence (what flash-attn's varlen kernels compute), one batched call per distinct length, cut
out outside the timed region."""
import json, sys, time
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F

b, s, hq, hkv, d = (int(x) for x in sys.argv[1:6])
dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[sys.argv[6] if len(sys.argv) > 6 else "bf16"]
iters = int(sys.argv[7]) if len(sys.argv) > 7 else 20
doc_len = int(sys.argv[8]) if len(sys.argv) > 8 else 0
q = torch.randn(b, s, hq, d, device="cuda", dtype=dtype).transpose(1, 2)
k = torch.randn(b, s, hkv, d, device="cuda", dtype=dtype).transpose(1, 2)
v = torch.randn(b, s, hkv, d, device="cuda", dtype=dtype).transpose(1, 2)
k = k.repeat_interleave(hq // hkv, dim=1)
v = v.repeat_interleave(hq // hkv, dim=1)
dout = torch.randn(b, hq, s, d, device="cuda", dtype=dtype)

# Documents as (start, length); one group of equal-length documents per batched call.
length = doc_len or s
docs = [(start, min(length, s - start)) for start in range(0, s, length)]
groups = []
for n in sorted({n for _, n in docs}):
    starts = [start for start, m in docs if m == n]
    cut = lambda t: torch.cat([t[:, :, start:start + n] for start in starts]).contiguous()
    groups.append((cut(q).requires_grad_(), cut(k).requires_grad_(), cut(v).requires_grad_(), cut(dout)))


def timed(fn):
    for _ in range(3): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(iters): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / iters


with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    fwd = timed(lambda: [F.scaled_dot_product_attention(gq, gk, gv, is_causal=True) for gq, gk, gv, _ in groups])
    outs = [F.scaled_dot_product_attention(gq, gk, gv, is_causal=True) for gq, gk, gv, _ in groups]
    bwd = timed(lambda: [torch.autograd.grad(o, (gq, gk, gv), gd, retain_graph=True)
                         for o, (gq, gk, gv, gd) in zip(outs, groups)])
flops = 4 * b * hq * d * sum(n * n for _, n in docs) / 2
print("RESULT " + json.dumps(dict(what="torch_attention", b=b, s=s, hq=hq, hkv=hkv, d=d, doc_len=doc_len,
                                  dtype=str(dtype).split(".")[-1],
                                  fwd_ms=round(fwd * 1e3, 4), bwd_ms=round(bwd * 1e3, 4),
                                  fwd_tflops=round(flops / fwd / 1e12, 1), bwd_tflops=round(2.5 * flops / bwd / 1e12, 1))))
