"""``nanlint verify`` on the training scripts of ``fixtures/verify/``: exact statuses, evidence and origin lines.

Each test runs the verifier in-process (the Python API behind the CLI) on one
script with the rules its expectations name, and compares every finding and
every origin exactly. The same tests run with ``device="cuda"`` when CUDA is
present (skipped otherwise).
"""
from __future__ import annotations

import importlib.util
import textwrap
import warnings
from pathlib import Path
from typing import Any, Optional

import pytest

torch = pytest.importorskip("torch")

from nanlint.verify.report import CONFIRMED, GUARDED, INCONCLUSIVE, NOT_REACHED, Report  # noqa: E402
from nanlint.verify.runner import verify_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "verify"
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")),
]

try:
    import nanlint.fixes  # noqa: F401

    HAS_FIX_ENGINE = True
except ImportError:
    HAS_FIX_ENGINE = False
FIXED = True if HAS_FIX_ENGINE else None  # fix_verified when nanlint's fix engine exists


def run(name: str, codes: tuple[str, ...], device: str = "cpu", **kwargs: Any) -> Report:
    # every confidence: these fixtures hold low-confidence shapes on purpose (random data that happens to be 0)
    path = FIXTURES / f"{name}.py"
    return verify_script(str(path.relative_to(ROOT)), device=device, select=codes, confidence="low", **kwargs)


def findings(report: Report) -> dict[tuple[str, str, int], tuple]:
    """(file, code, line) -> (status, how, op, phase, kind, dtype, step)."""
    out = {}
    for f in report.findings:
        e = f.evidence
        out[(Path(f.path).name, f.code, f.line)] = (
            f.status, *(() if e is None else (e.how, e.op, e.phase, e.kind, e.dtype, e.step)))
    return out


def origins(report: Report) -> list[tuple]:
    return [(Path(o.path).name if o.path else None, o.line, o.column, o.op, o.phase, o.kind, o.dtype, o.step,
             o.finding) for o in report.origins]


def fix_verified(report: Report, code: str, line: int) -> Optional[bool]:
    found = [f for f in report.findings if f.code == code and f.line == line]
    assert len(found) == 1 and found[0].evidence is not None
    return found[0].evidence.fix_verified


