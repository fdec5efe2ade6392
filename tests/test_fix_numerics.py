"""The fixes nanlint writes, executed with torch 2.13: finite where the original is not.

For every fixable rule, a small module with the hazard is fixed by
:func:`nanlint.fixes.fix_source` and the *text it produced* is executed: at the
hazard's trigger input the fixed function's forward value and the gradient of
``y.float().sum()`` are finite in float32, bfloat16 and float16, while the
original's are not. The training-loop fixes run a tiny loop with an injected
gradient spike, with and without a CPU ``GradScaler``. The eps arithmetic of
:mod:`nanlint.eps` (which never imports torch) is checked against torch here too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pytest

from fixhelpers import FIXABLE
from nanlint.engine import LintRequest
from nanlint.eps import KINDS, LIMITS, growth, literal_problem, round_to
from nanlint.fixes import fix_source
from nanlint.rules import BY_CODE

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = ("float32", "bfloat16", "float16")


def fixed_text(source: str, codes=FIXABLE, options=(), precision=None, unsafe=True) -> tuple[str, object]:
    request = LintRequest(tuple(BY_CODE[c] for c in codes), precision, (("max-grad-norm", 1.0), *options))
    outcome = fix_source("snippet.py", source, request, unsafe=unsafe)
    return outcome.source, outcome


def load(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<fixed>", "exec"), namespace)
    return namespace


@dataclass(frozen=True)
class Case:
    name: str
    rule: str
    source: str  # a module defining ``f``
    inputs: Callable  # dtype -> tuple of arguments (leaves require grad)


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


def zeros(*shape):
    return lambda dtype: (_leaf(torch.zeros(*shape, dtype=dtype)),)


def constant(*shape, value=3.0):
    return lambda dtype: (_leaf(torch.full(shape, value, dtype=dtype)),)


def equal_pair(*shape):
    return lambda dtype: (_leaf(torch.ones(*shape, dtype=dtype)), torch.ones(*shape, dtype=dtype))


PRELUDE = "import torch\nimport torch.nn.functional as F\n\n"
CASES = [
    Case("norm", "NAN101", "def f(x):\n    return x / x.norm(dim=-1, keepdim=True)\n", zeros(2, 4)),
    Case("linalg norm via a name", "NAN101",
         "def f(x):\n    n = torch.linalg.vector_norm(x, dim=1, keepdim=True)\n    return x / n\n", zeros(2, 4)),
    Case("torch.div by a norm", "NAN101", "def f(x):\n    return torch.div(x, x.norm())\n", zeros(4)),
    # `torch.tanh(x)` is a float tensor to the value analysis: the eps may read its dtype (a bare parameter
    # of unknown kind may not; see test_unknown_kind_gets_no_eps)
    Case("hand-written norm", "NAN101",
         "def f(x):\n    h = torch.tanh(x)\n    return h / torch.sqrt((h ** 2).sum(-1, keepdim=True))\n", zeros(2, 4)),
    Case("hand-written norm via a name", "NAN101",
         "def f(x):\n    v = torch.tanh(x)\n    length = (v * v).sum() ** 0.5\n    return v / length\n", zeros(4)),
    Case("std", "NAN102", "def f(x):\n    return (x - x.mean()) / x.std()\n", constant(8)),
    Case("std_mean", "NAN102",
         "def f(x):\n    std, mean = torch.std_mean(x, dim=0)\n    return (x - mean) / std\n", constant(8, 2)),
    Case("sqrt of a variance", "NAN102",
         "def f(x):\n    mu = x.mean(-1, keepdim=True)\n    var = ((x - mu) ** 2).mean(-1, keepdim=True)\n"
         "    std = torch.sqrt(var)\n    return (x - mu) / std\n", constant(2, 8)),
    Case("rmse", "NAN201", "def f(p, t):\n    return torch.sqrt(F.mse_loss(p, t))\n", equal_pair(4)),
    Case("rmse sum", "NAN201", "def f(p, t):\n    return torch.sqrt(F.mse_loss(p, t, reduction='sum'))\n",
         equal_pair(4)),
    Case("rmse divisor", "NAN201", "def f(p, t):\n    return 2.0 / torch.sqrt(F.mse_loss(p, t))\n", equal_pair(4)),
    Case("hand-written abs", "NAN201", "def f(p, t):\n    return torch.sqrt((p - t) ** 2)\n", equal_pair(4)),
    Case("sqrt of var()", "NAN201", "def f(x):\n    return torch.sqrt(x.var(dim=0, unbiased=False))\n",
         constant(4, 3)),
    Case("rms", "NAN201", "def f(x):\n    return x.pow(2).mean(-1) ** 0.5\n", zeros(2, 4)),
    Case("euclidean distance", "NAN201",
         "def f(a, b):\n    d = torch.tanh(a) - torch.tanh(b)\n    return torch.sqrt((d ** 2).sum(-1))\n",
         equal_pair(2, 3)),
    # std/var of a single element: NaN however clamped; the fix adds `correction=0`
    Case("std of one element", "NAN102", "def f(adv):\n    return (adv - adv.mean()) / adv.std()\n", constant(1)),
    Case("std_mean of one row", "NAN102",
         "def f(x):\n    std, mean = torch.std_mean(x, dim=0)\n    return (x - mean) / std\n", constant(1, 3)),
    Case("sqrt of var() of one element", "NAN102",
         "def f(x):\n    return (x - x.mean(0)) / torch.sqrt(x.var(0))\n", constant(1, 3)),
    Case("unbiased std pooled over one frame", "NAN204",
         "def stats_pool(x):\n    return torch.cat([x.mean(dim=1), x.std(dim=1)], dim=-1)\nf = stats_pool\n",
         constant(2, 1, 4)),
    # counts and weights
    Case("mask count", "NAN103",
         "def f(x):\n    mask = x < -1\n    return (x * mask).sum() / mask.sum()\n", zeros(4)),
    Case("soft weights", "NAN103",
         "def f(x):\n    soft_mask = torch.sigmoid(x) * 0\n    return (x * soft_mask).sum() / soft_mask.sum()\n",
         zeros(4)),
    # acos at +1 and -1 (parallel and antiparallel), unclamped and clamped to exactly +-1
    Case("acos of a cosine", "NAN404",
         "def f(a, b):\n    cos = F.cosine_similarity(a, b, dim=-1)\n    return torch.acos(cos)\n",
         lambda dtype: (_leaf(torch.tensor([[3.0, 4.0], [3.0, 4.0]], dtype=dtype)),
                        torch.tensor([[3.0, 4.0], [-3.0, -4.0]], dtype=dtype))),
    Case("acos of clamp(-1, 1)", "NAN404",
         "def f(a, b):\n    cos = F.cosine_similarity(a, b, dim=-1)\n    return torch.acos(torch.clamp(cos, -1, 1))\n",
         lambda dtype: (_leaf(torch.tensor([[3.0, 4.0], [3.0, 4.0]], dtype=dtype)),
                        torch.tensor([[3.0, 4.0], [-3.0, -4.0]], dtype=dtype))),
    Case("variance via a name", "NAN201",
         "def f(x):\n    var = ((x - x.mean()) ** 2).mean()\n    return var.sqrt()\n", constant(8)),
    Case("hypot", "NAN201", "def f(a, b):\n    return torch.hypot(a, b)\n",
         lambda dtype: (_leaf(torch.zeros(3, dtype=dtype)), _leaf(torch.zeros(3, dtype=dtype)))),
    Case("rmsnorm", "NAN202",
         "def f(h):\n    variance = h.pow(2).mean(-1, keepdim=True)\n    return h * torch.rsqrt(variance)\n",
         zeros(2, 8)),
    Case("rsqrt inline", "NAN202", "def f(h):\n    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True))\n",
         zeros(2, 8)),
    Case("rsqrt method forms", "NAN202",
         "def f(x):\n    var = x.var(-1, keepdim=True, unbiased=False)\n"
         "    return x * var.rsqrt() + x * var ** -0.5 + x * var.pow(-0.5)\n", zeros(2, 8)),
    Case("layer norm with rsqrt", "NAN202",
         "def f(x):\n    mu = x.mean(-1, keepdim=True)\n    var = ((x - mu) ** 2).mean(-1, keepdim=True)\n"
         "    return (x - mu) * torch.rsqrt(var)\n", constant(2, 8)),
]


# float16-only hazards (NAN501): the fix is a literal float16 can use; it must be finite in every dtype
FP16_CASES = [
    Case("eps under a root", "NAN501",
         "half = torch.float16\ndef f(x):\n    mu = x.mean(-1, keepdim=True)\n"
         "    var = ((x - mu) ** 2).mean(-1, keepdim=True)\n    return (x - mu) / torch.sqrt(var + 1e-8)\n",
         constant(2, 8)),
    Case("eps in a log", "NAN501", "half = torch.float16\ndef f(p):\n    return torch.log(p + 1e-6)\n", zeros(4)),
    Case("eps added to a norm", "NAN501",
         "half = torch.float16\ndef f(x):\n    return x / (x.norm(dim=-1, keepdim=True) + 1e-6)\n", zeros(2, 4)),
    Case("eps clamping a norm", "NAN501",
         "half = torch.float16\ndef f(x):\n    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)\n",
         zeros(2, 4)),
    Case("eps in rsqrt", "NAN501",
         "half = torch.float16\ndef f(h):\n    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)\n",
         zeros(2, 8)),
]


@pytest.mark.parametrize("case", FP16_CASES, ids=lambda c: f"{c.rule}-{c.name}")
def test_fp16_eps_fix_is_finite(case: Case) -> None:
    source = PRELUDE + case.source
    text, outcome = fixed_text(source, codes=(case.rule,))
    assert case.rule in {f.code for f in outcome.applied}, outcome.remaining
    fwd, bwd, _ = run(load(source), case, "float16")
    assert not (fwd and bwd), "the original is finite in float16: the case does not trigger the hazard"
    for dtype in DTYPES:
        fwd, bwd, _ = run(load(text), case, dtype)
        assert fwd and bwd, f"fixed code is non-finite in {dtype}:\n{text}"


def test_unknown_kind_gets_no_eps() -> None:
    """A parameter of unknown kind (it may be an int tensor or a list) gives the eps no dtype: no fix, a reason."""
    source = PRELUDE + "def f(x):\n    return x / torch.sqrt((x ** 2).sum(-1, keepdim=True))\n"
    text, outcome = fixed_text(source)
    assert text == source
    assert all("no floating tensor to read the dtype from" in f.extra["no_fix_reason"] for f in outcome.remaining)


@pytest.mark.parametrize("name", ["receiver_bool_kornia", "receiver_list_torchmetrics"])
def test_crash_shapes_run_after_fixing(name: str) -> None:
    """The two crash shapes of real libraries: after `--fix --unsafe-fixes` the code runs (no `torch.finfo` of a
    bool, no `.dtype` of a list) and is finite at the trigger (a zero vector; equal points)."""
    from fixhelpers import FIX_FIXTURES, fix_fixture

    fixed = load(fix_fixture(FIX_FIXTURES / f"{name}.py").source)
    for dtype_name in DTYPES:
        dtype = getattr(torch, dtype_name)
        if name == "receiver_bool_kornia":
            for fn in ("so3_exp_coefficient", "sinc_through_a_mask"):
                v = _leaf(torch.zeros(2, 3, dtype=dtype))
                y = fixed[fn](v)
                y.float().sum().backward()
                assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(v.grad).all()), (fn, dtype)
        else:
            dr, dc = torch.tensor([0, 3]), torch.tensor([0, 4])
            assert fixed["distance"](dr, dc, [1.0, 1.0]).tolist() == [0.0, 5.0]
            assert fixed["distance_known_list"](dr, dc).tolist() == pytest.approx([0.0, (9 + 64) ** 0.5])


def run(namespace: dict, case: Case, dtype_name: str) -> tuple[bool, bool, float]:
    """(forward finite, gradient finite, largest |gradient|) of ``f`` at the trigger input."""
    dtype = getattr(torch, dtype_name)
    args = case.inputs(dtype)
    y = namespace["f"](*args)
    forward = bool(torch.isfinite(y).all())
    y.float().sum().backward()
    grads = [a.grad for a in args if isinstance(a, torch.Tensor) and a.requires_grad and a.grad is not None]
    backward = all(bool(torch.isfinite(g).all()) for g in grads)
    largest = max((float(g.float().abs().max()) for g in grads), default=0.0)
    return forward, backward, largest


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.rule}-{c.name}")
def test_fix_is_finite_where_the_original_is_not(case: Case) -> None:
    source = PRELUDE + case.source
    text, outcome = fixed_text(source)
    assert text != source, f"no fix was applied: {outcome.remaining}"
    assert case.rule in {f.code for f in outcome.applied}, outcome.applied
    original, fixed = load(source), load(text)
    for dtype in DTYPES:
        fwd, bwd, _ = run(original, case, dtype)
        assert not (fwd and bwd), f"the original is finite in {dtype}: the case does not trigger the hazard"
        fwd, bwd, largest = run(fixed, case, dtype)
        assert fwd and bwd, f"fixed code is non-finite in {dtype} (forward {fwd}, gradient {bwd}):\n{text}"


@pytest.mark.parametrize("source,inputs", [
    # rsqrt(v + eps) with a *non-zero* upstream gradient: sum(x) * 0.5 * eps**-1.5 overflows float16
    ("def f(x):\n    var = x.var(-1, keepdim=True, unbiased=False)\n    return x * torch.rsqrt(var)\n",
     constant(2, 8)),
    # standardisation with a *summed* loss over 64 values: the mean's gradient is 64 / eps
    ("def f(x):\n    return (x - x.mean()) / x.std()\n", constant(64)),
], ids=["rsqrt-nonzero-upstream", "std-summed-64"])
def test_documented_float16_limits(source: str, inputs) -> None:
    """The limits the NAN102/NAN202 docs state: fixed, finite in float32/bfloat16, still not in float16."""
    text, _ = fixed_text(PRELUDE + source)
    case = Case("", "", "", inputs)
    for dtype in ("float32", "bfloat16"):
        fwd, bwd, _ = run(load(text), case, dtype)
        assert fwd and bwd
    fwd, bwd, _ = run(load(text), case, "float16")
    assert fwd and not bwd


def test_fix_eps_literal_is_finite_in_float16() -> None:
    source = PRELUDE + "def f(x):\n    return x / x.norm(dim=-1, keepdim=True)\n"
    text, _ = fixed_text(source, options=(("fix-eps", 1e-4),), precision=("float16",))
    assert "clamp_min(1e-4)" in text
    case = Case("literal", "NAN101", "", zeros(2, 4))
    for dtype in DTYPES:
        fwd, bwd, _ = run(load(text), case, dtype)
        assert fwd and bwd


def test_fix_eps_literal_refused_where_it_would_not_be_finite() -> None:
    # rsqrt needs eps >= 6.2e-4 in float16: 1e-4 is refused, with the reason on the finding
    source = PRELUDE + "def f(h):\n    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True))\n"
    text, outcome = fixed_text(source, options=(("fix-eps", 1e-4),), precision=("float16",))
    assert text == source
    (finding,) = outcome.remaining
    assert "float16" in finding.extra["no_fix_reason"] and finding.fix is None
    # and the refusal is right: with 1e-4 the fixed text would give a NaN gradient in float16
    manual = source.replace("keepdim=True))", "keepdim=True) + 1e-4)")
    fwd, bwd, _ = run(load(manual), Case("", "", "", zeros(2, 8)), "float16")
    assert not (fwd and bwd)


# -- the arithmetic of nanlint.eps against torch -----------------------------------------------------
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_limits_match_torch(dtype_name: str) -> None:
    info = torch.finfo(getattr(torch, dtype_name))
    limits = LIMITS[dtype_name]
    assert (limits.eps, limits.tiny, limits.max) == (info.eps, info.tiny, info.max)
    assert float(torch.tensor(limits.min_subnormal, dtype=getattr(torch, dtype_name))) == limits.min_subnormal


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_rounding_matches_torch(dtype_name: str) -> None:
    dtype = getattr(torch, dtype_name)
    for value in (1e-3, 1e-4, 1e-5, 1e-6, 3e-8, 2.9e-8, 1e-8, 1e-12, 1e-38, 1e-40, 1e-45, 0.1, 1 - 1e-7, 7e4, 3.4e38):
        assert round_to(value, dtype_name) == float(torch.tensor(value, dtype=dtype)), (value, dtype_name)


FORMS = {
    "divide": ("x = torch.zeros(2, 4, dtype=dtype).requires_grad_()",
               "y = x / x.norm(dim=-1, keepdim=True).clamp_min(E)"),
    "divide-sqrt": ("x = torch.full((2, 8), 3.0, dtype=dtype).requires_grad_()",
                    "mu = x.mean(-1, keepdim=True); var = ((x - mu) ** 2).mean(-1, keepdim=True); "
                    "y = (x - mu) / torch.sqrt(var.clamp_min(E))"),
    "sqrt": ("x = torch.ones(4, dtype=dtype).requires_grad_(); t = torch.ones(4, dtype=dtype)",
             "y = torch.sqrt(F.mse_loss(x, t).clamp_min(E))"),
    "rsqrt": ("x = torch.zeros(2, 8, dtype=dtype).requires_grad_()",
              "variance = x.pow(2).mean(-1, keepdim=True); y = x * torch.rsqrt(variance + E)"),
}


def form_is_finite(kind: str, dtype_name: str, eps: float) -> bool:
    setup, body = FORMS[kind]
    namespace = {"torch": torch, "F": F, "dtype": getattr(torch, dtype_name), "E": eps}
    exec(setup + "\n" + body.replace("; ", "\n"), namespace)
    y, x = namespace["y"], namespace["x"]
    y.float().sum().backward()
    return bool(torch.isfinite(y).all()) and bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("kind", sorted(FORMS))
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_literal_check_agrees_with_torch(kind: str, dtype_name: str) -> None:
    """``literal_problem`` refuses exactly the literals whose fixed form is non-finite (at the trigger)."""
    for eps in (1e-1, 1e-2, 1e-3, 7e-4, 6e-4, 1e-4, 2e-5, 1e-5, 1e-6, 1e-7, 6e-8, 2e-8, 1e-8, 1e-12, 1e-30, 1e-40):
        refused = literal_problem(eps, dtype_name, kind) is not None
        assert refused == (not form_is_finite(kind, dtype_name, eps)), (kind, dtype_name, eps)


@pytest.mark.parametrize("kind", sorted(FORMS))
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_default_finfo_eps_is_accepted_and_finite(kind: str, dtype_name: str) -> None:
    value = getattr(LIMITS[dtype_name], KINDS[kind][0])
    assert literal_problem(value, dtype_name, kind) is None
    assert form_is_finite(kind, dtype_name, value)
    assert growth(kind, value) <= LIMITS[dtype_name].max


# -- training loops ------------------------------------------------------------------------------------
LR = 0.1
MAX_NORM = 1.0

LOOP = '''
import torch
from torch import nn


def train(model, data, observe, spike_at=1, spike=1e6):
    optimizer = torch.optim.SGD(model.parameters(), lr={lr})
    for step, (x, y) in enumerate(data):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean() * (spike if step == spike_at else 1.0)
        loss.backward()
        observe(model)
        optimizer.step()
        observe(model)
'''.format(lr=LR)

AMP_LOOP = '''
import torch
from torch import nn


def train(model, data, observe, spike_at=1, spike=1e6):
    optimizer = torch.optim.SGD(model.parameters(), lr={lr})
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    for step, (x, y) in enumerate(data):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean() * (spike if step == spike_at else 1.0)
        scaler.scale(loss).backward()
        observe(model)
        scaler.step(optimizer)
        scaler.update()
        observe(model)
'''.format(lr=LR)

GROUPS_LOOP = LOOP.replace(
    "torch.optim.SGD(model.parameters(), lr={lr})".format(lr=LR),
    '[{"params": model.weight}, {"params": model.bias, "lr": %s}]' % LR,
).replace("optimizer = [", "optimizer = torch.optim.SGD([").replace(
    '"lr": %s}]' % LR, '"lr": %s}], lr=%s)' % (LR, LR))

CLIP_BEFORE_UNSCALE = AMP_LOOP.replace(
    "        scaler.scale(loss).backward()\n",
    "        scaler.scale(loss).backward()\n"
    "        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n",
)


def updates(source: str) -> list[float]:
    """Run the loop; the size of each step's parameter update."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    data = [(torch.randn(8, 4), torch.randn(8, 3)) for _ in range(3)]
    seen: list = []

    def observe(m):
        seen.append([p.detach().clone() for p in m.parameters()])

    load(source)["train"](model, data, observe)
    return [math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before)))
            for before, after in zip(seen[::2], seen[1::2])]


