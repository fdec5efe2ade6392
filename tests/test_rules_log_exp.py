"""NAN103/104/203/301-304: fixes (as text edits), precision decisions and the facts behind them.

Fixture files cover which lines are flagged; these tests pin what the fixes
write, that applying a fix removes the finding, and the context rules (fp16
evidence, guards, padding masks, in-place clamps) that keep the rules quiet.
"""
from __future__ import annotations

import textwrap
from typing import Optional, Sequence

import pytest

from helpers import lint
from nanlint.finding import Finding
from nanlint.lines import split_lines
from nanlint.rules import BY_CODE

LOG_EXP = ("NAN103", "NAN104", "NAN203", "NAN301", "NAN302", "NAN303", "NAN304")


def run(source: str, codes: Sequence[str] = LOG_EXP, precision: Optional[tuple[str, ...]] = None) -> list[Finding]:
    return lint(textwrap.dedent(source), [BY_CODE[c] for c in codes], precision=precision)


def apply(source: str, finding: Finding) -> str:
    """Apply one finding's edits (1-based lines/columns in characters) to ``source``."""
    assert finding.fix is not None
    lines = split_lines(source)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    text = source
    for edit in sorted(finding.fix.edits, key=lambda e: (e.line, e.column), reverse=True):
        start = offsets[edit.line - 1] + edit.column - 1
        end = offsets[edit.end_line - 1] + edit.end_column - 1
        text = text[:start] + edit.content + text[end:]
    return text


def fixed_line(source: str, code: str, line_text: str) -> tuple[Finding, str]:
    """The finding of ``code`` on the line containing ``line_text``, and that line after its fix."""
    source = textwrap.dedent(source)
    number = next(i for i, line in enumerate(source.splitlines(), 1) if line_text in line)
    found = [f for f in run(source, (code,)) if f.line == number]
    assert found, f"{code} not reported on line {number}: {line_text!r}"
    finding = found[0]
    after = apply(source, finding)
    return finding, after.splitlines()[number - 1].strip()


# -- NAN301: safe rewrites to log_softmax / logsigmoid, in the user's spelling ----------

@pytest.mark.parametrize("imports,line,expected", [
    ("import torch.nn.functional as F\nimport torch",
     "y = torch.log(F.softmax(x, dim=-1))", "y = F.log_softmax(x, dim=-1)"),
    ("import torch as th", "y = th.log(th.softmax(x, 1))", "y = th.log_softmax(x, 1)"),
    ("import torch", "y = x.softmax(-1).log()", "y = x.log_softmax(-1)"),
    ("import torch", "y = torch.log(torch.nn.functional.softmax(x, dim=1, dtype=torch.float32))",
     "y = torch.nn.functional.log_softmax(x, dim=1, dtype=torch.float32)"),
    ("from torch import log\nfrom torch.nn.functional import softmax, log_softmax",
     "y = log(softmax(x, dim=1))", "y = log_softmax(x, dim=1)"),
    ("from torch import log\nfrom torch.nn.functional import softmax\nimport torch.nn.functional as F",
     "y = log(softmax(x, dim=1))", "y = F.log_softmax(x, dim=1)"),
    ("import torch\nimport torch.nn.functional as F", "y = torch.log(torch.sigmoid(z))", "y = F.logsigmoid(z)"),
    ("import torch\nfrom torch import nn", "y = torch.log(1 - z.sigmoid())", "y = nn.functional.logsigmoid(-z)"),
    ("import torch", "y = torch.log1p(-torch.sigmoid(a + b))", "y = torch.nn.functional.logsigmoid(-(a + b))"),
])
def test_nan301_fix_keeps_spelling(imports: str, line: str, expected: str) -> None:
    source = f"{imports}\n\n\ndef f(x, z, a, b):\n    {line}\n    return y\n"
    finding, after = fixed_line(source, "NAN301", line)
    assert finding.fix is not None and finding.fix.applicability == "safe"
    assert after == expected


