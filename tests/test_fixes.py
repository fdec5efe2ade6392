"""Auto-fix: snapshots, the fixer's safety net, file writing, and the CLI (--fix, --unsafe-fixes, --diff, --show-fixes).

Snapshots live in ``fixtures/fix``: ``name.py`` is fixed into exactly ``name.fixed.py``
(see ``tests/fixhelpers.py``). Numeric checks of the fixed code are in
``tests/test_fix_numerics.py``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import libcst as cst
import pytest
from click.testing import CliRunner

from fixhelpers import FIX_FIXTURES, FIXABLE, expected_path, fix_fixture, request_for, snapshot_inputs
from nanlint.cli import main
from nanlint.engine import LintRequest, lint_source
from nanlint.fixes import WriteRefused, fix_file, fix_source, write_atomic
from nanlint.fixspec import DISPLAY_ONLY, UNSAFE, FixSpec, InsertAt, Replace
from nanlint.rules import BY_CODE
from nanlint.rules.base import Rule

REQUEST = LintRequest(tuple(BY_CODE[c] for c in FIXABLE), None, (("max-grad-norm", 1.0),))


# -- snapshots ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", snapshot_inputs(), ids=lambda p: p.stem)
def test_snapshot(path: Path) -> None:
    outcome = fix_fixture(path)
    expected = expected_path(path).read_text(encoding="utf-8")
    assert outcome.source == expected, f"{path.name}: regenerate with `python tests/fixhelpers.py` if intended"
    compile(outcome.source, path.name, "exec")  # the output is valid Python
    assert not outcome.failed, outcome.failed
    # re-lint: every finding that had a fix is gone; what is left says why it has none
    request, unsafe = request_for(path.read_text(encoding="utf-8"))
    relint = lint_source(path.name, outcome.source, request).findings
    for finding in relint:
        assert finding.fix is None or finding.fix.applicability == DISPLAY_ONLY or (
            not unsafe and finding.fix.applicability == UNSAFE), finding
        assert finding.fix is not None or finding.extra.get("no_fix_reason"), f"{finding} has no fix and no reason"
    # the rule the fixture is about was fixed, and fixing again is a no-op
    rule = path.stem.split("_")[0].upper()
    if rule in FIXABLE:
        assert rule in {f.code for f in outcome.applied}
    again = fix_source(path.name, outcome.source, request, unsafe=unsafe)
    assert again.source == outcome.source and not again.applied


def test_every_fixable_rule_has_a_snapshot() -> None:
    covered = {p.stem.split("_")[0].upper() for p in snapshot_inputs()}
    assert set(FIXABLE) <= covered
    assert all(expected_path(p).exists() for p in snapshot_inputs())


@pytest.mark.parametrize("path", snapshot_inputs(), ids=lambda p: p.stem)
def test_snapshot_edits_only_touch_their_spans(path: Path) -> None:
    """Outside the edits, the fixed file is the original byte for byte (comments, quotes, blank lines)."""
    source = path.read_text(encoding="utf-8")
    request, unsafe = request_for(source)
    findings = lint_source(path.name, source, request).findings
    edited_lines = set()
    for finding in findings:
        if finding.fix and (unsafe or finding.fix.applicability == "safe"):
            for edit in finding.fix.edits:
                edited_lines.update(range(edit.line, edit.end_line + 1))
    fixed = expected_path(path).read_text(encoding="utf-8").splitlines()
    untouched = [line for n, line in enumerate(source.splitlines(), 1) if n not in edited_lines]
    # every untouched line is still there, in order
    it = iter(fixed)
    assert all(any(line == other for other in it) for line in untouched)


# -- the fixer --------------------------------------------------------------------------------------
def test_outcome_api() -> None:
    source = "import torch\n\n\ndef f(x):\n    return x / x.norm()\n"
    outcome = fix_source("a.py", source, REQUEST)
    assert outcome.changed and outcome.source.endswith("x / x.norm().clamp_min(torch.finfo(x.dtype).eps)\n")
    assert [(f.code, f.line, f.column) for f in outcome.applied] == [("NAN101", 5, 12)]
    assert outcome.remaining == [] and outcome.failed == [] and outcome.original[0].fix is not None
    assert outcome.original_source == source


def test_safe_only_leaves_numeric_fixes_alone() -> None:
    source = ("import torch\n\n\ndef f(p, t, x):\n"
              "    return torch.sqrt((p - t) ** 2) + x / x.norm()\n")
    outcome = fix_source("a.py", source, REQUEST, unsafe=False)
    assert "(p - t).abs()" in outcome.source and "x / x.norm()" in outcome.source
    assert [f.code for f in outcome.remaining] == ["NAN101"] and outcome.hidden_unsafe == 1


def test_overlapping_fixes_take_passes() -> None:
    source = "import torch\n\n\ndef f(x, y):\n    return x / x.norm() / y.norm()\n"
    outcome = fix_source("a.py", source, REQUEST)
    assert outcome.passes == 2
    assert outcome.source.endswith(
        "x / x.norm().clamp_min(torch.finfo(x.dtype).eps) / y.norm().clamp_min(torch.finfo(y.dtype).eps)\n")
    assert [f.code for f in outcome.applied] == ["NAN101", "NAN101"] and not outcome.remaining


def test_identical_edits_of_two_rules_apply_once() -> None:
    # `h` is a float tensor to the value analysis (tanh), so the eps may read its dtype
    source = "import torch\n\n\ndef f(x):\n    h = torch.tanh(x)\n    return h / torch.sqrt((h ** 2).sum())\n"
    outcome = fix_source("a.py", source, REQUEST)
    assert outcome.source.count("clamp_min") == 1
    assert sorted(f.code for f in outcome.applied) == ["NAN101", "NAN201"]


def test_import_torch_added_once_and_alias_respected() -> None:
    source = '"""doc"""\nfrom torch.nn import functional as F\n\n\ndef f(x, y):\n    return x / x.norm(), y / y.norm()\n'
    outcome = fix_source("a.py", source, REQUEST)
    assert outcome.source.count("import torch\n") == 1
    assert outcome.source.startswith('"""doc"""\nimport torch\nfrom torch.nn import functional as F\n')
    aliased = "import torch as th\n\n\ndef f(x):\n    return x / x.norm()\n"
    fixed = fix_source("a.py", aliased, REQUEST).source
    assert "th.finfo(x.dtype).eps" in fixed and "import torch\n" not in fixed


class _BrokenFix(Rule):
    """A test rule whose fix breaks the file."""

    code, name, summary, rows = "NAN990", "broken-fix", "test", "-"
    screen = re.compile("BROKEN")

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == "BROKEN":
            self.report(node, "broken", fix=FixSpec(UNSAFE, "breaks", (Replace(node, "(("),)))


class _StubbornFix(Rule):
    """A test rule whose fix does not remove its finding."""

    code, name, summary, rows = "NAN991", "stubborn-fix", "test", "-"
    screen = re.compile("STUBBORN")

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == "STUBBORN":
            self.report(node, "stubborn", fix=FixSpec(UNSAFE, "no-op", (InsertAt(node, " + 0"),)))


def test_fix_that_breaks_the_file_is_dropped() -> None:
    source = "import torch\nBROKEN = 1\n\n\ndef f(x):\n    return x / x.norm()\n"
    request = LintRequest((_BrokenFix, BY_CODE["NAN101"]))
    outcome = fix_source("a.py", source, request)
    assert "clamp_min" in outcome.source and "((" not in outcome.source  # the good fix stays, not half-edited
    compile(outcome.source, "a.py", "exec")
    (failed,) = outcome.failed
    assert failed.finding.code == "NAN990" and "does not parse" in failed.reason
    remaining = {f.code: f for f in outcome.remaining}
    assert remaining["NAN990"].fix is None and "not applied" in remaining["NAN990"].extra["no_fix_reason"]
    assert fix_source("a.py", outcome.source, request).source == outcome.source


def test_fix_that_keeps_its_finding_is_dropped() -> None:
    source = "x = STUBBORN\n"
    outcome = fix_source("a.py", source, LintRequest((_StubbornFix,)))
    assert outcome.source == source and not outcome.applied
    assert [f.reason for f in outcome.failed] == ["the fix did not remove the finding"]


def test_unparsable_source_is_left_alone() -> None:
    outcome = fix_source("a.py", "def f(:\n", REQUEST)
    assert not outcome.changed and [f.code for f in outcome.remaining] == ["NAN000"]


# -- files --------------------------------------------------------------------------------------------
HAZARD = "import torch\n\n\ndef f(x):\n    return x / x.norm()  # keep me\n"


def _fix_path(path: Path, write: bool = True):
    return fix_file(str(path), str(path), REQUEST, unsafe=True, write=write)


def test_crlf_bom_and_latin1_are_preserved(tmp_path: Path) -> None:
    crlf = tmp_path / "crlf.py"
    crlf.write_bytes(HAZARD.replace("\n", "\r\n").encode())
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + HAZARD.encode())
    latin = tmp_path / "latin.py"
    latin.write_bytes(("# -*- coding: latin-1 -*-\n# caf\xe9\n" + HAZARD).encode("latin-1"))
    for path in (crlf, bom, latin):
        assert _fix_path(path).error is None
    assert crlf.read_bytes() == HAZARD.replace("x.norm()", "x.norm().clamp_min(torch.finfo(x.dtype).eps)").replace(
        "\n", "\r\n").encode()
    assert bom.read_bytes().startswith(b"\xef\xbb\xbfimport torch\n") and b"clamp_min" in bom.read_bytes()
    assert latin.read_bytes().startswith("# -*- coding: latin-1 -*-\n# caf\xe9\n".encode("latin-1"))
    assert b"clamp_min" in latin.read_bytes()


def test_crlf_insertions_use_crlf(tmp_path: Path) -> None:
    path = tmp_path / "loop.py"
    loop = "import torch\n\nopt = torch.optim.SGD(model.parameters())\nloss.backward()\nopt.step()\n"
    path.write_bytes(loop.replace("\n", "\r\n").encode())
    assert _fix_path(path).error is None
    data = path.read_bytes()
    assert b"clip_grad_norm_(model.parameters(), max_norm=1.0)\r\nopt.step()" in data
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_tabs_indentation_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "tabs.py"
    path.write_text("import torch\n\nopt = torch.optim.SGD(model.parameters())\nfor b in data:\n"
                    "\tloss.backward()\n\topt.step()\n")
    _fix_path(path)
    assert "\ttorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n\topt.step()\n" in path.read_text()


def test_mode_is_kept_and_no_temporary_file_left(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text(HAZARD)
    os.chmod(path, 0o751)
    _fix_path(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]


def test_symlink_target_is_written(tmp_path: Path) -> None:
    real = tmp_path / "real.py"
    real.write_text(HAZARD)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    _fix_path(link)
    assert link.is_symlink() and "clamp_min" in real.read_text()


def test_file_changed_since_read_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("new content\n")
    with pytest.raises(WriteRefused, match="changed on disk"):
        write_atomic(str(path), b"fixed\n", b"old content\n")
    assert path.read_text() == "new content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]


def test_read_only_file_is_not_replaced(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may write read-only files")
    path = tmp_path / "a.py"
    path.write_text(HAZARD)
    os.chmod(path, 0o444)
    result = _fix_path(path)
    assert result.error == "it is not writable" and path.read_text() == HAZARD


# -- CLI ------------------------------------------------------------------------------------------------
def _project(tmp_path: Path, config: str = "") -> Path:
    select = ", ".join(f'"{code}"' for code in FIXABLE)  # other rules' fixes must not change these expectations
    (tmp_path / "pyproject.toml").write_text(f"[tool.nanlint]\nselect = [{select}]\n" + config)
    shutil.copy(FIX_FIXTURES / "nan201_sqrt_at_zero.py", tmp_path / "a.py")
    shutil.copy(FIX_FIXTURES / "nan601_missing_grad_clipping.py", tmp_path / "b.py")
    return tmp_path


def _invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def test_diff_writes_nothing_and_exits_1(tmp_path: Path) -> None:
    root = _project(tmp_path)
    before = _tree(root)
    result = _invoke("check", "--diff", "--unsafe-fixes", str(root / "a.py"), str(root / "b.py"))
    assert result.exit_code == 1, result.output
    assert _tree(root) == before
    assert f"--- {root / 'a.py'}\n+++ {root / 'a.py'}\n" in result.stdout
    assert "+    return (p - t).abs() + (p - t).abs().mean()" in result.stdout
    assert "+        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)" in result.stdout
    assert re.search(r"Would fix \d+ problems\.", result.stderr)


def test_diff_without_changes_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "clean.py"
    path.write_text("import torch\n\n\ndef f(x):\n    return x.norm()\n")
    result = _invoke("check", "--isolated", "--diff", str(path))
    assert result.exit_code == 0 and result.stdout == ""


def test_fix_without_unsafe_fixes_says_how_many_more(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = _invoke("check", "--fix", str(root))
    assert result.exit_code == 1
    text = (root / "a.py").read_text()
    assert "(p - t).abs()" in text and "x.std(dim=1, unbiased=False)" in text  # safe fixes applied
    assert "torch.linalg.vector_norm" not in text and "clip_grad_norm_" not in (root / "b.py").read_text()
    summary = result.stdout.splitlines()[-1]
    hidden = re.fullmatch(r"Found \d+ problems \(3 fixed, \d+ remaining\)\. (\d+) fixable with `--fix --unsafe-fixes`\.",
                          summary)
    assert hidden and int(hidden.group(1)) > 10, summary


def test_fix_with_unsafe_fixes_then_second_run_is_a_no_op(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = _invoke("check", "--fix", "--unsafe-fixes", "--show-fixes", str(root))
    assert "Fixed " in first.stdout and "× NAN601 (missing-grad-clipping)" in first.stdout
    assert re.search(r"Not fixed:\n(?:- .*\n)*- .*b\.py:\d+:\d+: NAN601 cannot see where `opt` is constructed",
                     first.stdout)
    # a parameter of unknown kind gives the eps no dtype to read: left alone, with the reason
    assert re.search(r"a\.py:\d+:\d+: NAN201 no floating tensor to read the dtype from: `a` is of unknown kind",
                     first.stdout)
    assert (root / "a.py").read_text() == (FIX_FIXTURES / "nan201_sqrt_at_zero.fixed.py").read_text()
    assert (root / "b.py").read_text() == (FIX_FIXTURES / "nan601_missing_grad_clipping.fixed.py").read_text()
    after = _tree(root)
    second = _invoke("check", "--fix", "--unsafe-fixes", str(root))
    assert _tree(root) == after
    assert "(0 fixed," in second.stdout
    assert second.exit_code == 1  # the unfixable findings remain


def test_text_marks_fixable_findings(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = _invoke("check", str(root / "a.py"))
    lines = result.stdout.splitlines()
    assert any(re.match(r".*a\.py:\d+:\d+: NAN201 \[\*\] square root of `\(p - t\) \*\* 2`", line) for line in lines)
    assert any("NAN201 square root of `F.mse_loss" in line for line in lines)  # unsafe: no marker by default
    assert re.search(r"\(\d+ checked\)\. \[\*\] 3 fixable with `--fix`; \d+ more with `--fix --unsafe-fixes`\.$",
                     result.stdout.splitlines()[-1])
    unsafe = _invoke("check", "--unsafe-fixes", str(root / "a.py"))
    assert "NAN201 [*] square root of `F.mse_loss" in unsafe.stdout


def test_json_fills_the_fix_object(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = _invoke("check", "--output-format", "json", str(root / "a.py"))
    findings = json.loads(result.stdout)
    fixed = [f for f in findings if f["fix"]]
    assert fixed
    for finding in fixed:
        assert set(finding["fix"]) == {"applicability", "message", "edits"}
        assert finding["fix"]["applicability"] in ("safe", "unsafe") and finding["fix"]["message"]
        for edit in finding["fix"]["edits"]:
            assert set(edit) == {"line", "column", "end_line", "end_column", "content"}
            assert edit["line"] >= 1 and edit["column"] >= 1
    abs_fix = next(f for f in fixed if f["fix"]["applicability"] == "safe")
    assert abs_fix["fix"]["edits"][0]["content"] == "(p - t).abs()"


def test_stdin_fix_prints_the_fixed_source(tmp_path: Path) -> None:
    result = _invoke("check", "--isolated", "--fix", "--unsafe-fixes", "--stdin-filename", "x.py", "-",
                     input=HAZARD)
    assert result.stdout == HAZARD.replace("x.norm()", "x.norm().clamp_min(torch.finfo(x.dtype).eps)")
    assert "1 fixed, 0 remaining" in result.stderr and result.exit_code == 0


def test_config_fix_eps_and_max_grad_norm(tmp_path: Path) -> None:
    root = _project(tmp_path, 'fix-eps = 1e-4\nmax-grad-norm = 0.5\nprecision = ["float32", "float16"]\n')
    _invoke("check", "--fix", "--unsafe-fixes", str(root))
    assert "max_norm=0.5" in (root / "b.py").read_text()
    assert ".clamp_min(1e-4)" in (root / "a.py").read_text()


def test_config_fix_eps_that_underflows_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path, 'fix-eps = 1e-8\nprecision = ["float16"]\n')
    before = _tree(root)
    result = _invoke("check", "--fix", "--unsafe-fixes", str(root))
    assert result.exit_code == 2
    assert "`fix-eps` = 1e-08 is refused: 1e-08 rounds to 0 in float16" in result.stderr
    assert _tree(root) == before
    # accepted without float16, refused again when --precision adds it
    root2 = tmp_path / "p2"
    root2.mkdir()
    _project(root2, "fix-eps = 1e-8\n")
    assert _invoke("check", str(root2)).exit_code == 1
    assert _invoke("check", "--precision", "float16", str(root2)).exit_code == 2


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    root = _project(tmp_path, "max-grad-norm = -1\n")
    result = _invoke("check", str(root))
    assert result.exit_code == 2 and "`max-grad-norm` must be a positive number" in result.stderr


def test_changed_file_is_reported_and_exit_2(tmp_path: Path, monkeypatch) -> None:
    root = _project(tmp_path)
    import nanlint.fixes as fixes

    real = fixes.write_atomic

    def racing(path, data, expected):
        Path(path).write_text("# edited by someone else\n")
        return real(path, data, expected)

    monkeypatch.setattr(fixes, "write_atomic", racing)
    result = _invoke("check", "--fix", "--unsafe-fixes", str(root / "a.py"))
    assert result.exit_code == 2
    assert "not fixed: it changed on disk since it was read" in result.stderr
    assert (root / "a.py").read_text() == "# edited by someone else\n"


# -- training-loop fixes: when (not) to insert ---------------------------------------------------------
def _loop_fix(body: str) -> tuple[str, list]:
    source = "import torch\n\n\ndef train(model, loader, accelerator, scaler):\n" \
             "    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)\n" + body
    outcome = fix_source("loop.py", source, REQUEST)
    return outcome.source[len(source) - len(body):], outcome.remaining


def test_existing_unscale_is_not_repeated() -> None:
    fixed, remaining = _loop_fix("    for x in loader:\n        scaler.scale(model(x).sum()).backward()\n"
                                 "        scaler.unscale_(opt)\n        scaler.step(opt)\n        scaler.update()\n")
    assert fixed.count("unscale_") == 1 and not remaining
    assert "scaler.unscale_(opt)\n        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n" \
           "        scaler.step(opt)" in fixed


@pytest.mark.parametrize("body,reason", [
    ("    for x in loader:\n        accelerator.backward(model(x).sum())\n        opt.step()\n",
     "`accelerator.backward(...)` belongs to a framework"),
    ("    for x in loader:\n        model(x).sum().backward(); opt.step()\n", "share one line"),
    ("    for x in loader:\n        model(x).sum().backward()\n        if x: opt.step()\n",
     "not a statement of its own"),
    ("    for x in loader:\n        scaler.scale(model(x).sum()).backward()\n        opt.step()\n",
     "steps directly"),
    ("    for x in loader:\n        scaler.scale(model(x).sum()).backward()\n        for group in opt.param_groups:\n"
     "            torch.nn.utils.clip_grad_norm_(group['params'], 1.0)\n        scaler.step(opt)\n",
     "different loops"),
], ids=["accelerate", "semicolon", "one-line-if", "scaled-but-direct-step", "clip-in-own-loop"])
def test_loop_fix_withheld_with_a_reason(body: str, reason: str) -> None:
    fixed, remaining = _loop_fix(body)
    assert fixed == body
    assert any(reason in (f.extra.get("no_fix_reason") or "") for f in remaining), \
        [(f.code, f.extra.get("no_fix_reason")) for f in remaining]


def test_fix_source_does_no_file_io(monkeypatch) -> None:
    import builtins
    import io

    def refuse(*args, **kwargs):
        raise AssertionError(f"fix_source opened a file: {args}")

    source = HAZARD + "\nopt = torch.optim.SGD(model.parameters())\nloss.backward()\nopt.step()\n"
    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    outcome = fix_source("a.py", source, REQUEST)
    assert outcome.changed and len(outcome.applied) == 2
