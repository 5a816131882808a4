#!/usr/bin/env python3
"""Reference greedy tokens and perplexity for the real public models (scripts/fetch-models).

For each model the GGUF that fetch-models verified is converted by gguf_to_hf.py (dequantized
with gguf-py, every convert_hf_to_gguf transformation undone) and run with transformers in
float32, eager attention, exact float32 matmuls (golden_logits.load_model). Outputs, in
--out-dir (tests/data/golden/real by default):

  <name>.json        the model file and its sha256; the greedy case: prompt text, the ids fed
                     (BOS as the GGUF asks), 32 greedy ids (no stop at end-of-generation), the
                     text they decode to, and the smallest top-1 margin over the 32 steps; the
                     perplexity case: the text file and its sha256, the exact method, the figures
  <name>.ppl-tokens.npy   int32: the ids fed to the model for perplexity, chunk after chunk
                     (n_chunks x ctx), BOS already in place of each chunk's first token

Tokenization is the GGUF's own tokenizer as llama.cpp (and anvil) apply it: transformers builds
a tokenizer from the GGUF (gguf_file=), and where its GGUF loader does not reproduce the
tokenizer.ggml.pre pre-tokenizer that is fixed here (see PRE_TOKENIZER_FIX). Checked on
GPL-3 against anvil's own models::Tokenizer: identical ids for both models.

Perplexity method (= `anvil perplexity` default = llama.cpp's llama-perplexity): the text
(add_special=False, parse_special=False) is cut into non-overlapping chunks of ctx = 512
tokens; the first n_chunks = 8 are used; when the GGUF says add_bos_token each chunk's first
token is replaced by BOS; each chunk is one forward pass from an empty cache. Two figures from
the same passes, both exp(mean NLL) over the tokens scored:
  second_half     tokens at chunk positions ctx/2+1 .. ctx-1 (255 per chunk), each given every
                  earlier token of its chunk: anvil perplexity -f TEXT --ctx 512 --chunks 8
                  (or --tokens <the .npy, flattened> --ctx 512)
  all_after_first every token at chunk positions 1 .. ctx-1 (511 per chunk):
                  anvil perplexity --tokens <the .npy, flattened> --ctx 512 --stride 512

Usage (CPU is enough: ~2 min per model on 2 cores, most of it converting):
  python scripts/reference/real_model_goldens.py [--models-dir DIR] [--out-dir DIR]
         [--hf-cache DIR] [--only gemma3-270m|smollm2-135m] [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_to_hf  # noqa: E402
import golden_logits  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# name -> GGUF file name in the fetch-models cache (scripts/fetch-models pins the sha256).
MODELS = {
    "gemma3-270m": "gemma-3-270m-q4_k_m.gguf",
    "smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf",
}

PROMPT = "Once upon a time, in a small village by the sea,"
N_GENERATE = 32
PPL_TEXT = "/usr/share/common-licenses/GPL-3"
PPL_CTX = 512
PPL_CHUNKS = 8


def _smollm_pre_tokenizer():
    # llama.cpp's "smollm" pre-tokenizer splits every digit on its own (regex "\p{N}") before the
    # GPT-2 regex, as SmolLM2's tokenizer.json does (Digits(individual_digits) then ByteLevel).
    # transformers' GGUF loader keeps only ByteLevel, which turns "\n\n  0" into
    # [ĊĊĠ, Ġ, 0] instead of [ĊĊĠĠ, 0] (19 differences in GPL-3).
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])


PRE_TOKENIZER_FIX = {"smollm": _smollm_pre_tokenizer}
PRE_TOKENIZER_AS_LOADED = {"default"}  # SPM (Gemma): transformers' loader is exact


def models_dir() -> Path:
    if os.environ.get("ANVIL_MODELS_DIR"):
        return Path(os.environ["ANVIL_MODELS_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "anvil" / "models"


def load_tokenizer(gguf_path: Path, g: gguf_to_hf.GGUFFile):
    from transformers import AutoTokenizer

    pre = g.get_str("tokenizer.ggml.pre", "default")
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    if pre in PRE_TOKENIZER_FIX:
        tok.backend_tokenizer.pre_tokenizer = PRE_TOKENIZER_FIX[pre]()
    elif pre not in PRE_TOKENIZER_AS_LOADED:
        raise SystemExit(f"{gguf_path.name}: tokenizer.ggml.pre={pre!r}: not checked against llama.cpp here")
    return tok, pre


def encode(tok, text: str, add_special: bool) -> list[int]:
    return list(tok(text, add_special_tokens=add_special)["input_ids"])


def greedy_case(model, tok, g, log) -> dict:
    import torch

    add_bos = bool(g.get("tokenizer.ggml.add_bos_token", False))
    bos = int(g.get("tokenizer.ggml.bos_token_id"))
    prompt_ids = encode(tok, PROMPT, add_special=True)
    if add_bos != (prompt_ids[0] == bos):
        raise SystemExit(f"tokenizer BOS handling disagrees with add_bos_token={add_bos}: {prompt_ids}")
    gen = golden_logits.greedy(model, prompt_ids, N_GENERATE, "cpu")
    # The same ids from one teacher-forced pass (no cache): the top-1 margins say how robust they are.
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + gen[:-1]]), use_cache=False).logits[0]
    rows = logits[len(prompt_ids) - 1:].double()
    if rows.argmax(-1).tolist() != gen:
        raise SystemExit("greedy with a KV cache and one full pass disagree")
    top2 = rows.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    specials = set(tok.all_special_ids)
    if any(t in specials for t in gen):
        raise SystemExit(f"the greedy continuation holds a special token ({gen}): choose another prompt")
    full = tok.decode(prompt_ids + gen, skip_special_tokens=True)
    head = tok.decode(prompt_ids, skip_special_tokens=True)
    if not full.startswith(head):
        raise SystemExit("decode(prompt + generated) does not start with decode(prompt)")
    text = full[len(head):]
    log(f"  greedy: {prompt_ids} -> {gen}\n  text: {text!r}\n  smallest top-1 margin {min(margins):.4f}")
    return {
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "prompt_ids_note": ("tokenizer.encode(prompt, add_special=True, parse_special=True) with the GGUF's "
                            f"tokenizer: add_bos_token={add_bos}"),
        "n_generate": N_GENERATE,
        "generated_ids": gen,
        "generated_text": text,
        "top1_margins": [round(m, 5) for m in margins],
        "min_top1_margin": round(min(margins), 5),
    }


def perplexity_case(model, tok, g, log) -> tuple[dict, np.ndarray]:
    import torch

    text = Path(PPL_TEXT).read_bytes()
    ids = encode(tok, text.decode("utf-8"), add_special=False)
    add_bos = bool(g.get("tokenizer.ggml.add_bos_token", False))
    bos = int(g.get("tokenizer.ggml.bos_token_id"))
    n_chunks = min(PPL_CHUNKS, len(ids) // PPL_CTX)
    fed = np.array(ids[:n_chunks * PPL_CTX], dtype=np.int32).reshape(n_chunks, PPL_CTX)
    if add_bos:
        fed[:, 0] = bos
    nll = np.zeros((n_chunks, PPL_CTX - 1))  # nll[c, j-1]: -log p(token j | tokens 0..j-1 of chunk c)
    for c in range(n_chunks):
        t0 = time.time()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor(fed[c:c + 1].astype(np.int64)), use_cache=False).logits[0]
        lp = torch.log_softmax(logits.double(), dim=-1)
        nll[c] = -lp[:-1].gather(1, torch.tensor(fed[c, 1:].astype(np.int64))[:, None])[:, 0].numpy()
        log(f"  chunk {c + 1}/{n_chunks}: {time.time() - t0:.1f} s, running second-half ppl "
            f"{math.exp(nll[:c + 1, PPL_CTX // 2:].mean()):.4f}")
    half = nll[:, PPL_CTX // 2:]  # token positions ctx/2+1 .. ctx-1
    figures = {
        "second_half": {"perplexity": float(np.exp(half.mean())), "n_scored": int(half.size),
                        "mean_nll": float(half.mean())},
        "all_after_first": {"perplexity": float(np.exp(nll.mean())), "n_scored": int(nll.size),
                            "mean_nll": float(nll.mean())},
        "per_chunk_second_half": [float(np.exp(r.mean())) for r in half],
    }
    log(f"  perplexity: second half {figures['second_half']['perplexity']:.4f}, "
        f"all after first {figures['all_after_first']['perplexity']:.4f}")
    case = {
        "text_file": PPL_TEXT,
        "text_sha256": hashlib.sha256(text).hexdigest(),
        "text_tokens": len(ids),
        "ctx": PPL_CTX,
        "n_chunks": n_chunks,
        "bos_replaces_first_token": add_bos,
        "tokens_file": None,  # filled by the caller
        "method": (
            "text tokenized with the GGUF's tokenizer (add_special=False, parse_special=False); chunks c = 0.."
            "n_chunks-1 of ctx tokens: tokens[c*ctx:(c+1)*ctx], first token replaced by BOS when "
            "bos_replaces_first_token; each chunk one forward pass from an empty cache; NLL of the token at "
            "chunk position j given positions 0..j-1; perplexity = exp(mean NLL) over the scored tokens. "
            "second_half scores positions ctx/2+1..ctx-1 (llama.cpp's llama-perplexity; anvil perplexity's "
            "default); all_after_first scores positions 1..ctx-1."),
        "anvil_args": {
            "second_half_file": ["-f", PPL_TEXT, "--ctx", str(PPL_CTX), "--chunks", str(n_chunks)],
            "second_half_tokens": ["--tokens", "<tokens_file, flattened>", "--ctx", str(PPL_CTX)],
            "all_after_first_tokens": ["--tokens", "<tokens_file, flattened>", "--ctx", str(PPL_CTX),
                                       "--stride", str(PPL_CTX)],
        },
        **figures,
    }
    return case, fed


def run_model(name: str, gguf_path: Path, out_dir: Path, hf_cache: Path | None, log) -> None:
    t_start = time.time()
    g = gguf_to_hf.GGUFFile(gguf_path)
    tok, pre = load_tokenizer(gguf_path, g)
    hf_dir = (hf_cache / name) if hf_cache else None
    if hf_dir is None or not (hf_dir / "model.safetensors").exists():
        import tempfile

        if hf_dir is None:
            hf_dir = Path(tempfile.mkdtemp(prefix="anvil-real-"))
        gguf_to_hf.convert(gguf_path, hf_dir, log=log)
    model, cfg = golden_logits.load_model(hf_dir, "cpu", "float32", log=log)
    greedy = greedy_case(model, tok, g, log)
    ppl, fed = perplexity_case(model, tok, g, log)
    tokens_file = f"{name}.ppl-tokens.npy"
    np.save(out_dir / tokens_file, fed)
    ppl["tokens_file"] = tokens_file
    doc = {
        "model": name,
        "model_file": gguf_path.name,
        "model_sha256": golden_logits.sha256_file(gguf_path),
        "model_bytes": gguf_path.stat().st_size,
        "arch": g.arch,
        "tokenizer": {"model": g.get_str("tokenizer.ggml.model"), "pre": pre,
                      "add_bos_token": bool(g.get("tokenizer.ggml.add_bos_token", False)),
                      "bos_token_id": int(g.get("tokenizer.ggml.bos_token_id")),
                      "loaded_by": "transformers AutoTokenizer(gguf_file=)" +
                                   (f", pre-tokenizer replaced for {pre!r}" if pre in PRE_TOKENIZER_FIX else "")},
        "reference": {"hf_class": cfg["architectures"][0], "dtype": "float32", "device": "cpu",
                      "attn_implementation": "eager", "weights": "gguf_to_hf.py (gguf-py dequantization)",
                      "versions": golden_logits.versions()},
        "greedy": greedy,
        "perplexity": ppl,
    }
    with open(out_dir / f"{name}.json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    log(f"{name}: wrote {out_dir / (name + '.json')} and {tokens_file} in {time.time() - t_start:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=None, help="fetch-models cache (default as fetch-models)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "tests/data/golden/real")
    ap.add_argument("--hf-cache", type=Path, default=None, help="keep/reuse converted HF dirs here (NAME/ below)")
    ap.add_argument("--only", choices=sorted(MODELS), action="append")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    mdir = a.models_dir or models_dir()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    for name in a.only or sorted(MODELS):
        path = mdir / MODELS[name]
        if not path.exists():
            raise SystemExit(f"{path} is missing: run scripts/fetch-models")
        print(f"{name}: {path}", flush=True)
        run_model(name, path, a.out_dir, a.hf_cache, lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
