"""Bad inputs never crash nanlint: each becomes one clear NAN000 line, the rest is still linted."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nanlint.engine import LintRequest, lint_path, lint_source
from nanlint.rules import ALL_RULES
from nanlint.rules.base import Rule

REQUEST = LintRequest(ALL_RULES)
HAZARD = "import torch\n\ndef f(x):\n    return x / x.norm()\n"


def codes(findings):
    return [(f.code, f.line) for f in findings]


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 10_000 + "x" + ")" * 10_000,  # libcst's native parser segfaults on this
        "x" + ".sqrt()" * 10_000,
        "x" + "[0]" * 10_000,
        "x" + " + 1" * 10_000,
        "-" * 10_000 + "x",
        "[" * 10_000 + "]" * 10_000,
    ],
    ids=["parens", "attribute-chain", "subscripts", "binop", "unary", "lists"],
)
def test_10000_deep_nesting_is_a_finding_not_a_crash(expression: str) -> None:
    # run in a subprocess: a regression here would kill the interpreter (SIGSEGV), not fail an assert
    code = (
        "import sys\n"
        "from nanlint.engine import lint_source, LintRequest\n"
        "from nanlint.rules import ALL_RULES\n"
        "src = sys.stdin.read()\n"
        "r = lint_source('deep.py', src, LintRequest(ALL_RULES))\n"
        "print([(f.code, f.message) for f in r.findings])\n"
    )
    source = "import torch\ny = " + expression + "\nz = y / y.norm()\n"
    done = subprocess.run([sys.executable, "-c", code], input=source, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "NAN000" in done.stdout and "cannot parse" in done.stdout


def test_deep_but_valid_nesting_is_linted() -> None:
    source = "import torch\ny = x" + " + 1" * 2000 + "\nz = y / y.norm()\n"
    assert codes(lint_source("ok.py", source, REQUEST).findings) == [("NAN101", 3)]


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"\xef\xbb\xbf" + HAZARD.encode(), [("NAN101", 4)]),  # UTF-8 BOM
        (b"# -*- coding: latin-1 -*-\n" + b"s = '\xe9'\n" + HAZARD.encode(), [("NAN101", 6)]),
        (HAZARD.replace("\n", "\r\n").encode(), [("NAN101", 4)]),  # CRLF
        (b"import torch\r\ndef f(x):\n\treturn x / x.norm()\r", [("NAN101", 3)]),  # mixed newlines, tabs
        (b"", []),
        (b"x = '\xff\xfe'\n", [("NAN000", 1)]),
        (b"x = 1\x00\n", [("NAN000", 1)]),
        (b"# -*- coding: nonsense-42 -*-\nx = 1\n", [("NAN000", 1)]),
        (b"def f(:\n", [("NAN000", 1)]),
    ],
    ids=["bom", "latin-1", "crlf", "mixed-tabs", "empty", "not-utf8", "nul", "bad-cookie", "syntax"],
)
def test_encodings_and_bytes(tmp_path: Path, data: bytes, expected) -> None:
    path = tmp_path / "m.py"
    path.write_bytes(data)
    assert codes(lint_path(str(path), REQUEST).findings) == expected


def test_file_errors_name_the_file_and_problem(tmp_path: Path) -> None:
    (tmp_path / "x.py").mkdir()
    finding = lint_path(str(tmp_path / "x.py"), REQUEST).findings[0]
    assert finding.code == "NAN000" and "directory" in finding.message
    link = tmp_path / "broken.py"
    link.symlink_to(tmp_path / "nowhere.py")
    finding = lint_path(str(link), REQUEST).findings[0]
    assert finding.code == "NAN000" and "No such file" in finding.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.py"
    path.write_text(HAZARD)
    path.chmod(0)
    finding = lint_path(str(path), REQUEST).findings[0]
    assert finding.code == "NAN000" and "Permission denied" in finding.message


def test_symlink_loop_and_newer_syntax(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nanlint.cli import main

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "loop").symlink_to(tmp_path / "pkg")
    (tmp_path / "pkg" / "m.py").write_text(HAZARD)
    (tmp_path / "pkg" / "self.py").symlink_to(tmp_path / "pkg" / "self.py")
    result = CliRunner().invoke(main, [str(tmp_path / "pkg")])
    assert result.exit_code == 1
    assert "m.py:4:12: NAN101" in result.output
    assert "self.py:1:1: NAN000" in result.output
    assert "Traceback" not in result.output


def test_large_file(tmp_path: Path) -> None:
    body = "def g{i}(x):\n    return x.norm() + {i}\n"
    chunk = "".join(body.format(i=i) for i in range(20_000))  # ~1 MB
    path = tmp_path / "big.py"
    with open(path, "w") as handle:
        handle.write("import torch\n")
        for _ in range(60):  # ~50 MB
            handle.write(chunk)
        handle.write(HAZARD)
    (finding,) = lint_path(str(path), REQUEST).findings
    assert finding.code == "NAN000" and "not analysed: file is 47.9 MiB" in finding.message, finding.message
    medium = tmp_path / "medium.py"
    medium.write_text("import torch\n" + "".join(body.format(i=i) for i in range(2_000)) + HAZARD)
    assert [f.code for f in lint_path(str(medium), REQUEST).findings] == ["NAN101"]


class Exploding(Rule):
    code = "NAN998"
    name = "exploding"
    summary = "test rule that raises"
    rows = "-"
    import re as _re

    screen = _re.compile("norm")

    def visit_Call(self, node) -> None:
        raise ZeroDivisionError("boom")


def test_a_crashing_rule_is_an_internal_error_and_others_go_on() -> None:
    result = lint_source("m.py", HAZARD, LintRequest((*ALL_RULES, Exploding)))
    assert result.internal_error
    assert ("NAN101", 4) in codes(result.findings)
    errors = [f for f in result.findings if f.code == "NAN999"]
    assert len(errors) == 1 and "NAN998" in errors[0].message and "ZeroDivisionError: boom" in errors[0].message


def test_static_mode_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "EXECUTED"
    payload = f"open({str(marker)!r}, 'w').write('x')\n"
    for name in ("__init__.py", "conftest.py", "setup.py", "train.py"):
        (tmp_path / name).write_text(payload + HAZARD)
    done = subprocess.run([sys.executable, "-m", "nanlint", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 1 and done.stdout.count("NAN101") == 4
    assert not marker.exists()
