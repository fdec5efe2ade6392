"""Two ``nanlint --fix`` processes on one tree at once: every file ends fully fixed, exactly once.

Each process reads a file, fixes it in memory and writes it only if the file
still holds the bytes it read (``write_atomic``); the loser of a race either
sees the fixed file (nothing left to fix) or is refused ("changed on disk",
exit 2). A file is never interleaved, never fixed twice (two eps, two
``import torch``), and no temporary file is left.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fixhelpers import snapshot_inputs
from nanlint.cli import main

ROUNDS = 2
COPIES = 2


def _command(root: Path) -> list[str]:
    return [sys.executable, "-m", "nanlint", "check", "--fix", "--unsafe-fixes", "--no-cache", str(root)]


def test_two_fix_processes_on_one_tree(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nanlint]\n")
    originals = {f"{p.stem}_{i}.py": p.read_bytes() for p in snapshot_inputs() for i in range(COPIES)}
    for name, data in originals.items():
        (root / name).write_bytes(data)
    single = subprocess.run(_command(root), capture_output=True, text=True, timeout=300)
    assert single.returncode in (0, 1), single.stderr
    fixed = {name: (root / name).read_bytes() for name in originals}
    assert sum(fixed[n] != originals[n] for n in originals) >= len(originals) // 2
    again = subprocess.run(_command(root), capture_output=True, text=True, timeout=300)
    assert {name: (root / name).read_bytes() for name in originals} == fixed  # fully fixed: a fixed point
    assert "(0 fixed," in again.stdout

    refused = 0
    for _ in range(ROUNDS):
        for name, data in originals.items():
            (root / name).write_bytes(data)
        processes = [subprocess.Popen(_command(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in processes]
        results = [(p.returncode, *output) for p, output in zip(processes, outputs)]
        for status, stdout, stderr in results:
            assert "Traceback" not in stderr and "internal error" not in stderr, stderr
            if status == 2:  # only a lost race may make a run fail, and it says so
                refused += 1
                errors = [line for line in stderr.splitlines() if line.startswith("nanlint: error:")]
                assert errors and all("changed on disk" in line for line in errors), stderr
            else:
                assert status in (0, 1), (status, stderr)
            assert stdout.rstrip().splitlines()[-1].startswith("Found "), stdout
        for name in originals:
            assert (root / name).read_bytes() == fixed[name], f"{name} differs from the single-process fix"
        assert sorted(p.name for p in root.iterdir()) == sorted([*originals, "pyproject.toml"])
    print(f"runs that lost a race and said so: {refused} of {2 * ROUNDS}")


def test_file_changed_between_read_and_write_is_not_overwritten_through_the_cli(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """The CLI path (fix_file -> finish -> write_atomic) refuses, for each file that changed, and goes on."""
    import nanlint.fixes as fixes

    inputs = [p for p in snapshot_inputs()][:2]
    for index, source in enumerate(inputs):
        (tmp_path / f"f{index}.py").write_bytes(source.read_bytes())
    victim = tmp_path / "f0.py"
    real_read = fixes.fix_source

    def edit_after_reading(path, text, request, *args):  # the file changes while it is being fixed
        outcome = real_read(path, text, request, *args)
        if Path(path).name == victim.name:
            victim.write_text("# edited by someone else\n")
        return outcome

    monkeypatch.setattr(fixes, "fix_source", edit_after_reading)
    result = CliRunner().invoke(main, ["check", "--isolated", "--fix", "--unsafe-fixes", "--no-cache",
                                       str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"{victim}: not fixed: it changed on disk since it was read" in result.stderr
    assert victim.read_text() == "# edited by someone else\n"
    other = tmp_path / "f1.py"
    assert other.read_bytes() != inputs[1].read_bytes()  # the other file was still fixed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.py", "f1.py"]
