"""bench-e2e runs end to end on a tiny model: a pp, a tg and a batched tg row, positive rates,
JSON and markdown agree; a missing model is a clear error."""
import json
import os
import subprocess
import sys
import tempfile


def main() -> int:
    bindir = os.environ["ANVIL_BIN_DIR"]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m.gguf")
        subprocess.run([os.path.join(bindir, "make-test-model"), "-p", "tiny-qwen3", "-t", "Q8_0", "-q",
                        "--synthetic-vocab", "512", "-o", model], check=True, capture_output=True)
        out = os.path.join(tmp, "r.json")
        p = subprocess.run([os.path.join(bindir, "bench-e2e"), "-m", model, "-p", "16", "-n", "4", "-b", "1",
                            "-b", "3", "-r", "1", "-t", "2", "--json", out],
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, XDG_CACHE_HOME=tmp))
        assert p.returncode == 0, p.stderr
        r = json.load(open(out))
        tests = {x["test"]: x for x in r["results"]}
        assert set(tests) == {"pp16", "tg4", "tg4@3"}, tests.keys()
        for name, x in tests.items():
            assert x["tokens_per_s"] > 0, x
            assert f"| {name} |" in p.stdout, p.stdout
        bad = subprocess.run([os.path.join(bindir, "bench-e2e"), "-m", os.path.join(tmp, "nope.gguf")],
                             capture_output=True, text=True)
        assert bad.returncode != 0 and "nope.gguf" in bad.stderr, bad.stderr
    print("ok:", {k: round(v["tokens_per_s"], 1) for k, v in tests.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