@pytest.mark.parametrize("device", DEVICES)
def test_norm_division_forward_nan_is_confirmed_at_the_division(device: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("norm_mlp", ("NAN101", "NAN603"), device)
    assert findings(report) == {
        ("norm_mlp.py", "NAN101", 20): (CONFIRMED, "natural", "Tensor.div", "forward", "nan", "float32", 1),
        ("norm_mlp.py", "NAN603", 40): (CONFIRMED, "natural", "Tensor.backward", "forward", "nan", "float32", 1),
    }
    assert origins(report) == [("norm_mlp.py", 20, 13, "Tensor.div", "forward", "nan", "float32", 1, "NAN101")]
    assert report.failure_step == 1
    assert fix_verified(report, "NAN101", 20) is FIXED
    assert fix_verified(report, "NAN603", 40) is None
    assert report.exit_code == 1


@pytest.mark.parametrize("device", DEVICES)
def test_rmse_backward_origin_is_the_sqrt_line(device: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("rmse", ("NAN201",), device)
    assert findings(report) == {
        ("rmse.py", "NAN201", 19): (CONFIRMED, "natural", "torch.sqrt", "backward", "inf", "float32", 0),
    }
    # the forward pass is finite: the only origin is SqrtBackward0 making +Inf from finite gradients
    assert origins(report) == [("rmse.py", 19, 12, "torch.sqrt", "backward", "inf", "float32", 0, "NAN201")]
    assert report.origins[0].node == "SqrtBackward0"
    assert fix_verified(report, "NAN201", 19) is FIXED


def _anomaly_blamed_line(rmse_file: Path) -> tuple[str, int]:
    """Run the fixture's rmse() at pred == target under detect_anomaly; return the line anomaly mode blames."""
    spec = importlib.util.spec_from_file_location("rmse_fixture_for_anomaly", rmse_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pred = torch.zeros(4, 1, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="returned nan values"):
            with torch.autograd.detect_anomaly():
                module.rmse(pred, torch.zeros(4, 1)).backward()
    traceback_text = next(str(w.message) for w in caught if "Traceback of forward call" in str(w.message))
    frames = [chunk for chunk in traceback_text.split('File "')[1:] if chunk.startswith(str(rmse_file))]
    line = int(frames[-1].split("line ")[1].split(",")[0])
    code = rmse_file.read_text().splitlines()[line - 1].strip()
    return code, line


def test_rmse_attribution_differs_from_detect_anomaly(monkeypatch: Any) -> None:
    """docs/probe.md §3: anomaly mode blames mse_loss (where inf * 0 becomes NaN); nanlint blames the sqrt."""
    monkeypatch.chdir(ROOT)
    anomaly_code, anomaly_line = _anomaly_blamed_line(FIXTURES / "rmse.py")
    assert anomaly_code == "mse = F.mse_loss(pred, target)" and anomaly_line == 18
    report = run("rmse", ("NAN201",))
    assert [(o.line, o.source_line.strip()) for o in report.origins] == [(19, "return torch.sqrt(mse)")]


@pytest.mark.parametrize("device", DEVICES)
def test_standardisation_confirmed_guarded_and_not_reached(device: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("standardize", ("NAN102",), device)
    assert findings(report) == {
        # std = 0 injected: (x - mu) / 0 is +-Inf in the forward pass, made at the division itself
        ("standardize.py", "NAN102", 21): (CONFIRMED, "injected", "Tensor.div", "forward", "inf", "float32", 0),
        # under no_grad and nan_to_num: the injected zero never reaches the loss or a gradient
        ("standardize.py", "NAN102", 26): (GUARDED, "injected", "Tensor.std", None, None, "float32", 0),
        ("standardize.py", "NAN102", 31): (NOT_REACHED,),
    }
    assert origins(report) == []
    assert fix_verified(report, "NAN102", 21) is FIXED
    assert report.exit_code == 1


@pytest.mark.parametrize("device", DEVICES)
def test_fully_padded_row_nan_is_made_by_softmax_and_matched_to_the_fill(device: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("masked_attention", ("NAN402", "NAN603"), device)
    assert findings(report) == {
        ("masked_attention.py", "NAN402", 26): (CONFIRMED, "natural", "torch.softmax", "forward", "nan", "float32",
                                                2),
        ("masked_attention.py", "NAN603", 42): (CONFIRMED, "natural", "Tensor.backward", "forward", "nan",
                                                "float32", 2),
    }
    # the -inf of masked_fill (line 26) is deliberate and not an origin: the NaN is made by softmax (line 27)
    assert origins(report) == [("masked_attention.py", 27, 19, "torch.softmax", "forward", "nan", "float32", 2,
                                "NAN402")]
    assert report.origins[0].via is not None and report.origins[0].via.endswith(":26:18 `Tensor.masked_fill`")
    assert fix_verified(report, "NAN402", 26) is FIXED


@pytest.mark.parametrize("device", DEVICES)
def test_missing_clipping_confirmed_by_a_gradient_spike(device: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("no_clipping", ("NAN601", "NAN603"), device)
    assert findings(report) == {
        # x1e6 gradients at step 0, unclipped: the weights jump and step 2's forward overflows
        ("no_clipping.py", "NAN601", 28): (CONFIRMED, "injected", "F.linear", "forward", "inf", "float32", 2),
        # a NaN loss at step 0 goes through backward() and SGD.step(): the weights become NaN
        ("no_clipping.py", "NAN603", 27): (CONFIRMED, "injected", "SGD.step", "backward", "nan", "float32", 0),
    }
    assert origins(report) == []
    assert fix_verified(report, "NAN601", 28) is FIXED  # the inserted clip_grad_norm_ keeps it finite
    assert fix_verified(report, "NAN603", 27) is None


@pytest.mark.parametrize("device", DEVICES)
def test_grad_scaler_skip_is_expected_and_spike_lands_on_an_applied_step(device: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("amp_scaler", ("NAN601", "NAN603"), device)
    assert report.expected_skips == [0]  # the scaler's overflow at step 0: not a failure, not an origin
    assert report.failure_step is None
    assert origins(report) == []
    # NAN603 stays silent: a GradScaler is the check. The spike goes in at step 1 (step 0 was skipped anyway).
    assert findings(report) == {
        ("amp_scaler.py", "NAN601", 31): (CONFIRMED, "injected", "F.linear", "forward", "inf", "bfloat16", 3),
    }
    evidence = report.findings[0].evidence
    assert evidence is not None and "gradients of step 1 multiplied by 1e+06" in evidence.detail
    assert fix_verified(report, "NAN601", 31) is FIXED


@pytest.mark.parametrize("device", DEVICES)
def test_clean_script_reports_nothing(device: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = verify_script("fixtures/verify/clean.py", device=device)  # every rule, preview included
    assert report.findings == [] and report.origins == []
    assert report.steps_run == 3 and report.exit_code == 0
    assert report.replays == 0


def test_local_module_findings_are_verified(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("local_import", ("NAN101", "NAN201"))
    assert findings(report) == {
        # mse := 0 at the module's sqrt: SqrtBackward0 makes +Inf
        ("nanlosses.py", "NAN201", 7): (CONFIRMED, "injected", "torch.sqrt", "backward", "inf", "float32", 0),
        ("nanlosses.py", "NAN101", 12): (NOT_REACHED,),
    }
    assert {f.path for f in report.findings} == {"fixtures/verify/nanlosses.py"}
    assert origins(report) == []


def test_script_failure_reports_its_own_traceback(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = verify_script("fixtures/verify/raises.py", device="cpu")
    assert report.exit_code == 2
    assert report.script_error is not None
    lines = report.script_error.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: corrupt shard: batch 2 has 7 columns, expected 8"
    frames = [line.strip() for line in lines if line.strip().startswith("File ")]
    assert len(frames) == 3 and all("fixtures/verify/raises.py" in f for f in frames)
    assert "nanlint" not in report.script_error.replace("nanlint/fixtures", "")
    assert report.findings == [] and report.origins == []
    assert report.steps_run == 2


def test_precise_mode_traces_the_first_run(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("rmse", ("NAN201",), precise=True, fixer=None)
    assert origins(report) == [("rmse.py", 19, 12, "torch.sqrt", "backward", "inf", "float32", 0, "NAN201")]
    assert report.replays == 0  # the failing step was traced as it ran: nothing to replay


def test_no_inject_keeps_reached_findings_unconfirmed(monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("standardize", ("NAN102",), inject=False)
    statuses = {f.line: (f.status, f.evidence.how if f.evidence else None) for f in report.findings}
    assert statuses == {21: (INCONCLUSIVE, "natural"), 26: (INCONCLUSIVE, "natural"), 31: (NOT_REACHED, None)}
    assert report.replays == 0 and report.exit_code == 0


def _fixer(replacement: str):  # noqa: ANN202
    def fixer(source: Any, finding: Any, request: Any) -> Optional[str]:
        line = source.text.splitlines()[finding.line - 1]
        return source.text.replace(line, line.replace("x.std(dim=0, keepdim=True)", replacement))
    return fixer


@pytest.mark.parametrize(("replacement", "verified"), [
    ("x.std(dim=0, keepdim=True).clamp_min(1e-4)", True),  # clamps the injected zero: finite
    ("(x.std(dim=0, keepdim=True) + 0.0)", False),  # changes nothing that matters
])
def test_fix_replay_uses_the_fixed_module_text(replacement: str, verified: bool, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    report = run("standardize", ("NAN102",), fixer=_fixer(replacement))
    assert fix_verified(report, "NAN102", 21) is verified


def test_html_report_is_standalone_with_source_lines(monkeypatch: Any) -> None:
    from html.parser import HTMLParser

    monkeypatch.chdir(ROOT)
    page = run("masked_attention", ("NAN402", "NAN603")).html()

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.external: list[str] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            self.tags.append(tag)
            for name, value in attrs:
                if name in ("src", "href") and value:
                    self.external.append(value)

    checker = Checker()
    checker.feed(page)
    assert page.startswith("<!DOCTYPE html>") and "script" not in checker.tags and checker.external == []
    assert "<mark>scores.masked_fill(pad[:, None, :], float(&quot;-inf&quot;))</mark>" in page
    assert 'class="status confirmed">confirmed<' in page
    assert "weights = <mark>torch.softmax(scores, dim=-1)</mark>" in page
    assert "forward NaN at `torch.softmax` (float32) at step 2" in page


def test_columns_match_on_a_line_with_non_ascii_text(tmp_path: Path, monkeypatch: Any) -> None:
    """co_positions() counts UTF-8 bytes, findings count characters: the match must be exact either way."""
    (tmp_path / "unicode_train.py").write_text(textwrap.dedent("""\
        import torch

        w = torch.nn.Parameter(torch.ones(4, 3))
        opt = torch.optim.SGD([w], lr=0.1)
        for step in range(3):
            x = torch.ones(2, 4)
            x[1] = 0.0 if step == 1 else 1.0
            opt.zero_grad()
            ŷ_é = x / x.norm(dim=-1, keepdim=True); loss = (ŷ_é @ w).sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([w], 1.0)
            opt.step()
        """), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    report = verify_script("unicode_train.py", device="cpu", select=("NAN101",), fixer=None, confidence="low")
    assert findings(report) == {
        ("unicode_train.py", "NAN101", 9): (CONFIRMED, "natural", "Tensor.div", "forward", "nan", "float32", 1)}
    assert [(f.line, f.column) for f in report.findings] == [(9, 11)]
    assert origins(report) == [("unicode_train.py", 9, 11, "Tensor.div", "forward", "nan", "float32", 1, "NAN101")]


def test_code_without_backward_is_judged_by_the_values_it_makes(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "prepare.py").write_text(textwrap.dedent("""\
        import torch

        features = torch.randn(16, 3)
        scaled = (features - features.mean(dim=0)) / features.std(dim=0)
        print(scaled.abs().max())
        """))
    monkeypatch.chdir(tmp_path)
    report = verify_script("prepare.py", device="cpu", select=("NAN102",), fixer=None, confidence="low")
    assert findings(report) == {
        ("prepare.py", "NAN102", 4): (CONFIRMED, "injected", "Tensor.div", "forward", "inf", "float32", 0)}
    assert report.steps_run == 0
