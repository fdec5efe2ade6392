"""Issue 16 points 4 and 5: what a team turning nanlint on in a big repository uses (`--quiet`, `--output-file`,
`--add-noqa`, unused suppressions, SARIF `suppressions`) and the progress bar of long runs."""
from __future__ import annotations

import io
import json
from pathlib import Path

from click.testing import CliRunner

from nanlint.cli import Progress, main
from test_cli import run, write

HAZARD = "import torch\n\ndef f(x):\n    return x / x.norm()\n"  # NAN101 at 4:12


def test_quiet_prints_the_findings_only(tmp_path: Path) -> None:
    write(tmp_path, "m.py", HAZARD)
    write(tmp_path, "ok.py", "x = 1\n")
    result = run(["--quiet", "m.py"], tmp_path)
    assert result.exit_code == 1
    assert result.output == "m.py:4:12: NAN101 " + result.output.split(" NAN101 ", 1)[1]
    assert len(result.output.splitlines()) == 1 and "Found" not in result.output
    clean = run(["-q", "ok.py"], tmp_path)
    assert clean.exit_code == 0 and clean.output == ""


def test_output_file_holds_the_report(tmp_path: Path) -> None:
    write(tmp_path, "m.py", HAZARD)
    result = run(["--output-format", "json", "--output-file", "report.json", "m.py"], tmp_path)
    assert result.exit_code == 1 and result.output == ""
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [(d["code"], d["line"]) for d in data] == [("NAN101", 4)]
    run(["--statistics", "-o", "stats.txt", "m.py"], tmp_path)
    assert (tmp_path / "stats.txt").read_text(encoding="utf-8") == "1\tNAN101\tdivide-by-norm\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_for_text_after_a_second(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert Progress.wanted("text", quiet=False, stream=_Terminal())
    assert not Progress.wanted("text", quiet=False, stream=io.StringIO())  # pre-commit, pipes, files
    for fmt in ("json", "sarif", "github"):
        assert not Progress.wanted(fmt, quiet=False, stream=_Terminal())
    assert not Progress.wanted("text", quiet=True, stream=_Terminal())
    monkeypatch.setenv("CI", "true")
    assert not Progress.wanted("text", quiet=False, stream=_Terminal())

    now = [0.0]  # a hand-moved clock: no sleeping, no timing
    stream = _Terminal()
    bar = Progress(10, clock=lambda: now[0], stream=stream)
    for _ in range(3):
        now[0] += 0.3
        bar.advance()
    assert bar.bar is None and stream.getvalue() == ""  # 0.9 s: nothing yet
    now[0] += 0.3
    bar.advance()
    assert bar.bar is not None
    for _ in range(6):
        bar.advance()
    bar.close()
    assert "Linting" in stream.getvalue() and "10/10" in stream.getvalue()


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Progress, "DELAY", -1.0)  # a bar from the first file, if one were allowed
    for i in range(5):
        write(tmp_path, f"m{i}.py", HAZARD)
    result = CliRunner().invoke(main, ["--no-cache", "-j", "1", str(tmp_path)])
    assert result.exit_code == 1 and "Found 5 problems" in result.output
    assert "Linting" not in result.output  # stdout and stderr together
