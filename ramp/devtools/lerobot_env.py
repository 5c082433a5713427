"""The LeRobot side environment: a Python 3.12 venv with the real lerobot, for interop tests.

lerobot 0.6.1 needs Python >= 3.12 and its own torch, so it cannot live in ramp's environment
(Python 3.11). The LeRobot tests write datasets with the real lerobot and read ramp's exports back
with lerobot's own ``LeRobotDataset`` through this venv, in a subprocess.

    python -m ramp.devtools.lerobot_env build [--venv .venv-lerobot]   # make lerobot-env
    python -m ramp.devtools.lerobot_env python                          # print its interpreter

Python 3.12 is looked up as: $LEROBOT_PYTHON, `python3.12` on PATH, then pyenv's installed 3.12
versions (a bare pyenv shim refuses to run without PYENV_VERSION). Without one, `build` prints a
note and exits 0 so `make test` goes on: the LeRobot tests then skip (fail on CI).
Versions are pinned by constraints-lerobot.txt; the build takes ~3 minutes and ~5.4 GB (torch).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".venv-lerobot"
CONSTRAINTS = REPO / "constraints-lerobot.txt"
REQUIREMENT = "lerobot[dataset]"
STAMP = ".lerobot-installed"
HINT = (
    "install Python 3.12 (e.g. `pyenv install 3.12`, or set LEROBOT_PYTHON to a 3.12 "
    "interpreter), then run `make lerobot-env`"
)
# pip prints this per package for this machine's missing local index folders: noise.
_PIP_NOISE = "is ignored: it is neither a file nor a directory"


def _is_312(cmd: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        out = subprocess.run(
            [*cmd, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def find_python312() -> str | None:
    """The path of a Python 3.12 interpreter, or None."""
    candidates = []
    if os.environ.get("LEROBOT_PYTHON"):
        candidates.append(os.environ["LEROBOT_PYTHON"])
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if shutil.which("pyenv"):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
            pyenv_root = root.stdout.strip() or pyenv_root
    found = glob.glob(os.path.join(pyenv_root, "versions", "3.12*", "bin", "python3.12"))
    candidates += sorted(found, key=lambda p: [int(x) for x in _version_of(p)], reverse=True)
    for cand in candidates:
        # A pyenv shim on PATH is not the interpreter: resolve through its real path first.
        if _is_312([cand]):
            return cand
    return None


def _version_of(path: str) -> list[str]:
    name = Path(path).parents[1].name  # .../versions/3.12.1/bin/python3.12
    return [p for p in name.split(".") if p.isdigit()] or ["0"]


def venv_python(venv: Path = DEFAULT_VENV) -> Path:
    return venv / "bin" / "python"


def is_ready(venv: Path = DEFAULT_VENV) -> bool:
    """Built completely (the stamp is written last) and still runnable."""
    return (venv / STAMP).is_file() and venv_python(venv).exists()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if _PIP_NOISE not in ln]
        raise RuntimeError(f"`{' '.join(cmd)}` failed:\n" + "\n".join(lines[-40:]))


def build(venv: Path = DEFAULT_VENV, constraints: Path = CONSTRAINTS) -> int:
    """Build the venv once (again only when the pins change); 0 also when Python 3.12 is absent."""
    stamp = venv / STAMP
    if is_ready(venv) and stamp.read_text().strip() == _digest(constraints):
        return 0
    python = find_python312()
    if python is None:
        print(f"note: Python 3.12 not found; the LeRobot interop tests will skip ({HINT})")
        return 0
    print(f"==> building {venv} with {python} and {constraints.name} (first time: ~3 minutes)")
    if venv.exists():
        shutil.rmtree(venv)
    _run([python, "-m", "venv", str(venv)])
    pip = [str(venv_python(venv)), "-m", "pip", "install", "-q"]
    _run([*pip, "--upgrade", "pip>=24"])
    _run([*pip, "-c", str(constraints), REQUIREMENT])
    check = (
        "import lerobot, torch; from lerobot.datasets.lerobot_dataset import LeRobotDataset; "
        "print('==> lerobot', lerobot.__version__, '| torch', torch.__version__)"
    )
    proc = subprocess.run(
        [str(venv_python(venv)), "-c", check],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"lerobot does not import in {venv}:\n{proc.stderr[-4000:]}")
    print(proc.stdout.strip().splitlines()[-1])
    stamp.write_text(_digest(constraints) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ramp.devtools.lerobot_env")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the side venv (no-op when built with these pins)")
    b.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    b.add_argument("--constraints", type=Path, default=CONSTRAINTS)
    p = sub.add_parser("python", help="print the side venv's interpreter (exit 1 if not built)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        try:
            return build(args.venv.resolve(), args.constraints.resolve())
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    if not is_ready(args.venv):
        print(f"{args.venv} is not built ({HINT})", file=sys.stderr)
        return 1
    print(venv_python(args.venv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
