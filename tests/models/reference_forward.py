"""An independent numpy forward pass (float64) for the dense architectures anvil runs: llama,
qwen2, qwen3, gemma3. Written from the public model descriptions (the Hugging Face modeling
code's math: RMSNorm, rotary embeddings with rotate_half, grouped-query causal attention, gated
MLPs), reading weights with the PyPI gguf package and dequantizing with gguf.quants.

GGUF-specific facts it relies on (from llama.cpp's converter, convert_hf_to_gguf.py):
  - tensor dims are stored ne0-first; gguf-py hands arrays back in [out, in] (torch) order;
  - llama's attn_q / attn_k rows are permuted per head ([2, hd/2] -> [hd/2, 2]) so that ggml's
    adjacent-pair RoPE equals HF's rotate-half: this file undoes the permutation and applies
    rotate-half, so it checks that claim instead of assuming it;
  - gemma3's norm weights are stored as 1 + w (Gemma's RMSNorm scales by 1 + w);
  - gemma3: every 6th layer (or attention.sliding_window_pattern) is global; local layers use
    RoPE base 10000 and a sliding window (position p sees keys p - window + 1 .. p); the
    embedding is scaled by sqrt(hidden); scores by 1/sqrt(head_dim); the MLP is GeGLU (tanh).

Usage: reference_forward.py MODEL.gguf --tokens 1,2,3 --out ref.npy   (logits [n_tokens, vocab])
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import gguf
from gguf.quants import dequantize


class GGUFModel:
    def __init__(self, path: str):
        self.r = gguf.GGUFReader(path)
        self.tensors = {t.name: t for t in self.r.tensors}
        self.arch = self.value("general.architecture")

    def value(self, key: str, default=None):
        f = self.r.fields.get(key)
        return default if f is None else f.contents()

    def hp(self, suffix: str, default=None):
        return self.value(f"{self.arch}.{suffix}", default)

    def has(self, name: str) -> bool:
        return name in self.tensors

    def w(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        shape = tuple(int(d) for d in reversed(t.shape))  # torch order: [out, in]
        return a.reshape(shape)


def rms_norm(x: np.ndarray, w: np.ndarray | None, eps: float) -> np.ndarray:
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if w is None else y * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of the converter's per-head row permutation of llama's q/k projections."""
    rows = w.shape[0]
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rotate_half_rope(x: np.ndarray, pos: np.ndarray, n_rot: int, base: float, scale: float) -> np.ndarray:
    """HF rotary embedding on x [T, H, hd]: the first n_rot dims rotate as halves."""
    inv_freq = 1.0 / (base ** (np.arange(0, n_rot, 2, dtype=np.float64) / n_rot))
    ang = (pos[:, None].astype(np.float64) * scale) * inv_freq[None, :]  # [T, n_rot/2]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :]
    r = x[..., :n_rot]
    half = n_rot // 2
    rotated = np.concatenate([-r[..., half:], r[..., :half]], axis=-1)
    return np.concatenate([r * cos + rotated * sin, x[..., n_rot:]], axis=-1)


def attention(q, k, v, scale: float, window: int | None) -> np.ndarray:
    """Causal GQA attention. q [T, H, hd], k/v [T, Hkv, hd] -> [T, H * hd]."""
    T, H, hd = q.shape
    group = H // k.shape[1]
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    allowed = j <= i
    if window:
        allowed &= j > i - window
    out = np.empty((T, H, hd))
    for h in range(H):
        s = (q[:, h, :] @ k[:, h // group, :].T) * scale
        s = np.where(allowed, s, -np.inf)
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        out[:, h, :] = p @ v[:, h // group, :]
    return out.reshape(T, H * hd)


def forward(path: str, tokens: list[int]) -> np.ndarray:
    m = GGUFModel(path)
    arch = m.arch
    if arch not in ("llama", "qwen2", "qwen3", "gemma3"):
        raise SystemExit(f"reference_forward: architecture {arch} not covered")
    L = int(m.hp("block_count"))
    E = int(m.hp("embedding_length"))
    H = int(m.hp("attention.head_count"))
    Hkv = int(m.hp("attention.head_count_kv", H))
    hd = int(m.hp("attention.key_length", E // H))
    n_rot = int(m.hp("rope.dimension_count", hd))
    eps = float(m.hp("attention.layer_norm_rms_epsilon"))
    base = float(m.hp("rope.freq_base", 10000.0))
    scale = 1.0
    if m.hp("rope.scaling.type", "none") == "linear":
        scale = 1.0 / float(m.hp("rope.scaling.factor", 1.0))
    window = int(m.hp("attention.sliding_window", 0) or 0)
    pattern = int(m.hp("attention.sliding_window_pattern", 6))

    tok = np.asarray(tokens, dtype=np.int64)
    pos = np.arange(len(tokens))
    embd = m.w("token_embd.weight")  # [V, E]
    x = embd[tok]
    if arch == "gemma3":
        x = x * math.sqrt(E)

    for il in range(L):
        p = f"blk.{il}."
        h = rms_norm(x, m.w(p + "attn_norm.weight"), eps)
        wq, wk = m.w(p + "attn_q.weight"), m.w(p + "attn_k.weight")
        if arch == "llama":
            wq, wk = unpermute(wq, H), unpermute(wk, Hkv)
        q = h @ wq.T
        k = h @ wk.T
        v = h @ m.w(p + "attn_v.weight").T
        if arch == "qwen2":
            q = q + m.w(p + "attn_q.bias")
            k = k + m.w(p + "attn_k.bias")
            v = v + m.w(p + "attn_v.bias")
        q = q.reshape(len(tokens), H, hd)
        k = k.reshape(len(tokens), Hkv, hd)
        v = v.reshape(len(tokens), Hkv, hd)
        if arch in ("qwen3", "gemma3"):
            q = rms_norm(q, m.w(p + "attn_q_norm.weight"), eps)
            k = rms_norm(k, m.w(p + "attn_k_norm.weight"), eps)
        local = arch == "gemma3" and (il + 1) % pattern != 0
        b, s = (10000.0, 1.0) if local else (base, scale)
        q = rotate_half_rope(q, pos, n_rot, b, s)
        k = rotate_half_rope(k, pos, n_rot, b, s)
        a = attention(q, k, v, 1.0 / math.sqrt(hd), window if local else None)
        o = a @ m.w(p + "attn_output.weight").T
        if arch == "gemma3":
            o = rms_norm(o, m.w(p + "post_attention_norm.weight"), eps)
        x = x + o

        h = rms_norm(x, m.w(p + "ffn_norm.weight"), eps)
        g = h @ m.w(p + "ffn_gate.weight").T
        u = h @ m.w(p + "ffn_up.weight").T
        act = gelu_tanh(g) if arch == "gemma3" else silu(g)
        o = (act * u) @ m.w(p + "ffn_down.weight").T
        if arch == "gemma3":
            o = rms_norm(o, m.w(p + "post_ffw_norm.weight"), eps)
        x = x + o

    x = rms_norm(x, m.w("output_norm.weight"), eps)
    head = m.w("output.weight") if m.has("output.weight") else embd
    return x @ head.T


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    logits = forward(a.model, [int(t) for t in a.tokens.split(",")])
    np.save(a.out, logits.astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
