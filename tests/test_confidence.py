"""Finding.confidence plumbing: JSON key, SARIF rank, `--confidence` / `confidence =`, what is dropped and counted.

The value analysis that sets confidence lives in the rules; here a finding's confidence is taken from a
`# conf: <level>` comment on its line (wrapping the engine's finding builder), so the plumbing is tested on
every level whatever the rules currently decide.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

import nanlint.cst_pass as cst_pass
from test_cli import run, write

SOURCE = """import torch

def f(x):
    a = x / x.norm()  # conf: high
    b = x / x.norm(dim=0)  # conf: medium
    return a, b, x / x.norm(dim=1)  # conf: low
"""


@pytest.fixture
def levelled(monkeypatch: pytest.MonkeyPatch):
    original = cst_pass._locate

    def locate(path, source, *args, **kwargs):
        lines = source.splitlines()
        out = []
        for finding in original(path, source, *args, **kwargs):
            mark = re.search(r"# conf: (\w+)", lines[finding.line - 1])
            out.append(dataclasses.replace(finding, confidence=mark.group(1)) if mark else finding)
        return out

    monkeypatch.setattr(cst_pass, "_locate", locate)


def _lines(tmp_path: Path, *args: str) -> tuple[int, list[int], str]:
    result = run(["--no-cache", "-j", "1", "--output-format", "json", *args, "m.py"], tmp_path)
    data = json.loads(result.output)
    return result.exit_code, [d["line"] for d in data], [d["confidence"] for d in data]


def test_default_shows_high_and_medium_and_the_option_and_key_move_the_bar(tmp_path: Path, levelled) -> None:
    write(tmp_path, "m.py", SOURCE)
    assert _lines(tmp_path) == (1, [4, 5], ["high", "medium"])
    assert _lines(tmp_path, "--confidence", "low") == (1, [4, 5, 6], ["high", "medium", "low"])
    assert _lines(tmp_path, "--confidence", "high") == (1, [4], ["high"])
    write(tmp_path, "pyproject.toml", '[tool.nanlint]\nconfidence = "low"\n')
    assert _lines(tmp_path)[1] == [4, 5, 6]
    assert _lines(tmp_path, "--confidence", "medium")[1] == [4, 5]  # the command line wins
    write(tmp_path, "pyproject.toml", '[tool.nanlint]\nconfidence = "maybe"\n')
    bad = run(["--no-cache", "m.py"], tmp_path)
    assert bad.exit_code == 2 and "`confidence` must be one of 'high', 'medium', 'low'" in bad.output


def test_findings_below_the_bar_do_not_fail_the_run(tmp_path: Path, levelled) -> None:
    write(tmp_path, "m.py", "import torch\n\ndef f(x):\n    return x / x.norm()  # conf: low\n")
    text = run(["--no-cache", "-j", "1", "m.py"], tmp_path)
    assert text.exit_code == 0 and "All checks passed" in text.output
    shown = run(["--no-cache", "-j", "1", "--confidence", "low", "m.py"], tmp_path)
    assert shown.exit_code == 1 and shown.output.splitlines()[0].endswith("(low confidence)")


def test_sarif_rank_follows_confidence(tmp_path: Path, levelled) -> None:
    write(tmp_path, "m.py", SOURCE)
    result = run(["--no-cache", "-j", "1", "--output-format", "sarif", "--confidence", "low", "m.py"], tmp_path)
    results = json.loads(result.output)["runs"][0]["results"]
    assert [(r["locations"][0]["physicalLocation"]["region"]["startLine"], r["rank"]) for r in results] == [
        (4, 90.0), (5, 60.0), (6, 30.0)]
