"""NAN401-NAN404, NAN501, NAN502, NAN603, NAN604: behaviour beyond the fixtures.

* fixes: the exact edits, that applying them gives code the rule no longer flags, and where no fix is offered;
* precision: float16 evidence kinds, the config's ``precision`` overriding the file, messages naming the evidence;
* ``nanlint.precision`` rounding against torch, and the measurements of docs/numerics-extra.md (``numerics``).
"""
from __future__ import annotations

import math
import textwrap
from typing import Optional

import pytest

from helpers import lint
from nanlint.finding import Edit, Finding
from nanlint.precision import fmt, overflows, round_to, rounds_to_unit, underflows
from nanlint.rules import BY_CODE

MINE = ("NAN401", "NAN402", "NAN403", "NAN404", "NAN501", "NAN502", "NAN603", "NAN604")


def run(code: str, source: str, precision: Optional[tuple[str, ...]] = None) -> list[Finding]:
    return [f for f in lint(textwrap.dedent(source), [BY_CODE[code]], precision=precision) if f.code == code]


def apply(source: str, edits: tuple[Edit, ...]) -> str:
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    text = source
    for edit in sorted(edits, key=lambda e: (e.line, e.column), reverse=True):
        start = offsets[edit.line - 1] + edit.column - 1
        end = offsets[edit.end_line - 1] + edit.end_column - 1
        text = text[:start] + edit.content + text[end:]
    return text


def fixed(code: str, source: str, precision: Optional[tuple[str, ...]] = None) -> str:
    source = textwrap.dedent(source)
    findings = run(code, source, precision)
    assert len(findings) == 1, findings
    assert findings[0].fix is not None, findings[0].message
    return apply(source, findings[0].fix.edits)


# -- registry ------------------------------------------------------------------------------
def test_rules_are_registered_with_docs_and_default_status() -> None:
    for code in MINE:
        rule = BY_CODE[code]
        docs = rule.docs()
        for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety"):
            assert section in docs, f"{code} docs lack {section}"
        assert rule.rows and rule.witnesses
        assert rule.default_on() == (code not in ("NAN401", "NAN603")), code


# -- NAN401 ---------------------------------------------------------------------------------
def test_nan401_fix_is_the_double_where() -> None:
    source = """
    import torch
    def f(x):
        return torch.where(x > 0, torch.sqrt(x), 0.0)
    """
    result = fixed("NAN401", source)
    assert "torch.where(x > 0, torch.sqrt(torch.where(x > 0, x, 1.0)), 0.0)" in result
    assert run("NAN401", result) == []
    assert run("NAN401", source)[0].fix.applicability == "unsafe"


def test_nan401_fix_false_branch_and_masked_fill() -> None:
    source = """
    import torch as th
    def f(n, d):
        return th.where(d == 0, 0.0, n / d)
    """
    result = fixed("NAN401", source)
    assert "th.where(d == 0, 0.0, n / th.where(d == 0, 1.0, d))" in result
    assert run("NAN401", result) == []
    masked = """
    import torch
    def f(x):
        return (1 / x).masked_fill(x == 0, 0)
    """
    result = fixed("NAN401", masked)
    assert "(1 / torch.where(x == 0, 1.0, x)).masked_fill(x == 0, 0)" in result
    assert run("NAN401", result) == []


def test_nan401_acos_uses_zero_as_safe_value() -> None:
    source = """
    import torch
    def f(c):
        return torch.where(c.abs() < 1, torch.acos(c), 0.0)
    """
    assert "torch.acos(torch.where(c.abs() < 1, c, 0.0))" in fixed("NAN401", source)


def test_nan401_no_fix_when_op_is_in_another_statement_or_condition_is_random() -> None:
    source = """
    import torch
    def f(p):
        plogp = p * torch.log(p)
        return torch.where(p > 0, plogp, 0.0)
    def g(x):
        return torch.where(torch.rand_like(x) > x, torch.sqrt(x), 0.0)
    """
    findings = run("NAN401", source)
    assert len(findings) == 2
    assert all(f.fix is None for f in findings)


