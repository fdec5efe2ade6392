"""``--fix`` killed at a random moment (SIGKILL) never leaves a half-written or unreadable file.

``write_atomic`` writes a temporary file beside the real one and renames it over
it, so whatever instant the process dies at, each file holds exactly its
original bytes or exactly its fully-fixed bytes. A temporary file can survive a
SIGKILL (nothing runs to remove it); it is named ``.<name>.<random>.nanlint-tmp``:
hidden, and not ``*.py``, so neither nanlint nor Python mistakes it for source.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixhelpers import FIX_FIXTURES, snapshot_inputs

ITERATIONS = int(os.environ.get("NANLINT_KILL_ITERATIONS", "12"))
COPIES = 2  # of each snapshot input: 22 files, about a second of fixing
TEMPORARY = re.compile(r"^\.(?P<name>.+\.py)\.[^/]+\.nanlint-tmp$")


def _command(root: Path) -> list[str]:
    return [sys.executable, "-m", "nanlint", "check", "--fix", "--unsafe-fixes", "--no-cache", str(root)]


def _populate(root: Path, originals: dict[str, bytes]) -> None:
    for entry in root.iterdir():
        if entry.name != "pyproject.toml":
            entry.unlink()
    for name, data in originals.items():
        (root / name).write_bytes(data)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_leaves_each_file_original_or_fully_fixed(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nanlint]\n")  # default rules, default options
    originals = {f"{p.stem}_{i}.py": p.read_bytes() for p in snapshot_inputs() for i in range(COPIES)}
    _populate(root, originals)

    started = time.monotonic()  # the uninterrupted run gives the expected bytes (and spreads the kills below)
    done = subprocess.run(_command(root), capture_output=True, text=True, timeout=300)
    duration = time.monotonic() - started
    assert done.returncode in (0, 1), done.stderr
    fixed = {name: (root / name).read_bytes() for name in originals}
    changed = [name for name in originals if fixed[name] != originals[name]]
    assert len(changed) >= len(originals) // 2, "the tree must hold enough fixable files to be interesting"
    assert sorted(p.name for p in root.iterdir()) == sorted([*originals, "pyproject.toml"])

    rng = random.Random(7)
    outcomes = []
    leftovers: list[str] = []
    for _ in range(ITERATIONS):
        _populate(root, originals)
        process = subprocess.Popen(_command(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.1) * duration)  # from inside start-up to just after the end
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        state = []
        for name in originals:
            data = (root / name).read_bytes()
            assert data in (originals[name], fixed[name]), f"{name} is neither the original nor the fixed file"
            state.append(data == fixed[name] and data != originals[name])
        outcomes.append(sum(state))
        for entry in root.iterdir():
            if entry.name in originals or entry.name == "pyproject.toml":
                continue
            match = TEMPORARY.match(entry.name)
            assert match and match.group("name") in originals, f"unexpected file left behind: {entry.name}"
            assert not entry.name.endswith(".py")
            leftovers.append(entry.name)
    # a leftover is not linted (nor fixed): it is not `*.py`
    stray = root / f".{next(iter(originals))}.k7f3x9.nanlint-tmp"
    stray.write_bytes(next(iter(originals.values())))
    assert TEMPORARY.match(stray.name)
    listed = subprocess.run([sys.executable, "-m", "nanlint", "check", "--no-cache", "--output-format", "json",
                             str(root)], capture_output=True, text=True, timeout=300)
    assert listed.stdout.startswith("[") and "nanlint-tmp" not in listed.stdout, listed.stdout[:500]
    print(f"fixed files per kill: {outcomes}; temporary files left: {len(leftovers)}")
