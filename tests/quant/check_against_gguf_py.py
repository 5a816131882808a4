#!/usr/bin/env python3
"""Bit-exactness of anvil's reference (de)quantizers against PyPI gguf (gguf-py).

Dequantize: random blocks of every format anvil supports (random payload bytes; random finite
f16/f32 scales of sensible magnitude, some subnormal or huge; fully random bytes including
inf/nan scales; blocks anvil quantized from random data), decoded by `quant_tool dequant` and by
gguf.quants.dequantize, compared bit for bit (any NaN equals any NaN).

Quantize: random rows (normal, uniform, outliers, all-zero and constant blocks, exact ties),
encoded by `quant_tool quant` and by gguf.quants.quantize, compared byte for byte, for every
type gguf-py can quantize (F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0; gguf-py has no K-quant encoder).

gguf-py has no Q8_K at all: for Q8_K this script carries its own numpy reference (written from
the format description: f32 d, 256 int8 quants, 16 int16 group sums; encode by the signed
max-magnitude element -> -127, round half to even, clamp at 127), independent of anvil's C++.

Exit 77 (skipped) when gguf/numpy or the tool is missing.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as QT
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

BIN = os.environ.get("ANVIL_TEST_BIN_DIR", "")
TOOL = os.path.join(BIN, "quant_tool")
if not os.path.exists(TOOL):
    print(f"skipped: {TOOL} not built")
    sys.exit(77)

np.seterr(all="ignore")  # inf/nan scales in the fully random blocks are intended
rng = np.random.default_rng(20240917)
TMP = tempfile.mkdtemp(prefix="anvil-quant-")
failures = []

# byte offsets of the f16 scale fields in each block (d, and m/dmin where present)
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
}
SIZES = {"Q8_K": (256, 292)}


def block_info(name):
    if name in SIZES:
        return SIZES[name]
    return gguf.GGML_QUANT_SIZES[QT[name]]


def run(*args):
    r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"quant_tool {' '.join(map(str, args))} failed: {r.stderr}")


def ours_dequant(name, raw: np.ndarray) -> np.ndarray:
    src, dst = os.path.join(TMP, "in.bin"), os.path.join(TMP, "out.f32")
    raw.astype(np.uint8).tofile(src)
    run("dequant", name, src, dst)
    return np.fromfile(dst, dtype=np.float32)


def ours_quant(name, x: np.ndarray, n_per_row=None) -> np.ndarray:
    src, dst = os.path.join(TMP, "in.f32"), os.path.join(TMP, "out.bin")
    x.astype(np.float32).tofile(src)
    args = ["quant", name, src, dst] + ([n_per_row] if n_per_row else [])
    run(*args)
    return np.fromfile(dst, dtype=np.uint8)


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element: identical bits, or both NaN."""
    a = a.astype(np.float32).ravel()
    b = b.astype(np.float32).ravel()
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def check(label, ok: np.ndarray, detail=""):
    n_bad = int((~ok).sum())
    if n_bad:
        failures.append(f"{label}: {n_bad} of {ok.size} differ {detail}")
        print(f"FAIL {label}: {n_bad}/{ok.size} differ {detail}")
    else:
        print(f"ok   {label} ({ok.size} values)")


# --------------------------------------------------------------------------- references
def q8k_dequant_ref(raw: np.ndarray) -> np.ndarray:
    blocks = raw.reshape(-1, 292)
    d = blocks[:, 0:4].copy().view(np.float32)
    qs = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
    return (d * qs).astype(np.float32).ravel()


