"""The pre-commit hooks in .pre-commit-hooks.yaml, run by the real `pre-commit` on a real git repository.

Two set-ups:

* `test_git_commit_runs_the_hook`, `test_fix_hook_…` (seconds, offline): the hook definitions are read from
  .pre-commit-hooks.yaml and installed as a `repo: local` hook with `language: system`, the entry's
  `nanlint` replaced by `<this python> -m nanlint` (PYTHONPATH points at this checkout). Everything else
  (`types`, `args`, `require_serial`, the `--force-exclude` in the entry) is the manifest's own. Then
  `pre-commit install` and plain `git commit`, as a user would: the `nanlint` hook refuses a commit
  with a hazard and accepts it once fixed; the `nanlint-fix` hook rewrites a safe fix in place (pre-commit
  then refuses the commit because a hook changed files), the re-staged commit passes, and a hazard with only
  an unsafe fix is reported, not rewritten.
* `test_manifest_installs_as_a_python_hook` (slow, ~20 s, needs the package index like `pip install` does):
  the manifest used as is, from a git repository holding this checkout's package: pre-commit builds its
  own virtualenv and pip-installs nanlint (`language: python`), exactly what a user's
  `repo: https://…/nanlint` entry does.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

yaml = pytest.importorskip("yaml")
pytest.importorskip("pre_commit", reason="the test extra installs pre-commit")

MANIFEST = ROOT / ".pre-commit-hooks.yaml"
HAZARD = "import torch\n\n\ndef unit(x):\n    return x / x.norm()\n"
FIXED_BY_HAND = "import torch\n\n\ndef unit(x):\n    return x / x.norm().clamp_min(1e-4)\n"
TIMEOUT = 120


def manifest_hooks() -> dict[str, dict]:
    hooks = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return {hook["id"]: hook for hook in hooks}


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=True)


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update({
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "nanlint tests", "GIT_AUTHOR_EMAIL": "tests@nanlint.invalid",
        "GIT_COMMITTER_NAME": "nanlint tests", "GIT_COMMITTER_EMAIL": "tests@nanlint.invalid",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        # the pre-commit entry point next to this interpreter, and git
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
    })
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def make_repository(path: Path, env: dict[str, str]) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], env=env, check=True, timeout=TIMEOUT)
    (path / "pyproject.toml").write_text('[tool.nanlint]\nextend-exclude = ["generated"]\n', encoding="utf-8")
    (path / "generated").mkdir()
    (path / "generated" / "model_pb.py").write_text(HAZARD, encoding="utf-8")  # excluded by the config
    (path / "loss.py").write_text(HAZARD, encoding="utf-8")
    (path / "notes.txt").write_text("x / x.norm()\n", encoding="utf-8")
    return path


def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def local_config(hook_ids: list[str]) -> str:
    hooks = []
    for hook_id in hook_ids:
        hook = dict(manifest_hooks()[hook_id])
        program, *rest = shlex.split(hook["entry"])
        assert program == "nanlint"
        hook["entry"] = shlex.join([sys.executable, "-m", "nanlint", *rest])
        hook["language"] = "system"
        hooks.append(hook)
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": hooks}]}, sort_keys=False)


def test_manifest_declares_both_hooks():
    hooks = manifest_hooks()
    assert set(hooks) == {"nanlint", "nanlint-fix"}
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["types_or"] == ["python", "jupyter"] and "types" not in hook
        assert shlex.split(hook["entry"])[:2] == ["nanlint", "--force-exclude"]
        assert hook.get("pass_filenames", True) and not hook.get("always_run", False)
    assert "--fix" in shlex.split(hooks["nanlint-fix"]["entry"])
    validated = subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest", str(MANIFEST)],
                               capture_output=True, text=True, timeout=TIMEOUT)
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_git_commit_runs_the_hook(tmp_path: Path):
    env = environment(tmp_path)
    repo = make_repository(tmp_path / "project", env)
    (repo / ".pre-commit-config.yaml").write_text(local_config(["nanlint"]), encoding="utf-8")
    installed = run(repo, env, sys.executable, "-m", "pre_commit", "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # a commit with no Python file staged: the hook is skipped, nanlint does not run on the whole tree
    git(repo, "add", "notes.txt", ".pre-commit-config.yaml")
    commit = run(repo, env, "git", "commit", "-m", "notes")
    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert "(no files to check)Skipped" in commit.stdout + commit.stderr

    # the hazard is staged: the commit is refused and the finding is shown; the excluded file is not reported
    git(repo, "add", "loss.py", "generated/model_pb.py", "pyproject.toml")
    commit = run(repo, env, "git", "commit", "-m", "add loss")
    output = commit.stdout + commit.stderr
    assert commit.returncode == 1, output
    assert "nanlint" in output and "Failed" in output
    assert "loss.py:5:12: NAN101 division by `x.norm()`" in output
    assert "model_pb.py" not in output
    assert git(repo, "rev-list", "--count", "HEAD").stdout.strip() == "1"

    # fixed by hand (this hook only checks; `nanlint-fix` is tested below), staged again: the commit goes through
    (repo / "loss.py").write_text(FIXED_BY_HAND, encoding="utf-8")
    git(repo, "add", "loss.py")
    commit = run(repo, env, "git", "commit", "-m", "add loss")
    output = commit.stdout + commit.stderr
    assert commit.returncode == 0, output
    assert "nanlint" in output and "Passed" in output
    assert git(repo, "rev-list", "--count", "HEAD").stdout.strip() == "2"


LOG_SOFTMAX = "import torch\nimport torch.nn.functional as F\n\n\ndef nll(x):\n    return -torch.log(F.softmax(x, dim=-1))\n"


def test_fix_hook_rewrites_the_file_then_the_commit_passes(tmp_path: Path):
    env = environment(tmp_path)
    repo = make_repository(tmp_path / "project", env)
    (repo / "nll.py").write_text(LOG_SOFTMAX, encoding="utf-8")  # NAN301: a safe fix (log_softmax)
    (repo / ".pre-commit-config.yaml").write_text(local_config(["nanlint-fix"]), encoding="utf-8")
    installed = run(repo, env, sys.executable, "-m", "pre_commit", "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    git(repo, "add", "nll.py", ".pre-commit-config.yaml", "pyproject.toml")

    # the hook fixes the staged file in the working tree; pre-commit refuses the commit because a hook
    # modified files, and the user reviews and stages the fix
    commit = run(repo, env, "git", "commit", "-m", "nll")
    output = commit.stdout + commit.stderr
    assert commit.returncode == 1, output
    assert "files were modified by this hook" in output
    fixed = (repo / "nll.py").read_text(encoding="utf-8")
    assert fixed == LOG_SOFTMAX.replace("torch.log(F.softmax(x, dim=-1))", "F.log_softmax(x, dim=-1)")
    assert git(repo, "rev-list", "--all", "--count").stdout.strip() == "0"

    git(repo, "add", "nll.py")
    commit = run(repo, env, "git", "commit", "-m", "nll")
    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert git(repo, "show", "HEAD:nll.py").stdout == fixed

    # a hazard whose fix is unsafe is reported, not rewritten: the commit stays refused
    git(repo, "add", "loss.py")
    commit = run(repo, env, "git", "commit", "-m", "loss")
    output = commit.stdout + commit.stderr
    assert commit.returncode == 1, output
    assert "loss.py:5:12: NAN101" in output
    assert (repo / "loss.py").read_text(encoding="utf-8") == HAZARD


def package_repository(path: Path, env: dict[str, str]) -> str:
    """A git repository holding this checkout's package and manifest (uncommitted changes included)."""
    path.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "nanlint", path / "nanlint", ignore=ignore)
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "LICENSE", "LICENSE.md", "LICENSE.txt"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, path / name)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], env=env, check=True, timeout=TIMEOUT)
    git(path, "add", "-A")
    subprocess.run(["git", "commit", "-q", "-m", "nanlint"], cwd=path, env=env, check=True, timeout=TIMEOUT)
    return git(path, "rev-parse", "HEAD").stdout.strip()


@pytest.mark.slow
def test_manifest_installs_as_a_python_hook(tmp_path: Path):
    env = environment(tmp_path)
    source = tmp_path / "nanlint-src"
    rev = package_repository(source, env)
    repo = make_repository(tmp_path / "project", env)
    config = {"repos": [{"repo": str(source), "rev": rev, "hooks": [{"id": "nanlint"}]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env.pop("PYTHONPATH")  # the hook must use the nanlint that pre-commit installed into its own virtualenv
    git(repo, "add", "-A")
    first = subprocess.run([sys.executable, "-m", "pre_commit", "run"], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=600)
    output = first.stdout + first.stderr
    if first.returncode == 3 and "CalledProcessError" in output and "pip" in output:
        pytest.fail(f"pre-commit could not pip-install nanlint into its virtualenv (package index reachable?):\n"
                    f"{output[-3000:]}")
    assert first.returncode == 1, output
    assert "loss.py:5:12: NAN101" in output
    assert "model_pb.py" not in output
    (repo / "loss.py").write_text(FIXED_BY_HAND, encoding="utf-8")
    git(repo, "add", "loss.py")
    second = subprocess.run([sys.executable, "-m", "pre_commit", "run"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert second.returncode == 0, second.stdout + second.stderr
