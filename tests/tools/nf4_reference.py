#!/usr/bin/env python3
"""Pinning vectors for NF4 as bitsandbytes defines it, from an implementation written here in
pure Python (no torch, no numpy, no bitsandbytes), for tests/unit/test_nf4_reference.cpp.

The definition (bitsandbytes quantize_4bit(quant_type="nf4", blocksize=64,
compress_statistics=True) and dequantize_4bit):
  * the 16-value NormalFloat code table (get_4bit_type("nf4"));
  * the tensor is flattened and cut into blocks of 64; absmax[b] = max |x| over block b (fp32);
  * each x becomes the number of code midpoints below x * (1 / absmax[b]) (fp32 reciprocal,
    then an fp32 product; a value on a midpoint takes the lower code; NaN, from an all-zero
    block, gives 0): the decision tree of dQuantizeNF4, whose thresholds are the midpoints;
  * two codes per byte, the first element in the high nibble; an odd count pads with the code
    of 0.0;
  * double quantization of absmax: offset = mean(absmax) (summed in order in double, divided
    by the count, rounded to fp32), a = absmax - offset (fp32), blocks of 256 with
    scale[c] = max |a| over the block, and a * (1 / scale[c]) quantized with the binary search
    of dQuantize<0> over the 8-bit dynamic map create_dynamic_map(signed=True,
    max_exponent_bits=7, total_bits=8);
  * dequantization: absmax'[b] = fp32(fp32(map[qa[b]] * scale[b / 256]) + offset), then
    x' = fp32(NF4[q] * absmax'[b]), rounded to the output dtype.
The dynamic map's fp32 values are those torch computes: torch.linspace(0.1, 1, k) in fp32
evaluates start + step * i (i < k / 2) and end - step * (k - 1 - i) (the rest) as one fused
multiply-add, step = fp32((end - start) / (k - 1)). This reproduces every one of the 256 values
bitsandbytes ships (its code table in csrc and the copies downstream projects carry).

Every fp32 operation is emulated exactly: the operands are fp32 values held in Python floats,
the exact result is formed with fractions where one rounding must happen (the fused
multiply-add, the mean's final rounding) and rounded to fp32 to nearest-even.

Usage: python3 tests/tools/nf4_reference.py --out tests/data/quant/nf4_reference.json
       python3 tests/tools/nf4_reference.py --check-torch tests/data/quant/nf4_reference.json
The second form (where torch is installed, e.g. the GPU machine) rebuilds the dynamic map with
torch exactly as bitsandbytes' create_dynamic_map does and compares it with the committed one.
"""
import argparse
import hashlib
import json
import math
import struct
import sys
from fractions import Fraction

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
NF4_BLOCK = 64
ABSMAX_BLOCK = 256


def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def from_bits(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


def f32(x):
    """A double rounded to the nearest fp32 (ties to even). For one +, -, * or / of two fp32
    values computed in double this is the exactly rounded fp32 result (53 >= 2 * 24 + 2)."""
    if math.isnan(x) or math.isinf(x):
        return x
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_exact(q):
    """An exact rational rounded once to the nearest fp32 (ties to even); normal range only."""
    if q == 0:
        return 0.0
    sign = -1.0 if q < 0 else 1.0
    q = abs(q)
    e = math.floor(math.log2(q.numerator) - math.log2(q.denominator))
    while Fraction(2) ** e > q:
        e -= 1
    while Fraction(2) ** (e + 1) <= q:
        e += 1
    scaled = q / Fraction(2) ** (e - 23)  # in [2^23, 2^24)
    m = scaled.numerator // scaled.denominator
    rest = scaled - m
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and m % 2 == 1):
        m += 1
    return sign * float(m) * 2.0 ** (e - 23)


def next_f32(x, up):
    """The fp32 neighbour of fp32 x towards +inf (up) or -inf."""
    if x == 0:
        return from_bits(1) if up else -from_bits(1)
    b = bits(x)
    return from_bits(b + 1 if (x > 0) == up else b - 1)


def mul(a, b):
    if (a == 0 and math.isinf(b)) or (b == 0 and math.isinf(a)):
        return math.nan
    return f32(a * b)


