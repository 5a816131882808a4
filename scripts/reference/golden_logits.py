#!/usr/bin/env python3
"""Reference logits for a GGUF model with Hugging Face transformers.

The GGUF is converted by gguf_to_hf.py (dequantized with the PyPI `gguf` package, every
convert_hf_to_gguf transformation undone), loaded with the architecture's transformers class
in float32 (or float64) with eager attention, and run on the token ids exactly as given (no
BOS is added).

Usage:
  golden_logits.py MODEL.gguf --tokens 1,2,3 --out logits.npy
                   [--device cuda|cpu] [--dtype float32|float64]
                   [--positions all|last|auto|0,5,9] [--generate N [--gen-out ids.json]]
                   [--hf-dir DIR] [--gdn recurrent|chunk]

Writes float32 logits [n_positions, vocab] as .npy (all positions by default) and prints the
top-1 id of each written row and a checksum (float64 sum of the written logits).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_to_hf  # noqa: E402


def parse_tokens(s: str) -> list[int]:
    if os.path.isfile(s):
        text = Path(s).read_text()
        if s.endswith(".json"):
            v = json.loads(text)
            return [int(x) for x in (v["tokens"] if isinstance(v, dict) else v)]
        s = text
    return [int(x) for x in s.replace("\n", ",").replace(" ", ",").split(",") if x.strip()]


def parse_positions(spec: str, n: int, chunk: int = 64) -> list[int]:
    """all | last | auto | comma list (negative indices count from the end)."""
    if spec == "all":
        return list(range(n))
    if spec == "last":
        return [n - 1]
    if spec == "auto":
        # a few rows that cover the start, every 16th token, both sides of each chunk boundary
        # (chunked prefill of 64) and the end: enough to catch position-dependent bugs while
        # keeping golden files small
        s = {0, 1, n - 1}
        s.update(range(0, n, 16))
        s.update(p for c in range(chunk, n, chunk) for p in (c - 1, c))
        return sorted(p for p in s if 0 <= p < n)
    out = []
    for x in spec.split(","):
        p = int(x)
        p = p + n if p < 0 else p
        if not 0 <= p < n:
            raise ValueError(f"position {x} out of range for {n} tokens")
        out.append(p)
    return out


def setup_torch(device: str):
    import torch

    # exact float32 matmuls: no TF32 anywhere (the tolerance is 1e-4 relative)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    except AttributeError:
        pass
    torch.set_float32_matmul_precision("highest")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    return torch


def load_model(hf_dir: str | os.PathLike, device: str = "cpu", dtype: str = "float32", log=print):
    """Loads a gguf_to_hf directory with the class named in its config; strict about keys."""
    torch = setup_torch(device)
    import transformers

    cfg = json.loads((Path(hf_dir) / "config.json").read_text())
    cls_name = cfg["architectures"][0]
    cls = getattr(transformers, cls_name, None)
    if cls is None:
        raise SystemExit(f"transformers {transformers.__version__} has no {cls_name}")
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    model, info = cls.from_pretrained(str(hf_dir), dtype=tdtype, attn_implementation="eager",
                                      output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    # a tied lm_head is reported by some versions as missing even though it is tied
    if cfg.get("tie_word_embeddings") and bad.get("missing_keys"):
        bad["missing_keys"] = [k for k in bad["missing_keys"] if k != "lm_head.weight"]
        if not bad["missing_keys"]:
            del bad["missing_keys"]
    if bad:
        raise SystemExit(f"loading {hf_dir} with {cls_name}: {bad}")
    model = model.to(device).eval()
    if cfg.get("tie_word_embeddings"):
        assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    if cfg.get("anvil_rope_freqs"):
        f = torch.tensor(cfg["anvil_rope_freqs"], dtype=torch.float32, device=device)
        n = 0
        for mod in model.modules():
            if hasattr(mod, "inv_freq") and mod.inv_freq.shape == f.shape:
                mod.inv_freq = mod.inv_freq / f.to(mod.inv_freq.dtype)
                if hasattr(mod, "original_inv_freq"):
                    mod.original_inv_freq = mod.inv_freq.clone()
                n += 1
        if n == 0:
            raise SystemExit("rope_freqs present but no rotary embedding with a matching inv_freq")
        log(f"golden_logits: applied rope_freqs (llama3-style factors) to {n} rotary module(s)")
    return model, cfg


_GDN_ORIG: dict = {}


def configure_gdn(model, mode: str = "chunk", l2norm: str = "hf") -> str | None:
    """Qwen3.5 only: pin the Gated DeltaNet prefill to HF's pure-PyTorch reference code.

    mode "chunk": torch_chunk_gated_delta_rule (chunks of 64, what HF runs for a prefill);
    mode "recurrent": torch_recurrent_gated_delta_rule (token by token) for the prefill too.
    Optional fast kernels (flash-linear-attention, causal-conv1d, hub kernels) are bypassed
    either way, so the reference never depends on what happens to be installed. Handles both
    layouts of the modeling code: module-level functions (transformers >= ~5.2x) and per-layer
    attributes (self.chunk_gated_delta_rule, self.causal_conv1d_fn; earlier 5.x).
    l2norm "hf": q/k L2-normalised as HF/FLA do, x * rsqrt(sum(x^2) + 1e-6); "ggml": as
    llama.cpp's ggml_l2_norm does, x / max(sqrt(sum(x^2)), rms_norm_eps). They differ by
    ~1e-4 relative in the logits of the tiny synthetic models (whose q/k norms are small).
    Returns a description, or None for models without Gated DeltaNet layers.
    """
    import inspect

    layers = [m for m in model.modules() if type(m).__name__.endswith("GatedDeltaNet")]
    if not layers:
        return None
    mod = sys.modules[type(layers[0]).__module__]
    if mod not in _GDN_ORIG:
        _GDN_ORIG[mod] = {n: getattr(mod, n) for n in ("torch_chunk_gated_delta_rule",
                                                       "torch_recurrent_gated_delta_rule",
                                                       "causal_conv1d_fn", "causal_conv1d_update", "l2norm")
                          if hasattr(mod, n)}
    orig = _GDN_ORIG[mod]
    if "torch_chunk_gated_delta_rule" not in orig or "torch_recurrent_gated_delta_rule" not in orig:
        raise SystemExit(f"{mod.__name__}: no torch_*_gated_delta_rule functions: unknown transformers layout")
    chunk = inspect.unwrap(orig["torch_chunk_gated_delta_rule"])
    rec = inspect.unwrap(orig["torch_recurrent_gated_delta_rule"])

    def rec_as_chunk(*args, **kw):
        kw.pop("chunk_size", None)
        kw.pop("cu_seqlens", None)
        return rec(*args, **kw)

    def strip_cu(fn):
        def call(*args, **kw):
            kw.pop("cu_seqlens", None)
            return fn(*args, **kw)
        return call

    prefill = strip_cu(chunk) if mode == "chunk" else rec_as_chunk
    mod.torch_chunk_gated_delta_rule = prefill
    mod.torch_recurrent_gated_delta_rule = strip_cu(rec)
    for n in ("causal_conv1d_fn", "causal_conv1d_update"):
        if n in orig and callable(orig[n]):
            setattr(mod, n, strip_cu(inspect.unwrap(orig[n])))
    if "l2norm" not in orig:
        raise SystemExit(f"{mod.__name__}: no l2norm function: unknown transformers layout")
    if l2norm == "ggml":
        import torch

        eps = float(model.config.rms_norm_eps)

        def ggml_l2norm(x, dim=-1, eps_unused=None, **kw):
            return x / torch.clamp(torch.sqrt((x * x).sum(dim=dim, keepdim=True)), min=eps)

        mod.l2norm = ggml_l2norm
    else:
        mod.l2norm = orig["l2norm"]
    for m in layers:  # older layout: implementations chosen per layer in __init__
        if hasattr(m, "chunk_gated_delta_rule"):
            m.chunk_gated_delta_rule = prefill
        if hasattr(m, "recurrent_gated_delta_rule"):
            m.recurrent_gated_delta_rule = strip_cu(rec)
        if hasattr(m, "causal_conv1d_fn"):
            m.causal_conv1d_fn = None  # None selects the nn.Conv1d path in that layout
        if hasattr(m, "causal_conv1d_update"):
            m.causal_conv1d_update = None
    return (f"{len(layers)} GatedDeltaNet layers, prefill: "
            f"{'torch_chunk_gated_delta_rule (chunk 64)' if mode == 'chunk' else 'torch_recurrent_gated_delta_rule'}"
            f", conv: torch, q/k l2norm: "
            f"{'x*rsqrt(sum x^2 + 1e-6) (HF)' if l2norm == 'hf' else 'x/max(|x|, rms_eps) (ggml)'}")


def forward_logits(model, tokens: list[int], device: str) -> np.ndarray:
    import torch

    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=False)
    return out.logits[0].to(torch.float64).cpu().numpy()


def greedy(model, tokens: list[int], n_new: int, device: str, stop_ids=()) -> list[int]:
    import torch

    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    new: list[int] = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        for _ in range(n_new):
            nxt = int(out.logits[0, -1].argmax())
            new.append(nxt)
            if nxt in stop_ids:
                break
            out = model(input_ids=torch.tensor([[nxt]], device=device), past_key_values=out.past_key_values,
                        use_cache=True)
    return new


def top1_margin(logits: np.ndarray) -> float:
    """Smallest gap between the best and second-best logit over the rows (how robust top-1 is)."""
    part = np.sort(np.asarray(logits, np.float64), axis=1)[:, -2:]
    return float((part[:, 1] - part[:, 0]).min())


def versions() -> dict:
    import importlib.metadata as md

    v = {}
    for p in ("transformers", "torch", "gguf", "numpy", "safetensors"):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            v[p] = None
    return v


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def reference_logits(gguf_path, tokens, device="cpu", dtype="float32", hf_dir=None, gdn=None, log=print,
                     l2norm="hf"):
    """Converts, loads, runs. Returns (logits float64 [n_tokens, vocab], model, cfg, info)."""
    tmp = None
    if hf_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="anvil-ref-")
        hf_dir = tmp.name
    if not (Path(hf_dir) / "model.safetensors").exists():
        gguf_to_hf.convert(gguf_path, hf_dir, log=log)
    model, cfg = load_model(hf_dir, device, dtype, log=log)
    if tmp is not None:
        tmp.cleanup()
    vocab = cfg["vocab_size"]
    if any(t < 0 or t >= vocab for t in tokens):
        raise SystemExit(f"token ids must be in [0, {vocab})")
    info = {"hf_class": cfg["architectures"][0], "dtype": dtype, "device": device}
    gdn_desc = configure_gdn(model, gdn or "chunk", l2norm)
    if gdn_desc is not None:
        info["gated_deltanet"] = gdn_desc
    logits = forward_logits(model, tokens, device)
    return logits, model, cfg, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("--tokens", required=True, help="comma-separated ids, or a file (.json list / text)")
    ap.add_argument("--out", required=True, help="output .npy (float32 [n_positions, vocab])")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cuda falls back to cpu when absent")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--positions", default="all", help="all | last | auto | comma list of indices")
    ap.add_argument("--generate", type=int, default=0, metavar="N", help="also N greedy tokens")
    ap.add_argument("--gen-out", help="where to write the generated ids (default: OUT with .gen.json)")
    ap.add_argument("--stop-at-eos", action="store_true", help="stop generating at the eos id")
    ap.add_argument("--hf-dir", help="keep / reuse the converted model here instead of a temp dir")
    ap.add_argument("--gdn", choices=["chunk", "recurrent"], default="chunk",
                    help="qwen35: prefill with HF's chunked (default) or recurrent gated delta rule")
    ap.add_argument("--l2norm", choices=["hf", "ggml"], default="hf",
                    help="qwen35 q/k L2 norm: HF's x*rsqrt(sum+1e-6) (default) or ggml's x/max(|x|,eps)")
    ap.add_argument("--json", help="also write a JSON sidecar here")
    a = ap.parse_args(argv)

    if a.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            a.device = "cpu"
            print("golden_logits: CUDA not available, using cpu")
    tokens = parse_tokens(a.tokens)
    logits, model, cfg, info = reference_logits(a.gguf, tokens, a.device, a.dtype, a.hf_dir, a.gdn,
                                                l2norm=a.l2norm)
    pos = parse_positions(a.positions, len(tokens))
    sel = logits[pos].astype(np.float32)
    np.save(a.out, sel)
    top1 = [int(x) for x in sel.argmax(axis=1)]
    checksum = float(sel.astype(np.float64).sum())
    print(f"golden_logits: {info['hf_class']} {a.dtype} on {a.device}: {len(tokens)} tokens, "
          f"wrote {sel.shape} to {a.out}")
    print(f"top1: {','.join(map(str, top1))}")
    print(f"checksum: {checksum:.9e}  max|logit|: {float(np.abs(sel).max()):.6f}")
    meta = {"tokens": tokens, "positions": pos, "top1": top1, "top1_margin": top1_margin(sel), "checksum": checksum,
            "max_abs_logit": float(np.abs(sel).max()), **info, "versions": versions()}
    if a.generate:
        stop = (cfg["eos_token_id"],) if a.stop_at_eos and cfg.get("eos_token_id") is not None else ()
        gen = greedy(model, tokens, a.generate, a.device, stop)
        gen_out = a.gen_out or (str(Path(a.out).with_suffix("")) + ".gen.json")
        Path(gen_out).write_text(json.dumps({"prompt": tokens, "generated": gen}) + "\n")
        meta["generated"] = gen
        print(f"generated: {','.join(map(str, gen))}  -> {gen_out}")
    if a.json:
        Path(a.json).write_text(json.dumps(meta, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
