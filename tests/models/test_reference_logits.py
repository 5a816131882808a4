"""`anvil logits` against the independent numpy forward pass (reference_forward.py) on the tiny
F32 models of every dense architecture: max |anvil - ref| / max |ref| <= 1e-4 over all 40
positions, and the same top-1 token wherever the reference's top-1 margin is clear. The stand-in
until the Hugging Face golden files (scripts/reference) are checked in; keep it beside them.

usage: test_reference_logits.py [PRESET...]   (default: tiny-llama tiny-qwen2 tiny-qwen3 tiny-gemma3)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import tool_util as tu  # noqa: E402  (skips with 77 without numpy/gguf)
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_forward  # noqa: E402

N_TOKENS = 40
TOLERANCE = 1e-4


def lcg_tokens(n: int, vocab: int, seed: int = 20240607) -> list[int]:
    """The token sequence scripts/reference/make_goldens.py uses."""
    x, out = seed, []
    for _ in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out.append((x >> 8) % min(vocab, 32000))
    return out


def check(preset: str, d: str) -> bool:
    model = tu.make_model(os.path.join(d, f"{preset}.gguf"), "--preset", preset, "--type", "F32")
    vocab = int(gguf_vocab(model))
    tokens = lcg_tokens(N_TOKENS, vocab)
    out = os.path.join(d, f"{preset}.npy")
    tu.run([tu.anvil(), "logits", "-q", "--threads", "2", "-m", model,
            "--tokens", ",".join(map(str, tokens)), "--out", out])
    got = np.load(out).astype(np.float64)
    ref = reference_forward.forward(model, tokens)
    if got.shape != ref.shape:
        print(f"FAIL {preset}: shape {got.shape}, reference {ref.shape}")
        return False
    rel = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    srt = np.sort(ref, axis=-1)
    clear = (srt[:, -1] - srt[:, -2]) > 1e-3 * np.max(np.abs(ref))
    top1_ok = bool(np.all(np.argmax(got, -1)[clear] == np.argmax(ref, -1)[clear]))
    ok = rel <= TOLERANCE and top1_ok
    print(f"{'ok  ' if ok else 'FAIL'} {preset}: max rel error {rel:.3e} (bound {TOLERANCE}), "
          f"top-1 agrees on {int(clear.sum())} clear rows: {top1_ok}")
    return ok


def gguf_vocab(path: str) -> int:
    r = tu.gguf.GGUFReader(path)
    t = next(t for t in r.tensors if t.name == "token_embd.weight")
    return int(t.shape[1])


def main(argv: list[str]) -> int:
    tu.need_vocab_dir()
    presets = argv or ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3"]
    d = tu.tmpdir()
    results = [check(p, d) for p in presets]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
