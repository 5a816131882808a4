"""Greedy tokens of a real model (scripts/fetch-models) against HF transformers' on the same GGUF.

The golden (tests/data/golden/real/<name>.json, scripts/reference/real_model_goldens.py): the
prompt, the ids HF was fed (BOS as the GGUF asks), and HF's 32 greedy ids (float32, weights
dequantized from the same GGUF). Two checks, both on the CPU backend with the exact f32 matmul
candidate (ANVIL_FORCE_KERNEL=matmul:blas: dequantize + sgemm, the model math without the Q8_K
activation rounding of the fast kernels, whose choice the tuner makes per machine):

 1. ids: `anvil logits --tokens <prompt ids + the first 31 golden ids>`; the top-1 at each of the
    32 positions that predict a generated token must be that golden id. (Teacher-forced: when
    every row's top-1 matches, greedy decoding yields exactly these ids.)
 2. text: `anvil generate -p PROMPT -n 32 --temp 0` (its own tokenizer, prefill + 32 cached decode
    steps, sampler, detokenizer) must print exactly the text the golden ids decode to.

The fast kernels' result for check 1 is printed for information.

With --backend cuda both checks run on the GPU with its exact decode candidate
(ANVIL_FORCE_KERNEL=matmul:gemv_f32: the decode GEMV on f32 activations; the prompt's prefill
GEMMs keep their f16 activations, and the KV cache is F16) and must hold as on the CPU, so the
GPU's 32 greedy ids equal the CPU's. The tuned kernels' text is printed for information: Gemma 3
270M's greedy continuation has a near-tie at generated token 15 (HF's top-two margin 0.017
logits, the smallest of the 32), below the int8 decode GEMV's rounding (~3e-3 of the logits'
scale), which takes the other branch there (bench/NOTES.md).
Without a usable GPU the check skips (exit 77).

Usage: check_greedy.py NAME [--backend cpu|cuda]   (NAME: gemma3-270m | smollm2-135m)
"""
import sys
import tempfile

import numpy as np

import real_model_common as rm

# Each backend's exact matmul candidate (see the docstring).
EXACT = {"cpu": {"ANVIL_FORCE_KERNEL": "matmul:blas"}, "cuda": {"ANVIL_FORCE_KERNEL": "matmul:gemv_f32"}}


def first_mismatch(got, want):
    return next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)


def main() -> int:
    name = sys.argv[1]
    backend = rm.backend_from_argv(sys.argv)
    golden = rm.load_golden(name)
    g = golden["greedy"]
    model = str(rm.model_path(golden))
    rm.skip_unless_backend(backend, model)
    exact = EXACT[backend]
    logits_cmd = rm.anvil_command("logits")
    generate_cmd = rm.anvil_command("generate")
    prompt, gen = g["prompt_ids"], g["generated_ids"]
    fed = prompt + gen[:-1]
    rows = f"{len(prompt) - 1}:{len(fed) - 1}"
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        def top1(env):
            out = f"{tmp}/logits.npy"
            rm.run_anvil(logits_cmd + ["-m", model, "--backend", backend, "-q", "--tokens", ",".join(map(str, fed)),
                                       "--positions", ",".join(str(p) for p in range(len(prompt) - 1, len(fed))),
                                       "--out", out], env, cache_dir=tmp)
            return np.load(out).argmax(-1).tolist()

        got = top1(exact)
        bad = first_mismatch(got, gen)
        print(f"{name}: prompt {prompt}\n  golden   {gen}\n  anvil    {got}")
        if bad is None:
            print(f"{name}: ids: the 32 top-1 ids (rows {rows}) equal HF's greedy ids")
        else:
            ok = False
            print(f"FAIL: {name}: ids: first difference at generated token {bad} "
                  f"(HF margin there {g['top1_margins'][bad]})")
        fast = top1(None)
        fb = first_mismatch(fast, gen)
        print(f"{name}: (information) with the tuned kernels: "
              + ("all 32 equal" if fb is None else f"first difference at generated token {fb}"))

        text = rm.run_anvil(generate_cmd + ["-m", model, "--backend", backend, "-q", "-p", g["prompt"],
                                            "-n", str(g["n_generate"]), "--temp", "0"], exact, cache_dir=tmp)
        fast_text = None
        if backend != "cpu":  # (the CPU's tuned text costs CI time and says nothing new)
            fast_text = rm.run_anvil(generate_cmd + ["-m", model, "--backend", backend, "-q", "-p", g["prompt"],
                                                     "-n", str(g["n_generate"]), "--temp", "0"], None, cache_dir=tmp)
    want = g["generated_text"] + "\n"  # generate ends its output with a newline
    if text == want:
        print(f"{name}: text: anvil generate printed the golden continuation {g['generated_text']!r}")
    else:
        ok = False
        print(f"FAIL: {name}: text: anvil generate printed {text!r}\n  expected {want!r}")
    if fast_text is not None:
        print(f"{name}: (information) text with the tuned kernels: "
              + ("the golden continuation" if fast_text == want else
                 f"{fast_text!r}; HF's smallest top-two margins: {sorted(g['top1_margins'])[:3]}"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
