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


def test_name_patterns_take_the_quick_path_with_the_same_verdicts(tmp_path: Path) -> None:
    """Exclude sets of bare-name globs (the default excludes) are matched with fnmatch, without pathspec: the
    verdicts equal pathspec's .gitignore verdicts on files, directories, inside and outside the root."""
    from nanlint.config import DEFAULT_EXCLUDES, Settings, _name_matcher

    root = tmp_path / "proj"
    names = ["build", "dist", "a.egg-info", "egg-info", ".egg-info", "venv", "venv2", ".venv", "x.py", "m_pb2.py",
             "__pycache__", "node_modules", "bu?ld", "b", "ab", ".hidden", "env", "envy"]
    for name in names:
        (root / "pkg" / name).mkdir(parents=True, exist_ok=True)
        (root / "pkg" / name / "f.py").write_text("x = 1\n")
        (root / "pkg" / (name + ".py")).write_text("x = 1\n")
    pattern_sets = [DEFAULT_EXCLUDES, ("*.py",), ("b?", "*_pb2.py"), ("venv*", ".*"), ()]
    entries = [root / "pkg" / n for n in names] + [root / "pkg" / (n + ".py") for n in names]
    entries += [root / "pkg" / names[0] / "f.py", tmp_path / "build", tmp_path / "x.py"]
    for patterns in pattern_sets:
        assert _name_matcher(patterns) is not None, patterns
        settings = Settings(root=str(root), exclude=patterns)
        for entry in entries:
            quick = settings.is_excluded(str(entry))
            _name_matcher.cache_clear()
            slow_settings = Settings(root=str(root), exclude=(*patterns, "no/such/dir"))  # a `/`: pathspec
            assert _name_matcher(slow_settings.exclude) is None
            assert slow_settings.is_excluded(str(entry)) == quick, (patterns, entry)
    for pattern in ("a/b", "!x", "[ab]", "**", "dir/", "a b", "#c", ".", ".."):
        assert _name_matcher((pattern,)) is None, pattern


def test_display_paths_of_a_walk_equal_display_path(tmp_path: Path, monkeypatch) -> None:
    from nanlint.discovery import _display_below, display_path

    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    for root in (str(tmp_path / "a"), str(tmp_path / "a" / "b"), str(tmp_path), str(tmp_path / "a") + "/",
                 ".", "b", "./b", "..", "../a/b", "b/"):
        for name in ("m.py", "..m.py", ".m.py"):
            assert _display_below(display_path(root), root, name) == display_path(os.path.join(root, name)), \
                (root, name)
