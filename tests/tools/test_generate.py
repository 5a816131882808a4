"""anvil generate and anvil chat on tiny models: exit 0, text on stdout, speed lines on stderr,
-n respected, greedy and seeded sampling reproducible, different seeds free to differ; chat answers
one reply per stdin line (non-interactive) with the model's template."""

from __future__ import annotations

import os
import re
import sys

import tool_util as tu


def generate(model: str, *extra: str) -> tuple[str, str]:
    p = tu.run([tu.anvil(), "generate", "--threads", "2", "-m", model, "-p", "The quick brown fox", *extra])
    return p.stdout, p.stderr


def main() -> int:
    tu.need_vocab_dir()
    d = tu.tmpdir()
    model = tu.make_model(os.path.join(d, "llama.gguf"), "--preset", "tiny-llama", "--type", "Q4_K_M")

    out, err = generate(model, "-n", "12", "--temp", "0")
    assert out.strip(), f"no text generated:\n{err}"
    m_prompt = re.search(r"prompt: (\d+) tokens in [\d.]+ s \(([\d.]+) tokens/s\)", err)
    m_gen = re.search(r"generation: (\d+) tokens in [\d.]+ s \(([\d.]+) tokens/s\)", err)
    assert m_prompt and m_gen, f"speed lines missing:\n{err}"
    assert int(m_prompt.group(1)) >= 4, err
    n_gen = int(m_gen.group(1))
    assert 1 <= n_gen <= 12 and (n_gen == 12 or "end of generation" in err), err
    assert "loaded" in err, err
    print(f"ok   generate: {n_gen} tokens, stdout {out.strip()[:40]!r}")

    again, _ = generate(model, "-n", "12", "--temp", "0", "-q")
    assert again == out, f"greedy output differs between runs:\n{out!r}\n{again!r}"
    s1, _ = generate(model, "-n", "16", "--temp", "1.0", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", "7", "-q")
    s2, _ = generate(model, "-n", "16", "--temp", "1.0", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", "7", "-q")
    assert s1 == s2, "same seed, different text"
    print("ok   generate: greedy and seeded runs reproducible")
    quiet_out, quiet_err = generate(model, "-n", "3", "--temp", "0", "-q")
    assert "tokens/s" not in quiet_err, quiet_err

    p = tu.run([tu.anvil(), "generate", "-q", "-m", model, "-p", "x", "--temp", "-1"], check=False)
    assert p.returncode == 2, p.stderr  # a usage error: out of range
    p = tu.run([tu.anvil(), "generate", "-q", "-m", model, "-p", "x", "-n", "5000", "--ctx", "64"], check=False)
    assert p.returncode == 1 and "context" in p.stderr, p.stderr
    print("ok   generate: bad options rejected")

    chat = tu.make_model(os.path.join(d, "chat.gguf"), "--preset", "tiny-qwen3", "--type", "Q8_0",
                         "--synthetic-vocab", "2000")
    p = subprocess_run_with_input([tu.anvil(), "chat", "--threads", "2", "-m", chat, "--temp", "0", "-n", "6",
                                   "--system", "Be brief."], "Hello there\n\nHow are you?\n")
    assert p.returncode == 0, p.stderr
    turns = re.findall(r"\[(\d+) prompt tokens, (\d+) generated", p.stderr)
    assert len(turns) == 2, f"want 2 replies (the empty line is skipped):\n{p.stderr}"
    assert all(1 <= int(g) <= 6 for _, g in turns), p.stderr
    print(f"ok   chat: 2 turns {turns}")
    return 0


def subprocess_run_with_input(args: list[str], text: str):
    import subprocess
    return subprocess.run(args, input=text, capture_output=True, text=True, timeout=300, errors="replace")


if __name__ == "__main__":
    sys.exit(main())
