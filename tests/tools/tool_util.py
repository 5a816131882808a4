"""Shared helpers for the tools tests: locating the binaries, running them, and the expected
tensor layout of each architecture written from the public GGUF naming (llama.cpp's gguf-py
constants), independently of tools/make_test_model."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
except ImportError as e:  # pragma: no cover
    print(f"skipped: numpy/gguf not importable ({e})")
    sys.exit(77)

BIN_DIR = os.environ.get("ANVIL_BIN_DIR", "")
VOCAB_DIR = os.environ.get("ANVIL_VOCAB_DIR", "")


def binary(name: str) -> str:
    path = os.path.join(BIN_DIR, name)
    if not os.path.exists(path):
        print(f"skipped: {path} not built")
        sys.exit(77)
    return path


ANVIL = None
MTM = None


def anvil() -> str:
    global ANVIL
    ANVIL = ANVIL or binary("anvil")
    return ANVIL


def mtm() -> str:
    global MTM
    MTM = MTM or binary("make-test-model")
    return MTM


def run(args: list[str], check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, errors="replace")
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def need_vocab_dir() -> None:
    if not VOCAB_DIR or not os.path.exists(os.path.join(VOCAB_DIR, "ggml-vocab-gpt-2.gguf")):
        print(f"skipped: vocab dir '{VOCAB_DIR}' has no ggml-vocab-gpt-2.gguf")
        sys.exit(77)


def tmpdir() -> str:
    """A scratch directory removed when the test exits (kept if ANVIL_KEEP_TMP is set)."""
    d = tempfile.mkdtemp(prefix="anvil-tools-test-")
    if not os.environ.get("ANVIL_KEEP_TMP"):
        atexit.register(shutil.rmtree, d, True)
    return d


def make_model(out: str, *args: str, threads: int = 2) -> str:
    run([mtm(), "-q", "--threads", str(threads), "-o", out, *args])
    return out


# --------------------------------------------------------------------------- expected layouts

# Tiny preset shapes as documented in make-test-model --help (the test's own copy).
TINY = {
    "tiny-llama": dict(arch="llama", L=2, E=256, F=512, H=4, Hkv=2, hd=64, tied=False, vocab="ggml-vocab-llama-spm.gguf"),
    "tiny-qwen2": dict(arch="qwen2", L=2, E=256, F=512, H=4, Hkv=2, hd=64, tied=False, bias=True,
                       vocab="ggml-vocab-gpt-2.gguf"),
    "tiny-qwen3": dict(arch="qwen3", L=2, E=256, F=512, H=4, Hkv=2, hd=64, tied=True, vocab="ggml-vocab-gpt-2.gguf"),
    "tiny-qwen35": dict(arch="qwen35", L=4, E=256, F=512, H=2, Hkv=1, hd=128, tied=True, interval=4, state=128,
                        nk=2, nv=4, conv=4, vocab="ggml-vocab-gpt-2.gguf"),
    "tiny-gemma3": dict(arch="gemma3", L=6, E=256, F=512, H=4, Hkv=1, hd=64, tied=True,
                        vocab="ggml-vocab-llama-spm.gguf"),
}


def expected_tensors(c: dict, V: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (GGUF dims (ne0 first), role). role: 'norm' (1-D), 'conv', or 'mat'."""
    arch, E, F, hd = c["arch"], c["E"], c["F"], c["hd"]
    H, Hkv = c["H"], c["Hkv"]
    t: dict[str, tuple[tuple[int, ...], str]] = {"token_embd.weight": ((E, V), "mat"),
                                                 "output_norm.weight": ((E,), "norm")}
    if not c["tied"]:
        t["output.weight"] = ((E, V), "mat")
    for i in range(c["L"]):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = ((E,), "norm")
        t[p + "ffn_gate.weight"] = ((E, F), "mat")
        t[p + "ffn_up.weight"] = ((E, F), "mat")
        t[p + "ffn_down.weight"] = ((F, E), "mat")
        if arch == "qwen35" and (i + 1) % c["interval"] != 0:
            kd, vd = c["state"] * c["nk"], c["state"] * c["nv"]
            t[p + "attn_qkv.weight"] = ((E, 2 * kd + vd), "mat")
            t[p + "attn_gate.weight"] = ((E, vd), "mat")
            t[p + "ssm_conv1d.weight"] = ((c["conv"], 2 * kd + vd), "conv")
            t[p + "ssm_dt.bias"] = ((c["nv"],), "norm")
            t[p + "ssm_a"] = ((c["nv"],), "norm")
            t[p + "ssm_beta.weight"] = ((E, c["nv"]), "mat")
            t[p + "ssm_alpha.weight"] = ((E, c["nv"]), "mat")
            t[p + "ssm_norm.weight"] = ((c["state"],), "norm")
            t[p + "ssm_out.weight"] = ((vd, E), "mat")
        else:
            qw = 2 * H * hd if arch == "qwen35" else H * hd
            t[p + "attn_q.weight"] = ((E, qw), "mat")
            t[p + "attn_k.weight"] = ((E, Hkv * hd), "mat")
            t[p + "attn_v.weight"] = ((E, Hkv * hd), "mat")
            t[p + "attn_output.weight"] = ((H * hd, E), "mat")
            if c.get("bias"):
                t[p + "attn_q.bias"] = ((H * hd,), "norm")
                t[p + "attn_k.bias"] = ((Hkv * hd,), "norm")
                t[p + "attn_v.bias"] = ((Hkv * hd,), "norm")
            if arch in ("qwen3", "qwen35", "gemma3"):
                t[p + "attn_q_norm.weight"] = ((hd,), "norm")
                t[p + "attn_k_norm.weight"] = ((hd,), "norm")
        if arch in ("qwen35", "gemma3"):
            t[p + "post_attention_norm.weight"] = ((E,), "norm")
        if arch != "qwen35":
            t[p + "ffn_norm.weight"] = ((E,), "norm")
        if arch == "gemma3":
            t[p + "post_ffw_norm.weight"] = ((E,), "norm")
    return t


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's rule for the layers that get more bits in the _M mixes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_q4_k_m(names_roles: dict[str, tuple[tuple[int, ...], str]], tied: bool) -> dict[str, set[str]]:
    """Allowed types per tensor for a Q4_K_M file whose matrix rows are multiples of 256."""
    attn_v = sorted((n for n in names_roles if n.endswith("attn_v.weight")), key=lambda n: int(n.split(".")[1]))
    # llama.cpp counts fused attn_qkv tensors into n_attention_wv but steps its index only on attn_v
    n_attention_wv = len(attn_v) + sum(1 for n in names_roles if n.endswith("attn_qkv.weight"))
    ffn_down = [n for n in names_roles if n.endswith("ffn_down.weight")]
    n_layer = len(ffn_down)
    out: dict[str, set[str]] = {}
    for name, (dims, role) in names_roles.items():
        if role in ("norm", "conv"):
            out[name] = {"F32"}
        elif name == "output.weight" or (tied and name == "token_embd.weight"):
            out[name] = {"Q6_K"}
        elif name.endswith("attn_v.weight"):
            out[name] = {"Q6_K"} if use_more_bits(attn_v.index(name), n_attention_wv) else {"Q4_K"}
        elif name.endswith("ffn_down.weight"):
            out[name] = {"Q6_K"} if use_more_bits(int(name.split(".")[1]), n_layer) else {"Q4_K"}
        elif name.endswith("attn_qkv.weight"):
            out[name] = {"Q5_K"}
        else:
            out[name] = {"Q4_K", "Q5_K", "Q6_K"}
    return out


def tensor_type_name(t) -> str:
    return gguf.GGMLQuantizationType(int(t.tensor_type)).name


def field_value(r, key):
    f = r.fields[key]
    return f.contents()


def field_types(r, key) -> list:
    return list(r.fields[key].types)
