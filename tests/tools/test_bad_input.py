"""Bad input never crashes the tools: a clear one-line error and exit code 1 (failure) or 2
(usage), for missing files, non-GGUF and truncated or corrupted files, unknown tensors, types,
presets and architectures, and contradictory options."""

from __future__ import annotations

import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tool_util import anvil, gguf, make_model, mtm, np, run, tmpdir  # noqa: E402


def expect_fail(args: list[str], codes=(1, 2), needle: str | None = None) -> str:
    p = run(args, check=False, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode in codes, f"{args}: exit {p.returncode} not in {codes}\n{out}"
    for bad in ("Segmentation", "Aborted", "terminate called", "core dumped", "Traceback"):
        assert bad not in out, f"{args}: {bad}\n{out}"
    err_lines = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
    assert err_lines, f"{args}: no error line on stderr:\n{p.stderr}"
    if needle:
        assert needle.lower() in p.stderr.lower(), f"{args}: '{needle}' not in:\n{p.stderr}"
    return err_lines[0]


def main() -> int:
    d = tmpdir()
    good = make_model(os.path.join(d, "good.gguf"), "--preset", "tiny-qwen3", "--synthetic-vocab", "512",
                      "--type", "Q8_0", "--layers", "1")
    data = open(good, "rb").read()

    # missing file, a directory, not a GGUF, empty file
    print(expect_fail([anvil(), "inspect", os.path.join(d, "nope.gguf")], (1,), "no such file"))
    expect_fail([anvil(), "inspect", d], (1,))
    txt = os.path.join(d, "text.gguf")
    open(txt, "w").write("this is not a gguf file at all\n" * 10)
    print(expect_fail([anvil(), "inspect", txt], (1,)))
    empty = os.path.join(d, "empty.gguf")
    open(empty, "wb").close()
    expect_fail([anvil(), "inspect", empty], (1,))

    # truncated at many points: header, metadata, tensor infos, data
    trunc = os.path.join(d, "trunc.gguf")
    for cut in (3, 8, 20, 100, 1000, len(data) // 3, len(data) // 2, len(data) - 1):
        open(trunc, "wb").write(data[:cut])
        expect_fail([anvil(), "inspect", trunc], (1,))
    print(expect_fail([anvil(), "quantize", trunc, os.path.join(d, "x.gguf"), "Q4_0"], (1,)))

    # random byte corruption in the header region: an error or a clean success, never a crash
    rng = random.Random(1234)
    corrupt = os.path.join(d, "corrupt.gguf")
    for _ in range(40):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(0, min(len(buf), 4096))
            buf[pos] = rng.randrange(256)
        open(corrupt, "wb").write(buf)
        p = run([anvil(), "inspect", corrupt, "--json"], check=False, timeout=120)
        assert p.returncode in (0, 1), f"corrupt file: exit {p.returncode}\n{p.stderr[-2000:]}"

    # unknown tensor: suggestions
    print(expect_fail([anvil(), "inspect", good, "--tensor", "blk.0.attn_q.weigth"], (1,), "did you mean"))
    expect_fail([anvil(), "inspect", good, "--tensor", "nope", "--dequant", os.path.join(d, "x.npy")], (1,))
    # --dequant without --tensor, unwritable output
    expect_fail([anvil(), "inspect", good, "--dequant", os.path.join(d, "x.npy")], (2,))
    expect_fail([anvil(), "inspect", good, "--tensor", "output_norm.weight", "--dequant",
                 os.path.join(d, "no", "such", "dir", "x.npy")], (1,))

    # a type without a reference dequantizer (I32, written by gguf-py): listed, but not dumped
    odd = os.path.join(d, "odd.gguf")
    w = gguf.GGUFWriter(odd, "llama")
    w.add_tensor("ints", np.arange(64, dtype=np.int32))
    w.add_tensor("floats", np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert "I32" in run([anvil(), "inspect", odd]).stdout
    print(expect_fail([anvil(), "inspect", odd, "--tensor", "ints", "--dequant", os.path.join(d, "x.npy")], (1,),
                      "no reference dequantizer"))
    run([anvil(), "inspect", odd, "--tensor", "floats", "--dequant", os.path.join(d, "f.npy")])
    assert np.load(os.path.join(d, "f.npy")).shape == (2, 32)
    # quantize copies tensors it does not quantize (1-D I32; names not ending in "weight")
    run([anvil(), "quantize", odd, os.path.join(d, "x.gguf"), "Q8_0", "-q"])
    r = gguf.GGUFReader(os.path.join(d, "x.gguf"))
    assert [gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in r.tensors] == ["I32", "F32"]
    assert (r.tensors[0].data == np.arange(64)).all()

    # quantize: unknown type, missing input, output == input
    print(expect_fail([anvil(), "quantize", good, os.path.join(d, "x.gguf"), "Q3_XYZ"], (2,), "Q4_K_M"))
    expect_fail([anvil(), "quantize", os.path.join(d, "nope.gguf"), os.path.join(d, "x.gguf"), "Q8_0"], (1,))
    expect_fail([anvil(), "quantize", good, good, "Q8_0"], (2,))
    expect_fail([anvil(), "quantize", good, os.path.join(d, "no", "dir", "x.gguf"), "Q8_0", "-q"], (1,))
    expect_fail([anvil(), "quantize", good], (2,))

    # command-line errors of the anvil program
    expect_fail([anvil()], (2,))
    expect_fail([anvil(), "frobnicate"], (2,))
    expect_fail([anvil(), "inspect"], (2,))
    expect_fail([anvil(), "inspect", good, "--no-such-option"], (2,))
    expect_fail([anvil(), "inspect", good, "--max-array", "-3"], (2,))

    # make-test-model
    out = os.path.join(d, "m.gguf")
    print(expect_fail([mtm(), "--preset", "tiny-qwen9", "-o", out], (2,), "tiny-qwen3"))
    expect_fail([mtm(), "--arch", "gpt5", "-o", out], (2,), "supported")
    expect_fail([mtm(), "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3"], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--type", "Q7_K", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--arch", "llama", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--heads", "3", "--kv-heads", "2", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--layers", "0", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--layers", "abc", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen35", "--rope-sections", "1,2,3,4", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen35", "--ssm-k-heads", "3", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--synthetic-vocab", "10", "-o", out], (2,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--vocab", os.path.join(d, "nope.gguf"), "-o", out], (1,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--vocab", txt, "-o", out], (1,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--vocab-dir", os.path.join(d, "nowhere"), "-o", out], (1,))
    expect_fail([mtm(), "--preset", "tiny-qwen3", "--synthetic-vocab", "512", "-o",
                 os.path.join(d, "no", "dir", "m.gguf"), "-q"], (1,))
    assert not os.path.exists(out)
    print("bad input: all clean errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
