#!/usr/bin/env python3
"""Golden logits for a set of GGUF models (the batch the GPU machine runs).

For each model file given (directories are searched for *.gguf), with a fixed token sequence
(40 tokens for dense architectures, 136 for qwen35 so that a 64-token chunked prefill spans
three chunks), writes into --out-dir:
  <model-name>.logits.npy   float32 [n_positions, vocab] (rows at `positions`)
  <model-name>.json         tokens, positions, top-1 ids, model sha256, max |logit|,
                            checksum, versions of transformers / torch / gguf, device, ...

The token sequence is a fixed LCG stream (see fixed_tokens) reduced modulo min(vocab, 32000),
so every model with a vocab of at least 32000 gets the same ids; the sidecar records them.

Usage:
  make_goldens.py MODEL_OR_DIR... --out-dir tests/data/golden [--device cuda] [--positions auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden_logits as gl  # noqa: E402
import gguf_to_hf  # noqa: E402

N_TOKENS = {"qwen35": 136}
N_TOKENS_DEFAULT = 40


def fixed_tokens(n: int, vocab: int, seed: int = 20240607) -> list[int]:
    """Numerical Recipes LCG (x = 1664525 x + 1013904223 mod 2^32), high bits mod min(vocab, 32000)."""
    m = min(vocab, 32000)
    x = seed & 0xFFFFFFFF
    out = []
    for _ in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out.append((x >> 8) % m)
    return out


def find_models(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.glob("*.gguf")))
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"no such file or directory: {p}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="GGUF files or directories holding them")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--positions", default="auto", help="all | last | auto | comma list (see golden_logits)")
    ap.add_argument("--n-tokens", type=int, help="override the token count for every model")
    ap.add_argument("--generate", type=int, default=0, help="also N greedy tokens per model")
    ap.add_argument("--l2norm", choices=["hf", "ggml"], default="hf",
                    help="qwen35 q/k L2 norm convention (see golden_logits.configure_gdn)")
    a = ap.parse_args(argv)

    if a.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            print("make_goldens: CUDA not available, using cpu")
            a.device = "cpu"
    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = find_models(a.models)
    if not models:
        raise SystemExit("no .gguf files found")
    failures = 0
    for path in models:
        t0 = time.time()
        name = path.name[:-5] if path.name.endswith(".gguf") else path.name
        try:
            g = gguf_to_hf.GGUFFile(path)
            arch = g.arch
            vocab = g.shape("token_embd.weight")[0]
            ttypes = sorted(set(g.tensor_type(n) for n in g.tensors))
            del g
            n = a.n_tokens or N_TOKENS.get(arch, N_TOKENS_DEFAULT)
            tokens = fixed_tokens(n, vocab)
            logits, model, cfg, info = gl.reference_logits(path, tokens, a.device, a.dtype, None, None,
                                                           log=lambda s: print("  " + s), l2norm=a.l2norm)
            pos = gl.parse_positions(a.positions, n)
            sel = logits[pos].astype(np.float32)
            np.save(out_dir / f"{name}.logits.npy", sel)
            meta = {
                "model_file": path.name,
                "model_sha256": gl.sha256_file(path),
                "model_bytes": path.stat().st_size,
                "arch": arch,
                "gguf_tensor_types": ttypes,
                "tokens": tokens,
                "positions": pos,
                "logits_file": f"{name}.logits.npy",
                "logits_shape": list(sel.shape),
                "top1": [int(x) for x in sel.argmax(axis=1)],
                "top1_margin": gl.top1_margin(sel),
                "max_abs_logit": float(np.abs(sel).max()),
                "checksum_f64_sum": float(sel.astype(np.float64).sum()),
                **info,
                "versions": gl.versions(),
                "device_name": _device_name(a.device),
                "tolerances": {"F32": "max relative error <= 1e-4",
                               "quantized": "<= 1e-3 vs this reference (same dequantized weights), identical top-1"},
                "hf_config": {k: v for k, v in cfg.items() if k != "anvil_rope_freqs"},
            }
            if a.generate:
                meta["generated"] = gl.greedy(model, tokens, a.generate, a.device)
            (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
            print(f"{name}: {arch} {','.join(ttypes)} {n} tokens -> {sel.shape} "
                  f"max|logit| {meta['max_abs_logit']:.4f} top1[-1] {meta['top1'][-1]} ({time.time() - t0:.1f}s)")
            del model
        except Exception as e:  # keep going: report every model
            failures += 1
            print(f"{name}: FAILED: {type(e).__name__}: {e}")
    print(f"make_goldens: {len(models) - failures} written, {failures} failed")
    return 1 if failures else 0


def _device_name(device: str) -> str:
    import platform

    if device == "cuda":
        import torch
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
