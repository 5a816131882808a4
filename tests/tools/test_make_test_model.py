"""make-test-model: every tiny preset x {F32, F16, Q8_0, Q4_K_M} reads back with the PyPI gguf
reader with the expected architecture, tensor names, shapes, types and metadata; the full-size
presets plan the same tensors and Q4_K_M mix as llama.cpp's quantizer; same seed, same bytes."""

from __future__ import annotations

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tool_util import (TINY, VOCAB_DIR, expected_q4_k_m, expected_tensors, field_types, field_value, gguf,  # noqa: E402
                       make_model, mtm, need_vocab_dir, np, run, tensor_type_name, tmpdir)

VT = gguf.GGUFValueType
FILE_TYPE_ID = {"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K_M": 15}


_VOCABS: dict[str, object] = {}


def vocab_reader(vocab_file: str):
    if vocab_file not in _VOCABS:
        _VOCABS[vocab_file] = gguf.GGUFReader(os.path.join(VOCAB_DIR, vocab_file))
    return _VOCABS[vocab_file]


def vocab_size(vocab_file: str) -> int:
    return len(vocab_reader(vocab_file).fields["tokenizer.ggml.tokens"].data)


def check_metadata(r, c: dict, V: int, ftype: str, real_vocab: bool) -> None:
    a = c["arch"]
    u32 = [VT.UINT32]
    f32 = [VT.FLOAT32]
    want = {
        "general.architecture": [VT.STRING], "general.name": [VT.STRING],
        f"{a}.block_count": u32, f"{a}.context_length": u32, f"{a}.embedding_length": u32,
        f"{a}.feed_forward_length": u32, f"{a}.attention.head_count": u32, f"{a}.attention.head_count_kv": u32,
        f"{a}.rope.freq_base": f32, f"{a}.attention.layer_norm_rms_epsilon": f32,
        "general.file_type": u32, "general.quantization_version": u32,
        "tokenizer.ggml.model": [VT.STRING], "tokenizer.ggml.tokens": [VT.ARRAY, VT.STRING],
        "tokenizer.ggml.token_type": [VT.ARRAY, VT.INT32],
    }
    if a in ("qwen3", "qwen35", "gemma3"):
        want[f"{a}.attention.key_length"] = u32
        want[f"{a}.attention.value_length"] = u32
    if a == "llama":
        want[f"{a}.vocab_size"] = u32
        want[f"{a}.rope.dimension_count"] = u32
    if a == "qwen35":
        for k in ("rope.dimension_count", "ssm.conv_kernel", "ssm.state_size", "ssm.group_count",
                  "ssm.time_step_rank", "ssm.inner_size", "full_attention_interval"):
            want[f"{a}.{k}"] = u32
        want[f"{a}.rope.dimension_sections"] = [VT.ARRAY, VT.INT32]
    if a == "gemma3":
        want[f"{a}.attention.sliding_window"] = u32
    for key, types in want.items():
        assert key in r.fields, f"{c['arch']}: missing key {key}"
        assert field_types(r, key) == types, f"{key}: types {field_types(r, key)} != {types}"
    assert field_value(r, "general.architecture") == a
    assert field_value(r, f"{a}.block_count") == c["L"]
    assert field_value(r, f"{a}.embedding_length") == c["E"]
    assert field_value(r, f"{a}.feed_forward_length") == c["F"]
    assert field_value(r, f"{a}.attention.head_count") == c["H"]
    assert field_value(r, f"{a}.attention.head_count_kv") == c["Hkv"]
    assert field_value(r, "general.file_type") == FILE_TYPE_ID[ftype]
    assert field_value(r, "general.quantization_version") == 2
    assert len(r.fields["tokenizer.ggml.tokens"].data) == V
    if a == "qwen35":
        assert field_value(r, f"{a}.ssm.state_size") == c["state"]
        assert field_value(r, f"{a}.ssm.group_count") == c["nk"]
        assert field_value(r, f"{a}.ssm.time_step_rank") == c["nv"]
        assert field_value(r, f"{a}.ssm.inner_size") == c["state"] * c["nv"]
        assert field_value(r, f"{a}.full_attention_interval") == c["interval"]
        secs = field_value(r, f"{a}.rope.dimension_sections")
        assert 2 * sum(secs) == field_value(r, f"{a}.rope.dimension_count")
    if not real_vocab:
        toks = field_value(r, "tokenizer.ggml.tokens")
        assert field_value(r, "tokenizer.ggml.model") == "gpt2" and toks[-1] == "<|im_end|>"
        return
    # every tokenizer key of the vocab file was copied
    src = vocab_reader(c["vocab"])
    for key in src.fields:
        if key.startswith("tokenizer."):
            assert key in r.fields, f"tokenizer key {key} not copied"
            assert field_types(r, key) == field_types(src, key)
    assert field_value(r, "tokenizer.ggml.model") == field_value(src, "tokenizer.ggml.model")


