#!/usr/bin/env python3
"""Cross-checks anvil's GGUF writer and reader against the PyPI `gguf` package, both ways.

(a) gguf_cross_tool writes a file (every value type, nested/empty arrays, many tensor types) and
    prints what it wrote; gguf.GGUFReader must see the same keys, types, values and tensor bytes.
(b) gguf.GGUFWriter writes a file; anvil's reader (gguf_cross_tool dump) must see what Python wrote.
Strings compare as UTF-8 bytes and floats as bit patterns, so nothing is lost to formatting.
Exit 77 (skip) when numpy or gguf is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf import GGUFValueType as VT
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

TOOL = os.path.join(os.environ.get("ANVIL_TEST_BIN_DIR", ""), "gguf_cross_tool")
NAMES = {VT.UINT8: "uint8", VT.INT8: "int8", VT.UINT16: "uint16", VT.INT16: "int16", VT.UINT32: "uint32",
         VT.INT32: "int32", VT.FLOAT32: "float32", VT.BOOL: "bool", VT.STRING: "string", VT.ARRAY: "array",
         VT.UINT64: "uint64", VT.INT64: "int64", VT.FLOAT64: "float64"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def normalize(v):
    """anvil's JSON value -> the exact form both sides can produce."""
    t = v["type"]
    if t == "array":
        return {"type": t, "elem": v["elem"], "items": [normalize(x) for x in v["items"]]}
    if t == "string":
        return {"type": t, "hex": v["hex"]}
    if t in ("float32", "float64"):
        return {"type": t, "bits": v["bits"]}
    return {"type": t, "value": v["value"]}


def from_parts(parts, i, vtype):
    """Rebuilds one value from GGUFReader's flat field parts (it flattens nested arrays)."""
    if vtype == VT.STRING:
        return {"type": "string", "hex": bytes(parts[i + 1]).hex()}, i + 2
    if vtype == VT.ARRAY:
        itype = VT(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            item, i = from_parts(parts, i, itype)
            items.append(item)
        return {"type": "array", "elem": NAMES[itype], "items": items}, i
    x = parts[i]
    if vtype == VT.FLOAT32:
        return {"type": "float32", "bits": int(x.view(np.uint32)[0])}, i + 1
    if vtype == VT.FLOAT64:
        return {"type": "float64", "bits": int(x.view(np.uint64)[0])}, i + 1
    if vtype == VT.BOOL:
        return {"type": "bool", "value": bool(x[0])}, i + 1
    return {"type": NAMES[vtype], "value": int(x[0])}, i + 1


def run_tool(*args):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"gguf_cross_tool {' '.join(args)} failed: {p.stderr}")
    return json.loads(p.stdout)


