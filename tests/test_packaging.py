"""Issue 16 point 7: the sdist builds a wheel, leaves the test suite out, and carries an SPDX licence and the
classifiers; the published extras take a pygls range, not a pin.

`python -m build` (the test extra installs it) builds the sdist from a copy of the tracked files, then the
wheel from that sdist, as PyPI users and distributions do (build isolation fetches setuptools from the index;
the test is skipped, saying so, when the index cannot be reached).
"""
from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT


def test_sdist_and_wheel(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="the test extra installs `build`")
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    source = tmp_path / "src"
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and ("Could not find a version" in built.stderr or "NewConnectionError" in built.stderr):
        pytest.skip("build isolation cannot reach the package index")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]

    sdist = next((tmp_path / "dist").glob("*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
        metadata = email.message_from_bytes(archive.extractfile(f"{sdist.name[:-7]}/PKG-INFO").read())
    assert "LICENSE" in names and "README.md" in names and "nanlint/cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "fixtures/", "benchmarks/"))]  # all out, not half
    assert metadata["License-Expression"] == "MIT" and metadata["License-File"] == "LICENSE"
    classifiers = metadata.get_all("Classifier")
    for wanted in ("Environment :: Console", "Topic :: Software Development :: Quality Assurance",
                   "Typing :: Typed", "Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.13"):
        assert wanted in classifiers
    assert 'pygls<3,>=2; extra == "lsp"' in metadata.get_all("Requires-Dist")
    assert not [r for r in metadata.get_all("Requires-Dist") if "pygls==" in r]

    wheel = next((tmp_path / "dist").glob("*.whl"))  # built from the sdist above
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
    assert "nanlint/py.typed" in files and "nanlint/request.py" in files
    assert any(f.endswith("licenses/LICENSE") for f in files)
    assert not [f for f in files if f.startswith("tests/")]