def applied_grad_norms(source: str) -> list[float]:
    """Norm of the gradients left on the parameters after each step (what the optimizer used, unscaled)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    data = [(torch.randn(8, 4), torch.randn(8, 3)) for _ in range(3)]
    norms: list[float] = []

    def observe(m):
        norms.append(math.sqrt(sum(float((p.grad ** 2).sum()) for p in m.parameters())))

    load(source)["train"](model, data, observe)
    return norms[1::2]


@pytest.mark.parametrize("loop", [LOOP, AMP_LOOP, GROUPS_LOOP], ids=["plain", "grad-scaler", "param-groups"])
def test_clipping_fix_bounds_the_spiked_update(loop: str) -> None:
    text, outcome = fixed_text(loop, codes=("NAN601",))
    assert [f.code for f in outcome.applied] == ["NAN601"], outcome.remaining
    assert "clip_grad_norm_(" in text and text.count("clip_grad_norm_(") == 1
    spiked = updates(loop)[1]
    bounded = updates(text)
    assert spiked > 100 * LR * MAX_NORM, "the injected spike did not make a large update"
    for delta in bounded:
        assert delta <= LR * MAX_NORM * 1.001, f"update {delta} exceeds lr * max_norm with the fix:\n{text}"
    # the spike step is clipped to max_norm, not to max_norm / scale: clipping saw unscaled gradients
    assert bounded[1] >= 0.99 * LR * MAX_NORM


def test_grad_scaler_fix_unscales_before_clipping() -> None:
    text, _ = fixed_text(AMP_LOOP, codes=("NAN601",))
    unscale = text.index("scaler.unscale_(optimizer)")
    clip = text.index("torch.nn.utils.clip_grad_norm_(")
    step = text.index("scaler.step(optimizer)")
    assert unscale < clip < step
    # the gradients the optimizer applied at the spike have norm max_norm (unscaled), not max_norm / 65536
    assert applied_grad_norms(text)[1] == pytest.approx(MAX_NORM, rel=1e-3)


def test_clip_before_unscale_fix() -> None:
    text, outcome = fixed_text(CLIP_BEFORE_UNSCALE, codes=("NAN602",))
    assert [f.code for f in outcome.applied] == ["NAN602"]
    # before the fix the spiked step applies max_norm / scale: an update thousands of times too small
    assert updates(CLIP_BEFORE_UNSCALE)[1] < 1e-3 * LR * MAX_NORM
    assert updates(text)[1] == pytest.approx(LR * MAX_NORM, rel=1e-3)
    assert applied_grad_norms(text)[1] == pytest.approx(MAX_NORM, rel=1e-3)
