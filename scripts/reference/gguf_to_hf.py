#!/usr/bin/env python3
"""GGUF -> Hugging Face model directory (config.json + model.safetensors, float32).

Independent of anvil's C++ code: tensors are read and dequantized with the PyPI `gguf`
package (gguf-py), renamed to the Hugging Face names of the matching transformers class,
and every transformation that llama.cpp's convert_hf_to_gguf.py applies is undone:

  llama   attn_q / attn_k rows (weight and bias) were permuted for the "normal" (GPT-J style,
          interleaved pairs) RoPE layout: LlamaModel.permute(w, n_head, n_head_kv) =
          reshape(n_head, 2, hd/2, ...).swapaxes(1, 2). Undone here with the inverse swap.
  qwen2, qwen3   NEOX RoPE, no permutation; qwen2 keeps q/k/v biases; qwen3 has q/k norms.
  gemma3  every tensor whose HF name ends in "norm.weight" was stored as (1 + w)
          (Gemma3RMSNorm computes x * (1 + w)); undone by subtracting 1. The embedding scale
          sqrt(hidden) is applied by the model at run time, not stored. Sliding-window layer
          pattern, the local RoPE base (10000) and the attention scale are not in the file:
          they are llama.cpp constants, reproduced here (see gemma3_config).
  qwen35  Qwen3.5 hybrid (Gated DeltaNet + gated attention): every "*norm.weight" except the
          gated linear-attention norm (linear_attn.norm) was stored as (1 + w); A_log was
          stored as ssm_a = -exp(A_log); dt_bias was renamed ssm_dt.bias; conv1d [C, 1, K] was
          squeezed to [C, K]; and, when linear_num_value_heads != linear_num_key_heads, the
          value heads were reordered from grouped-by-key-head ([k0v0 k0v1 .. k1v0 ..]) to
          tiled ([k0v0 k1v0 .. k0v1 k1v1 ..]) order in in_proj_qkv (V rows), in_proj_z,
          in_proj_b, in_proj_a, A_log, dt_bias, conv1d (V channels) and out_proj (columns).
          attn_q holds query and output gate interleaved per head ([q_h, gate_h] rows of
          head_dim each), which is exactly HF's q_proj layout: copied as is.

Usage:
  python gguf_to_hf.py MODEL.gguf OUT_DIR [--dtype float32]

Library use: `convert(gguf_path, out_dir)` returns (config_dict, info_dict).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf import GGUFReader, GGMLQuantizationType
    from gguf.quants import dequantize
except ImportError:  # pragma: no cover
    sys.exit("the PyPI package `gguf` is required (pip install gguf)")

SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "gemma3", "qwen35")

HF_CLASS = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "qwen35": "Qwen3_5ForCausalLM",
}

HF_MODEL_TYPE = {
    "llama": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma3": "gemma3_text",
    "qwen35": "qwen3_5_text",
}


# --------------------------------------------------------------------------- reading


class GGUFFile:
    """Typed access to a GGUF file's metadata and dequantized tensors."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.reader = GGUFReader(self.path, "r")
        self.arch = self.get_str("general.architecture")
        self.tensors = {t.name: t for t in self.reader.tensors}

    # ---- metadata
    def has(self, key: str) -> bool:
        return key in self.reader.fields

    def get(self, key: str, default=None):
        f = self.reader.fields.get(key)
        if f is None:
            return default
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = f.types[1] if len(f.types) > 1 else None
            if sub == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]
            vals = [f.parts[i].tolist()[0] for i in f.data]
            if sub == gguf.GGUFValueType.FLOAT32:
                vals = [float(str(np.float32(x))) for x in vals]
            return vals
        part = f.parts[f.data[0]]
        v = part.tolist()
        v = v[0] if isinstance(v, list) else v
        if vtype == gguf.GGUFValueType.FLOAT32:
            # shortest decimal that round-trips the stored float32 (1e-06, not 9.99999997e-07)
            v = float(str(np.float32(v)))
        return v

    def get_str(self, key: str, default=None):
        v = self.get(key, default)
        return v if v is None else str(v)

    def arch_key(self, suffix: str, default=None):
        return self.get(f"{self.arch}.{suffix}", default)

    def require(self, suffix: str):
        v = self.arch_key(suffix)
        if v is None:
            raise KeyError(f"{self.path}: missing required key {self.arch}.{suffix}")
        return v

    # ---- tensors
    def tensor_type(self, name: str) -> str:
        return self.tensors[name].tensor_type.name

    def shape(self, name: str) -> tuple[int, ...]:
        """Row-major (numpy / torch) shape: the reverse of GGUF's ne order."""
        return tuple(int(x) for x in reversed(self.tensors[name].shape.tolist()))

    def load(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        shape = self.shape(name)
        if t.tensor_type == GGMLQuantizationType.F32:
            arr = np.asarray(t.data, dtype=np.float32)
        else:
            arr = dequantize(t.data, t.tensor_type)
        arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32).reshape(shape))
        return arr


