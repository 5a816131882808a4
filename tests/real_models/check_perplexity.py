"""Perplexity of a real model (scripts/fetch-models) against HF transformers' on the same GGUF.

The golden (tests/data/golden/real/<name>.json, "perplexity"; scripts/reference/real_model_goldens.py)
is llama.cpp's method, which is `anvil perplexity`'s default: GPL-3 tokenized by the GGUF's
tokenizer, non-overlapping chunks of 512 tokens (the first 8), each chunk's first token replaced
by BOS when the model adds one, each chunk a fresh forward pass, exp(mean NLL) over chunk
positions 257..511. Tolerance: 1% relative.

Default mode runs `anvil perplexity -m MODEL -f /usr/share/common-licenses/GPL-3 --ctx 512
--chunks 8` (anvil's own tokenizer included). When that fails, the same chunks are scored from
the stored ids (<name>.ppl-tokens.npy, the ids HF was fed, via --tokens) to tell a tokenizer
difference from a model one. Without the text file (or with a different GPL-3), the ids are used.

--strided: scores every token after the first of each chunk (`--tokens <ids> --ctx 512
--stride 512`, windows = the same chunks) against the golden's all_after_first figure.

Both modes use the CPU backend with its default (tuned) kernels and the user's tuner cache: the
figure a user gets (Gemma 3 270M: 0.03% from HF with the Q8_K-activation kernels; the first run
on a machine also tunes the matmuls, about a minute on 2 cores).

With --backend cuda the GPU's figure must be within 0.5% of HF's (the CPU's is 0.03% from it, so
this also bounds GPU vs CPU); without a usable GPU the check skips (exit 77).

Usage: check_perplexity.py NAME [--strided] [--backend cpu|cuda]
"""
import hashlib
import re
import sys
from pathlib import Path

import numpy as np

import real_model_common as rm

TOLERANCE = 0.01
GPU_TOLERANCE = 0.005


def perplexity(cmd: list[str], args: list[str], backend: str) -> tuple[float, int]:
    out = rm.run_anvil(cmd + args + ["--backend", backend, "-q"])
    m = re.search(r"perplexity: ([0-9.eE+-]+|nan|inf) \((\d+) tokens scored", out)
    if not m:
        rm.fail(f"no 'perplexity: X (N tokens scored' line in: {out!r}")
    return float(m.group(1)), int(m.group(2))


def main() -> int:
    name = sys.argv[1]
    strided = "--strided" in sys.argv[2:]
    backend = rm.backend_from_argv(sys.argv)
    tolerance = TOLERANCE if backend == "cpu" else GPU_TOLERANCE
    golden = rm.load_golden(name)
    p = golden["perplexity"]
    model = str(rm.model_path(golden))
    rm.skip_unless_backend(backend, model)
    cmd = rm.anvil_command("perplexity") + ["-m", model]
    ids = np.load(rm.GOLDEN_DIR / p["tokens_file"])
    assert ids.shape == (p["n_chunks"], p["ctx"]), ids.shape
    token_args = ["--tokens", ",".join(map(str, ids.reshape(-1).tolist())), "--ctx", str(p["ctx"])]
    text = Path(p["text_file"])
    text_ok = text.is_file() and hashlib.sha256(text.read_bytes()).hexdigest() == p["text_sha256"]

    if strided:
        runs = [("ids, strided", token_args + ["--stride", str(p["ctx"])], p["all_after_first"])]
    elif text_ok:
        runs = [("text file", ["-f", str(text), "--ctx", str(p["ctx"]), "--chunks", str(p["n_chunks"])],
                 p["second_half"]),
                ("stored ids", token_args, p["second_half"])]  # only run when the first fails
    else:
        print(f"{name}: {text} absent or not the file the golden was made from: scoring the stored ids")
        runs = [("stored ids", token_args, p["second_half"])]

    for i, (what, args, ref) in enumerate(runs):
        got, n = perplexity(cmd, args, backend)
        rel = abs(got - ref["perplexity"]) / ref["perplexity"]
        good = rel <= tolerance and n == ref["n_scored"]
        print(f"{name}: {what}: anvil {got:.4f} over {n} tokens, HF {ref['perplexity']:.4f} over "
              f"{ref['n_scored']}: relative difference {rel:.2%} (tolerance {tolerance:.1%}, {backend})")
        if good and i == 0:
            return 0
        if i == 0:
            print(f"FAIL: {name}: {what}")
        elif good:
            print(f"{name}: the stored ids pass, the text file does not: anvil's tokenization of "
                  f"{text} differs from the golden's")
        else:
            print(f"{name}: the stored ids fail too: the difference is in the model, not the tokenizer")
    return 1


if __name__ == "__main__":
    sys.exit(main())