def test_nan401_silent_in_an_optimizers_helpers() -> None:
    """A function only an optimizer's methods call works on `.grad` tensors without autograd."""
    source = """
    import torch
    from torch.optim import Optimizer
    def trust_ratio(w_norm, g_norm):
        return torch.where(g_norm > 0, w_norm / g_norm, 1.0)
    class Lamb(Optimizer):
        def step(self):
            for p in self.params:
                p.data.mul_(trust_ratio(p.norm(), p.grad.norm()))
    """
    assert run("NAN401", source) == []


def test_a_loss_next_to_an_optimizer_is_still_a_loss() -> None:
    """Defining an optimizer in the file no longer makes every function in it gradient-free."""
    source = """
    import torch
    from torch.optim import Optimizer
    def entropy_loss(p):
        return torch.where(p > 0, torch.sqrt(p), 0.0).sum()
    class Lamb(Optimizer):
        def step(self):
            pass
    """
    assert [f.code for f in run("NAN401", source)] == ["NAN401"]


# -- NAN402 ---------------------------------------------------------------------------------
def test_nan402_fix_replaces_inf_with_finfo_min() -> None:
    source = """
    import torch
    import torch.nn.functional as F
    def attend(scores, pad):
        scores = scores.masked_fill(pad, float("-inf"))
        return F.softmax(scores, dim=-1)
    """
    result = fixed("NAN402", source)
    assert 'scores.masked_fill(pad, torch.finfo(scores.dtype).min)' in result
    assert run("NAN402", result) == []


def test_nan402_additive_bias_has_no_fix_and_says_so() -> None:
    source = """
    import torch
    def attend(q, k, pad):
        bias = torch.zeros(pad.shape).masked_fill(pad, float("-inf"))
        return torch.softmax(q @ k.T + bias, -1)
    """
    (finding,) = run("NAN402", source)
    assert finding.fix is None
    assert "additive" in finding.message


def test_nan402_follows_constants_and_inplace_fills_in_loops() -> None:
    source = """
    import torch
    NEG = -float("inf")
    def decode(steps, scores, pad):
        for _ in range(steps):
            s = scores.clone()
            s.masked_fill_(pad, NEG)
            p = s.softmax(-1)
        return p
    """
    (finding,) = run("NAN402", source)
    assert finding.line == 7


def test_nan402_silent_for_sdpa_and_causal() -> None:
    source = """
    import torch
    import torch.nn.functional as F
    def sdpa(q, k, v, pad):
        mask = torch.zeros(pad.shape).masked_fill(pad, float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    def causal(s):
        T = s.size(-1)
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        return F.softmax(s.masked_fill(future, float("-inf")), -1)
    """
    assert run("NAN402", source) == []


def test_nan402_causal_combined_with_padding_is_flagged() -> None:
    source = """
    import torch
    import torch.nn.functional as F
    def causal_pad(s, pad):
        T = s.size(-1)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1) | pad[:, None, :]
        return F.softmax(s.masked_fill(mask, float("-inf")), -1)
    """
    assert len(run("NAN402", source)) == 1


# -- NAN403 ---------------------------------------------------------------------------------
HALF_TAIL = "\ndef infer(model, x):\n    return model.half()(x)\n"


def test_nan403_needs_float16_evidence_and_names_it() -> None:
    source = """
    import torch
    def attend(scores, mask):
        return scores.masked_fill(mask == 0, -1e9)
    """
    assert run("NAN403", source) == []
    (finding,) = run("NAN403", textwrap.dedent(source) + HALF_TAIL)
    assert "`.half()` on line 7" in finding.message
    assert "RuntimeError" in finding.message
    (declared,) = run("NAN403", source, precision=("float32", "float16"))
    assert "config: precision includes float16" in declared.message
    assert run("NAN403", textwrap.dedent(source) + HALF_TAIL, precision=("float32", "bfloat16")) == []


def test_nan403_fix_and_positive_bound() -> None:
    source = textwrap.dedent("""
    import torch
    def f(dist, same):
        return dist.masked_fill(same, 1e9)
    """) + HALF_TAIL
    result = fixed("NAN403", source)
    assert "dist.masked_fill(same, torch.finfo(dist.dtype).max)" in result
    assert run("NAN403", result) == []


