"""anvil logits: output shape and rows for --positions all / last / a list, rows equal across
selections, and bad inputs (missing model, bad token ids, unknown architecture, a missing tensor,
a wrong shape) end with a one-line error and exit 1, never a crash."""

from __future__ import annotations

import os
import sys

import tool_util as tu
from tool_util import np, gguf


def tiny_llama_gguf(path: str, arch: str = "llama", drop: str | None = None, bad_shape: str | None = None) -> str:
    """A minimal llama-layout GGUF written with the PyPI gguf package (no tokenizer)."""
    E, F, H, Hkv, hd, V = 32, 64, 2, 1, 16, 64
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(E)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(Hkv)
    w.add_layer_norm_rms_eps(1e-5)
    rng = np.random.default_rng(1)
    shapes = {"token_embd.weight": (V, E), "output_norm.weight": (E,), "blk.0.attn_norm.weight": (E,),
              "blk.0.attn_q.weight": (H * hd, E), "blk.0.attn_k.weight": (Hkv * hd, E),
              "blk.0.attn_v.weight": (Hkv * hd, E), "blk.0.attn_output.weight": (E, H * hd),
              "blk.0.ffn_norm.weight": (E,), "blk.0.ffn_gate.weight": (F, E), "blk.0.ffn_up.weight": (F, E),
              "blk.0.ffn_down.weight": (E, F)}
    for name, shape in shapes.items():
        if name == drop:
            continue
        if name == bad_shape:
            shape = (shape[0] + 1,) + shape[1:]
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def expect_error(args: list[str], *needles: str) -> None:
    p = tu.run([tu.anvil(), *args], check=False)
    assert p.returncode == 1, f"{args}: exit {p.returncode}, want 1\n{p.stderr}"
    lines = [l for l in p.stderr.splitlines() if "error" in l]
    assert len(lines) == 1, f"{args}: want one error line, got:\n{p.stderr}"
    for n in needles:
        assert n in lines[0], f"{args}: '{n}' not in: {lines[0]}"
    print(f"ok   error: {lines[0]}")


def main() -> int:
    tu.need_vocab_dir()
    d = tu.tmpdir()
    model = tu.make_model(os.path.join(d, "q2.gguf"), "--preset", "tiny-qwen2", "--type", "Q8_0")
    ids = [11, 2000, 345, 6789, 10, 42, 31000, 5]
    common = ["-q", "--threads", "2", "-m", model, "--tokens", ",".join(map(str, ids))]
    out_all, out_last, out_list = (os.path.join(d, n) for n in ("all.npy", "last.npy", "list.npy"))
    tu.run([tu.anvil(), "logits", *common, "--out", out_all])
    tu.run([tu.anvil(), "logits", *common, "--positions", "last", "--out", out_last])
    tu.run([tu.anvil(), "logits", *common, "--positions", "0,-1,3", "--out", out_list])
    a, l, s = np.load(out_all), np.load(out_last), np.load(out_list)
    assert a.dtype == np.float32 and a.shape == (len(ids), 50257), a.shape
    assert l.shape == (1, 50257) and s.shape == (3, 50257), (l.shape, s.shape)
    assert np.isfinite(a).all() and np.abs(a).max() > 0
    assert np.array_equal(l[0], a[-1]) and np.array_equal(s, a[[0, len(ids) - 1, 3]])
    assert not np.allclose(a[0], a[1]), "rows for different positions should differ"
    print("ok   logits shapes and row selection")

    expect_error(["logits", "-m", os.path.join(d, "nope.gguf"), "--tokens", "1", "--out", out_last], "nope.gguf")
    expect_error(["logits", "-q", "-m", model, "--tokens", "1,50257", "--out", out_last], "50257", "vocabulary")
    expect_error(["logits", "-q", "-m", model, "--tokens", "1,-3", "--out", out_last], "-3")
    expect_error(["logits", "-q", "-m", model, "--tokens", "1,x", "--out", out_last], "'x'")
    expect_error(["logits", "-q", "-m", model, "--tokens", "1,2", "--positions", "5", "--out", out_last], "positions")
    foo = tiny_llama_gguf(os.path.join(d, "foo.gguf"), arch="foo")
    expect_error(["logits", "-q", "-m", foo, "--tokens", "1", "--out", out_last], "unknown architecture 'foo'")
    ok = tiny_llama_gguf(os.path.join(d, "ok.gguf"))
    tu.run([tu.anvil(), "logits", "-q", "-m", ok, "--tokens", "1,2,3", "--out", out_last])  # the control
    missing = tiny_llama_gguf(os.path.join(d, "missing.gguf"), drop="blk.0.ffn_down.weight")
    expect_error(["logits", "-q", "-m", missing, "--tokens", "1", "--out", out_last], "blk.0.ffn_down.weight")
    shape = tiny_llama_gguf(os.path.join(d, "shape.gguf"), bad_shape="blk.0.attn_k.weight")
    expect_error(["logits", "-q", "-m", shape, "--tokens", "1", "--out", out_last], "blk.0.attn_k.weight", "shape")
    for cmd in (["generate", "-p", "hi"], ["perplexity", "--tokens", "1,2,3"], ["chat"]):
        expect_error([*cmd, "-q", "-m", missing], "blk.0.ffn_down.weight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
