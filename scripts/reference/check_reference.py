#!/usr/bin/env python3
"""Self-checks of the reference path (runs on CPU in a few seconds per tiny model).

For each GGUF given:
  oracle   HF (gguf_to_hf conversion, float64 and float32) vs gguf_numpy_ref.py, an independent
           float64 numpy forward over the tensors as stored, with llama.cpp's semantics;
  loader   llama / qwen2 / qwen3 / gemma3: transformers' own GGUF loader
           (from_pretrained(dir, gguf_file=...)) vs the conversion: every tensor compared, then
           logits (the HF-GGUF model gets the converted config: transformers' GGUF config
           mapping does not carry the Gemma 3 layer pattern / query_pre_attn_scalar);
  gdn      qwen35: HF's chunked (64) vs recurrent gated delta rule on the same weights.
Prints one line per check with the measured max relative error (max |a - b| / max |b|) and
exits non-zero when a bound is exceeded.

Usage: check_reference.py MODEL.gguf... [--tokens N] [--qwen35-tokens N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_numpy_ref  # noqa: E402
import gguf_to_hf  # noqa: E402
import golden_logits as gl  # noqa: E402
from make_goldens import fixed_tokens  # noqa: E402

BOUNDS = {"f64": 1e-6, "f32": 1e-4, "loader_tensor": 0.0, "loader_logits": 1e-5, "gdn": 1e-5}


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max() / np.abs(b).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--qwen35-tokens", type=int, default=136)
    a = ap.parse_args(argv)
    torch = gl.setup_torch("cpu")
    torch.set_num_threads(1)
    import transformers

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    bad = 0

    def report(name, check, value, bound, extra=""):
        nonlocal bad
        ok = value <= bound
        bad += not ok
        print(f"  {check:<28} {value:.3e}  (bound {bound:.0e}) {'ok' if ok else 'FAIL'} {extra}")

    for path in a.models:
        g = gguf_to_hf.GGUFFile(path)
        arch, vocab = g.arch, g.shape("token_embd.weight")[0]
        types = sorted(set(g.tensor_type(n) for n in g.tensors))
        n = a.qwen35_tokens if arch == "qwen35" else a.tokens
        tokens = fixed_tokens(n, vocab)
        print(f"{Path(path).name}: {arch}, types {','.join(types)}, vocab {vocab}, {n} tokens")
        with tempfile.TemporaryDirectory(prefix="anvil-check-") as tmp:
            cfg, _ = gguf_to_hf.convert(path, tmp, log=lambda s: None)
            if arch == "gemma3":
                print(f"  config: layer_types {cfg['layer_types']}, sliding_window {cfg['sliding_window']}, "
                      f"query_pre_attn_scalar {cfg['query_pre_attn_scalar']}")
            if arch == "qwen35":
                print(f"  config: layer_types {cfg['layer_types']}, rope {cfg['rope_parameters']}")
            ref = gguf_numpy_ref.reference(path, tokens)
            for dt in ("float64", "float32"):
                model, _ = gl.load_model(tmp, "cpu", dt, log=lambda s: None)
                gl.configure_gdn(model, "chunk")
                lg = gl.forward_logits(model, tokens, "cpu")
                top_ok = bool((lg.argmax(1) == ref.argmax(1)).all())
                report(path, f"HF {dt} vs numpy oracle", rel(lg, ref), BOUNDS["f64" if dt == "float64" else "f32"],
                       f"top1 {'identical' if top_ok else 'DIFFERENT'}, max|logit| {np.abs(ref).max():.3f}")
                bad += not top_ok
                if arch == "qwen35":
                    ref_g = gguf_numpy_ref.reference(path, tokens, l2norm="ggml")
                    gl.configure_gdn(model, "chunk", "ggml")
                    lgg = gl.forward_logits(model, tokens, "cpu")
                    report(path, f"HF {dt} vs oracle, ggml l2", rel(lgg, ref_g),
                           BOUNDS["f64" if dt == "float64" else "f32"],
                           f"(HF-l2 vs ggml-l2 oracles differ by {rel(ref, ref_g):.2e})")
                    gl.configure_gdn(model, "recurrent")
                    lr = gl.forward_logits(model, tokens, "cpu")
                    gl.configure_gdn(model, "chunk")
                    report(path, f"HF {dt} chunk vs recurrent", rel(lg, lr), BOUNDS["f64" if dt == "float64" else "gdn"])
                    if dt == "float32":
                        # incremental decode (recurrent + conv state), the last 8 tokens one by one
                        with torch.no_grad():
                            ids = torch.tensor([tokens])
                            out = model(input_ids=ids[:, :-8], use_cache=True)
                            rows = []
                            for t in range(n - 8, n):
                                out = model(input_ids=ids[:, t:t + 1], past_key_values=out.past_key_values,
                                            use_cache=True)
                                rows.append(out.logits[0, -1].double().numpy())
                        report(path, "HF f32 decode vs prefill", rel(np.stack(rows), lg[-8:]), BOUNDS["gdn"])
                if dt == "float32" and arch in ("llama", "qwen2", "qwen3", "gemma3"):
                    mine = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
                del model
            if arch in ("llama", "qwen2", "qwen3", "gemma3"):
                cls = getattr(transformers, cfg["architectures"][0])
                conf = transformers.AutoConfig.from_pretrained(tmp)
                p = Path(path).resolve()
                hfm = cls.from_pretrained(str(p.parent), gguf_file=p.name, config=conf, dtype=torch.float32,
                                          attn_implementation="eager").eval()
                theirs = {k: v.detach().double().numpy() for k, v in hfm.state_dict().items()}
                missing = sorted(set(mine) ^ set(theirs))
                worst, worst_name = 0.0, ""
                for k in mine:
                    if k in theirs:
                        dlt = float(np.abs(mine[k] - theirs[k]).max())
                        if dlt > worst:
                            worst, worst_name = dlt, k
                report(path, "tensors vs HF GGUF loader", worst, BOUNDS["loader_tensor"],
                       f"{len(mine)} tensors, key mismatch {missing or 'none'} {worst_name}")
                bad += bool(missing)
                lt = gl.forward_logits(hfm, tokens, "cpu")
                report(path, "logits vs HF GGUF loader", rel(lt, ref), BOUNDS["loader_logits"])
                del hfm
    print("check_reference: " + ("all checks passed" if not bad else f"{bad} check(s) FAILED"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