def test_nan403_bf16_autocast_is_not_evidence() -> None:
    source = """
    import torch
    def f(scores, mask, model, x):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            model(x)
        return scores.masked_fill(mask == 0, -1e9)
    """
    assert run("NAN403", source) == []


# -- NAN404 ---------------------------------------------------------------------------------
def test_nan404_clamp_rounding_depends_on_declared_precision() -> None:
    source = """
    import torch
    def f(c):
        return torch.acos(c.clamp(-1 + 1e-7, 1 - 1e-7))
    """
    # float32 code: 1 - 1e-7 is 0.9999999; bfloat16 is not assumed where the code does not show it
    assert run("NAN404", source) == []
    (shown,) = run("NAN404", source.replace("c.clamp", "c.bfloat16().clamp"))
    assert "bf16 (`.bfloat16()` on line 4)" in shown.message
    assert run("NAN404", source, precision=("float32",)) == []
    (declared,) = run("NAN404", source, precision=("float32", "float16"))
    assert "f16 (config: precision includes float16)" in declared.message
    wide = source.replace("1e-7", "1e-3")
    assert "bf16" in run("NAN404", wide, precision=("float32", "bfloat16"))[0].message  # 1 - 1e-3 is 1 in bf16
    assert run("NAN404", wide, precision=("float32", "float16")) == []  # but not in float16


# -- NAN501 ---------------------------------------------------------------------------------
def test_nan501_normalize_default_needs_float16_tensors_not_only_autocast() -> None:
    autocast = """
    import torch
    import torch.nn.functional as F
    def f(model, x):
        with torch.autocast("cuda"):
            return F.normalize(model(x), dim=-1)
    """
    assert run("NAN501", autocast) == []
    tensors = autocast.replace("model(x)", "model(x.half())")
    (finding,) = run("NAN501", tensors)
    assert "default eps (1e-12)" in finding.message and "`.half()`" in finding.message


def test_nan501_eps_from_init_default_and_message() -> None:
    source = """
    import torch
    import torch.nn as nn
    class Norm(nn.Module):
        def __init__(self, eps=1e-10):
            super().__init__()
            self.eps = eps
        def forward(self, x):
            return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
    model = Norm().half()
    """
    (finding,) = run("NAN501", source)
    assert "`self.eps` (= 1e-10)" in finding.message
    assert "rounds to 0 in float16" in finding.message
    assert finding.line == 9


def test_nan501_adam_needs_float16_parameters() -> None:
    source = """
    import torch
    def make(model):
        model.half()
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    """
    (finding,) = run("NAN501", source)
    assert "default eps (1e-8)" in finding.message
    amp = source.replace("model.half()", "scaler = torch.cuda.amp.GradScaler()")
    assert run("NAN501", amp) == []


def test_nan501_division_under_autocast_keeps_numerator_gradient_hazard() -> None:
    source = """
    import torch
    def f(x):
        with torch.autocast("cuda"):
            return x / (x.norm(dim=-1, keepdim=True) + 1e-6)
    """
    (finding,) = run("NAN501", source)
    assert "gradient of the numerator" in finding.message


def test_nan501_follows_tuple_unpacking_to_an_upcast() -> None:
    source = """
    import torch
    def linear_attention(q, k, v):
        q, k, v = q.float(), k.float(), v.float()
        out = (v @ k) @ q
        return out[:, :-1] / (out[:, -1:] + 1e-15)
    model_dtype = torch.float16
    """
    assert run("NAN501", source) == []
    assert len(run("NAN501", source.replace("q, k, v = q.float(), k.float(), v.float()", "pass"))) == 1


def test_nan501_and_nan403_silent_in_a_branch_for_non_float16() -> None:
    source = """
    import torch
    def pool(x, p_mask):
        if p_mask.dtype == torch.float16:
            return x - 65500 * p_mask
        else:
            return x - 1e30 * p_mask
    def norm(x):
        return x / torch.sqrt(x.var() + 1e-12) if x.dtype != torch.float16 else x
    """
    assert run("NAN403", source) == [] and run("NAN501", source) == []