def check_tensors(r, c: dict, V: int, ftype: str) -> None:
    exp = expected_tensors(c, V)
    got = {t.name: t for t in r.tensors}
    missing, extra = sorted(set(exp) - set(got)), sorted(set(got) - set(exp))
    assert not missing and not extra, f"{c['arch']} {ftype}: missing {missing}, unexpected {extra}"
    q4km = expected_q4_k_m(exp, c["tied"]) if ftype == "Q4_K_M" else None
    for name, (dims, role) in exp.items():
        t = got[name]
        assert tuple(int(d) for d in t.shape) == dims, f"{name}: dims {list(t.shape)} != {dims}"
        ty = tensor_type_name(t)
        if ftype == "F32" or role != "mat":
            want = {"F32"}
        elif ftype in ("F16", "Q8_0"):
            want = {ftype}
        else:
            want = q4km[name]
        assert ty in want, f"{c['arch']} {ftype}: {name} is {ty}, expected {sorted(want)}"
    # values look like what was asked for: norms ~1, matrices ~N(0, 0.02)
    norm = got["output_norm.weight"].data.astype(np.float32)
    assert abs(float(norm.mean()) - 1.0) < 0.05, norm.mean()
    if ftype == "F32":
        w = got["token_embd.weight"].data
        assert 0.015 < float(w.std()) < 0.025 and abs(float(w.mean())) < 0.002, (w.mean(), w.std())
        if c["arch"] == "qwen35":
            a = got["blk.0.ssm_a"].data
            assert (a < 0).all() and (a >= -16.0001).all() and (a <= -1 + 1e-6).all(), a


def full_size_plan(preset: str, ftype: str) -> dict[str, tuple[tuple[int, ...], str]]:
    p = run([mtm(), "--preset", preset, "--type", ftype, "--dry-run"])
    plan = {}
    for line in p.stdout.splitlines():
        if not line.startswith("  "):
            continue
        tok = line.split()
        name, ty = tok[0], tok[-2]
        dims = tuple(int(x) for x in " ".join(tok[1:-2]).split(" x "))
        plan[name] = (dims, ty)
    return plan


def check_full_size() -> None:
    # Qwen2.5-7B / Qwen3-4B Q4_K_M as published (llama.cpp): f32 141 / q4_K 169 / q6_K 29 and
    # f32 145 / q4_K 216 / q6_K 37
    shapes = {
        "qwen25-7b": (dict(arch="qwen2", L=28, E=3584, F=18944, H=28, Hkv=4, hd=128, tied=False, bias=True), 152064,
                      {"F32": 141, "Q4_K": 169, "Q6_K": 29}),
        "qwen3-4b": (dict(arch="qwen3", L=36, E=2560, F=9728, H=32, Hkv=8, hd=128, tied=True), 151936,
                     {"F32": 145, "Q4_K": 216, "Q6_K": 37}),
        "qwen35-4b": (dict(arch="qwen35", L=32, E=2560, F=9216, H=16, Hkv=4, hd=256, tied=True, interval=4,
                           state=128, nk=16, nv=32, conv=4), 248320, None),
    }
    for preset, (c, V, counts) in shapes.items():
        plan = full_size_plan(preset, "Q4_K_M")
        exp = expected_tensors(c, V)
        assert set(plan) == set(exp), f"{preset}: {sorted(set(plan) ^ set(exp))[:10]}"
        for name, (dims, _) in exp.items():
            assert plan[name][0] == dims, f"{preset} {name}: {plan[name][0]} != {dims}"
        allowed = expected_q4_k_m(exp, c["tied"])
        for name, (_, ty) in plan.items():
            assert ty in allowed[name], f"{preset} Q4_K_M: {name} is {ty}, expected {sorted(allowed[name])}"
        if counts:
            got = {}
            for _, ty in plan.values():
                got[ty] = got.get(ty, 0) + 1
            assert got == counts, f"{preset} Q4_K_M type counts {got} != {counts}"
        f16 = full_size_plan(preset, "F16")
        assert {n: d for n, (d, _) in f16.items()} == {n: d for n, (d, _) in plan.items()}
    print("full-size presets: shapes and Q4_K_M mix as expected")


