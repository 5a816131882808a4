"""Shared by the real-model checks: where the models, goldens and anvil are, and when to skip.

A check is skipped (exit 77, reason printed) only when something it needs is absent: the model
file (scripts/fetch-models not run) or the anvil tool / subcommand in ANVIL_BIN_DIR. A model file
that is present but differs from the one the goldens were made from is a failure, not a skip.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

SKIP = 77
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "golden" / "real"


def skip(reason: str):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def fail(reason: str):
    print(f"FAIL: {reason}")
    sys.exit(1)


def models_dir() -> Path:
    # the same rule as scripts/fetch-models
    if os.environ.get("ANVIL_MODELS_DIR"):
        return Path(os.environ["ANVIL_MODELS_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "anvil" / "models"


def load_golden(name: str) -> dict:
    return json.loads((GOLDEN_DIR / f"{name}.json").read_text())


def model_path(golden: dict) -> Path:
    """The verified model file, or a skip when it has not been fetched."""
    path = models_dir() / golden["model_file"]
    if not path.is_file():
        skip(f"{path} is absent (run scripts/fetch-models; ANVIL_MODELS_DIR overrides the cache dir)")
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    if h.hexdigest() != golden["model_sha256"]:
        fail(f"{path} has sha256 {h.hexdigest()}; the goldens were made from {golden['model_sha256']} "
             "(run scripts/fetch-models again)")
    return path


def anvil_command(sub: str) -> list[str]:
    """[anvil, sub] when this build has the subcommand, else a skip."""
    exe = Path(os.environ.get("ANVIL_BIN_DIR", "")) / "anvil"
    if not exe.is_file():
        skip(f"{exe} is absent (ANVIL_BIN_DIR={os.environ.get('ANVIL_BIN_DIR')!r})")
    if subprocess.run([str(exe), sub, "--help"], capture_output=True).returncode != 0:
        skip(f"this anvil has no '{sub}' subcommand")
    return [str(exe), sub]


def run_anvil(args: list[str], env_extra: dict | None = None, cache_dir: str | None = None) -> str:
    """Runs anvil, returns stdout; a non-zero exit is a failure. cache_dir isolates the kernel tuner's
    cache ($XDG_CACHE_HOME/anvil) from the user's."""
    env = dict(os.environ)
    env.pop("ANVIL_FORCE_KERNEL", None)
    if cache_dir:
        env["XDG_CACHE_HOME"] = cache_dir
    env.update(env_extra or {})
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        fail(f"{' '.join(args[:2])} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p.stdout


NO_GPU_MARKERS = ("no CUDA device", "has no CUDA", "CUDA unavailable", "no CUDA driver")


def backend_from_argv(argv: list[str]) -> str:
    """--backend NAME anywhere in argv (default cpu)."""
    return argv[argv.index("--backend") + 1] if "--backend" in argv[:-1] else "cpu"


def skip_unless_backend(backend: str, model: str) -> None:
    """Skips (exit 77, reason printed) when `backend` cannot be opened on this machine."""
    if backend == "cpu":
        return
    p = subprocess.run(anvil_command("generate") + ["-m", model, "--backend", backend, "-q", "-p", "a", "-n", "1",
                                                    "--temp", "0"], capture_output=True, text=True)
    if p.returncode != 0 and any(m in p.stderr for m in NO_GPU_MARKERS):
        skip(f"no GPU: {p.stderr.strip()}")

