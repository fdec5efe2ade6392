"""Issue 13: every backward pass is a checkpoint, every NaN gets an origin, statuses never overclaim, and the
tracer never changes what the user's code does.

Each test runs real torch code from ``fixtures/verify/`` through the verifier and compares statuses, evidence
and origin lines exactly.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from nanlint.verify.report import CONFIRMED, INCONCLUSIVE, Report  # noqa: E402
from nanlint.verify.runner import verify_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "verify"


def run(name: str, **kwargs: Any) -> Report:
    return verify_script(f"fixtures/verify/{name}.py", device="cpu", script_stdout=io.StringIO(), **kwargs)


def findings(report: Report) -> dict[tuple[str, int], tuple]:
    out = {}
    for f in report.findings:
        e = f.evidence
        out[(f.code, f.line)] = (f.status, *(() if e is None else (e.how, e.op, e.phase, e.kind, e.step)))
    return out


def origins(report: Report) -> list[tuple]:
    return [(o.line, o.column, o.op, o.phase, o.kind, o.step, o.finding) for o in report.origins]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)


# -- 1. a backward() without an optimizer is a checkpoint ------------------------------------------------

def test_backward_without_optimizer_step_is_confirmed_at_the_sqrt() -> None:
    report = run("backward_no_step")
    assert (report.steps_run, report.step_unit, report.failure_step) == (1, "backward pass", 0)
    assert findings(report) == {("NAN201", 17): (CONFIRMED, "natural", "torch.sqrt", "backward", "inf", 0)}
    assert origins(report) == [(17, 16, "torch.sqrt", "backward", "inf", 0, "NAN201")]
    text = report.text()
    assert "1 backward pass on cpu; non-finite at backward pass 0" in text and "guarded" not in text.split("\n\n")[1]


def test_autograd_grad_without_optimizer_is_confirmed_by_injection() -> None:
    report = run("backward_injected")
    assert (report.steps_run, report.step_unit, report.failure_step) == (2, "backward pass", None)
    assert findings(report) == {("NAN201", 13): (CONFIRMED, "injected", "torch.sqrt", "backward", "inf", 0)}
    assert report.origins == []  # the run itself stayed finite


def test_steps_count_backward_passes_without_an_optimizer() -> None:
    report = run("backward_injected", steps=1)
    assert (report.steps_run, report.step_unit) == (1, "backward pass")


# -- 2. every NaN gradient has an origin, predicted or not ---------------------------------------------

def test_each_failing_backward_pass_gets_its_origin() -> None:
    report = run("unpredicted_origins", steps=6)
    assert (report.steps_run, report.step_unit) == (4, "backward pass")
    assert findings(report) == {
        ("NAN201", 9): (CONFIRMED, "natural", "torch.sqrt", "backward", "inf", 0),
        ("NAN404", 14): (CONFIRMED, "natural", "torch.acos", "backward", "inf", 1),
    }
    assert origins(report) == [
        (9, 7, "torch.sqrt", "backward", "inf", 0, "NAN201"),
        (14, 9, "torch.acos", "backward", "inf", 1, "NAN404"),
        (20, 12, "Tensor.pow", "backward", "inf", 2, None),  # energy**0.3 at energy == 0: no rule flags it
        (25, 35, "torch.log", "forward", "inf", 3, None),  # where(p > 0, p*log(p), 0): log(0) in the dead branch
    ]
    assert "2 runtime origins no finding predicted" in report.text()


# -- 3. statuses say what was observed -------------------------------------------------------------------

def test_an_earlier_nan_makes_later_findings_inconclusive_with_the_reason() -> None:
    report = run("earlier_nan", confidence="low")
    assert findings(report) == {
        ("NAN101", 16): (CONFIRMED, "natural", "Tensor.div", "forward", "nan", 0),
        ("NAN102", 17): (INCONCLUSIVE, "injected", "Tensor.std", None, None, 0),
        ("NAN601", 21): (INCONCLUSIVE, "injected", "Tensor.backward", None, None, 0),
    }
    reasons = {f["line"]: f["reason"] for f in json.loads(report.json())["findings"]}
    assert reasons == {16: None,
                       17: "result of `Tensor.std` set to 0 at step 0: the run's own NaN/Inf at step 0 comes first",
                       21: "gradients of step 0 multiplied by 1e+06 at step 0: the run's own NaN/Inf at step 0 "
                           "comes first"}
    page = report.html()
    assert page.count('<span class="status inconclusive">inconclusive</span>') == 2
    assert ".inconclusive{background:#b26a00}" in page  # amber, not the guarded green
    assert "1 confirmed, 0 guarded, 2 inconclusive, 0 not reached" in report.text()


def test_default_confidence_verifies_what_check_reports() -> None:
    # NAN101/NAN102 on random data are low-confidence findings: `nanlint check` does not show them by default,
    # and neither does verify; the NaN they make is still reported, as an origin no finding predicted
    report = run("earlier_nan")
    assert {(f.code, f.line) for f in report.findings} == {("NAN601", 21)}
    assert origins(report) == [(16, 9, "Tensor.div", "forward", "nan", 0, None)]
    assert report.origins[0].detail == ("`nanlint check` reports NAN101 here at low confidence, below the "
                                        "`--confidence medium` verified")


# -- 4. the tracer never changes or breaks the user's code -----------------------------------------------

def _plain_output(name: str) -> str:
    done = subprocess.run([sys.executable, str(FIXTURES / f"{name}.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("precise", [False, True])
def test_embedding_padding_idx_model_runs_unchanged(precise: bool) -> None:
    out = io.StringIO()
    report = verify_script("fixtures/verify/padding_idx.py", device="cpu", script_stdout=out, precise=precise)
    assert report.script_error is None
    assert out.getvalue() == _plain_output("padding_idx")
    assert [(f.code, f.line, f.status) for f in report.findings] == [("NAN601", 30, "guarded")]


def test_real_constructors_under_the_tracer_print_the_same_values() -> None:
    out = io.StringIO()
    report = verify_script("fixtures/verify/constructors.py", steps=20, device="cpu", script_stdout=out,
                           precise=True)  # every pass traced: forward mode, node hooks, the compile switch
    assert report.script_error is None, report.script_error
    assert (report.steps_run, report.step_unit, report.origins, report.notes) == (7, "backward pass", [], [])
    printed = out.getvalue()
    assert printed == _plain_output("constructors")
    assert [line.split(":")[0] for line in printed.splitlines()] == [
        "embedding", "attention", "encoder", "lstm", "batchnorm-eval", "inplace-init", "compiled"]


def test_watch_counts_steps_of_an_optimizer_made_before_it() -> None:
    import nanlint

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # made before watch(): unknown until its first step()
    with nanlint.watch() as w:
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
    assert w.controller.steps_done == 3 and w.failed_step is None


def test_watch_without_optimizer_gives_each_backward_its_origin_line() -> None:
    import nanlint

    x = torch.zeros(3, requires_grad=True)
    with nanlint.watch() as w:
        torch.sqrt((x * 2).pow(2).sum()).backward()  # @watched-sqrt
    assert w.failed_step == 0
    line = next(i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1) if "# @watched-sqrt" in text)
    assert [(o.line, o.op, o.phase, o.kind) for o in w.origins] == [(line, "torch.sqrt", "backward", "inf")]


def test_fix_check_says_not_checked_when_another_nan_comes_first() -> None:
    # the demo: two NaNs at step 0; with NAN102's fix applied the sqrt's NaN still comes first, which says
    # nothing against the fix
    report = verify_script("fixtures/demo/train.py", device="cpu", script_stdout=io.StringIO())
    by_code = {f.code: f for f in report.findings}
    nan102 = by_code["NAN102"]
    assert (nan102.status, nan102.line) == (CONFIRMED, 11)
    assert nan102.evidence is not None and nan102.evidence.fix_verified is None
    assert nan102.evidence.fix_detail == ("fix not checked: with it, the run's NaN/Inf at fixtures/demo/losses.py:7 "
                                          "(`torch.sqrt`) comes first")
    assert "NOT keep it finite" not in report.text()
    assert (by_code["NAN201"].status, by_code["NAN601"].status) == (INCONCLUSIVE, INCONCLUSIVE)


def test_transformers_models_run_unchanged_under_the_tracer() -> None:
    pytest.importorskip("transformers", reason="transformers (in the test extra) is not installed")
    out = io.StringIO()
    report = verify_script("fixtures/verify/hf_models.py", steps=5, device="cpu", script_stdout=out, precise=True)
    assert report.script_error is None, report.script_error
    assert (report.origins, report.notes) == ([], [])
    printed = [line for line in out.getvalue().splitlines() if not line.startswith("[transformers]")]
    plain = [line for line in _plain_output("hf_models").splitlines() if not line.startswith("[transformers]")]
    assert printed == plain and [line.split(":")[0] for line in printed] == ["bert", "gpt2", "vit"]


def test_the_tracers_own_failure_is_a_note_never_the_scripts_exception(monkeypatch: Any) -> None:
    from nanlint.verify.tracer import Tracer

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("simulated tracer bug")

    monkeypatch.setattr(Tracer, "_record", broken)
    out = io.StringIO()
    report = verify_script("fixtures/verify/padding_idx.py", device="cpu", script_stdout=out, precise=True)
    assert report.script_error is None
    assert out.getvalue() == _plain_output("padding_idx")
    assert report.notes and all(note.startswith("the tracer could not record ") for note in report.notes)
    assert "recording `torch.empty`: RuntimeError: simulated tracer bug" in report.notes[0]


def test_fixes_are_checked_with_the_projects_fix_eps(tmp_path: Path, monkeypatch: Any) -> None:
    from nanlint.verify.fixing import nanlint_fix

    (tmp_path / "pyproject.toml").write_text("[tool.nanlint]\nfix-eps = 0.001\nmax-grad-norm = 5.0\n")
    (tmp_path / "train.py").write_text((FIXTURES / "backward_no_step.py").read_text())
    monkeypatch.chdir(tmp_path)
    fixed: list[str] = []

    def fixer(source: Any, finding: Any, request: Any) -> Any:
        text = nanlint_fix(source, finding, request)
        fixed.append(text)
        return text

    report = verify_script("train.py", device="cpu", script_stdout=io.StringIO(), fixer=fixer)
    assert [line.strip() for line in fixed[0].splitlines() if "torch.sqrt" in line] == [
        "return torch.sqrt(self.mse(pred, target).clamp_min(1e-3))"]  # what `check --fix` writes here
    assert report.findings[0].evidence is not None and report.findings[0].evidence.fix_verified is True


def test_identical_code_in_two_files_is_attributed_to_each_file() -> None:
    from nanlint.verify.tracer import _code_path

    text = "def f(x):\n    return x.sqrt()\n"
    first = compile(text, "/tmp/one/a.py", "exec").co_consts[0]
    second = compile(text, "/tmp/two/a.py", "exec").co_consts[0]
    assert first == second  # CPython's code equality ignores the file name
    assert _code_path(first).endswith("one/a.py") and _code_path(second).endswith("two/a.py")
