#!/usr/bin/env python3
"""Run kuradb's tasks in a private virtual environment (.venv), made on first use.

    python3 dev.py demo          the Quick start demo on a throwaway store
    python3 dev.py test [ARGS]   the test suite (ARGS go to pytest; e.g. -m slow)
    python3 dev.py bench [ARGS]  the key-value benchmark (ARGS go to bench/kv.py)
    python3 dev.py bench NAME [ARGS]   another benchmark: query, cache, backup, verify (bench/NAME.py)
    python3 dev.py kuradb ARGS   the kuradb command line

Needs only Python 3.11+. The environment is rebuilt when pyproject.toml changes.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "Scripts" if os.name == "nt" else "bin")
PYTHON = os.path.join(BIN, "python.exe" if os.name == "nt" else "python")
STAMP = os.path.join(VENV, ".kuradb-stamp")


def ensure_env() -> None:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    if os.path.exists(STAMP) and open(STAMP).read() == want and os.path.exists(PYTHON):
        return
    print("dev.py: preparing .venv (first run, or pyproject.toml changed)...", file=sys.stderr, flush=True)
    venv.create(VENV, with_pip=True, clear=os.path.exists(VENV))
    subprocess.run([PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "-e", f"{ROOT}[test,bench]"], check=True)
    with open(STAMP, "w") as f:
        f.write(want)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may be run by an older Python
        sys.exit(f"dev.py: kuradb needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if not argv or argv[0] not in ("demo", "test", "bench", "kuradb"):
        print(__doc__, file=sys.stderr)
        return 2
    task, rest = argv[0], argv[1:]
    script = "kv.py"
    if task == "bench" and rest and rest[0] in ("kv", "query", "cache", "backup", "verify"):
        script, rest = rest[0] + ".py", rest[1:]
    ensure_env()
    command = {
        "demo": [PYTHON, "-m", "kuradb", "demo", *rest],
        # one worker per core; a test file stays on one worker (module fixtures such as a replica cluster)
        "test": [PYTHON, "-m", "pytest", "-q", "-n", "auto", "--dist", "loadfile", *rest],
        "bench": [PYTHON, os.path.join(ROOT, "bench", script), *rest],
        "kuradb": [PYTHON, "-m", "kuradb", *rest],
    }[task]
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