def check_ours_read_by_pypi(tmp, alignment):
    path = os.path.join(tmp, f"ours_{alignment}.gguf")
    wrote = run_tool("write", path, str(alignment))
    r = gguf.GGUFReader(path)
    tag = f"(a) alignment {alignment}"
    check(r.alignment == alignment, f"{tag}: GGUFReader alignment {r.alignment}")
    fields = [f for name, f in r.fields.items() if not name.startswith("GGUF.")]
    check([f.name for f in fields] == [m["key"] for m in wrote["metadata"]], f"{tag}: key order/names differ")
    by_key = {f.name: f for f in fields}
    for m in wrote["metadata"]:
        f = by_key.get(m["key"])
        if f is None:
            check(False, f"{tag}: {m['key']} missing in GGUFReader")
            continue
        got, end = from_parts(f.parts, 3, VT(int(f.parts[2][0])))
        check(end == len(f.parts), f"{tag}: {m['key']}: {len(f.parts) - end} unparsed parts")
        check(got == normalize(m["value"]), f"{tag}: {m['key']}: pypi {got} != anvil {normalize(m['value'])}")
    check(len(r.tensors) == len(wrote["tensors"]), f"{tag}: {len(r.tensors)} tensors")
    for t, w in zip(r.tensors, wrote["tensors"]):
        check(t.name == w["name"], f"{tag}: tensor name {t.name} != {w['name']}")
        check(t.tensor_type.name == w["type"] and int(t.tensor_type) == w["type_id"],
              f"{tag}: {w['name']}: type {t.tensor_type.name} != {w['type']}")
        check([int(d) for d in t.shape] == w["dims"], f"{tag}: {w['name']}: shape {list(t.shape)} != {w['dims']}")
        check(t.data_offset % alignment == 0, f"{tag}: {w['name']}: data offset {t.data_offset} misaligned")
        check(t.data.tobytes().hex() == w["hex"], f"{tag}: {w['name']}: bytes differ")
    # and anvil's own reader agrees with what anvil wrote
    dumped = run_tool("dump", path)
    check([(m["key"], normalize(m["value"])) for m in dumped["metadata"]] ==
          [(m["key"], normalize(m["value"])) for m in wrote["metadata"]], f"{tag}: anvil dump != anvil write")
    check([{k: t[k] for k in ("name", "type", "dims", "hex")} for t in dumped["tensors"]] ==
          [{k: t[k] for k in ("name", "type", "dims", "hex")} for t in wrote["tensors"]], f"{tag}: tensors differ")
    return len(wrote["metadata"]), len(wrote["tensors"])


def f32_bits(x):
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def f64_bits(x):
    return int(np.array([x], dtype=np.float64).view(np.uint64)[0])


def expected_scalar(vtype, x):
    if vtype == VT.STRING:
        return {"type": "string", "hex": x.encode("utf-8").hex()}
    if vtype == VT.FLOAT32:
        return {"type": "float32", "bits": f32_bits(x)}
    if vtype == VT.FLOAT64:
        return {"type": "float64", "bits": f64_bits(x)}
    if vtype == VT.BOOL:
        return {"type": "bool", "value": bool(x)}
    return {"type": NAMES[vtype], "value": int(x)}