# -- NAN502 ---------------------------------------------------------------------------------
def test_nan502_fix_writes_default_eps() -> None:
    source = """
    import torch.nn as nn
    norm = nn.LayerNorm(64, eps=0)
    rms = nn.RMSNorm(64, eps=0.0)
    """
    source = textwrap.dedent(source)
    findings = run("NAN502", source)
    assert [f.fix.edits[0].content for f in findings] == ["1e-05", "None"]
    result = apply(source, tuple(e for f in findings for e in f.fix.edits))
    assert "nn.LayerNorm(64, eps=1e-05)" in result and "nn.RMSNorm(64, eps=None)" in result
    assert run("NAN502", result) == []


def test_nan502_named_zero_is_flagged_without_fix() -> None:
    source = """
    import torch.nn as nn
    class Block(nn.Module):
        def __init__(self, dim, eps=0):
            super().__init__()
            self.norm = nn.GroupNorm(8, dim, eps=eps)
    """
    (finding,) = run("NAN502", source)
    assert finding.fix is None and "(`eps` is 0)" in finding.message


# -- NAN603 ---------------------------------------------------------------------------------
def test_nan603_reports_once_per_loop_at_backward() -> None:
    source = """
    import torch
    def train(model, loader, opt):
        for x in loader:
            loss = model(x).mean()
            loss.backward()
            opt.step()
            loss2 = model(x).sum()
            loss2.backward()
            opt.step()
    """
    (finding,) = run("NAN603", source)
    assert finding.line == 6


# -- NAN604 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("snippet,expected", [
    ("def f(x: torch.Tensor):\n    return x == float('nan')\n", "return torch.isnan(x)"),
    ("def f(x: torch.Tensor):\n    return x != float('nan')\n", "return ~torch.isnan(x)"),
    ("def f(t):\n    return t.item() != math.nan\n", "return not math.isnan(t.item())"),
    ("def f(v: float):\n    return (v == np.nan) + 1\n", "return (math.isnan(v)) + 1"),
    ("def f(x):\n    return torch.eq(x, torch.nan)\n", "return torch.isnan(x)"),
    ("def f():\n    y = torch.zeros(3)\n    return y.ne(float('nan'))\n", "return ~torch.isnan(y)"),
])
def test_nan604_safe_fixes(snippet: str, expected: str) -> None:
    source = "import math\nimport numpy as np\nimport torch\n" + snippet
    findings = run("NAN604", source)
    assert len(findings) == 1 and findings[0].fix is not None
    assert findings[0].fix.applicability == "safe"
    result = apply(source, findings[0].fix.edits)
    assert expected in result
    assert run("NAN604", result) == []


@pytest.mark.parametrize("snippet", [
    "def f(x):\n    return x == float('nan')\n",  # type unknown
    "def f(x=torch.zeros(2)):\n    return x == float('nan')\n",  # a default is not what callers pass
    "def f(x):\n    return x.eq(float('nan'))\n",  # .eq on anything (pandas has it too)
    "def f(x):\n    return a == b == float('nan')\n",  # chained
])
def test_nan604_no_fix_when_the_type_is_unknown(snippet: str) -> None:
    source = "import torch\n" + snippet
    findings = run("NAN604", source)
    assert len(findings) == 1 and findings[0].fix is None


def test_nan604_float_fix_needs_math_imported() -> None:
    (finding,) = run("NAN604", "def f(t):\n    return t.item() == float('nan')\n")
    assert finding.fix is None


# -- precision arithmetic (no torch needed) --------------------------------------------------
def test_rounding_helpers() -> None:
    assert underflows(1e-8, "float16") and not underflows(6e-8, "float16") and not underflows(1e-8, "bfloat16")
    assert overflows(-1e9, "float16") and not overflows(-1e9, "bfloat16") and not overflows(-65504.0, "float16")
    assert rounds_to_unit(1 - 1e-7, "float16") and rounds_to_unit(1 - 1e-7, "bfloat16")
    assert not rounds_to_unit(1 - 1e-7, "float32") and not rounds_to_unit(1 - 1e-3, "float16")
    assert rounds_to_unit(1 - 1e-3, "bfloat16") and not rounds_to_unit(1 - 2e-3, "bfloat16")
    assert fmt(1e-08) == "1e-8" and fmt(-1e9) == "-1e9" and fmt(65504.0) == "65504"