def reciprocal(a):
    return math.inf if a == 0 else f32(1.0 / a)


def linspace_f32(start, end, steps):
    """torch.linspace(start, end, steps) in fp32 (see the module docstring)."""
    start, end = f32(start), f32(end)
    step = f32((end - start) / (steps - 1))
    out = []
    for i in range(steps):
        if i < steps // 2:
            out.append(f32_exact(Fraction(start) + Fraction(step) * i))
        else:
            out.append(f32_exact(Fraction(end) - Fraction(step) * (steps - 1 - i)))
    return out


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for each exponent i,
    2^i + 1 linear boundaries in [0.1, 1], their midpoints scaled by 10^(i - 6), both signs; then
    0 and 1, sorted."""
    data = []
    for i in range(7):
        boundaries = linspace_f32(0.1, 1.0, 2 ** i + 1)
        means = [f32(f32(a + b) / 2.0) for a, b in zip(boundaries, boundaries[1:])]
        scale = f32(10.0 ** (i - 6))
        data += [f32(scale * m) for m in means]
        data += [f32(-scale * m) for m in means]
    data += [0.0, 1.0]
    assert len(data) == 256
    return sorted(data)


def nf4_thresholds():
    return [f32((a + b) / 2.0) for a, b in zip(NF4, NF4[1:])]


def nf4_index(x, thresholds):
    return sum(1 for t in thresholds if x > t)


def dynamic_index(x, code):
    """dQuantize<0>: binary search from the middle of the map, then the nearer of the last two."""
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = -1.0, 1.0
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        return upper_pivot if x > f32(f32(upper + val) * 0.5) else pivot
    return lower_pivot if x < f32(f32(lower + val) * 0.5) else pivot


def quantize(xs, thresholds, code):
    n = len(xs)
    blocks = (n + NF4_BLOCK - 1) // NF4_BLOCK
    absmax, nibbles = [], []
    for b in range(blocks):
        block = xs[b * NF4_BLOCK:(b + 1) * NF4_BLOCK]
        amax = max(abs(v) for v in block)
        absmax.append(amax)
        r = reciprocal(amax)
        nibbles += [nf4_index(mul(v, r), thresholds) for v in block]
    if n % 2:
        nibbles.append(nf4_index(mul(0.0, reciprocal(absmax[-1])), thresholds))
    packed = bytes((nibbles[2 * j] << 4) | nibbles[2 * j + 1] for j in range(len(nibbles) // 2))

    total = 0.0
    for a in absmax:
        total += a
    offset = f32(total / len(absmax))
    centred = [f32(a - offset) for a in absmax]
    scales, qabsmax = [], []
    for c in range(0, blocks, ABSMAX_BLOCK):
        block = centred[c:c + ABSMAX_BLOCK]
        s = max(abs(v) for v in block)
        scales.append(s)
        r = reciprocal(s)
        qabsmax += [dynamic_index(mul(v, r), code) for v in block]
    return packed, bytes(qabsmax), scales, offset


def dequantize(n, packed, qabsmax, scales, offset, code):
    absmax = [f32(mul(code[q], scales[b // ABSMAX_BLOCK]) + offset) for b, q in enumerate(qabsmax)]
    out = []
    for i in range(n):
        byte = packed[i // 2]
        q = byte >> 4 if i % 2 == 0 else byte & 15
        out.append(mul(NF4[q], absmax[i // NF4_BLOCK]))
    return out


def bf16_bits(x):
    b = bits(x)
    if (b & 0x7FFFFFFF) > 0x7F800000:
        return (b >> 16) | 0x40
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF


def splitmix64(state):
    z = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def generated(seed, n):
    """x[i] = fp32((2u - 1) * (1 + (i / 64 % 7) / 4)), u = the top 24 bits of splitmix64(seed + i)
    / 2^24: blocks of 64 with seven different ranges, so absmax varies from block to block."""
    xs = []
    for i in range(n):
        u = (splitmix64(seed + i) >> 40) / 16777216.0
        xs.append(f32((2.0 * u - 1.0) * (1.0 + (i // NF4_BLOCK % 7) / 4.0)))
    return xs


def hexs(values):
    return ["%08x" % bits(v) for v in values]


def sha256_f32(values):
    return hashlib.sha256(b"".join(struct.pack("<f", v) for v in values)).hexdigest()


def sha256_bf16(values):
    return hashlib.sha256(b"".join(struct.pack("<H", bf16_bits(v)) for v in values)).hexdigest()


def special_input(thresholds):
    """261 values (odd: the last byte is padded), five blocks: thresholds exactly and one fp32 step
    either side under absmax 1; all zeros; a negative absmax; plain values; a partial block of 5."""
    block0 = [1.0]
    for t in thresholds:
        block0 += [t, next_f32(t, False), next_f32(t, True)]
    block0 += [f32(v) for v in NF4]
    block0 += generated(3, 64 - len(block0))  # |x| < 1: absmax stays 1
    block1 = [0.0] * 64
    block2 = [f32(-3.5)] + generated(7, 63)
    block3 = generated(11, 64)
    block4 = [f32(0.25), f32(-0.125), f32(0.0625), f32(-0.5), f32(0.375)]
    return block0 + block1 + block2 + block3 + block4


def case(name, shape, xs, thresholds, code, explicit):
    n = len(xs)
    packed, qabsmax, scales, offset = quantize(xs, thresholds, code)
    deq = dequantize(n, packed, qabsmax, scales, offset, code)
    entry = {"name": name, "shape": shape, "codes": packed.hex(), "absmax": qabsmax.hex(),
             "absmax_scale": hexs(scales), "absmax_offset": "%08x" % bits(offset),
             "dequant_f32_sha256": sha256_f32(deq), "dequant_bf16_sha256": sha256_bf16(deq),
             "dequant_f32_first": hexs(deq[:64])}
    if explicit:
        entry["input"] = hexs(xs)
        entry["dequant_f32"] = hexs(deq)
    return entry


def scalar_probes(points):
    probes = set()
    for p in points:
        probes |= {p, next_f32(p, False), next_f32(p, True)}
    probes |= {1.0, -1.0, 0.0}
    return sorted(probes)


def build():
    thresholds = nf4_thresholds()
    code = dynamic_map()
    midpoints = [f32(f32(a + b) * 0.5) for a, b in zip(code, code[1:])]
    n_special = special_input(thresholds)
    return {
        "definition": "bitsandbytes NF4, blocksize 64, double quantization (8-bit dynamic map, blocks of 256); "
                      "written by tests/tools/nf4_reference.py",
        "nf4_code": hexs([f32(v) for v in NF4]),
        "nf4_thresholds": hexs(thresholds),
        "dynamic_map": hexs(code),
        "nf4_scalar": [["%08x" % bits(x), nf4_index(x, thresholds)]
                       for x in scalar_probes(thresholds + [f32(v) for v in NF4])],
        "dynamic_scalar": [["%08x" % bits(x), dynamic_index(x, code)]
                           for x in scalar_probes(midpoints + code)],
        "cases": [
            case("special", [1, len(n_special)], n_special, thresholds, code, explicit=True),
            case("constant", [4, 64], [f32(0.5)] * 256, thresholds, code, explicit=True),
            # 258 blocks of 64 (the last partial, 37 values): two nested blocks, the second of 2.
            case("nested", [157, 105], generated(20240611, 157 * 105), thresholds, code, explicit=False),
        ],
    }


def check_torch(path):
    import torch

    data = []
    for i in range(7):
        boundaries = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-6 + i)) * means).tolist()
        data += (-(10 ** (-6 + i)) * means).tolist()
    data += [0, 1.0]
    data.sort()
    theirs = torch.tensor(data, dtype=torch.float32).tolist()
    ours = [from_bits(int(h, 16)) for h in json.load(open(path))["dynamic_map"]]
    bad = [i for i in range(256) if bits(theirs[i]) != bits(ours[i])]
    print(f"RESULT {json.dumps({'torch': torch.__version__, 'dynamic_map_mismatches': len(bad), 'first': bad[:8]})}")
    return 0 if not bad else 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("--check-torch")
    args = parser.parse_args()
    if args.check_torch:
        return check_torch(args.check_torch)
    if not args.out:
        parser.error("--out or --check-torch")
    with open(args.out, "w") as f:
        json.dump(build(), f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