def check_against_synth_gguf(d: str) -> None:
    """The lead's reference script (../shared/tools/synth_gguf.py --tiny) and make-test-model with
    the same dims and vocab size write the same tensors and metadata (names, types, values)."""
    script = os.path.join(VOCAB_DIR, "..", "tools", "synth_gguf.py")
    if not VOCAB_DIR or not os.path.exists(script):
        print("synth_gguf.py not found: cross-check skipped")
        return
    for arch, preset in (("qwen35", "tiny-qwen35"), ("qwen3", "tiny-qwen3"), ("qwen2", "tiny-qwen2")):
        ref = os.path.join(d, f"synth-{arch}.gguf")
        run([sys.executable, script, "--arch", arch, "--tiny", "--out", ref])
        ours = make_model(os.path.join(d, f"mtm-{arch}.gguf"), "--preset", preset, "--synthetic-vocab", "4096",
                          "--type", "F16")
        s, m = gguf.GGUFReader(ref), gguf.GGUFReader(ours)
        st = {t.name: ([int(x) for x in t.shape], tensor_type_name(t)) for t in s.tensors}
        mt = {t.name: ([int(x) for x in t.shape], tensor_type_name(t)) for t in m.tensors}
        assert st == mt, f"{arch}: {[(k, st.get(k), mt.get(k)) for k in set(st) | set(mt) if st.get(k) != mt.get(k)]}"
        keys = [k for k in s.fields if not k.startswith("GGUF.")]
        assert sorted(keys) == sorted(k for k in m.fields if not k.startswith("GGUF.")), arch
        for k in keys:
            assert field_types(s, k) == field_types(m, k), (arch, k)
            if k not in ("general.name", "general.description"):
                assert field_value(s, k) == field_value(m, k), (arch, k)
    print("same tensors and metadata as synth_gguf.py --tiny (qwen35, qwen3, qwen2)")


def main() -> int:
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    d = tmpdir()
    if part in ("all", "full"):
        check_full_size()
        check_determinism_and_custom_dims(d)
        check_against_synth_gguf(d)
    if part in ("all", "tiny"):
        need_vocab_dir()
        check_tiny_presets(d)
    return 0


def check_tiny_presets(d: str) -> None:
    vocab_sizes: dict[str, int] = {}
    for preset, c in TINY.items():
        # gguf-py needs seconds to parse a 50k-token vocab, so the real vocab file is checked once
        # per preset (F32); the other types use a small synthetic vocab
        for ftype in ("F32", "F16", "Q8_0", "Q4_K_M"):
            real_vocab = ftype == "F32"
            extra = [] if real_vocab else ["--synthetic-vocab", "512"]
            if real_vocab and c["vocab"] not in vocab_sizes:
                vocab_sizes[c["vocab"]] = vocab_size(c["vocab"])
            V = vocab_sizes[c["vocab"]] if real_vocab else 512
            path = make_model(os.path.join(d, f"{preset}-{ftype}.gguf"), "--preset", preset, "--type", ftype, *extra)
            r = gguf.GGUFReader(path)
            check_metadata(r, c, V, ftype, real_vocab)
            check_tensors(r, c, V, ftype)
            del r
            os.remove(path)
        print(f"{preset}: F32 F16 Q8_0 Q4_K_M ok (vocab {vocab_sizes[c['vocab']]})")


def check_determinism_and_custom_dims(d: str) -> None:
    # determinism: same seed -> same bytes whatever the thread count; another seed differs
    a = make_model(os.path.join(d, "a.gguf"), "--preset", "tiny-qwen35", "--synthetic-vocab", "512", "--type", "Q4_K_M",
                   "--seed", "7", threads=1)
    b = make_model(os.path.join(d, "b.gguf"), "--preset", "tiny-qwen35", "--synthetic-vocab", "512", "--type", "Q4_K_M",
                   "--seed", "7", threads=2)
    e = make_model(os.path.join(d, "e.gguf"), "--preset", "tiny-qwen35", "--synthetic-vocab", "512", "--type", "Q4_K_M",
                   "--seed", "8")
    h = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in (a, b, e)]
    assert h[0] == h[1], "same seed, different bytes with a different thread count"
    assert h[0] != h[2], "different seeds gave identical files"

    # custom dims + synthetic vocab: specials at the last ids, shapes follow the options
    g = make_model(os.path.join(d, "g.gguf"), "--arch", "gemma3", "--layers", "3", "--embd", "128", "--ff", "384",
                   "--heads", "2", "--kv-heads", "1", "--head-dim", "32", "--sliding-window", "8",
                   "--swa-pattern", "3", "--synthetic-vocab", "300", "--type", "F32")
    r = gguf.GGUFReader(g)
    c = dict(arch="gemma3", L=3, E=128, F=384, H=2, Hkv=1, hd=32, tied=True)
    exp = expected_tensors(c, 300)
    assert {t.name: tuple(int(x) for x in t.shape) for t in r.tensors} == {n: d for n, (d, _) in exp.items()}
    assert field_value(r, "gemma3.attention.sliding_window") == 8
    assert field_value(r, "gemma3.attention.sliding_window_pattern") == 3
    toks = field_value(r, "tokenizer.ggml.tokens")
    assert len(toks) == 300 and toks[-1] == "<|im_end|>" and len(set(toks)) == 300
    assert field_value(r, "tokenizer.ggml.eos_token_id") == 299
    print("determinism and custom dims ok")


if __name__ == "__main__":
    sys.exit(main())