# -- torch: rounding and docs/numerics-extra.md ------------------------------------------------
torch_values = [1e-8, 2.9e-8, 3e-8, 6e-8, 1e-6, 1 - 1e-7, 1 - 1e-4, 1 - 2.5e-4, 1 - 1e-3, 1 - 2e-3, -1e9, 65504.0,
                65519.0, 65520.0, 1.0009765625, 0.1, 1e-40, 3.0e38, 3.5e38]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_round_to_matches_torch(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    for value in torch_values:
        expected = torch.tensor(value, dtype=getattr(torch, dtype)).item()
        assert round_to(value, dtype) == expected, (value, dtype)


def _grad_finite(fn, x) -> bool:
    torch = pytest.importorskip("torch")
    x = x.detach().clone().requires_grad_(True)
    fn(x).float().sum().backward()
    return bool(torch.isfinite(x.grad).all())


def test_numerics_extra_fp16_eps_thresholds() -> None:
    torch = pytest.importorskip("torch")
    zeros = torch.zeros(2, 8, dtype=torch.float16)

    def rms(eps):
        return lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

    assert not _grad_finite(rms(5e-4), zeros) and _grad_finite(rms(1e-3), zeros)
    assert not _grad_finite(lambda x: torch.log(x + 1e-5), zeros)
    assert _grad_finite(lambda x: torch.log(x + 2e-5), zeros)
    assert _grad_finite(lambda x: torch.log(x.clamp_min(1e-6)), zeros)
    assert not _grad_finite(lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-5), zeros)
    assert _grad_finite(lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(2e-5), zeros)
    F = torch.nn.functional
    assert not _grad_finite(lambda x: F.normalize(x, dim=-1, eps=1e-5), zeros)
    assert _grad_finite(lambda x: F.normalize(x, dim=-1, eps=2e-5), zeros)


def test_numerics_extra_optimizers_and_masks() -> None:
    torch = pytest.importorskip("torch")

    def adam_step(eps, cls=torch.optim.Adam, **kw):
        w = torch.nn.Parameter(torch.ones(4, dtype=torch.float16))
        opt = cls([w], lr=1e-3, **({} if eps is None else {"eps": eps}), **kw)
        w.grad = torch.zeros_like(w)
        opt.step()
        return bool(torch.isfinite(w).all())

    assert not adam_step(None) and adam_step(6e-8) and adam_step(None, fused=True)
    assert not adam_step(None, torch.optim.RMSprop) and adam_step(None, torch.optim.RAdam)
    s = torch.zeros(2, 3, dtype=torch.float16)
    m = torch.tensor([[True, True, True], [False, True, True]])
    assert bool(torch.isfinite(s.masked_fill(m, -65504.0)).all())
    for value in (-65519.0, -1e9):
        with pytest.raises(RuntimeError, match="overflow"):
            s.masked_fill(m, value)
    t = s.clone()
    t[m] = -1e9
    assert bool(torch.isinf(t).any())
    keep = torch.tensor([[1.0, 1.0, 0.0]])
    assert bool(torch.isnan(torch.zeros(1, 3) + (1 - keep) * float("-inf")).any())


def test_numerics_extra_where_trap_variants() -> None:
    torch = pytest.importorskip("torch")
    zero = torch.zeros(3)
    assert not _grad_finite(lambda x: torch.where(x > 0, torch.rsqrt(x), 0.0), zero)
    assert not _grad_finite(lambda x: torch.where(x > -1, torch.log1p(x), 0.0), zero - 1)
    assert not _grad_finite(lambda x: torch.where(x.abs() < 1, torch.asin(x), 0.0), zero + 1)
    assert _grad_finite(lambda x: torch.where(x > 0, torch.log(x), 0.0), zero - 1)  # only 0 triggers log

    def index_assign(x):
        y = torch.log(x)
        y[x == 0] = 0.0
        return y

    assert not _grad_finite(index_assign, zero)
    assert math.isnan(float("nan")) and not (torch.tensor([float("nan")]) == float("nan")).any()
