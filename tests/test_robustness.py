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


NEWER_SYNTAX = {
    # CPython 3.11 rejects each of these; libcst (>= 1.8) parses them, so nanlint lints the file
    "type_alias_312.py": "import torch\ntype X = int\ny = x / x.norm()\n",
    "generics_695.py": "import torch\ndef f[T](x: T) -> T:\n    return x / x.norm()\nclass C[T]: pass\n",
    "nested_quotes_701.py": 'import torch\nd = {"a": 1}\ns = f"{d["a"]}"\ny = x / x.norm()\n',
    "tstring_314.py": 'import torch\nname = "a"\ns = t"hello {name}"\ny = x / x.norm()\n',
    "except_no_parens_758.py": "import torch\ntry:\n    y = x / x.norm()\nexcept ValueError, TypeError:\n    pass\n",
}


@pytest.mark.parametrize("name", sorted(NEWER_SYNTAX))
def test_newer_python_syntax_is_linted_and_fixed(tmp_path: Path, name: str) -> None:
    from nanlint.fixes import fix_source

    source = NEWER_SYNTAX[name]
    with pytest.raises(SyntaxError):  # the premise: this interpreter cannot parse it
        compile(source, name, "exec")
    line = next(n for n, text in enumerate(source.splitlines(), 1) if "x.norm()" in text)
    assert codes(lint_source(name, source, REQUEST).findings) == [("NAN101", line)]
    outcome = fix_source(name, source, REQUEST, unsafe=True)
    assert outcome.changed and not outcome.remaining and not outcome.failed
    assert outcome.source == source.replace("x.norm()", "x.norm().clamp_min(torch.finfo(x.dtype).eps)")


def test_syntax_no_parser_knows_is_one_line_naming_file_and_position(tmp_path: Path) -> None:
    (tmp_path / "future.py").write_text("import torch\ny = x |> torch.sqrt\nz = x / x.norm()\n")
    (tmp_path / "py2.py").write_text("import torch\nprint 'x', x / x.norm()\n")
    for args in ([], ["--fix", "--unsafe-fixes"]):
        done = subprocess.run([sys.executable, "-m", "nanlint", "check", "--isolated", "--no-cache", *args,
                               str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        lines = done.stdout.splitlines()
        assert [line.split(": ")[0] for line in lines[:-1]] == ["future.py:2:8", "py2.py:2:1"], lines
        assert all(" NAN000 cannot parse" in line for line in lines[:-1])
    assert "|>" in (tmp_path / "future.py").read_text()  # nothing written


def test_bad_inputs_under_fix_are_one_line_each_and_nothing_is_written(tmp_path: Path) -> None:
    """The --fix path reads files itself (fix_file): the same bad inputs, the same one-line NAN000s."""
    (tmp_path / "dir.py").mkdir()  # a directory, even named x.py and passed explicitly, is walked: no finding
    (tmp_path / "dir.py" / "inner.py").write_bytes(b"x = '\xff'\n")
    (tmp_path / "broken.py").symlink_to(tmp_path / "nowhere.py")
    (tmp_path / "nul.py").write_bytes(b"import torch\ny = x / x.norm()\x00\n")
    (tmp_path / "latin.py").write_bytes(b"import torch\ns = '\xe9'\ny = x / x.norm()\n")
    (tmp_path / "cookie.py").write_bytes(b"# -*- coding: nonsense-42 -*-\ny = x / x.norm()\n")
    (tmp_path / "ok.py").write_text(HAZARD)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    done = subprocess.run([sys.executable, "-m", "nanlint", "check", "--isolated", "--no-cache", "--fix",
                           "--unsafe-fixes", ".", "dir.py", "missing.py"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert "Traceback" not in done.stderr and done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()[:-1]
    by_file = {line.split(":")[0].rsplit("/", 1)[-1]: line for line in lines}
    assert sorted(by_file) == ["broken.py", "cookie.py", "inner.py", "latin.py", "missing.py", "nul.py"], lines
    assert len(lines) == 6 and all(" NAN000 " in line for line in lines)
    assert "cannot decode as utf-8: byte 0xff" in by_file["inner.py"] and "No such file" in by_file["broken.py"]
    assert "NUL byte" in by_file["nul.py"] and "cannot decode as utf-8" in by_file["latin.py"]
    assert "no such file" in by_file["missing.py"] and "cannot decode" in by_file["cookie.py"]
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert {n: d for n, d in after.items() if n != "ok.py"} == {n: d for n, d in before.items() if n != "ok.py"}
    assert b"clamp_min" in after["ok.py"]


def test_valid_code_libcst_cannot_parse_is_one_clear_finding() -> None:
    """libcst 1.9 rejects a parenthesised annotation target (`(a): int`), which CPython accepts (found by
    benchmarks/reliability.py). nanlint cannot lint such a file; it says so in one line instead of crashing."""
    source = "import torch\n(a): int\ny = x / x.norm()\n"
    compile(source, "m.py", "exec")
    (finding,) = lint_source("m.py", source, REQUEST).findings
    assert finding.code == "NAN000" and finding.message.startswith("cannot parse (libcst)"), finding.message
    from nanlint.fixes import fix_source

    outcome = fix_source("m.py", source, REQUEST, unsafe=True)
    assert not outcome.changed and [f.code for f in outcome.remaining] == ["NAN000"]
