#!/usr/bin/env python3
"""An independent float64 numpy forward pass over the GGUF tensors *as stored*.

It follows llama.cpp's reading of the file (the semantics anvil implements), not the HF
layout, and shares nothing with gguf_to_hf.py except gguf-py's dequantization:
  - llama: "normal" RoPE (rotate interleaved pairs 2i, 2i+1) on the permuted attn_q/attn_k;
  - qwen2/qwen3/gemma3: NEOX RoPE (pairs i, i + d/2); qwen35: NEOX on the first n_rot dims
    (text-only multi-section RoPE: every section takes the token position);
  - gemma3: stored norm weights used as is (they already hold 1 + w), x * sqrt(n_embd) after
    the embedding, GELU(tanh) gate, post-attention / post-FFN norms, sliding-window layers
    (every 6th layer global) with RoPE base 10000, global layers with rope.freq_base,
    attention scale 1/sqrt(head_dim);
  - qwen35: norms used as stored (1 + w) except ssm_norm; attn_q rows are [q_h | gate_h] per
    head, output * sigmoid(gate); Gated DeltaNet with ssm_a used directly
    (g = softplus(alpha + dt_bias) * ssm_a), depthwise causal conv over [C, K], SiLU, L2-norm
    of q and k, q / sqrt(d_k), q/k heads *tiled* over the value heads (value head j uses key
    head j % n_k, ggml_repeat order), token-by-token delta rule, gated RMSNorm with ssm_norm,
    ssm_out.
It exists to validate the conversion (HF on converted weights must match it) and as a
readable statement of the math anvil's CPU engine has to reproduce.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_to_hf import GGUFFile  # noqa: E402  (reader + gguf-py dequantization only)


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.logaddexp(0.0, x)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(x, pos, n_rot, base, mode):
    """x [T, H, D]; rotates the first n_rot dims. mode 'normal' (pairs 2i,2i+1) or 'neox'."""
    x = x.copy()
    half = n_rot // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)
    ang = pos[:, None].astype(np.float64) * inv[None, :]  # [T, half]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if mode == "normal":
        a, b = x[..., 0:n_rot:2].copy(), x[..., 1:n_rot:2].copy()
        x[..., 0:n_rot:2] = a * c - b * s
        x[..., 1:n_rot:2] = a * s + b * c
    else:
        a, b = x[..., :half].copy(), x[..., half:n_rot].copy()
        x[..., :half] = a * c - b * s
        x[..., half:n_rot] = a * s + b * c
    return x


def attention(q, k, v, scale, window=None):
    """q [T, H, D], k/v [T, Hkv, D]; causal; query head h uses kv head h // (H / Hkv)."""
    T, H, D = q.shape
    Hkv = k.shape[1]
    grp = H // Hkv
    out = np.empty((T, H, v.shape[2]))
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    mask = j > i
    if window:
        mask = mask | (i - j >= window)
    for h in range(H):
        kh, vh = k[:, h // grp], v[:, h // grp]
        s = (q[:, h] @ kh.T) * scale
        s = np.where(mask, -np.inf, s)
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        out[:, h] = p @ vh
    return out


class Ref:
    def __init__(self, path, l2norm="hf"):
        self.l2norm = l2norm
        self.g = GGUFFile(path)
        self.arch = self.g.arch
        self._cache = {}

    def w(self, name):
        if name not in self._cache:
            self._cache[name] = self.g.load(name).astype(np.float64)
        return self._cache[name]

    def has(self, name):
        return name in self.g.tensors

    def hp(self, key, default=None):
        return self.g.arch_key(key, default)

    def forward(self, tokens):
        A = self.arch
        d = int(self.hp("embedding_length"))
        n_layer = int(self.hp("block_count"))
        H = int(self.hp("attention.head_count"))
        Hkv = int(self.hp("attention.head_count_kv", H))
        hd = int(self.hp("attention.key_length", d // H))
        eps = float(self.hp("attention.layer_norm_rms_epsilon"))
        base = float(self.hp("rope.freq_base", 10000.0))
        n_rot = int(self.hp("rope.dimension_count", hd))
        T = len(tokens)
        pos = np.arange(T)
        x = self.w("token_embd.weight")[np.asarray(tokens)]
        if A == "gemma3":
            x = x * math.sqrt(d)
            sw = int(self.hp("attention.sliding_window", 0) or 0)
        for il in range(n_layer):
            b = f"blk.{il}."
            h = rms(x, self.w(b + "attn_norm.weight"), eps)
            recurrent = A == "qwen35" and (il + 1) % int(self.hp("full_attention_interval", 4)) != 0
            if recurrent:
                o = self.gdn(b, h, eps)
            else:
                o = self.attn(b, h, pos, H, Hkv, hd, n_rot, base, eps, il, sw if A == "gemma3" else 0)
            if A == "gemma3":
                o = rms(o, self.w(b + "post_attention_norm.weight"), eps)
            x = x + o
            if A == "qwen35":
                h = rms(x, self.w(b + "post_attention_norm.weight"), eps)
            else:
                h = rms(x, self.w(b + "ffn_norm.weight"), eps)
            gate = h @ self.w(b + "ffn_gate.weight").T
            up = h @ self.w(b + "ffn_up.weight").T
            act = gelu_tanh(gate) if A == "gemma3" else silu(gate)
            f = (act * up) @ self.w(b + "ffn_down.weight").T
            if A == "gemma3":
                f = rms(f, self.w(b + "post_ffw_norm.weight"), eps)
            x = x + f
        x = rms(x, self.w("output_norm.weight"), eps)
        out_w = self.w("output.weight") if self.has("output.weight") else self.w("token_embd.weight")
        logits = x @ out_w.T
        cap = self.hp("final_logit_softcapping")
        if A == "gemma3" and cap:
            logits = np.tanh(logits / cap) * cap
        return logits

    def attn(self, b, h, pos, H, Hkv, hd, n_rot, base, eps, il, sw):
        A = self.arch
        T = h.shape[0]
        qf = h @ self.w(b + "attn_q.weight").T
        k = h @ self.w(b + "attn_k.weight").T
        v = h @ self.w(b + "attn_v.weight").T
        if self.has(b + "attn_q.bias"):
            qf = qf + self.w(b + "attn_q.bias")
            k = k + self.w(b + "attn_k.bias")
            v = v + self.w(b + "attn_v.bias")
        gate = None
        if A == "qwen35":
            qf = qf.reshape(T, H, 2 * hd)
            q, gate = qf[..., :hd], qf[..., hd:].reshape(T, H * hd)
        else:
            q = qf.reshape(T, H, hd)
        k = k.reshape(T, Hkv, hd)
        v = v.reshape(T, Hkv, hd)
        if self.has(b + "attn_q_norm.weight"):
            q = rms(q, self.w(b + "attn_q_norm.weight"), eps)
            k = rms(k, self.w(b + "attn_k_norm.weight"), eps)
        window = None
        if A == "gemma3" and sw:
            pat = self.hp("attention.sliding_window_pattern", 6)
            period = int(pat) if not isinstance(pat, list) else None
            is_swa = bool(pat[il]) if isinstance(pat, list) else (period == 0 or il % period < period - 1)
            if is_swa:
                window = sw
                base = float(self.hp("rope.freq_base_swa", 10000.0))
        mode = "normal" if A == "llama" else "neox"
        q = rope(q, pos, n_rot, base, mode)
        k = rope(k, pos, n_rot, base, mode)
        o = attention(q, k, v, 1.0 / math.sqrt(hd), window).reshape(T, H * hd)
        if gate is not None:
            o = o * sigmoid(gate)
        return o @ self.w(b + "attn_output.weight").T

    def gdn(self, b, h, eps):
        T = h.shape[0]
        nk = int(self.hp("ssm.group_count"))
        nv = int(self.hp("ssm.time_step_rank"))
        dk = int(self.hp("ssm.state_size"))
        dv = int(self.hp("ssm.inner_size")) // nv
        qkv = h @ self.w(b + "attn_qkv.weight").T  # [T, 2 nk dk + nv dv]
        z = (h @ self.w(b + "attn_gate.weight").T).reshape(T, nv, dv)
        beta = sigmoid(h @ self.w(b + "ssm_beta.weight").T)  # [T, nv]
        alpha = h @ self.w(b + "ssm_alpha.weight").T
        g = softplus(alpha + self.w(b + "ssm_dt.bias")) * self.w(b + "ssm_a")  # log decay <= 0
        cw = self.w(b + "ssm_conv1d.weight")  # [C, K]
        K = cw.shape[1]
        xp = np.concatenate([np.zeros((K - 1, qkv.shape[1])), qkv], axis=0)
        conv = np.zeros_like(qkv)
        for j in range(K):
            conv += xp[j:j + T] * cw[:, j]
        conv = silu(conv)
        q = conv[:, :nk * dk].reshape(T, nk, dk)
        k = conv[:, nk * dk:2 * nk * dk].reshape(T, nk, dk)
        v = conv[:, 2 * nk * dk:].reshape(T, nv, dv)
        # L2 norm: HF / FLA write x / sqrt(sum x^2 + 1e-6); llama.cpp's ggml_l2_norm is
        # x / max(|x|, eps) with eps = rms eps. For the tiny synthetic models (|q|^2 ~ 5e-3)
        # the two differ by ~1e-4 relative in the logits; for real models far less.
        if self.l2norm == "ggml":
            q = q / np.maximum(np.sqrt((q * q).sum(-1, keepdims=True)), eps)
            k = k / np.maximum(np.sqrt((k * k).sum(-1, keepdims=True)), eps)
        else:
            q = q / np.sqrt((q * q).sum(-1, keepdims=True) + 1e-6)
            k = k / np.sqrt((k * k).sum(-1, keepdims=True) + 1e-6)
        q = q / math.sqrt(dk)
        out = np.zeros((T, nv, dv))
        for j in range(nv):
            kh = j % nk  # tiled: value head j reads key head j mod n_k (GGUF order)
            S = np.zeros((dk, dv))
            for t in range(T):
                S *= math.exp(g[t, j])
                kt = k[t, kh]
                delta = (v[t, j] - kt @ S) * beta[t, j]
                S += np.outer(kt, delta)
                out[t, j] = q[t, kh] @ S
        o = rms(out, self.w(b + "ssm_norm.weight"), eps) * silu(z)
        return o.reshape(T, nv * dv) @ self.w(b + "ssm_out.weight").T


def reference(path, tokens, l2norm="hf"):
    return Ref(path, l2norm).forward(tokens)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()
    toks = [int(t) for t in a.tokens.split(",")]
    lg = reference(a.gguf, toks)
    print("top1:", ",".join(str(int(i)) for i in lg.argmax(1)))
    if a.out:
        np.save(a.out, lg.astype(np.float32))