def q8k_quant_ref(x: np.ndarray) -> np.ndarray:
    out = np.zeros((x.size // 256, 292), dtype=np.uint8)
    for i, blk in enumerate(x.reshape(-1, 256).astype(np.float32)):
        amax_i = int(np.argmax(np.abs(blk)))
        mx = blk[amax_i]
        if mx == 0:
            continue  # all-zero block: d = 0, quants 0, sums 0
        iscale = np.float32(-127.0) / mx
        q = np.minimum(np.rint(iscale * blk), 127).astype(np.int8)  # rint: half to even
        sums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        out[i, 0:4] = np.array([np.float32(1.0) / iscale], dtype=np.float32).view(np.uint8)
        out[i, 4:260] = q.view(np.uint8)
        out[i, 260:292] = sums.view(np.uint8)
    return out.ravel()


def ref_dequant(name, raw: np.ndarray) -> np.ndarray:
    if name == "Q8_K":
        return q8k_dequant_ref(raw)
    if name == "F32":
        return raw.view(np.float32)
    if name == "F16":
        return raw.view(np.float16).astype(np.float32)
    if name == "BF16":
        return gguf.quants.dequantize(raw, QT.BF16).ravel()
    return gguf.quants.dequantize(raw, QT[name]).ravel()


# --------------------------------------------------------------------------- random blocks
def sensible_f16(n):
    mag = np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-5, 1, n)
    v = (mag * rng.choice([-1, 1], n)).astype(np.float16)
    # a few extremes: subnormals, the largest finite half, zero
    k = max(1, n // 20)
    v[rng.integers(0, n, k)] = np.float16(6e-8)
    v[rng.integers(0, n, k)] = np.float16(-65504.0)
    v[rng.integers(0, n, k)] = np.float16(0.0)
    return v


def random_blocks(name, n_blocks, finite_scales=True):
    bs, ts = block_info(name)
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    if finite_scales:
        if name == "Q8_K":
            d = (rng.standard_normal(n_blocks) * 10.0 ** rng.uniform(-6, 2, n_blocks)).astype(np.float32)
            raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
        for off in F16_FIELDS.get(name, []):
            raw[:, off:off + 2] = sensible_f16(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.ravel()


def test_data(n, kind):
    if kind == "normal":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "uniform":
        return rng.uniform(-3.0, 7.0, n).astype(np.float32)
    if kind == "outliers":
        x = rng.standard_normal(n).astype(np.float32) * 0.02
        idx = rng.integers(0, n, n // 64)
        x[idx] *= 300.0
        return x
    if kind == "edge":
        x = rng.standard_normal(n).astype(np.float32)
        x[0:32] = 0.0                     # an all-zero block
        x[32:64] = 0.75                   # a constant block
        x[64:96] = -1e-3                  # a constant negative block
        # exact ties: amax 127 makes the Q8_0 step exactly 1, so k + 0.5 rounds away from 0
        x[96] = 127.0
        x[97:128] = np.arange(-15.5, 15.5).astype(np.float32)
        x[128:160] = rng.standard_normal(32).astype(np.float32) * 1e-30   # tiny values
        x[160:192] = rng.standard_normal(32).astype(np.float32) * 1e4     # big values
        return x
    raise ValueError(kind)


# --------------------------------------------------------------------------- dequantize
ALL = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]

for name in ALL:
    if name in ("F16", "BF16"):
        raw = np.arange(65536, dtype=np.uint16).view(np.uint8)   # every bit pattern
        check(f"dequant {name} all 65536 patterns", same_bits(ours_dequant(name, raw), ref_dequant(name, raw)))
        continue
    if name == "F32":
        raw = rng.integers(0, 256, size=4 * 4096, dtype=np.uint8)
        check("dequant F32 random bytes", same_bits(ours_dequant(name, raw), ref_dequant(name, raw)))
        continue
    raw = random_blocks(name, 4000, finite_scales=True)
    check(f"dequant {name} random payload, finite scales",
          same_bits(ours_dequant(name, raw), ref_dequant(name, raw)))
    raw = random_blocks(name, 1000, finite_scales=False)
    check(f"dequant {name} fully random bytes",
          same_bits(ours_dequant(name, raw), ref_dequant(name, raw)))
    for kind in ("normal", "uniform", "outliers", "edge"):
        x = test_data(256 * 64, kind)
        raw = ours_quant(name, x)
        check(f"dequant {name} of anvil-quantized {kind} data",
              same_bits(ours_dequant(name, raw), ref_dequant(name, raw)))

# --------------------------------------------------------------------------- quantize
GGUF_QUANTIZES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
for name in GGUF_QUANTIZES:
    for kind in ("normal", "uniform", "outliers", "edge"):
        x = test_data(256 * 128, kind)
        ours = ours_quant(name, x)
        ref = gguf.quants.quantize(x.reshape(128, 256), QT[name]).view(np.uint8).ravel()
        if name == "F16":  # NaN payloads may differ; none here, but compare as halves
            a, b = ours.view(np.float16).astype(np.float32), ref.view(np.float16).astype(np.float32)
            check(f"quant {name} {kind} vs gguf-py", same_bits(a, b))
        else:
            check(f"quant {name} {kind} vs gguf-py", ours == ref)

# f32 -> f16 / bf16 over wide-range random floats, including specials
x = np.concatenate([
    rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32).view(np.float32),
    np.array([0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 5.96e-8, 2.98e-8, 2.99e-8],
             dtype=np.float32),
])
ours = ours_quant("F16", x).view(np.float16).astype(np.float32)
check("quant F16 random bit patterns vs numpy", same_bits(ours, x.astype(np.float16).astype(np.float32)))
ours = ours_quant("BF16", x)
check("quant BF16 random bit patterns vs gguf-py",
      ours == gguf.quants.quantize(x.reshape(1, -1), QT.BF16).view(np.uint8).ravel())

# Q8_K against the independent numpy reference above
for kind in ("normal", "uniform", "outliers", "edge"):
    x = test_data(256 * 64, kind)
    check(f"quant Q8_K {kind} vs numpy reference", ours_quant("Q8_K", x) == q8k_quant_ref(x))

print(f"{len(failures)} failed")
if failures:
    for f in failures:
        print("  " + f)
    sys.exit(1)
print("all checks passed")
