"""--help on every program and subcommand exits 0 and mentions its options; --version works."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tool_util import anvil, mtm, run  # noqa: E402


def help_of(args: list[str], *needles: str) -> None:
    p = run(args)
    text = p.stdout + p.stderr
    for n in needles:
        assert n in text, f"{' '.join(args)}: '{n}' not in help:\n{text}"


def main() -> int:
    help_of([anvil(), "--help"], "inspect", "quantize", "--version")
    help_of([anvil(), "inspect", "--help"], "FILE", "--json", "--tensor", "--dequant", "--max-array", "--threads")
    help_of([anvil(), "quantize", "--help"], "IN", "OUT", "TYPE", "--threads", "--pure", "Q4_K_M", "Q8_0")
    help_of([mtm(), "--help"], "--preset", "--arch", "--out", "--type", "--seed", "--std", "--threads",
            "--layers", "--embd", "--ff", "--heads", "--kv-heads", "--head-dim", "--rope-dim", "--rope-sections",
            "--ssm-state", "--ssm-k-heads", "--ssm-v-heads", "--full-attn-interval", "--sliding-window",
            "--swa-pattern", "--vocab", "--vocab-dir", "--synthetic-vocab", "--dry-run",
            "qwen3-4b", "qwen35-4b", "qwen25-7b", "tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-qwen35",
            "tiny-gemma3")
    help_of([mtm(), "--list-presets"], "tiny-gemma3", "qwen25-7b")
    v = run([anvil(), "--version"]).stdout
    assert v.startswith("anvil ") and any(ch.isdigit() for ch in v), v
    run([mtm(), "--version"])
    print("help ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
