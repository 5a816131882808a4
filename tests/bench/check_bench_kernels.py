"""bench-kernels runs end to end on a small shape: every type has a row per candidate, the JSON
matches the markdown, and each (op, shape) has exactly one winner, the fastest."""
import json
import os
import subprocess
import sys
import tempfile

TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]


def main() -> int:
    exe = os.path.join(os.environ["ANVIL_BIN_DIR"], "bench-kernels")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        p = subprocess.run([exe, "--rows", "16", "--cols", "512", "--threads", "2", "--json", out],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        report = json.load(open(out))
    assert report["copy_bandwidth_gbps"] > 0
    rows = report["rows"]
    shapes = {}
    for r in rows:
        assert r["time_us"] > 0 and r["gbps"] > 0, r
        shapes.setdefault((r["op"], r["shape"]), []).append(r)
    for t in TYPES:
        assert ("dequantize", f"{t} 16x512") in shapes, f"no row for {t}"
    for key, rs in shapes.items():
        winners = [r for r in rs if r["winner"]]
        assert len(winners) == 1, key
        assert winners[0]["time_us"] == min(r["time_us"] for r in rs), key
        for r in rs:
            assert f"| {r['op']} | {r['shape']} | {r['candidate']} |" in p.stdout, r
    bad = subprocess.run([exe, "--cols", "100"], capture_output=True, text=True)
    assert bad.returncode == 2 and "multiple of 256" in bad.stderr, bad.stderr
    print(f"ok: {len(rows)} rows, {len(shapes)} shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