def test_nan301_fix_through_a_variable_only_when_the_input_is_unchanged() -> None:
    source = """
    import torch
    import torch.nn.functional as F

    def f(logits):
        probs = F.softmax(logits, dim=-1)
        a = torch.log(probs)
        logits = logits * 2
        b = torch.log(probs)
        return a, b
    """
    findings = run(source, ("NAN301",))
    assert [f.line for f in findings] == [7, 9]
    assert findings[0].fix is not None and apply(textwrap.dedent(source), findings[0]).splitlines()[6].strip() \
        == "a = F.log_softmax(logits, dim=-1)"
    assert findings[1].fix is None  # `logits` was rebound: re-evaluating it would change the result


def test_nan301_module_softmax_is_fixed_with_the_modules_dim() -> None:
    source = """
    import torch
    import torch.nn as nn

    class Head(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.act = nn.Softmax(dim=-1)
            self.other = nn.Softmax(dim=dim)

        def forward(self, x):
            return torch.log(self.act(x)) + torch.log(self.other(x))
    """
    first, second = run(source, ("NAN301",))
    assert "log_softmax" in first.message and first.fix is not None and first.fix.applicability == "safe"
    assert [e.content for e in first.fix.edits] == ["torch.log_softmax(x, dim=-1)"]
    assert second.fix is None  # a dim that is not a literal may not hold the same value at the log


def test_nan301_fixed_source_lints_clean() -> None:
    source = textwrap.dedent("""
    import torch
    import torch.nn.functional as F

    def bce(z, y):
        p = torch.sigmoid(z)
        return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    """)
    for _ in range(2):
        findings = run(source, ("NAN301",))
        if not findings:
            break
        source = apply(source, findings[0])
    assert "F.logsigmoid(z)" in source and "F.logsigmoid(-z)" in source
    assert run(source) == []


def test_lightning_self_log_is_not_torch_log() -> None:
    source = """
    import torch.nn.functional as F

    class Module:
        def training_step(self, batch):
            probs = F.softmax(batch, -1)
            self.log("p", probs)
            self.log(probs)
    """
    assert run(source) == []


# -- NAN302 ------------------------------------------------------------------------

def test_nan302_respects_clamps_in_place_and_eps() -> None:
    source = """
    import torch
    import torch.nn.functional as F

    def f(logits, z, eps):
        p = logits.softmax(-1)[:, 0]
        p.clamp_(min=1e-6)
        a = torch.log(p)
        q = torch.sigmoid(z)
        b = torch.logit(q, eps=eps)
        c = torch.logit(q, 1e-3)
        d = torch.logit(q, eps=None)
        return a, b, c, d
    """
    assert [f.line for f in run(source, ("NAN302",))] == [12]


def test_nan302_gradient_only_forms_are_silent_without_grad() -> None:
    source = """
    import torch
    import torch.nn.functional as F

    def f(logits):
        p = F.softmax(logits, -1)
        loss = -torch.special.xlogy(p, p).sum()
        with torch.no_grad():
            metric = torch.special.entr(p).sum()
        return loss, metric
    """
    assert [f.line for f in run(source, ("NAN302",))] == [7]


def test_nan302_plain_square_is_not_zero() -> None:
    source = """
    import torch
    import torch.nn.functional as F

    def f(scale):
        std = F.softplus(scale) + 1e-4
        var = std * std
        return torch.log(var)
    """
    assert run(source) == []


# -- NAN303 ------------------------------------------------------------------------

