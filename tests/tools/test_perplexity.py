"""anvil perplexity against perplexity computed here from the independent numpy forward pass
(tests/models/reference_forward.py), in both modes on token ids: llama.cpp chunks (second half of
each chunk scored) and strided windows; and a text file run (-f) prints a finite perplexity."""

from __future__ import annotations

import math
import os
import re
import sys

import tool_util as tu
from tool_util import np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import reference_forward  # noqa: E402


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def expected_ppl(model: str, ids: list[int], ctx: int, stride: int | None) -> tuple[float, int]:
    windows = []
    if stride is None:
        for b in range(0, len(ids) - ctx + 1, ctx):
            windows.append((b, b + ctx, b + ctx // 2 + 1))
    else:
        prev_end, b = 0, 0
        while b + 1 < len(ids):
            e = min(b + ctx, len(ids))
            windows.append((b, e, max(prev_end, b + 1)))
            prev_end = e
            if e == len(ids):
                break
            b += stride
    nll, n = 0.0, 0
    for b, e, s in windows:
        lp = log_softmax(reference_forward.forward(model, ids[b:e]))
        for t in range(s, e):
            nll -= lp[t - b - 1, ids[t]]
            n += 1
    return math.exp(nll / n), n


def run_ppl(model: str, *args: str) -> tuple[float, int]:
    p = tu.run([tu.anvil(), "perplexity", "-q", "--threads", "2", "-m", model, *args])
    m = re.search(r"perplexity: ([\d.]+) \((\d+) tokens scored", p.stdout)
    assert m, p.stdout
    return float(m.group(1)), int(m.group(2))


def main() -> int:
    tu.need_vocab_dir()
    d = tu.tmpdir()
    model = tu.make_model(os.path.join(d, "q3.gguf"), "--preset", "tiny-qwen3", "--type", "F32")
    rng = np.random.default_rng(5)
    ids = [int(t) for t in rng.integers(300, 50000, size=40)]
    tok = ",".join(map(str, ids))
    for stride in (None, 8):
        args = ["--tokens", tok, "--ctx", "16"] + ([] if stride is None else ["--stride", str(stride)])
        got, n_got = run_ppl(model, *args)
        want, n_want = expected_ppl(model, ids, 16, stride)
        mode = "chunks" if stride is None else f"stride {stride}"
        assert n_got == n_want, f"{mode}: scored {n_got} tokens, want {n_want}"
        assert abs(got - want) / want < 1e-4, f"{mode}: perplexity {got}, reference {want}"
        print(f"ok   perplexity ({mode}): {got:.4f} vs reference {want:.4f}, {n_got} tokens")

    text = os.path.join(d, "text.txt")
    with open(text, "w") as f:
        f.write("The quick brown fox jumps over the lazy dog. " * 20)
    ppl, n = run_ppl(model, "-f", text, "--ctx", "32", "--chunks", "2")
    assert math.isfinite(ppl) and ppl > 1 and n == 2 * (32 - 1 - 16), (ppl, n)
    print(f"ok   perplexity -f: {ppl:.3f} over {n} tokens")
    p = tu.run([tu.anvil(), "perplexity", "-q", "-m", model, "--tokens", "1,2,3", "--ctx", "16"], check=False)
    assert p.returncode == 1 and "too few" in p.stderr, p.stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