def check_pypi_read_by_ours(tmp, alignment):
    path = os.path.join(tmp, f"pypi_{alignment}.gguf")
    tag = f"(b) alignment {alignment}"
    w = gguf.GGUFWriter(path, "pycross")
    expected = [("general.architecture", expected_scalar(VT.STRING, "pycross"))]
    if alignment != 32:
        w.add_custom_alignment(alignment)
        expected.append(("general.alignment", expected_scalar(VT.UINT32, alignment)))
    scalars = [(VT.UINT8, 201), (VT.INT8, -77), (VT.UINT16, 54321), (VT.INT16, -1234), (VT.UINT32, 3000000000),
               (VT.INT32, -123456789), (VT.FLOAT32, 0.1), (VT.BOOL, True), (VT.STRING, "héllo wörld ✓ 🦙"),
               (VT.UINT64, 2**64 - 2), (VT.INT64, -(2**62)), (VT.FLOAT64, -1.0 / 3.0)]
    for vtype, x in scalars:
        key = f"py.{NAMES[vtype]}"
        w.add_key_value(key, x, vtype)
        expected.append((key, expected_scalar(vtype, x)))
    w.add_bool("py.bool.false", False)
    expected.append(("py.bool.false", expected_scalar(VT.BOOL, False)))
    arrays = [(VT.UINT8, [0, 255]), (VT.INT8, [-128, 5]), (VT.UINT16, [7]), (VT.INT16, [-2, 2]),
              (VT.UINT32, [1, 2, 3]), (VT.INT32, [-1]), (VT.FLOAT32, [1.5, -2.25, 1e-20]),
              (VT.BOOL, [True, False]), (VT.STRING, ["a", "", "日本"]), (VT.UINT64, [2**63]),
              (VT.INT64, [-5, 5]), (VT.FLOAT64, [1e200, 0.0])]
    for vtype, xs in arrays:
        key = f"py.arr.{NAMES[vtype]}"
        w.add_key_value(key, xs, VT.ARRAY, sub_type=vtype)
        expected.append((key, {"type": "array", "elem": NAMES[vtype], "items": [expected_scalar(vtype, x) for x in xs]}))
    nested = [["x", "yz"], ["ü"]]
    w.add_array("py.nested", nested)
    expected.append(("py.nested", {"type": "array", "elem": "array", "items": [
        {"type": "array", "elem": "string", "items": [expected_scalar(VT.STRING, s) for s in inner]}
        for inner in nested]}))
    w.add_array("py.tokens", [f"tok{i}" for i in range(300)])
    expected.append(("py.tokens", {"type": "array", "elem": "string",
                                   "items": [expected_scalar(VT.STRING, f"tok{i}") for i in range(300)]}))

    rng = np.random.default_rng(7)
    tensors = []  # (name, type name, dims in GGUF order, bytes)

    def add(name, arr, raw_dtype=None, type_name=None, dims=None):
        w.add_tensor(name, arr, raw_dtype=raw_dtype)
        tensors.append((name, type_name, dims, arr.tobytes()))

    a = rng.standard_normal((3, 5)).astype(np.float32)
    add("py.f32", a, type_name="F32", dims=[5, 3])
    b = rng.standard_normal((2, 2, 4)).astype(np.float16)
    add("py.f16", b, type_name="F16", dims=[4, 2, 2])
    c = rng.integers(-2**31, 2**31, size=(6,), dtype=np.int32)
    add("py.i32", c, type_name="I32", dims=[6])
    for qt, rows, blocks in [(gguf.GGMLQuantizationType.Q8_0, 2, 2), (gguf.GGMLQuantizationType.Q4_K, 3, 1),
                             (gguf.GGMLQuantizationType.Q6_K, 1, 2), (gguf.GGMLQuantizationType.BF16, 2, 8)]:
        block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
        raw = rng.integers(1, 256, size=(rows, blocks * type_size), dtype=np.uint8)
        add(f"py.{qt.name.lower()}", raw, raw_dtype=qt, type_name=qt.name, dims=[blocks * block_size, rows])

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    got = run_tool("dump", path)
    check(got["alignment"] == alignment, f"{tag}: anvil alignment {got['alignment']}")
    got_kv = [(m["key"], normalize(m["value"])) for m in got["metadata"]]
    check([k for k, _ in got_kv] == [k for k, _ in expected], f"{tag}: keys {[k for k, _ in got_kv]}")
    for (k, v), (ek, ev) in zip(got_kv, expected):
        check(k == ek and v == ev, f"{tag}: {ek}: anvil {v} != python {ev}")
    check(len(got["tensors"]) == len(tensors), f"{tag}: {len(got['tensors'])} tensors")
    for t, (name, type_name, dims, raw) in zip(got["tensors"], tensors):
        check(t["name"] == name, f"{tag}: tensor {t['name']} != {name}")
        check(t["type"] == type_name, f"{tag}: {name}: type {t['type']} != {type_name}")
        check(t["dims"] == dims, f"{tag}: {name}: dims {t['dims']} != {dims}")
        check(t["hex"] == raw.hex(), f"{tag}: {name}: bytes differ")
    return len(expected), len(tensors)


def main():
    if not os.path.exists(TOOL):
        print(f"gguf_cross_tool not built at {TOOL}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for alignment in (32, 64):
            nk, nt = check_ours_read_by_pypi(tmp, alignment)
            print(f"(a) alignment {alignment}: {nk} keys, {nt} tensors checked with gguf.GGUFReader")
            nk, nt = check_pypi_read_by_ours(tmp, alignment)
            print(f"(b) alignment {alignment}: {nk} keys, {nt} tensors written by gguf.GGUFWriter checked")
    if failures:
        print(f"{len(failures)} mismatches")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