@pytest.mark.parametrize("line,expected,applicability", [
    ("y = torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)", "y = torch.softmax(x, dim=-1)", "safe"),
    ("y = th.log(th.sum(th.exp(x), dim=1))", "y = th.logsumexp(x, dim=1)", "safe"),
    ("y = x.exp().sum(-1, keepdim=True).log()", "y = torch.logsumexp(x, dim=-1, keepdim=True)", "safe"),
    ("y = torch.log(torch.exp(a) + torch.exp(b))", "y = torch.logaddexp(a, b)", "safe"),
    ("y = torch.log(1 + torch.exp(x))", "y = F.softplus(x)", "unsafe"),
    ("y = torch.log1p(x.exp())", "y = F.softplus(x)", "unsafe"),
])
def test_nan303_fixes(line: str, expected: str, applicability: str) -> None:
    source = f"import torch\nimport torch as th\nimport torch.nn.functional as F\n\n\ndef f(x, a, b):\n    {line}\n"
    finding, after = fixed_line(source, "NAN303", line)
    assert finding.fix is not None and finding.fix.applicability == applicability
    assert after == expected


def test_nan303_no_fix_when_the_rewrite_would_not_be_equivalent() -> None:
    source = """
    import torch

    def f(x):
        a = torch.exp(x) / torch.exp(x).sum()
        b = torch.log(torch.exp(x).sum(-1) + 1e-6)
        return a, b
    """
    findings = run(source, ("NAN303",))
    assert [f.line for f in findings] == [5, 6]
    assert all(f.fix is None for f in findings)  # no dim/keepdim for softmax; an eps is not logsumexp


def test_nan303_silent_for_shifted_bounded_and_constant_arguments() -> None:
    source = """
    import torch
    import torch.nn.functional as F

    def f(x, cos, d, n):
        m = x.max(-1, keepdim=True)[0]
        e = torch.exp(x - m)
        a = e / e.sum(-1, keepdim=True)
        b = torch.log(torch.exp(x - m).sum(-1))
        w = torch.exp(cos.clamp(-1, 1) / 0.07)
        c = w / w.sum(-1, keepdim=True)
        g = torch.exp(-d ** 2)
        h = g / g.sum()
        k = torch.exp(torch.linspace(0.0, 3.0, 7))
        return a, b, c, h, k / k.sum()
    """
    assert run(source) == []


# -- NAN304 ------------------------------------------------------------------------

HEAD = """
import torch
import torch.nn as nn

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.log_std = nn.Linear(8, 8)

    def forward(self, h):
        return torch.exp(self.log_std(h))
"""


def test_nan304_needs_float16_evidence_and_names_it() -> None:
    assert run(HEAD, ("NAN304",)) == []
    (finding,) = run(HEAD + "\nmodel = Head().half()\n", ("NAN304",))
    assert "`.half()` on line 13" in finding.message and "nn.Linear" in finding.message
    (finding,) = run(HEAD, ("NAN304",), precision=("float32", "float16"))
    assert "config" in finding.message
    assert run(HEAD + "\nmodel = Head().half()\n", ("NAN304",), precision=("float32", "bfloat16")) == []


def test_nan304_bounds() -> None:
    source = """
    import torch

    def f(logvar, x):
        a = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        b = torch.exp(logvar.clamp(-30.0, 20.0))
        c = torch.exp2(x.clamp(max=15.0))
        d = torch.exp2(x.clamp(max=17.0))
        return a, b, c, d
    """
    findings = run(source, ("NAN304",), precision=("float16",))
    assert [f.line for f in findings] == [6, 8]
    assert "bounded only by 20" in findings[0].message


# -- NAN103 / NAN104 ---------------------------------------------------------------

@pytest.mark.parametrize("line,expected", [
    ("y = (l * m).sum() / m.sum()", "y = (l * m).sum() / m.sum().clamp_min(1)"),
    ("y = l.sum() / (m.sum() * 2)", "y = l.sum() / (m.sum() * 2).clamp_min(1)"),
    ("y = l.sum() / torch.count_nonzero(m)", "y = l.sum() / torch.count_nonzero(m).clamp_min(1)"),
])
def test_nan103_fix_clamps_the_count(line: str, expected: str) -> None:
    source = f"import torch\n\n\ndef f(l, labels):\n    m = labels != -100\n    {line}\n    return y\n"
    finding, after = fixed_line(source, "NAN103", line)
    assert finding.fix is not None and finding.fix.applicability == "unsafe"
    assert after == expected


