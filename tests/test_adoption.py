"""Issue 16 points 4 and 5: what a team turning nanlint on in a big repository uses (`--quiet`, `--output-file`,
`--add-noqa`, unused suppressions, SARIF `suppressions`) and the progress bar of long runs."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import ROOT

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


BIG = '''import torch


def unit(x):
    return x / x.norm()


def commented(x):
    return x / x.norm()  # keep: measured on the cluster


def tooled(x):
    return x / x.norm()  # noqa: E501


def spread(x):
    doc = """a string
    # not a comment"""
    return torch.stack([
        x / x.norm(),
    ]), doc


def continued(x):
    return x / \\
        x.norm()
'''


def test_add_noqa_gives_a_clean_start_and_keeps_the_code(tmp_path: Path) -> None:
    path = write(tmp_path, "m.py", BIG)
    before = run(["--no-cache", "--output-format", "json", "m.py"], tmp_path)
    assert before.exit_code == 1 and len(json.loads(before.output)) == 5
    result = run(["--add-noqa", "m.py"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "Added 5 noqa directives in 1 file." in result.output
    text = path.read_text(encoding="utf-8")
    assert "    return x / x.norm()  # noqa: NAN101\n" in text
    assert "# keep: measured on the cluster  # noqa: NAN101\n" in text
    assert "# noqa: E501, NAN101\n" in text  # another tool's code is kept
    assert "        x / x.norm(),  # noqa: NAN101\n" in text  # inside brackets: the finding's own line
    assert "    return x / \\\n        x.norm()  # noqa: NAN101\n" in text  # not after a backslash
    assert '"""a string\n    # not a comment"""\n' in text
    compile(text, "m.py", "exec")
    after = run(["--no-cache", "--extend-select", "NAN001", "m.py"], tmp_path)
    assert after.exit_code == 0, after.output  # clean, and every comment is used
    assert run(["--add-noqa", "m.py"], tmp_path).output.startswith("Added 0 noqa directives")


def test_unused_noqa_is_a_rule_of_its_own(tmp_path: Path) -> None:
    write(tmp_path, "m.py", "import torch\n\ndef f(x):\n    return x / x.norm().clamp_min(1e-12)  # noqa: NAN101\n")
    assert run(["--no-cache", "m.py"], tmp_path).exit_code == 0  # preview: off unless selected
    result = run(["--no-cache", "--extend-select", "NAN001", "m.py"], tmp_path)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == \
        "m.py:4:43: NAN001 unused `noqa` code NAN101: no finding to suppress here"
    assert run(["--no-cache", "--extend-select", "NAN001", "--ignore", "NAN101", "m.py"], tmp_path).exit_code == 0
    assert "unused-noqa" in run(["rule", "NAN001"], tmp_path).output


def test_sarif_shows_suppressed_findings_as_dismissed(tmp_path: Path) -> None:
    write(tmp_path, "m.py", "import torch\n\ndef f(x):\n    a = x / x.norm()  # noqa: NAN101\n"
                            "    return a / a.norm()\n")
    result = run(["--no-cache", "--output-format", "sarif", "m.py"], tmp_path)
    assert result.exit_code == 1  # the suppressed finding does not count
    results = json.loads(result.output)["runs"][0]["results"]
    lines = [(r["locations"][0]["physicalLocation"]["region"]["startLine"], "suppressions" in r) for r in results]
    assert lines == [(4, True), (5, False)]
    assert results[0]["suppressions"][0]["kind"] == "inSource"
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(json.loads(result.output))
    write(tmp_path, "m.py", "import torch\n\ndef f(x):\n    return x / x.norm()  # noqa: NAN101\n")
    quiet = run(["--no-cache", "--output-format", "sarif", "m.py"], tmp_path)
    assert quiet.exit_code == 0 and len(json.loads(quiet.output)["runs"][0]["results"]) == 1
    assert json.loads(run(["--no-cache", "--output-format", "json", "m.py"], tmp_path).output) == []
