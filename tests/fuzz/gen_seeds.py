#!/usr/bin/env python3
"""Regenerates the small valid GGUF files under tests/data/gguf/seeds/ (the fuzzer's seed corpus).

  python tests/fuzz/gen_seeds.py BUILD/bin/gguf_cross_tool

raw_base.gguf comes from malformed_test.cpp (DISABLED_RegenerateCommittedCorpus).
"""
import os
import subprocess
import sys

import numpy as np
import gguf

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "gguf", "seeds")


def pypi_vocab(path):
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(2)
    w.add_context_length(128)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_tokenizer_model("gpt2")
    toks = [f"t{i}" for i in range(48)] + ["<s>", "</s>", "Ġthe", "ü"]
    w.add_token_list(toks)
    w.add_token_types([1] * len(toks))
    w.add_token_scores([float(-i) for i in range(len(toks))])
    w.add_token_merges(["Ġ t", "h e"])
    w.add_bos_token_id(48)
    w.add_add_bos_token(True)
    w.add_array("test.nested", [["a", "b"], ["c"]])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def pypi_tensors(path):
    rng = np.random.default_rng(3)
    w = gguf.GGUFWriter(path, "qwen3")
    w.add_custom_alignment(64)
    w.add_uint64("test.u64", 2**40)
    w.add_int8("test.i8", -3)
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 8)).astype(np.float32))
    w.add_tensor("blk.0.attn_norm.weight", rng.standard_normal((8,)).astype(np.float16))
    w.add_tensor("blk.0.attn_q.weight", rng.integers(1, 256, size=(2, 68), dtype=np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_down.weight", rng.integers(1, 256, size=(1, 144), dtype=np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    tool = sys.argv[1]
    os.makedirs(SEEDS, exist_ok=True)
    pypi_vocab(os.path.join(SEEDS, "pypi_vocab.gguf"))
    pypi_tensors(os.path.join(SEEDS, "pypi_tensors.gguf"))
    for name, args in [("anvil_every_type.gguf", []), ("anvil_align64.gguf", ["64"])]:
        subprocess.run([tool, "write", os.path.join(SEEDS, name), *args], check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