def test_nan103_python_count_gets_max() -> None:
    source = """
    import torch

    def f(l, labels):
        m = labels > 0
        a = l[m].sum() / len(l[m])
        b = l.sum() / m.sum().item()
        return a, b
    """
    findings = run(source, ("NAN103",))
    assert [f.line for f in findings] == [6, 7]
    # Python counts of a 0/1 mask: `max(n, 1)` (a tensor method would raise on them)
    assert all(f.fix is not None and f.fix.applicability == "unsafe" and "max(" in f.message for f in findings)
    assert [e.content for f in findings for e in f.fix.edits] == ["max(len(l[m]), 1)", "max(m.sum().item(), 1)"]


def test_nan103_none_checks_are_not_guards_but_count_tests_are() -> None:
    source = """
    def f(loss, loss_mask, labels):
        if loss_mask is not None and labels.dim() == 2:
            a = (loss * loss_mask).sum() / loss_mask.sum()
        valid = labels != -100
        if valid.sum() > 0:
            b = (loss * valid).sum() / valid.sum()
        return a, b
    """
    assert [f.line for f in run(source, ("NAN103",))] == [4]


def test_nan104_losses_and_reductions() -> None:
    source = """
    import torch.nn as nn
    import torch.nn.functional as F

    def f(pred, target, labels):
        pos = labels > 0
        a = F.mse_loss(pred[pos], target[pos])
        b = F.mse_loss(pred[pos], target[pos], reduction="sum")
        c = nn.L1Loss()(pred[pos], target[pos])
        d = nn.L1Loss(reduction="none")(pred[pos], target[pos])
        e = F.cross_entropy(pred[labels != -100], labels[labels != -100])
        return a, b, c, d, e
    """
    assert [f.line for f in run(source, ("NAN104",))] == [7, 9, 11]


# -- NAN203 ------------------------------------------------------------------------

@pytest.mark.parametrize("line,expected", [
    ("y = x.clamp(min=0).sqrt()", "y = x.relu().sqrt()"),
    ("y = th.sqrt(th.clamp(a - b, min=0.0))", "y = th.sqrt(th.relu(a - b))"),
    ("y = (a - b).clamp_min(0) ** 0.5", "y = (a - b).relu() ** 0.5"),
])
def test_nan203_relu_fix(line: str, expected: str) -> None:
    source = f"import torch as th\n\n\ndef f(x, a, b):\n    {line}\n    return y\n"
    finding, after = fixed_line(source, "NAN203", line)
    assert finding.fix is not None and finding.fix.applicability == "safe"
    assert after == expected


def test_nan203_no_fix_for_abs_or_capped_clamp() -> None:
    source = """
    import torch

    def f(x):
        a = x.abs() ** 0.5
        b = x.clamp(0, 1).sqrt()
        return a, b
    """
    findings = run(source, ("NAN203",))
    assert [f.line for f in findings] == [5, 6] and all(f.fix is None for f in findings)


def test_preview_status() -> None:
    assert {code for code in LOG_EXP if BY_CODE[code].preview} == {"NAN104", "NAN203", "NAN304"}


# -- numerics behind the rules (docs/numerics-extra.md "Log, exp, counts and fractional powers") ----------

DTYPES = ("float32", "float16", "bfloat16")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_numerics_extra_saturation_thresholds(torch) -> None:
    F = torch.nn.functional
    expected = {"float32": (104.0, 16.7, -89.0), "float16": (17.5, 8.4, -17.5), "bfloat16": (93.0, 6.3, -89.0)}
    for name in DTYPES:
        dtype = getattr(torch, name)
        gaps = torch.arange(0, 200, 0.5)
        probs = F.softmax(torch.stack([torch.zeros_like(gaps), gaps], -1).to(dtype), -1)[:, 0]
        gap = float(gaps[probs == 0].min())
        z = torch.arange(0, 40, 0.1).to(dtype)
        one = float(z[torch.sigmoid(z) == 1].min())
        neg = -torch.arange(0, 200, 0.5).to(dtype)
        zero = float(neg[torch.sigmoid(neg) == 0].max())
        assert gap == expected[name][0] and zero == expected[name][2], name
        assert one == pytest.approx(expected[name][1], abs=0.05), name


