"""PyTorch's matmul on the same problem as bench/gemm_bench, for the side-by-side ratio.
Usage: python3 bench/torch_gemm.py M N K [dtype=bf16] [trans_b=0] [iters=50]"""
import json, sys, time
import torch

m, n, k = (int(x) for x in sys.argv[1:4])
dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[sys.argv[4] if len(sys.argv) > 4 else "bf16"]
trans_b = len(sys.argv) > 5 and sys.argv[5] == "1"
iters = int(sys.argv[6]) if len(sys.argv) > 6 else 50
torch.backends.cuda.matmul.allow_tf32 = False
a = torch.randn(m, k, device="cuda", dtype=dtype)
b = torch.randn(n, k, device="cuda", dtype=dtype) if trans_b else torch.randn(k, n, device="cuda", dtype=dtype)
f = (lambda: a @ b.t()) if trans_b else (lambda: a @ b)
for _ in range(5): f()
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(iters): f()
torch.cuda.synchronize(); dt = (time.perf_counter() - t) / iters
print("RESULT " + json.dumps(dict(what="torch_gemm", m=m, n=n, k=k, dtype=str(dtype).split(".")[-1], trans_b=int(trans_b),
                                  ms=round(dt * 1e3, 4), tflops=round(2 * m * n * k / dt / 1e12, 1))))