# --------------------------------------------------------------------------- helpers


def unpermute_llama(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's LlamaModel.permute (applied to HF q_proj/k_proj rows).

    permute: rows viewed as [n_head, 2, hd/2] -> swap(1, 2) -> [n_head, hd/2, 2].
    Its inverse views GGUF rows as [n_head, hd/2, 2] and swaps back.
    """
    rows = w.shape[0]
    hd = rows // n_head
    assert hd * n_head == rows and hd % 2 == 0, (w.shape, n_head)
    rest = w.shape[1:]
    return np.ascontiguousarray(w.reshape(n_head, hd // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape))


def untile_v_heads(t: np.ndarray, axis: int, num_k: int, num_v_per_k: int, head_dim: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf's _reorder_v_heads (grouped -> tiled).

    The converter viewed the axis as [num_k, num_v_per_k, head_dim] and swapped the first two;
    the stored order is therefore [num_v_per_k, num_k, head_dim]. Swap back.
    """
    axis = axis % t.ndim
    shape = list(t.shape)
    assert shape[axis] == num_k * num_v_per_k * head_dim, (shape, axis, num_k, num_v_per_k, head_dim)
    new_shape = shape[:axis] + [num_v_per_k, num_k, head_dim] + shape[axis + 1:]
    perm = list(range(len(new_shape)))
    perm[axis], perm[axis + 1] = perm[axis + 1], perm[axis]
    return np.ascontiguousarray(t.reshape(new_shape).transpose(perm).reshape(shape))


def _bool_pattern_from_period(n_layer: int, period: int) -> list[bool]:
    # llama.cpp hparams.set_swa_pattern(n): layer il is SWA iff n == 0 or il % n < n - 1
    # (n = 6: layers 5, 11, 17, ... are global; n = 1: all global; n = 0: all sliding)
    return [period == 0 or (il % period) < (period - 1) for il in range(n_layer)]


# --------------------------------------------------------------------------- config


def _common_config(g: GGUFFile, n_vocab: int, tied: bool) -> dict:
    n_embd = int(g.require("embedding_length"))
    n_head = int(g.require("attention.head_count"))
    n_head_kv = g.arch_key("attention.head_count_kv", n_head)
    if isinstance(n_head_kv, list):
        vals = set(int(x) for x in n_head_kv)
        if len(vals) != 1:
            raise ValueError(f"per-layer head_count_kv {n_head_kv} is not supported")
        n_head_kv = vals.pop()
    head_dim = int(g.arch_key("attention.key_length", n_embd // n_head))
    v_len = int(g.arch_key("attention.value_length", head_dim))
    if v_len != head_dim:
        raise ValueError(f"key_length {head_dim} != value_length {v_len} is not supported")
    n_ff = g.require("feed_forward_length")
    if isinstance(n_ff, list):
        vals = set(int(x) for x in n_ff)
        if len(vals) != 1:
            raise ValueError("per-layer feed_forward_length is not supported")
        n_ff = vals.pop()
    cfg = {
        "vocab_size": int(n_vocab),
        "hidden_size": n_embd,
        "intermediate_size": int(n_ff),
        "num_hidden_layers": int(g.require("block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(n_head_kv),
        "head_dim": head_dim,
        "rms_norm_eps": float(g.require("attention.layer_norm_rms_epsilon")),
        "max_position_embeddings": int(g.arch_key("context_length", 4096)),
        "tie_word_embeddings": bool(tied),
        "attention_dropout": 0.0,
        "use_cache": True,
        "torch_dtype": "float32",
        "dtype": "float32",
    }
    for key, hf in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                    ("padding_token_id", "pad_token_id")):
        v = g.get(f"tokenizer.ggml.{key}")
        if v is not None:
            cfg[hf] = int(v)
    return cfg


def _rope_params(g: GGUFFile, theta_default: float = 10000.0) -> dict:
    """rope_parameters (transformers >= 5) from {arch}.rope.* keys."""
    theta = float(g.arch_key("rope.freq_base", theta_default))
    p: dict = {"rope_type": "default", "rope_theta": theta}
    stype = g.arch_key("rope.scaling.type")
    factor = g.arch_key("rope.scaling.factor")
    if factor is None and g.arch_key("rope.scale_linear") is not None:
        stype, factor = "linear", g.arch_key("rope.scale_linear")
    if stype not in (None, "none") and factor not in (None, 0, 1, 1.0):
        if stype == "linear":
            p.update(rope_type="linear", factor=float(factor))
        elif stype == "yarn":
            p.update(rope_type="yarn", factor=float(factor))
            orig = g.arch_key("rope.scaling.original_context_length")
            if orig is not None:
                p["original_max_position_embeddings"] = int(orig)
            for k_gguf, k_hf in (("rope.scaling.yarn_beta_fast", "beta_fast"),
                                 ("rope.scaling.yarn_beta_slow", "beta_slow")):
                v = g.arch_key(k_gguf)
                if v is not None:
                    p[k_hf] = float(v)
        else:
            raise ValueError(f"rope scaling type {stype!r} is not supported")
    return p


def build_config(g: GGUFFile, n_vocab: int, tied: bool) -> dict:
    arch = g.arch
    cfg = _common_config(g, n_vocab, tied)
    cfg["architectures"] = [HF_CLASS[arch]]
    cfg["model_type"] = HF_MODEL_TYPE[arch]
    rope = _rope_params(g)
    n_layer = cfg["num_hidden_layers"]

    if arch in ("llama", "qwen2", "qwen3"):
        rope_dim = g.arch_key("rope.dimension_count")
        if rope_dim is not None and int(rope_dim) != cfg["head_dim"]:
            raise ValueError(f"partial rotary ({rope_dim} of {cfg['head_dim']}) is not supported for {arch}")
        cfg["rope_parameters"] = rope
        cfg["hidden_act"] = "silu"
        if arch == "llama":
            has_bias = g.tensors.get("blk.0.attn_q.bias") is not None
            cfg["attention_bias"] = has_bias
            cfg["mlp_bias"] = False
            cfg["pretraining_tp"] = 1
        elif arch == "qwen2":
            cfg["use_sliding_window"] = False
            cfg["sliding_window"] = None
            cfg["max_window_layers"] = n_layer
            cfg["layer_types"] = ["full_attention"] * n_layer
        else:  # qwen3
            cfg["attention_bias"] = g.tensors.get("blk.0.attn_q.bias") is not None
            cfg["use_sliding_window"] = False
            cfg["sliding_window"] = None
            cfg["max_window_layers"] = n_layer
            cfg["layer_types"] = ["full_attention"] * n_layer
        return cfg

    if arch == "gemma3":
        cfg.update(gemma3_config(g, cfg, rope))
        return cfg

    if arch == "qwen35":
        cfg.update(qwen35_config(g, cfg, rope))
        return cfg

    raise ValueError(f"unsupported architecture {arch!r}; supported: {', '.join(SUPPORTED_ARCHS)}")


def gemma3_config(g: GGUFFile, cfg: dict, rope_full: dict) -> dict:
    n_layer = cfg["num_hidden_layers"]
    sw = g.arch_key("attention.sliding_window")
    out: dict = {"hidden_activation": "gelu_pytorch_tanh", "attn_logit_softcapping": None}
    # final logit softcapping: written by the converter only when the HF config has one
    cap = g.arch_key("final_logit_softcapping")
    out["final_logit_softcapping"] = float(cap) if cap else None
    # layer pattern: llama.cpp hard-codes set_swa_pattern(6) for gemma3 (no key is written by
    # convert_hf_to_gguf for Gemma 3); honour an explicit pattern key when present (a period
    # or a per-layer bool array).
    pat = g.arch_key("attention.sliding_window_pattern")
    if sw is None or int(sw) == 0:
        is_swa = [False] * n_layer
    elif isinstance(pat, list):
        is_swa = [bool(x) for x in pat][:n_layer]
    elif pat is not None:
        is_swa = _bool_pattern_from_period(n_layer, int(pat))
    else:
        is_swa = _bool_pattern_from_period(n_layer, 6)
    out["layer_types"] = ["sliding_attention" if s else "full_attention" for s in is_swa]
    out["sliding_window"] = int(sw) if sw else None
    # RoPE: rope.freq_base is the global (full-attention) base; llama.cpp hard-codes the local
    # (sliding) base to 10000 with no scaling (rope_freq_base_train_swa) unless a
    # rope.freq_base_swa key exists.
    local_base = float(g.arch_key("rope.freq_base_swa", 10000.0))
    out["rope_parameters"] = {
        "full_attention": rope_full,
        "sliding_attention": {"rope_type": "default", "rope_theta": local_base},
    }
    # attention scale: llama.cpp uses 1/sqrt(n_embd/n_head) for the 27B (62 layers) and
    # 1/sqrt(head_dim) otherwise. HF scales by query_pre_attn_scalar**-0.5.
    scale = g.arch_key("attention.scale")
    if scale:
        qpas = 1.0 / (float(scale) ** 2)
    elif n_layer == 62:
        qpas = cfg["hidden_size"] / cfg["num_attention_heads"]
    else:
        qpas = float(cfg["head_dim"])
    out["query_pre_attn_scalar"] = qpas if qpas != int(qpas) else int(qpas)
    out["attention_bias"] = False
    out["use_bidirectional_attention"] = False
    return out


def qwen35_config(g: GGUFFile, cfg: dict, rope: dict) -> dict:
    n_layer = cfg["num_hidden_layers"]
    head_dim = cfg["head_dim"]
    interval = int(g.arch_key("full_attention_interval", 4))
    recurrent = g.arch_key("attention.recurrent_layers")  # per-layer bools, newer files
    if isinstance(recurrent, list):
        is_recr = [bool(x) for x in recurrent][:n_layer]
    else:
        is_recr = [((il + 1) % interval) != 0 for il in range(n_layer)]
    rope_dim = int(g.arch_key("rope.dimension_count", head_dim))
    sections = g.arch_key("rope.dimension_sections")
    num_k = int(g.require("ssm.group_count"))
    num_v = int(g.require("ssm.time_step_rank"))
    head_k = int(g.require("ssm.state_size"))
    inner = int(g.require("ssm.inner_size"))
    if inner % num_v:
        raise ValueError(f"ssm.inner_size {inner} is not a multiple of ssm.time_step_rank {num_v}")
    rope = dict(rope)
    rope["partial_rotary_factor"] = rope_dim / head_dim
    if sections:
        # text only: the three mrope sections all take the token position, so the section
        # split (and interleaving) does not change the result; keep them for completeness
        secs = [int(x) for x in sections][:3]
        if sum(secs) * 2 == rope_dim:
            rope["mrope_section"] = secs
            rope["mrope_interleaved"] = True
    return {
        "hidden_act": "silu",
        "attention_bias": False,
        "attn_output_gate": True,
        "layer_types": ["linear_attention" if r else "full_attention" for r in is_recr],
        "full_attention_interval": interval,
        "linear_conv_kernel_dim": int(g.require("ssm.conv_kernel")),
        "linear_key_head_dim": head_k,
        "linear_value_head_dim": inner // num_v,
        "linear_num_key_heads": num_k,
        "linear_num_value_heads": num_v,
        "partial_rotary_factor": rope_dim / head_dim,
        "rope_parameters": rope,
    }


# --------------------------------------------------------------------------- tensors

_COMMON_LAYER = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}

LAYER_MAP = {
    "llama": {**_COMMON_LAYER, "ffn_norm.weight": "post_attention_layernorm.weight"},
    "qwen2": {**_COMMON_LAYER, "ffn_norm.weight": "post_attention_layernorm.weight"},
    "qwen3": {**_COMMON_LAYER, "ffn_norm.weight": "post_attention_layernorm.weight"},
    "gemma3": {
        **_COMMON_LAYER,
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "ffn_norm.weight": "pre_feedforward_layernorm.weight",
        "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    },
    "qwen35": {
        **_COMMON_LAYER,
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "attn_qkv.weight": "linear_attn.in_proj_qkv.weight",
        "attn_gate.weight": "linear_attn.in_proj_z.weight",
        "ssm_conv1d.weight": "linear_attn.conv1d.weight",
        "ssm_dt.bias": "linear_attn.dt_bias",
        "ssm_a": "linear_attn.A_log",
        "ssm_beta.weight": "linear_attn.in_proj_b.weight",
        "ssm_alpha.weight": "linear_attn.in_proj_a.weight",
        "ssm_norm.weight": "linear_attn.norm.weight",
        "ssm_out.weight": "linear_attn.out_proj.weight",
    },
}

GLOBAL_MAP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}

_BLK = re.compile(r"^blk\.(\d+)\.(.+)$")


def convert_tensors(g: GGUFFile, cfg: dict, log=print) -> tuple[dict[str, np.ndarray], dict]:
    arch = g.arch
    n_layer = cfg["num_hidden_layers"]
    lmap = LAYER_MAP[arch]
    out: dict[str, np.ndarray] = {}
    extra: dict = {"tensor_types": {}, "skipped": []}

    for name in g.tensors:
        extra["tensor_types"][name] = g.tensor_type(name)
        if name in GLOBAL_MAP:
            hf = GLOBAL_MAP[name]
            w = g.load(name)
            if hf == "model.norm.weight" and arch in ("gemma3", "qwen35"):
                w = w - 1.0
            out[hf] = w
            continue
        if name == "rope_freqs.weight":
            # llama3-style per-dimension frequency divisors: theta_i / f_i; HF's "llama3" rope
            # type has no lossless inverse from this table, so it is applied by golden_logits
            # to the model's inv_freq buffer at load time.
            extra["rope_freqs"] = g.load(name).reshape(-1)
            continue
        m = _BLK.match(name)
        if not m:
            raise ValueError(f"unexpected tensor {name!r} in a {arch} file")
        il, suffix = int(m.group(1)), m.group(2)
        if il >= n_layer:
            # e.g. Qwen3.5 MTP / NextN blocks appended after the main stack: not part of the
            # causal LM forward
            extra["skipped"].append(name)
            continue
        if suffix not in lmap:
            raise ValueError(f"unexpected tensor {name!r} (no HF name for '{suffix}' in {arch})")
        hf = f"model.layers.{il}.{lmap[suffix]}"
        w = g.load(name)
        w = _undo(arch, cfg, suffix, w)
        out[hf] = w

    if "model.embed_tokens.weight" not in out:
        raise ValueError("token_embd.weight missing")
    if extra["skipped"]:
        log(f"gguf_to_hf: skipped {len(extra['skipped'])} tensors beyond block_count "
            f"(e.g. {extra['skipped'][0]})")
    return out, extra


def _undo(arch: str, cfg: dict, suffix: str, w: np.ndarray) -> np.ndarray:
    if arch == "llama":
        if suffix in ("attn_q.weight", "attn_q.bias"):
            return unpermute_llama(w, cfg["num_attention_heads"])
        if suffix in ("attn_k.weight", "attn_k.bias"):
            return unpermute_llama(w, cfg["num_key_value_heads"])
        return w

    if arch == "gemma3":
        # Gemma3Model.norm_shift: every HF "*norm.weight" stored + 1
        if suffix.endswith("norm.weight"):
            return w - 1.0
        return w

    if arch == "qwen35":
        # Qwen3NextModel.modify_tensors: "*norm.weight" except linear_attn.norm stored + 1
        if suffix.endswith("norm.weight") and suffix != "ssm_norm.weight":
            w = w - 1.0
        num_k = cfg["linear_num_key_heads"]
        num_v = cfg["linear_num_value_heads"]
        dk = cfg["linear_key_head_dim"]
        dv = cfg["linear_value_head_dim"]
        reordered = num_k != num_v
        r = num_v // num_k
        if suffix == "ssm_a":
            # ssm_a = -exp(A_log)
            if np.any(w >= 0):
                raise ValueError("ssm_a has non-negative entries: cannot be -exp(A_log)")
            w = np.log(-w.astype(np.float64)).astype(np.float32)
            if reordered:
                w = untile_v_heads(w, 0, num_k, r, 1)
            return w
        if suffix == "ssm_dt.bias":
            return untile_v_heads(w, 0, num_k, r, 1) if reordered else w
        if suffix == "ssm_conv1d.weight":
            # GGUF [C, K] (squeezed) -> HF [C, 1, K]
            if reordered:
                qk = 2 * num_k * dk
                w = np.concatenate([w[:qk], untile_v_heads(w[qk:], 0, num_k, r, dv)], axis=0)
            return np.ascontiguousarray(w[:, None, :])
        if suffix == "attn_qkv.weight":
            if reordered:
                qk = 2 * num_k * dk
                w = np.concatenate([w[:qk], untile_v_heads(w[qk:], 0, num_k, r, dv)], axis=0)
            return w
        if suffix == "attn_gate.weight":
            return untile_v_heads(w, 0, num_k, r, dv) if reordered else w
        if suffix in ("ssm_beta.weight", "ssm_alpha.weight"):
            return untile_v_heads(w, 0, num_k, r, 1) if reordered else w
        if suffix == "ssm_out.weight":
            return untile_v_heads(w, 1, num_k, r, dv) if reordered else w
        return w

    return w  # qwen2, qwen3: stored as in HF


# --------------------------------------------------------------------------- entry points


def convert(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, log=print) -> tuple[dict, dict]:
    g = GGUFFile(gguf_path)
    if g.arch not in SUPPORTED_ARCHS:
        raise ValueError(f"unsupported architecture {g.arch!r}; supported: {', '.join(SUPPORTED_ARCHS)}")
    n_vocab = g.shape("token_embd.weight")[0]
    tied = "output.weight" not in g.tensors
    cfg = build_config(g, n_vocab, tied)
    tensors, extra = convert_tensors(g, cfg, log=log)

    n_tok = g.get("tokenizer.ggml.tokens")
    if n_tok is not None and len(n_tok) != n_vocab:
        log(f"gguf_to_hf: note: {len(n_tok)} tokenizer tokens, {n_vocab} embedding rows")
    if "rope_freqs" in extra:
        if g.arch != "llama":
            raise ValueError("rope_freqs.weight is only supported for llama")
        cfg["anvil_rope_freqs"] = [float(x) for x in extra["rope_freqs"]]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    with open(out / "config.json", "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    types = sorted(set(extra["tensor_types"].values()))
    info = {"arch": g.arch, "hf_class": HF_CLASS[g.arch], "n_tensors": len(tensors),
            "gguf_tensor_types": types, "skipped": extra["skipped"]}
    log(f"gguf_to_hf: {g.arch} -> {HF_CLASS[g.arch]}: {len(tensors)} tensors "
        f"(GGUF types {', '.join(types)}), vocab {n_vocab}, tied={tied} -> {out}")
    return cfg, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("out_dir")
    a = ap.parse_args(argv)
    convert(a.gguf, a.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
