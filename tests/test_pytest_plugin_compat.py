"""Issue 16 point 8: the pytest plugin loads into the lowest pytest it meets (7.2 / pluggy 1.0), and
`--nanlint-watch` without torch stops the run once, at configure time.

A throwaway virtual environment gets pytest 7.2.0 and pluggy 1.0.0 from the package index (skipped, saying so,
when the index cannot be reached). nanlint comes from this checkout on PYTHONPATH; for the run with torch, the
test interpreter's site-packages are appended after the old pytest's own.
"""
from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from helpers import ROOT

TESTS = textwrap.dedent("""\
    def test_plain():
        assert 1 + 1 == 2
    """)
NAN_TESTS = textwrap.dedent("""\
    import torch


    def test_log_of_zero():
        torch.log(torch.zeros(2))


    def test_finite():
        (torch.ones(2) * 2).sum()
    """)


@pytest.fixture(scope="module")
def old_pytest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pytest72")
    venv.EnvBuilder(with_pip=True).create(home / "venv")
    python = home / "venv" / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                "pytest==7.2.0", "pluggy==1.0.0"], capture_output=True, text=True, timeout=180)
    if installed.returncode != 0:
        pytest.skip(f"cannot install pytest 7.2.0 from the package index: {installed.stderr.strip()[-300:]}")
    return python


def _run(python: Path, cwd: Path, *args: str, with_torch: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONPATH=str(ROOT))
    if with_torch:  # torch from this interpreter, after the old pytest (a .pth file appends, never shadows)
        site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        Path(site_dir, "zz_outer.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    try:
        return subprocess.run([str(python), "-m", "pytest", "-q", "-p", "nanlint.verify.pytest_plugin",
                               "-p", "no:cacheprovider", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=120)
    finally:
        if with_torch:
            Path(site_dir, "zz_outer.pth").unlink()


def test_the_plugin_loads_into_pytest_7_2(old_pytest: Path, tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(TESTS, encoding="utf-8")
    version = subprocess.run([str(old_pytest), "-c", "import pytest, pluggy; print(pytest.__version__, "
                              "pluggy.__version__)"], capture_output=True, text=True, check=True).stdout.split()
    assert version == ["7.2.0", "1.0.0"]
    result = _run(old_pytest, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_watch_without_torch_stops_once_at_configure_time(old_pytest: Path, tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(TESTS, encoding="utf-8")
    result = _run(old_pytest, tmp_path, "--nanlint-watch")
    output = result.stdout + result.stderr
    assert result.returncode == 4, output  # pytest's usage error: no test ran
    assert output.count("--nanlint-watch: nanlint verify needs PyTorch") == 1
    assert "passed" not in output and "failed" not in output


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_watch_fails_a_nan_test_on_pytest_7_2(old_pytest: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "test_model.py").write_text(NAN_TESTS, encoding="utf-8")
    result = _run(old_pytest, tmp_path, "--nanlint-watch", with_torch=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "nanlint: this test produced a NaN/Inf" in result.stdout
