"""Issue 16 point 2: .gitignore-style globs (pathspec) in the configuration, and .gitignore respected."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from test_cli import run, write

HAZARD = "import torch\n\ndef f(x):\n    return x / x.norm()\n"  # NAN101


def _paths(cwd: Path, *args: str) -> set[str]:
    result = run(["--output-format", "json", "--no-cache", *args], cwd)
    assert result.exit_code in (0, 1), result.output
    return {f["path"].replace(os.sep, "/") for f in json.loads(result.output)}


def test_double_star_patterns_match_at_the_top_too(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[tool.nanlint]\nper-file-ignores = {"**/tests/*" = ["NAN101"]}\n'
                                      'extend-exclude = ["**/ignored"]\n')
    for rel in ("tests/t.py", "pkg/tests/t.py", "ignored/i.py", "pkg/ignored/i.py", "pkg/m.py"):
        write(tmp_path, rel, HAZARD)
    assert _paths(tmp_path, ".") == {"pkg/m.py"}


def test_gitignore_is_respected_unless_told_otherwise(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path, ".gitignore", "generated/\n*_pb2.py\n")
    write(tmp_path, "pkg/.gitignore", "!keep_pb2.py\nlocal.py\n")  # a deeper file decides
    for rel in ("generated/g.py", "pkg/x_pb2.py", "pkg/keep_pb2.py", "pkg/local.py", "pkg/m.py", "other/local.py"):
        write(tmp_path, rel, HAZARD)
    assert _paths(tmp_path, ".") == {"pkg/keep_pb2.py", "pkg/m.py", "other/local.py"}
    everything = {"generated/g.py", "pkg/x_pb2.py", "pkg/keep_pb2.py", "pkg/local.py", "pkg/m.py", "other/local.py"}
    assert _paths(tmp_path, "--no-respect-gitignore", ".") == everything
    write(tmp_path, "pyproject.toml", "[tool.nanlint]\nrespect-gitignore = false\n")
    assert _paths(tmp_path, ".") == everything
    assert _paths(tmp_path, "--respect-gitignore", ".") == {"pkg/keep_pb2.py", "pkg/m.py", "other/local.py"}
    # a file named on the command line is linted; pre-commit's --force-exclude drops it
    assert _paths(tmp_path, "--respect-gitignore", "generated/g.py") == {"generated/g.py"}
    assert _paths(tmp_path, "--respect-gitignore", "--force-exclude", "generated/g.py") == set()


def test_gitignore_outside_a_repository_is_not_read(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.py\n")
    write(tmp_path, "m.py", HAZARD)
    assert _paths(tmp_path, ".") == {"m.py"}


def test_a_path_named_inside_an_excluded_or_ignored_directory_is_linted(tmp_path: Path) -> None:
    """`nanlint fixtures/demo` in a project that excludes `fixtures`: the named directory is walked (ruff's
    convention); only --force-exclude looks at the directories above it."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path, "pyproject.toml", '[tool.nanlint]\nextend-exclude = ["fixtures"]\n')
    write(tmp_path, ".gitignore", "scratch/\n")
    write(tmp_path, "fixtures/demo/m.py", HAZARD)
    write(tmp_path, "scratch/s.py", HAZARD)
    assert _paths(tmp_path, ".") == set()
    assert _paths(tmp_path, "fixtures/demo") == {"fixtures/demo/m.py"}
    assert _paths(tmp_path, "scratch") == {"scratch/s.py"}
    assert _paths(tmp_path, "--force-exclude", "fixtures/demo", "scratch", "scratch/s.py") == set()
