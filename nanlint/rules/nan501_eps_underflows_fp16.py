from typing import Optional

import libcst as cst

from ..eps import format_literal, literal_problem
from ..fixspec import UNSAFE, FixSpec, Replace
from ..patterns import code
from ..precision import FP16_MAX, Evidence, autocast_float32, default_float32, float16_excluded, fmt, fp16_evidence, \
    fp16_param_evidence, fp16_tensor_evidence, spelled, underflows, upcast
from ..fp16_text import may_have_fp16_evidence
from ..singular import Guard, Singular, guard, no_grad_value, singular
from ._guards import Built
from ._screens import Screen
from .base import SOMETIMES, Rule, Witness

# optimizer -> default eps (torch 2.13); all but RAdam turn a zero gradient into NaN with float16 params
_OPTIMIZERS = {"Adam": 1e-8, "AdamW": 1e-8, "NAdam": 1e-8, "RMSprop": 1e-8, "Adamax": 1e-8, "Adagrad": 1e-10}
_EPS_LIKE = 1e-2  # a positive literal below this, added or clamped, is an eps
_EVIDENCE = "float16 evidence: {}"


# the growth of the guarded op's derivative at eps -> the kind of nanlint.eps whose float16 limits apply
_FIX_KINDS = {"inverse": "divide", "rsqrt": "rsqrt", "sqrt": "divide-sqrt", "none": "sqrt"}
# candidate literals, smallest first: the fix writes the first one float16 can use for the op
_CANDIDATES = (1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 7e-4, 1e-3)


def smallest_safe_literal(kind: str) -> float:
    """The smallest of ``_CANDIDATES`` that neither rounds to 0 in float16 nor makes the gradient at the trigger
    overflow there (``nanlint.eps.literal_problem``): 2e-5 for a division or a log (>= 1.53e-5), 7e-4 for
    ``rsqrt(v + eps)`` (>= 6.1e-4)."""
    for value in _CANDIDATES:
        if literal_problem(value, "float16", kind) is None:
            return value
    raise ValueError(kind)


def _literal_fix(eps: cst.BaseExpression, kind: str, value: float) -> Built:
    """Replace an eps literal by the smallest literal float16 can use (only a literal written at the guard: a
    named constant or a default argument may serve other code)."""
    if not isinstance(eps, (cst.Float, cst.Integer)):
        return Built(reason="the eps is not a literal written here: change its definition to at least "
                            f"{format_literal(smallest_safe_literal(kind))} (or compute this in float32)")
    new = smallest_safe_literal(kind)
    if new <= value:
        return Built(reason="no larger literal is safe")
    text = format_literal(new)
    return Built(FixSpec(UNSAFE, f"Use eps {text}, the smallest literal float16 can use here (finite forward "
                                 "and gradient at the trigger)", (Replace(eps, text),)))


