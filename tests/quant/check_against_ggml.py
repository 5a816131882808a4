#!/usr/bin/env python3
"""Bit-exactness of anvil's quantizers against ggml's own compiled C (libggml-base).

gguf-py has no K-quant encoder, so this is the check of Q4_K / Q5_K / Q6_K / Q8_K encoding
(and of the imatrix paths of every format) against the real thing: ggml_quantize_chunk and
dequantize_row_* from a libggml-base shared library, called through ctypes.

Where the library comes from: $ANVIL_GGML_BASE_LIB (a path to libggml-base.so), else any
libggml-base*.so* in the site-packages of this Python (the PyPI wheel `pywhispercpp` ships one,
built for baseline x86-64, so without fused multiply-adds that would change roundings).
Exit 77 (skipped) when none is found.
"""
import ctypes
import glob
import os
import site
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

np.seterr(all="ignore")
TOOL = os.path.join(os.environ.get("ANVIL_TEST_BIN_DIR", ""), "quant_tool")
if not os.path.exists(TOOL):
    print(f"skipped: {TOOL} not built")
    sys.exit(77)


def find_lib():
    env = os.environ.get("ANVIL_GGML_BASE_LIB")
    if env:
        return env if os.path.exists(env) else None
    dirs = site.getsitepackages() + [site.getusersitepackages()]
    for d in dirs:
        hits = sorted(glob.glob(os.path.join(d, "**", "libggml-base*.so*"), recursive=True))
        if hits:
            return hits[0]
    return None


path = find_lib()
if not path:
    print("skipped: no libggml-base found (set ANVIL_GGML_BASE_LIB or pip install pywhispercpp)")
    sys.exit(77)
ggml = ctypes.CDLL(path)
ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
ggml.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                     ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
for fn in ["quantize_row_q8_K_ref"] + ["dequantize_row_" + s for s in
                                       ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K", "q8_K")]:
    getattr(ggml, fn).restype = None
    getattr(ggml, fn).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
print(f"ggml: {path}")

# GGML type id, block size, bytes per block
TYPES = {"Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24),
         "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210),
         "Q8_K": (15, 256, 292), "F16": (1, 1, 2), "BF16": (30, 1, 2)}
DEQUANT = {"Q4_0": "q4_0", "Q4_1": "q4_1", "Q5_0": "q5_0", "Q5_1": "q5_1", "Q8_0": "q8_0",
           "Q4_K": "q4_K", "Q5_K": "q5_K", "Q6_K": "q6_K", "Q8_K": "q8_K"}
TMP = tempfile.mkdtemp(prefix="anvil-ggml-")
rng = np.random.default_rng(777)
failures = []


def ggml_quant(name, x, n_per_row, imatrix=None):
    tid, bs, ts = TYPES[name]
    x = np.ascontiguousarray(x, dtype=np.float32)
    nrows = x.size // n_per_row
    out = np.zeros(nrows * (n_per_row // bs) * ts, dtype=np.uint8)
    im = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32)
    if name == "Q8_K":  # not a storage type for ggml_quantize_chunk: use the row reference
        ggml.quantize_row_q8_K_ref(x.ctypes.data, out.ctypes.data, ctypes.c_int64(x.size))
    else:
        ggml.ggml_quantize_chunk(tid, x.ctypes.data, out.ctypes.data, 0, nrows, n_per_row,
                                 None if im is None else im.ctypes.data)
    return out


def ggml_dequant(name, raw):
    _, bs, ts = TYPES[name]
    n = raw.size // ts * bs
    out = np.zeros(n, dtype=np.float32)
    getattr(ggml, "dequantize_row_" + DEQUANT[name])(raw.ctypes.data, out.ctypes.data, ctypes.c_int64(n))
    return out


def ours_quant(name, x, n_per_row, imatrix=None):
    src, dst, w = (os.path.join(TMP, f) for f in ("in.f32", "out.bin", "w.f32"))
    np.asarray(x, dtype=np.float32).tofile(src)
    args = [TOOL, "quant", name, src, dst, str(n_per_row)]
    if imatrix is not None:
        np.asarray(imatrix, dtype=np.float32).tofile(w)
        args.append(w)
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return np.fromfile(dst, dtype=np.uint8)


def ours_dequant(name, raw):
    src, dst = os.path.join(TMP, "in.bin"), os.path.join(TMP, "out.f32")
    raw.tofile(src)
    r = subprocess.run([TOOL, "dequant", name, src, dst], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return np.fromfile(dst, dtype=np.float32)


def data(kind, n):
    if kind == "normal":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "uniform":
        return rng.uniform(-3, 7, n).astype(np.float32)
    if kind == "outliers":
        x = rng.standard_normal(n).astype(np.float32) * 0.02
        x[rng.integers(0, n, n // 64)] *= 300
        return x
    if kind == "lognormal":
        return (rng.choice([-1, 1], n) * np.exp(2 * rng.standard_normal(n))).astype(np.float32)
    if kind == "positive":  # all > 0: the K formats' min clamps at 0
        return np.abs(rng.standard_normal(n)).astype(np.float32) + 0.5
    if kind == "sparse":    # mostly zeros, some all-zero sub-blocks and blocks
        x = rng.standard_normal(n).astype(np.float32)
        x[rng.random(n) < 0.9] = 0
        x[: n // 8] = 0
        return x
    raise ValueError(kind)


def check(label, ok, unit="bytes"):
    bad = int((~ok).sum())
    if bad:
        failures.append(f"{label}: {bad}/{ok.size}")
        print(f"FAIL {label}: {bad}/{ok.size} {unit} differ")
    else:
        print(f"ok   {label} ({ok.size} {unit})")


n_per_row, n_rows = 1024, 48
for name in TYPES:
    for kind in ("normal", "uniform", "outliers", "lognormal", "positive", "sparse"):
        x = data(kind, n_per_row * n_rows)
        ours, ref = ours_quant(name, x, n_per_row), ggml_quant(name, x, n_per_row)
        check(f"quant {name:5s} {kind:9s} vs ggml", ours == ref)
        if name in DEQUANT:
            a, b = ours_dequant(name, ref), ggml_dequant(name, ref)
            check(f"dequant {name:5s} {kind:9s} vs ggml",
                  (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b)), "values")
        if name not in ("Q8_0", "Q8_K", "F16", "BF16"):  # the formats with an imatrix path
            imatrix = rng.uniform(0.01, 5.0, n_per_row).astype(np.float32)
            ours, ref = ours_quant(name, x, n_per_row, imatrix), ggml_quant(name, x, n_per_row, imatrix)
            check(f"quant {name:5s} {kind:9s} with imatrix vs ggml", ours == ref)

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
