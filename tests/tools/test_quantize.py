"""anvil quantize: an F32 tiny model to Q8_0, Q4_0 and Q4_K_M (and --pure); gguf-py reads the
output, tensor types follow llama.cpp's rules, dequantized values are within each format's
error of the source, metadata is copied with general.file_type updated."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tool_util import (anvil, expected_q4_k_m, expected_tensors, field_types, field_value, gguf, make_model, np,  # noqa: E402
                       run, tensor_type_name, tmpdir)

# RMS error relative to the RMS of the values, generous bounds for N(0, s) data
REL_RMS = {"F32": 0.0, "F16": 1e-3, "Q8_0": 0.01, "Q6_K": 0.03, "Q5_K": 0.05, "Q5_0": 0.06, "Q4_K": 0.10,
           "Q4_0": 0.15}
FILE_TYPE_ID = {"Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}


def dequant(t) -> np.ndarray:
    return gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)


def check(src_path: str, out_path: str, ftype: str, pure: bool = False) -> dict[str, int]:
    src, out = gguf.GGUFReader(src_path), gguf.GGUFReader(out_path)
    # metadata: every key copied with its type and value, except the two the quantizer sets
    for key, f in src.fields.items():
        if key.startswith("GGUF.") or key in ("general.file_type", "general.quantization_version"):
            continue
        assert key in out.fields, f"key {key} not copied"
        assert field_types(out, key) == field_types(src, key), key
        a, b = field_value(src, key), field_value(out, key)
        assert a == b or (isinstance(a, float) and np.float32(a) == np.float32(b)), key
    assert field_value(out, "general.file_type") == FILE_TYPE_ID[ftype]
    assert field_value(out, "general.quantization_version") == 2

    c = dict(arch="qwen3", L=2, E=256, F=512, H=4, Hkv=2, hd=64, tied=True)
    V = len(src.fields["tokenizer.ggml.tokens"].data)
    exp = expected_tensors(c, V)
    allowed = expected_q4_k_m(exp, tied=True)
    st = {t.name: t for t in src.tensors}
    assert [t.name for t in out.tensors] == [t.name for t in src.tensors]
    counts: dict[str, int] = {}
    for t in out.tensors:
        ty = tensor_type_name(t)
        counts[ty] = counts.get(ty, 0) + 1
        role = exp[t.name][1]
        if role != "mat":
            want = {"F32"}
        elif pure:
            want = {"Q4_K"}
        elif ftype == "Q4_K_M":
            want = allowed[t.name]
        elif ftype == "Q4_0" and t.name == "token_embd.weight":  # tied: the LM head gets Q6_K
            want = {"Q6_K"}
        else:
            want = {ftype}
        assert ty in want, f"{ftype}: {t.name} is {ty}, expected {sorted(want)}"
        assert [int(x) for x in t.shape] == [int(x) for x in st[t.name].shape]
        if ty in ("Q8_0", "Q4_0") and tensor_type_name(st[t.name]) == "F32":
            # gguf-py has reference quantizers for these: the bytes must match exactly
            want = gguf.quants.quantize(np.asarray(st[t.name].data, dtype=np.float32), t.tensor_type)
            assert np.array_equal(np.asarray(t.data).reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8)), \
                f"{t.name} {ty}: bytes differ from gguf.quants.quantize"
        x, y = dequant(st[t.name]), dequant(t)
        rms = float(np.sqrt(np.mean(x * x)))
        err = float(np.sqrt(np.mean((x - y) ** 2)))
        assert err <= REL_RMS[ty] * rms + 1e-12, f"{t.name} {ty}: rms error {err:.3g} vs rms {rms:.3g}"
    return counts


def main() -> int:
    d = tmpdir()
    src = make_model(os.path.join(d, "f32.gguf"), "--preset", "tiny-qwen3", "--synthetic-vocab", "1024",
                     "--type", "F32")
    for ftype in ("Q8_0", "Q4_0", "Q4_K_M"):
        out = os.path.join(d, f"{ftype}.gguf")
        p = run([anvil(), "quantize", src, out, ftype, "--threads", "2"])
        assert "size:" in p.stdout and "tensors:" in p.stdout, p.stdout
        counts = check(src, out, ftype)
        print(f"{ftype}: {counts}")
    out = os.path.join(d, "pure.gguf")
    run([anvil(), "quantize", src, out, "q4_k_m", "--pure", "-q"])
    print(f"Q4_K_M --pure: {check(src, out, 'Q4_K_M', pure=True)}")

    # F16 input works too
    f16 = make_model(os.path.join(d, "f16.gguf"), "--preset", "tiny-qwen3", "--synthetic-vocab", "1024",
                     "--type", "F16")
    run([anvil(), "quantize", f16, os.path.join(d, "from16.gguf"), "Q8_0", "-q"])
    r = gguf.GGUFReader(os.path.join(d, "from16.gguf"))
    assert tensor_type_name(r.tensors[0]) == "Q8_0"
    print("quantize ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