def test_numerics_extra_empty_selection_means(torch) -> None:
    F = torch.nn.functional
    for name in DTYPES:
        dtype = getattr(torch, name)
        m = torch.zeros(4, dtype=torch.bool)
        p = torch.ones(4, dtype=dtype, requires_grad=True)
        t = torch.zeros(4, dtype=dtype)
        z = torch.ones(4, 3, dtype=dtype, requires_grad=True)
        y = torch.zeros(4, dtype=torch.long)
        for loss in (p[m].mean(), F.mse_loss(p[m], t[m]), F.l1_loss(p[m], t[m]), F.smooth_l1_loss(p[m], t[m]),
                     F.binary_cross_entropy_with_logits(p[m], t[m]), F.cross_entropy(z[m], y[m]),
                     F.nll_loss(z[m], y[m])):
            assert torch.isnan(loss), name
        ((p * m).sum() / m.sum()).backward()
        assert torch.isnan(p.grad).all(), name  # a masked sum over a 0 count: NaN gradient too (row 39)
        fixed = p[m].sum() / m.sum().clamp_min(1)
        assert torch.isfinite(fixed), name


def test_numerics_extra_logit_eps(torch) -> None:
    for name in DTYPES:
        dtype = getattr(torch, name)
        p = torch.sigmoid(torch.tensor([20.0, -20.0], dtype=dtype))
        assert torch.isinf(torch.logit(p)).any(), name
        assert torch.isfinite(torch.logit(p, eps=torch.finfo(dtype).eps)).all(), name
        assert torch.isinf(torch.logit(p, eps=1e-3)).any() == (name == "bfloat16"), name


def test_numerics_extra_focal_loss(torch) -> None:
    for name in DTYPES:
        z = torch.tensor([-200.0], dtype=getattr(torch, name), requires_grad=True)
        p = torch.sigmoid(z)
        pt = torch.where(torch.ones(1) == 1, p, 1 - p)
        loss = -(1 - pt) ** 2 * torch.log(pt)
        loss.float().sum().backward()
        assert torch.isposinf(loss).all() and torch.isnan(z.grad).all(), name


def test_numerics_extra_fix_safety(torch) -> None:
    F = torch.nn.functional
    torch.manual_seed(0)
    for name in DTYPES:
        dtype = getattr(torch, name)
        x = (torch.randn(2000, 16) * 4).to(dtype)
        hand = torch.log(torch.exp(x).sum(-1))
        lse = torch.logsumexp(x, -1)
        finite = torch.isfinite(hand)
        ulps = (hand[finite].float() - lse[finite].float()).abs() / (
            torch.finfo(dtype).eps * lse[finite].float().abs().clamp_min(1))
        assert float(ulps.max()) <= 1.0, name
    z = torch.tensor([-20.0])
    assert float(torch.log(1 + torch.exp(z))) == 0.0 and float(F.softplus(z)) > 0  # softplus is not identical


def test_numerics_extra_exp_in_float16(torch) -> None:
    half = torch.float16
    assert torch.isinf(torch.exp(torch.tensor(11.09, dtype=half))) and torch.isfinite(
        torch.exp(torch.tensor(11.0, dtype=half)))
    assert torch.isinf(torch.exp2(torch.tensor(16.0, dtype=half))) and torch.isfinite(
        torch.exp2(torch.tensor(15.9, dtype=half)))
    with torch.autocast("cpu", dtype=half):
        out = torch.exp(torch.nn.Linear(4, 1)(torch.randn(2, 4)))
    assert out.dtype == half  # CPU autocast keeps exp in float16
    x = torch.tensor([12.0], dtype=half, requires_grad=True)
    y = torch.exp(x.float())
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isinf(x.grad).all()  # an upcast fixes only the forward
