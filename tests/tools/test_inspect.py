"""anvil inspect: --dequant .npy equals gguf-py's dequantize bit for bit for every tensor type
make-test-model writes; --json agrees with GGUFReader; the text listing names every tensor."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tool_util import VOCAB_DIR, anvil, field_value, gguf, make_model, np, run, tensor_type_name, tmpdir  # noqa: E402

# file types whose mixes together cover F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K
FILE_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_M"]


def check_dequant(path: str, d: str) -> set[str]:
    r = gguf.GGUFReader(path)
    by_type: dict[str, list] = {}
    for t in r.tensors:
        by_type.setdefault(tensor_type_name(t), []).append(t)
    for ty, ts in by_type.items():
        # the first and the last tensor of each type (a matrix and, for F32, a 1-D norm)
        for t in {ts[0].name: ts[0], ts[-1].name: ts[-1]}.values():
            out = os.path.join(d, "t.npy")
            run([anvil(), "inspect", path, "--tensor", t.name, "--dequant", out, "--threads", "2"])
            got = np.load(out)
            want = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            shape = tuple(int(x) for x in reversed(t.shape.tolist()))
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert got.shape == shape, f"{t.name}: shape {got.shape} != {shape}"
            want = want.reshape(shape)
            if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
                bad = np.argwhere(got.view(np.uint32) != want.view(np.uint32))
                raise AssertionError(f"{path} {t.name} ({ty}): {len(bad)} values differ, first at {bad[0]}: "
                                     f"{got[tuple(bad[0])]} vs {want[tuple(bad[0])]}")
    return set(by_type)


def check_json(path: str) -> None:
    p = run([anvil(), "inspect", path, "--json", "--max-array", "5"])
    doc = json.loads(p.stdout)
    r = gguf.GGUFReader(path)
    assert len(doc["tensors"]) == len(r.tensors) == doc["totals"]["n_tensors"]
    for j, t in zip(doc["tensors"], r.tensors):
        assert j["name"] == t.name
        assert j["type"] == tensor_type_name(t)
        assert j["dims"] == [int(x) for x in t.shape]
        assert j["shape"] == list(reversed(j["dims"]))
        assert j["file_offset"] == int(t.data_offset), (t.name, j["file_offset"], t.data_offset)
        assert j["bytes"] == int(t.n_bytes)
        assert j["n_elements"] == int(t.n_elements)
    assert doc["totals"]["params"] == sum(int(t.n_elements) for t in r.tensors)
    assert doc["totals"]["bytes"] == sum(int(t.n_bytes) for t in r.tensors)
    counts: dict[str, int] = {}
    for t in r.tensors:
        counts[tensor_type_name(t)] = counts.get(tensor_type_name(t), 0) + 1
    assert {k: v["count"] for k, v in doc["totals"]["types"].items()} == counts
    meta = doc["metadata"]
    user_keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert list(meta) == user_keys, "metadata keys or their order differ"
    arch = field_value(r, "general.architecture")
    assert meta["general.architecture"] == {"type": "string", "value": arch}
    assert meta[f"{arch}.block_count"]["value"] == field_value(r, f"{arch}.block_count")
    eps = meta[f"{arch}.attention.layer_norm_rms_epsilon"]
    assert eps["type"] == "float32" and np.float32(eps["value"]) == np.float32(
        field_value(r, f"{arch}.attention.layer_norm_rms_epsilon"))
    toks = meta["tokenizer.ggml.tokens"]
    n_tok = len(r.fields["tokenizer.ggml.tokens"].data)
    assert toks["type"] == "array" and toks["item_type"] == "string" and toks["length"] == n_tok
    assert toks["truncated"] is True and toks["head"] == field_value(r, "tokenizer.ggml.tokens")[:5]
    secs = meta.get(f"{arch}.rope.dimension_sections")
    if secs:  # short arrays are given in full
        assert secs["value"] == field_value(r, f"{arch}.rope.dimension_sections") and "truncated" not in secs


def main() -> int:
    d = tmpdir()
    seen: set[str] = set()
    for ft in FILE_TYPES:
        path = make_model(os.path.join(d, f"m-{ft}.gguf"), "--preset", "tiny-qwen35", "--synthetic-vocab", "512",
                          "--type", ft)
        seen |= check_dequant(path, d)
        if ft == "Q4_K_M":
            check_json(path)
            text = run([anvil(), "inspect", path]).stdout
            for t in gguf.GGUFReader(path).tensors:
                assert t.name in text
            assert "bits per weight" in text and "Q4_K" in text
        os.remove(path)
    want = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}
    assert want <= seen, f"types not covered: {sorted(want - seen)}"
    print(f"dequant bit-exact for {sorted(seen)}; --json agrees with GGUFReader")

    # a model with a real vocab file: JSON with long string arrays, token bytes that need escaping
    if not os.path.exists(os.path.join(VOCAB_DIR, "ggml-vocab-llama-spm.gguf")):
        print("no vocab dir: the tiny-llama JSON check is skipped")
        return 0
    path = make_model(os.path.join(d, "llama.gguf"), "--preset", "tiny-llama", "--type", "Q8_0", "--layers", "1")
    check_json(path)
    print("json ok for tiny-llama (SPM vocab)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