class EpsUnderflowsFp16(Rule):
    """
    ## What it does
    In code that runs in float16, flags an eps that float16 cannot use:

    * an eps added to or clamped into the argument of `sqrt`, `rsqrt`, `log`,
      a division, `reciprocal` or a fractional power that **rounds to 0** in
      float16 (below ~3e-8: `1e-8`, `1e-10`, `1e-12`), written as a literal, a
      module constant, a default argument or `self.eps` set from one;
    * an eps that survives but whose **gradient overflows**: where the
      derivative at 0 is 1/eps (`x / (n + eps)`, `x / n.clamp_min(eps)`,
      `log(p + eps)`), 1/eps must stay below 65504, so eps < 1.53e-5 is flagged
      (`1e-6`); for `rsqrt(v + eps)` the derivative is eps^-1.5, so eps < 6.1e-4;
    * `F.normalize` with its default eps (1e-12) or an eps below 1.53e-5, and
      `F.cosine_similarity` / `nn.CosineSimilarity` with the default 1e-8,
      when float16 tensors exist (`.half()`, `torch.float16`: CUDA autocast
      runs both in float32);
    * `torch.optim.Adam`/`AdamW`/`NAdam`/`RMSprop`/`Adamax`/`Adagrad` with the
      default eps (1e-8; 1e-10 for Adagrad) or one that rounds to 0, over
      float16 *parameters* (`model.half()`), unless `fused=True`. AMP with a
      `GradScaler` keeps float32 master weights and is not flagged.

    Fires only with evidence that the file runs in float16 (`.half()`,
    `torch.float16`, CUDA `autocast()`, `GradScaler`, `fp16=True`, or
    `precision` in the config); the message names it. Silent when the guarded
    value is visibly computed in float32 (`x.float()`, `.to(torch.float32)`),
    as most production RMSNorms do.

    ## Why is this bad?
    float16's smallest subnormal is 6e-8: `1e-8` becomes 0, so `var + 1e-8` is
    no guard at all and a constant input gives NaN (docs/probe.md rows 45, 46;
    §5.2: `x.norm().clamp_min(1e-12)` is 0). A surviving eps of 1e-6 still
    makes a gradient of 1e6, which is Inf in float16 (row 1: `x / (norm + 1e-6)`;
    docs/numerics-extra.md "fp16 eps" for log, clamp and rsqrt thresholds).
    PyTorch's own defaults fail the same way: `F.normalize` and
    `F.cosine_similarity` of a zero vector are NaN in float16 (rows 1, 34), and
    Adam over float16 parameters turns a zero gradient into a NaN weight after
    one step (§5.2 table; "f16 optimizers" for the others). bfloat16 has
    float32's exponent range and is not affected.

    ## Example
    ```python
    model = Model().half()
    ...
    normed = (x - mean) / torch.sqrt(var + 1e-8)
    ```

    ## Use instead
    ```python
    model = Model().half()
    ...
    normed = (x - mean) / torch.sqrt(var + 1e-5)
    ```
    or compute the statistics in float32 (`x.float()`), use
    `torch.finfo(x.dtype).eps`/`.tiny`-based bounds, pass `eps=1e-4` to
    `F.normalize`/`F.cosine_similarity`, and `eps=1e-6` (or `fused=True`) to
    Adam with float16 parameters.

    ## Fix safety
    For an eps literal written at the guard of a `sqrt`, `rsqrt`, `log` or a
    division, the fix writes the smallest literal float16 can use there: 2e-5
    where the gradient at 0 is 1/eps (>= 1.53e-5), 7e-4 for `rsqrt(v + eps)`
    (>= 6.1e-4), 1e-7 where eps only has to survive rounding. It is unsafe: a
    larger eps changes values near 0. A named eps (a module constant, a default
    argument, `self.eps`), the defaults of `F.normalize` / `F.cosine_similarity`
    and optimizer eps get no fix (the reason is shown by `--show-fixes`).
    """

    code = "NAN501"
    name = "eps-underflows-fp16"
    summary = "eps too small for float16 (rounds to 0, or its 1/eps gradient overflows)"
    rows = "1, 34, 45, 46, §5.2"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    # a float literal below 1e-3 (a digit or "." before the exponent: not ``CWE-22``, ``size-5``), or the whole
    # name of a call the rule reads (``F.normalize``, not ``normalized=`` or ``_normalize_messages``; ``AdamW``,
    # not ``AnyPrecisionAdamW``)
    screen = Screen(r"e(?<=[\d.]e)-0*(?:[4-9]|[1-9]\d)\b|E(?<=[\d.]E)-0*(?:[4-9]|[1-9]\d)\b|0\.000\d"
                    r"|normalize(?<!\wnormalize)\b|cosine_similarity(?<!\wcosine_similarity)\b"
                    r"|CosineSimilarity(?<!\wCosineSimilarity)\b|Adam(?<!\wAdam)(?:W|ax)?\b|NAdam(?<!\wNAdam)\b"
                    r"|RMSprop(?<!\wRMSprop)\b|Adagrad(?<!\wAdagrad)\b")
    _EVIDENT = "half = torch.float16"
    file_condition = staticmethod(may_have_fp16_evidence)  # every finding needs float16 evidence
    witnesses = (
        Witness(
            setup="x = leaf(torch.ones(2, 8, dtype=dtype)); " + _EVIDENT,
            hazard="mu = x.mean(-1, keepdim=True); var = ((x - mu) ** 2).mean(-1, keepdim=True); "
                   "y = (x - mu) / torch.sqrt(var + 1e-8)",
            fixed="mu = x.mean(-1, keepdim=True); var = ((x - mu) ** 2).mean(-1, keepdim=True); "
                  "y = (x - mu) / torch.sqrt(var + 1e-7)",  # the fix: the smallest literal float16 can use
            hazard_dtypes=("float16",),
        ),
        Witness(
            setup="p = leaf(torch.zeros(4, dtype=dtype)); " + _EVIDENT,
            hazard="y = torch.log(p + 1e-6)",
            fixed="y = torch.log(p + 2e-5)",  # the fix
            hazard_dtypes=("float16",),
        ),
        Witness(
            setup="x = leaf(torch.zeros(2, 8, dtype=dtype)); " + _EVIDENT,
            hazard="y = x / (x.norm(dim=-1, keepdim=True) + 1e-6)",
            fixed="y = x / (x.norm(dim=-1, keepdim=True) + 2e-5)",  # the fix
            hazard_dtypes=("float16",),
        ),
        Witness(  # the fix of an rsqrt guard: 7e-4 (eps^-1.5 below 65504)
            setup="x = leaf(torch.zeros(2, 8, dtype=dtype)); " + _EVIDENT,
            hazard="var = x.pow(2).mean(-1, keepdim=True); y = x * torch.rsqrt(var + 1e-5)",
            fixed="var = x.pow(2).mean(-1, keepdim=True); y = x * torch.rsqrt(var + 7e-4)",
            hazard_dtypes=("float16",),
        ),
        Witness(  # the fix of a clamp that rounds to 0: 2e-5
            setup="x = leaf(torch.zeros(2, 8, dtype=dtype)); " + _EVIDENT,
            hazard="y = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)",
            fixed="y = x / x.norm(dim=-1, keepdim=True).clamp_min(2e-5)",
            hazard_dtypes=("float16",),
        ),
        Witness(
            setup="x = leaf(torch.zeros(2, 8, dtype=dtype)); " + _EVIDENT,
            hazard="var = x.pow(2).mean(-1, keepdim=True); y = x * torch.rsqrt(var + 1e-5)",
            fixed="xf = x.float(); var = xf.pow(2).mean(-1, keepdim=True); "
                  "y = (xf * torch.rsqrt(var + 1e-5)).to(x.dtype)",
            hazard_dtypes=("float16",),
        ),
        Witness(
            setup="x = leaf(torch.zeros(2, 8, dtype=dtype)); " + _EVIDENT,
            hazard="y = F.normalize(x, dim=-1)",
            fixed="y = F.normalize(x, dim=-1, eps=1e-4)",
            hazard_dtypes=("float16",),
        ),
        Witness(
            setup="w = torch.nn.Parameter(torch.ones(4).half()); w.grad = torch.zeros_like(w)",
            hazard="opt = torch.optim.Adam([w], lr=1e-3); opt.step(); y = w.detach()",
            fixed="opt = torch.optim.Adam([w], lr=1e-3, eps=1e-6); opt.step(); y = w.detach()",
            hazard_dtypes=("float16",),
            fixed_dtypes=("float16",),
        ),
    )

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._cache: dict[str, Optional[Evidence]] = {}

    def _evidence(self, kind: str) -> Optional[Evidence]:
        if kind not in self._cache:
            finder = {"any": fp16_evidence, "tensor": fp16_tensor_evidence, "params": fp16_param_evidence}[kind]
            self._cache[kind] = finder(self.ctx) if (kind == "any" or self._evidence("any") is not None) else None
        return self._cache[kind]

    # -- guards of singular ops ---------------------------------------------
    def _check_singular(self, node: cst.CSTNode) -> None:
        if self._evidence("any") is None or float16_excluded(self.ctx):
            return
        op = singular(node, self.ctx)
        if op is None:
            return
        at = self.ctx.at()
        found = guard(op.operand, self.ctx, at)
        if found is None or found.eps is None or found.form not in ("add", "clamp"):
            return
        value = self.facts.literal(found.eps, at)
        if value is None or not 0 < value < _EPS_LIKE:
            return
        evidence = self._evidence("any")
        assert evidence is not None
        problem = self._problem(op, found, value, evidence)
        if problem is None:
            return
        name = spelled(code(self.ctx, found.eps), value)
        self.report(
            found.node,
            f"eps {name} in `{code(self.ctx, found.node)}` {problem} "
            f"({_EVIDENCE.format(evidence.describe())}); use a larger eps or compute this in float32",
            target=found.eps,
            **_literal_fix(found.eps, _FIX_KINDS.get(op.growth, "divide") if op.kind != "division" else "divide",
                           value).extra(),
        )

    def _problem(self, op: Singular, found: Guard, value: float, evidence: Evidence) -> Optional[str]:
        """What goes wrong with this eps in float16, or None.

        The eps is added (or clamped) in the dtype of the guarded value; a division's 1/eps gradient lands
        on the numerator. Either is float32 when visibly upcast (``x.float()``) or, when the only evidence
        is CUDA autocast, when an op autocast runs in float32 produced it (``softmax``, ``sum``, ``pow``).
        """
        autocast_only = evidence.kind == "autocast"
        guarded = found.guarded
        guarded_f32 = guarded is not None and (
            upcast(guarded, self.ctx) or (autocast_only and autocast_float32(guarded, self.ctx)))
        numerator = op.numerator
        numerator_f32 = numerator is not None and (
            upcast(numerator, self.ctx) or (autocast_only and autocast_float32(numerator, self.ctx)))
        if underflows(value, "float16") and not guarded_f32:
            return "rounds to 0 in float16, so it guards nothing"
        if 1 / value > FP16_MAX:
            if op.kind == "division" and not numerator_f32 and not (
                    numerator is not None and no_grad_value(numerator, self.ctx, self.ctx.at())
                    and self.facts.literal(numerator, self.ctx.at()) is None):
                constant = self.facts.literal(numerator, self.ctx.at()) if numerator is not None else None
                if constant is not None:
                    if abs(constant) / value > FP16_MAX:
                        return (f"makes the quotient {fmt(abs(constant) / value)} where the divisor is 0, beyond "
                                "float16's 65504 (Inf)")
                    return None
                return (f"makes the gradient of the numerator 1/eps = {fmt(1 / value)} where the divisor is 0, "
                        "beyond float16's 65504 (Inf gradient); eps must be >= 1.53e-5")
            if op.growth == "inverse" and op.kind != "division" and found.form == "add" and not guarded_f32:
                return (f"survives in float16, but the gradient at 0 is 1/eps = {fmt(1 / value)}, beyond "
                        "float16's 65504 (Inf gradient); eps must be >= 1.53e-5")
        if op.growth == "rsqrt" and found.form == "add" and value ** -1.5 > FP16_MAX and not guarded_f32:
            return (f"survives in float16, but rsqrt's derivative at 0 is ~eps^-1.5 = {fmt(value ** -1.5)}, beyond "
                    "float16's 65504 (NaN gradient for a zero input); eps must be >= 6.1e-4")
        return None

    visit_BinaryOperation = _check_singular
    visit_AugAssign = _check_singular

    def visit_Call(self, node: cst.Call) -> None:
        if self._evidence("any") is None:
            return
        self._check_singular(node)
        tc = self.ctx.match(node)
        if tc is None:
            return
        at = self.ctx.at()
        if tc.key in ("F.normalize", "F.cosine_similarity", "cosine_similarity", "nn.CosineSimilarity"):
            self._check_default_eps(node, tc, at)
        elif tc.key.startswith("optim.") and tc.key.split(".")[-1] in _OPTIMIZERS:
            self._check_optimizer(node, tc, at)

    def _check_default_eps(self, node: cst.Call, tc, at) -> None:
        evidence = self._evidence("tensor")
        if evidence is None or float16_excluded(self.ctx):
            return
        if tc.key == "F.normalize":
            eps, default, index = tc.argument("eps", 2), 1e-12, "F.normalize"
        elif tc.key == "nn.CosineSimilarity":
            eps, default, index = tc.argument("eps", 0), 1e-8, "nn.CosineSimilarity"
        else:
            eps, default, index = tc.argument("eps", 2), 1e-8, "F.cosine_similarity"
        value = default if eps is None else self.facts.literal(eps, at)
        if value is None:
            return
        if tc.operand is not None and tc.key != "nn.CosineSimilarity" and (
                upcast(tc.operand, self.ctx) or default_float32(tc.operand, self.ctx)):
            return
        which = f"its default eps ({fmt(default)})" if eps is None else f"eps `{code(self.ctx, eps)}`"
        if underflows(value, "float16"):
            problem = "rounds to 0 in float16: a zero vector gives NaN (forward and gradient)"
        elif tc.key == "F.normalize" and 1 / value > FP16_MAX:
            problem = f"makes a gradient of 1/eps = {fmt(1 / value)} at a zero vector, Inf in float16"
        else:
            return
        self.report(
            node,
            f"`{index}` with {which}: it {problem} ({_EVIDENCE.format(evidence.describe())}); "
            "pass `eps=1e-4` or call it on `x.float()`",
            target=eps if eps is not None else node,
        )

    def _check_optimizer(self, node: cst.Call, tc, at) -> None:
        evidence = self._evidence("params")
        if evidence is None:
            return
        fused = tc.keyword("fused")
        if fused is not None and isinstance(fused, cst.Name) and fused.value == "True":
            return
        name = tc.key.split(".")[-1]
        eps = tc.keyword("eps")
        value = _OPTIMIZERS[name] if eps is None else self.facts.literal(eps, at)
        if value is None or not underflows(value, "float16"):
            return
        which = f"the default eps ({fmt(value)})" if eps is None else f"eps `{code(self.ctx, eps)}`"
        self.report(
            node,
            f"`{name}` with {which} over float16 parameters ({evidence.describe()}): eps rounds to 0, so a "
            "zero gradient makes a NaN weight and a tiny one -Inf after one step; pass `eps=1e-6`, use "
            "`fused=True`, or keep float32 master weights (autocast + GradScaler)",
            target=eps if eps is not None else node,
        )
