"""The command line: exit codes, formats, selection, config, suppressions, discovery, file errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from nanlint.cli import main

HAZARD = "import torch\n\ndef f(x):\n    return x / x.norm()\n"
CLEAN = "import torch\n\ndef f(x):\n    return x.norm()\n"


def run(args, cwd: Path, stdin: str | None = None):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)
    finally:
        os.chdir(old)


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_exit_codes_and_text_format(tmp_path: Path) -> None:
    write(tmp_path, "bad.py", HAZARD)
    write(tmp_path, "good.py", CLEAN)
    result = run(["."], tmp_path)
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("bad.py:4:12: NAN101 division by `x.norm()`")
    assert result.output.splitlines()[-1].startswith("Found 1 problem in 1 file (2 checked).")
    assert run(["good.py"], tmp_path).exit_code == 0
    assert run(["--exit-zero", "bad.py"], tmp_path).exit_code == 0
    assert run(["check", "bad.py"], tmp_path).exit_code == 1
    assert run(["--output-format", "nope", "bad.py"], tmp_path).exit_code == 2


def test_sorted_by_path_then_position(tmp_path: Path) -> None:
    write(tmp_path, "b.py", HAZARD)
    write(tmp_path, "a.py", HAZARD + "\ndef g(x):\n    return x / x.norm()\n")
    lines = run(["."], tmp_path).output.splitlines()[:-1]
    assert [line.split(": ")[0] for line in lines] == ["a.py:4:12", "a.py:7:12", "b.py:4:12"]


def test_json_format_keys(tmp_path: Path) -> None:
    write(tmp_path, "bad.py", HAZARD)
    result = run(["--output-format", "json", "bad.py"], tmp_path)
    data = json.loads(result.output)
    assert len(data) == 1
    assert set(data[0]) == {"code", "name", "message", "path", "line", "column", "end_line", "end_column", "fix",
                            "confidence", "cell"}
    assert data[0]["confidence"] in ("high", "medium") and data[0]["cell"] is None
    assert (data[0]["code"], data[0]["name"], data[0]["path"]) == ("NAN101", "divide-by-norm", "bad.py")
    assert (data[0]["line"], data[0]["column"], data[0]["end_line"], data[0]["end_column"]) == (4, 12, 4, 24)


def test_select_ignore_prefixes(tmp_path: Path) -> None:
    write(tmp_path, "m.py", """\
        import torch
        def loss(x, v):
            a = x / x.norm()
            return a, torch.sqrt(v.var())
        """)
    codes = lambda args: {line.split()[1] for line in run(args + ["m.py"], tmp_path).output.splitlines()[:-1]}
    assert codes([]) == {"NAN101", "NAN201"}
    assert codes(["--select", "NAN1"]) == {"NAN101"}
    assert codes(["--ignore", "NAN1"]) == {"NAN201"}
    assert codes(["--select", "NAN101", "--extend-select", "NAN201"]) == {"NAN101", "NAN201"}
    assert codes(["--select", "NAN101,NAN201", "--ignore", "NAN201"]) == {"NAN101"}
    bad = run(["--select", "XYZ1", "m.py"], tmp_path)
    assert bad.exit_code == 2 and "XYZ1" in bad.output


def test_preview_rules_need_opt_in(tmp_path: Path) -> None:
    write(tmp_path, "p.py", "import torch\ndef pool(x):\n    return torch.cat([x.mean(1), x.std(1)])\n")
    assert run(["p.py"], tmp_path).exit_code == 0
    assert run(["--select", "NAN2", "p.py"], tmp_path).exit_code == 0  # a prefix does not enable preview
    assert "NAN204" in run(["--select", "NAN204", "p.py"], tmp_path).output
    assert "NAN204" in run(["--preview", "p.py"], tmp_path).output


def test_statistics(tmp_path: Path) -> None:
    write(tmp_path, "m.py", HAZARD + "\ndef g(x):\n    return x / x.norm()\n")
    result = run(["--statistics", "m.py"], tmp_path)
    assert result.output == "2\tNAN101\tdivide-by-norm\n"  # only the table, as ruff prints it
    assert result.exit_code == 1
    data = json.loads(run(["--statistics", "--output-format", "json", "m.py"], tmp_path).output)
    assert data == [{"code": "NAN101", "name": "divide-by-norm", "count": 2, "fixable": 2}]


def test_config_from_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", """\
        [tool.nanlint]
        ignore = ["NAN101"]
        extend-exclude = ["generated"]
        per-file-ignores = { "tests/*" = ["NAN2"] }
        """)
    write(tmp_path, "src/m.py", HAZARD + "\ndef g_loss(v):\n    import torch\n    return torch.sqrt(v.var())\n")
    write(tmp_path, "tests/t.py", "import torch\ndef g_loss(v):\n    return torch.sqrt(v.var())\n")
    write(tmp_path, "generated/g.py", HAZARD + "import torch\ndef h_loss(v):\n    return torch.sqrt(v.var())\n")
    result = run(["."], tmp_path)
    assert [line.split(":")[0] for line in result.output.splitlines()[:-1]] == ["src/m.py"]
    assert "NAN201" in result.output and "NAN101" not in result.output
    # the config is found by walking up from the linted path
    assert run([str(tmp_path / "src")], tmp_path.parent).output.count("NAN101") == 0


@pytest.mark.parametrize(
    "body,needle",
    [
        ("colour = 1\n", "unknown key `colour`"),
        ("select = \"NAN1\"\n", "`select` must be a list of rule codes or prefixes"),
        ("preview = 1\n", "`preview` must be a boolean"),
        ("precision = [\"float8\"]\n", "`precision` must be a list of dtypes"),
        ("select = [\n", "not valid TOML"),
    ],
)
def test_config_errors_exit_2_and_name_the_problem(tmp_path: Path, body: str, needle: str) -> None:
    write(tmp_path, "pyproject.toml", "[tool.nanlint]\n" + body)
    write(tmp_path, "m.py", HAZARD)
    result = run(["m.py"], tmp_path)
    assert result.exit_code == 2
    assert needle in result.output and "pyproject.toml" in result.output
    assert "Traceback" not in result.output


def test_suppressions(tmp_path: Path) -> None:
    write(tmp_path, "s.py", """\
        import torch
        def f(x, v):
            a = x / x.norm()  # noqa: NAN101
            b = x / x.norm()  # noqa
            c = x / x.norm()  # noqa: NAN201
            d = x / x.norm()  # nanlint: ignore[NAN101] unit vectors are never zero here
            e = (x /
                 x.norm())  # noqa: NAN101
            s = "# noqa"; g = x / x.norm()
            h = torch.sqrt(  # noqa: NAN201
                v.var()
            )
            return a, b, c, d, e, g, h
        """)
    lines = {int(line.split(":")[1]) for line in run(["s.py"], tmp_path).output.splitlines()[:-1]}
    assert lines == {5, 9}


def test_file_level_ignore(tmp_path: Path) -> None:
    write(tmp_path, "f.py", "# nanlint: file-ignore[NAN101]\n" + HAZARD + "def g_loss(v):\n    return torch.sqrt(v.var())\n")
    out = run(["f.py"], tmp_path).output
    assert "NAN101" not in out and "NAN201" in out


def test_syntax_error_is_nan000_and_other_files_still_linted(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "def f(:\n    pass\n")
    write(tmp_path, "ok.py", HAZARD)
    result = run(["."], tmp_path)
    assert result.exit_code == 1
    assert "broken.py:1:7: NAN000 cannot parse" in result.output
    assert "ok.py:4:12: NAN101" in result.output


def test_unreadable_inputs_are_findings(tmp_path: Path) -> None:
    (tmp_path / "latin.py").write_bytes(b"x = '\xe9'\n")
    result = run(["latin.py", "missing.py"], tmp_path)
    assert "latin.py:1:6: NAN000 cannot decode as utf-8" in result.output
    assert "missing.py:1:1: NAN000 no such file or directory" in result.output
    assert result.exit_code == 1


def test_default_excludes(tmp_path: Path) -> None:
    for d in (".venv", "build", "site-packages", "__pycache__", ".git"):
        write(tmp_path, f"{d}/x.py", HAZARD)
    write(tmp_path, "pkg/m.py", CLEAN)
    result = run(["."], tmp_path)
    assert result.exit_code == 0 and "1 file checked" in result.output


def test_force_exclude_applies_to_explicit_paths(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.nanlint]\nextend-exclude = [\"gen\"]\n")
    write(tmp_path, "gen/g.py", HAZARD)
    assert run(["gen/g.py"], tmp_path).exit_code == 1
    assert run(["--force-exclude", "gen/g.py"], tmp_path).exit_code == 0


def test_stdin(tmp_path: Path) -> None:
    result = run(["-", "--stdin-filename", "pkg/model.py"], tmp_path, stdin=HAZARD)
    assert result.exit_code == 1
    assert result.output.startswith("pkg/model.py:4:12: NAN101")


def test_rule_docs_and_listing(tmp_path: Path) -> None:
    docs = run(["rule", "NAN101"], tmp_path)
    assert docs.exit_code == 0
    for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety"):
        assert section in docs.output
    from nanlint.rules import BY_CODE

    assert f"docs/numerics.md rows NAN101.1–NAN101.{len(BY_CODE['NAN101'].witnesses)}" in docs.output
    assert run(["rule", "NAN999x"], tmp_path).exit_code == 2
    listing = run(["rules"], tmp_path).output
    assert "NAN101  divide-by-norm" in listing and "preview" in listing


def test_static_linter_never_imports_torch(tmp_path: Path) -> None:
    write(tmp_path, "m.py", HAZARD)
    code = (
        "import sys\n"
        "from nanlint.cli import main\n"
        "try:\n    main(['m.py'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "NAN101" in done.stdout


def test_module_entry_point(tmp_path: Path) -> None:
    write(tmp_path, "m.py", HAZARD)
    done = subprocess.run([sys.executable, "-m", "nanlint", "m.py"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "NAN101" in done.stdout


def test_option_choices_spelled_in_cli_match_their_sources() -> None:
    """cli.py spells the --output-format and --confidence choices so that defining the options imports nothing."""
    from nanlint import cli
    from nanlint.finding import CONFIDENCES
    from nanlint.report import FORMATTERS

    assert cli.OUTPUT_FORMATS == tuple(sorted(FORMATTERS))
    assert cli.CONFIDENCE_CHOICES == tuple(CONFIDENCES)


def test_server_and_verify_are_listed_and_load_when_named(tmp_path: Path) -> None:
    listing = run(["--help"], tmp_path)
    assert listing.exit_code == 0 and "server" in listing.output and "verify" in listing.output
    for command in ("server", "verify"):
        result = run([command, "--help"], tmp_path)
        assert result.exit_code == 0 and f"Usage: main {command}" in result.output, result.output


def test_the_version_is_answered_before_click_in_clicks_words() -> None:
    """``nanlint --version`` (``nanlint.__main__``) prints what click's version option prints, importing no click."""
    code = ("import sys\nsys.argv = ['nanlint', '--version']\nfrom nanlint.__main__ import main\nmain()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('nanlint', 'click'))))\n")
    fast = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert fast.stdout.splitlines()[-1] == "['nanlint', 'nanlint.__main__']", fast.stdout + fast.stderr
    through_click = subprocess.run([sys.executable, "-c", "from nanlint.cli import main\nmain(['--version'])"],
                                   capture_output=True, text=True, timeout=60)
    assert fast.stdout.splitlines()[0] == through_click.stdout.strip() != ""
    module = subprocess.run([sys.executable, "-m", "nanlint", "--version"], capture_output=True, text=True, timeout=60)
    assert module.returncode == 0 and module.stdout == through_click.stdout


def test_version_imports_only_the_command_line() -> None:
    code = ("import sys\nfrom nanlint.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('nanlint')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "['nanlint', 'nanlint.cli']", done.stdout + done.stderr
