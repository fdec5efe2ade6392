"""``--output-format github``: GitHub Actions workflow commands, escaped as @actions/core escapes them."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from click.testing import CliRunner

from helpers import lint

from nanlint.cli import main
from nanlint.finding import Finding
from nanlint.report.github import annotation, escape_data, escape_property, format_github
from nanlint.rules import ALL_RULES

COMMAND = re.compile(r"^::(?P<level>error|warning) (?P<props>[^:]*)::(?P<data>.*)$")


def parse(line: str) -> tuple[str, dict[str, str], str]:
    """Read a workflow command back the way the Actions runner does (split on `,` and the first `=`, unescape)."""
    match = COMMAND.match(line)
    assert match, line
    props = {}
    for item in match.group("props").split(","):
        key, _, value = item.partition("=")
        props[key] = unquote(value)
    return match.group("level"), props, unquote(match.group("data"))


def test_escaping_matches_the_actions_toolkit():
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_data("a: b, c") == "a: b, c"  # ':' and ',' are fine in the message
    assert escape_property("dir:x,y%z\nw") == "dir%3Ax%2Cy%25z%0Aw"
    assert escape_property("%3A") == "%253A"  # an already-escaped-looking value is escaped again, not passed through


def test_annotation_fields():
    finding = Finding("NAN101", "divide-by-norm", "division by `x.norm()`, a norm: 0 -> NaN\n100%",
                      "src/we,ird:name.py", 7, 12, 8, 3)
    line = annotation(finding)
    assert line.startswith("::error file=src/we%2Cird%3Aname.py,line=7,col=12,endLine=8,endColumn=3,"
                           "title=NAN101 divide-by-norm::")
    level, props, data = parse(line)
    assert level == "error"
    assert props == {"file": "src/we,ird:name.py", "line": "7", "col": "12", "endLine": "8", "endColumn": "3",
                     "title": "NAN101 divide-by-norm"}
    assert data == finding.message
    assert "\n" not in line


def test_preview_rules_are_warnings():
    preview = [r for r in ALL_RULES if r.preview]
    default = [r for r in ALL_RULES if not r.preview]
    assert preview and default
    for rule, expected in ((preview[0], "warning"), (default[0], "error")):
        finding = Finding(rule.code, rule.name, "m", "a.py", 1, 1, 1, 2)
        assert parse(annotation(finding))[0] == expected
    assert parse(annotation(Finding("NAN000", "file-error", "cannot parse", "a.py", 1, 1, 1, 1)))[0] == "error"


def test_cli_prints_one_command_per_finding(tmp_path: Path, monkeypatch):
    source = "import torch\n\n\ndef unit(x):\n    return x / x.norm()\n\n\ndef rms_loss(v):\n    return torch.sqrt(v.var())\n"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--isolated", "--output-format", "github", "pkg"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    findings = lint(source, path="pkg/m.py")
    findings = [f for f in findings if not next(r for r in ALL_RULES if r.code == f.code).preview]
    assert len(lines) == len(findings) == 2
    for line, finding in zip(lines, findings):
        level, props, data = parse(line)
        assert props == {"file": "pkg/m.py", "line": str(finding.line), "col": str(finding.column),
                         "endLine": str(finding.end_line), "endColumn": str(finding.end_column),
                         "title": f"{finding.code} {finding.name}"}
        assert data == finding.message


def test_no_findings_prints_nothing(tmp_path: Path, monkeypatch):
    (tmp_path / "ok.py").write_text("x = 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--isolated", "--output-format", "github", "ok.py"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert format_github([], 3) == ""
