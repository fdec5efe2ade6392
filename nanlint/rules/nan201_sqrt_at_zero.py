import re
from typing import Optional

import libcst as cst

from ..context import FileContext
from ..facts import ZeroSource
from ..fixspec import SAFE, UNSAFE, FixSpec, Replace, is_atom, torch_reference
from ..names import TorchCall, last_name
from ..analysis.triggers import EXPECTED, PLAUSIBLE, Trigger
from ..patterns import Root, code, division, root
from ._guards import Built, clamp_inside_root, relu_for_clamp, tensor_evidence
from ._screens import ROOT, Screen
from .base import Rule, SOMETIMES, Witness


# measured (docs/probe.md row 62): 64 values of spread 1e-3 around 10, 100 or 1000 in float32 round the one-pass
# variance below -1e-5 in 20-32 % of draws
CANCELLATION = Trigger("a near-constant input whose mean is large next to its spread (a mean of 10 or more with a "
                       "spread of 1e-3 in float32)", PLAUSIBLE)


class SqrtAtZero(Rule):
    """
    ## What it does
    Flags a square root of something that is exactly 0 for ordinary inputs and
    has no eps: a variance (`torch.sqrt(var)`, `x.var(dim=0).sqrt()`,
    `((x - mu) ** 2).mean() ** 0.5`), a mean or sum of squares (a hand-written
    norm or RMS), an MSE (`torch.sqrt(F.mse_loss(pred, target))`, the RMSE loss),
    a squared difference (`torch.sqrt((p - t) ** 2)`, a hand-written abs), a hand
    or weighted variance (`(x * x * w).sum() - mu * mu`, `E[x**2] - E[x]**2`), the
    angular-margin sine `torch.sqrt(1 - cos ** 2)` of a cosine, any root with an eps
    added *outside* it (`torch.sqrt(d) + 1e-8`: the eps shows `d == 0` was expected),
    and `torch.hypot`. Also `torch.sqrt(E[x**2] - E[x]**2 + eps)`: the one-pass
    variance cancels and, for a near-constant input with a large mean, rounds
    below -eps, so the eps does not help (NaN forward; row 62); the same under
    `torch.rsqrt(var + eps)` (the reciprocal root's own zero is NAN202's). Written as `torch.sqrt(v)`, `v.sqrt()`, `v ** 0.5` or
    `v.pow(0.5)`, directly or through local variables. The message names the
    trigger (a perfect prediction, a constant row, parallel vectors) and the
    finding's confidence follows it (docs/analysis.md). Silent where no gradient
    is taken (docs/analysis.md, "Gradient flow"): under `torch.no_grad()` /
    `inference_mode()`, in functions only called there, on tensors built only
    from factories such as `torch.arange`, on Python numbers and on a result
    detached at once.

    ## Why is this bad?
    The forward value is fine, but d/dv sqrt(v) = 1 / (2 sqrt(v)) is infinite at
    v = 0, and the chain rule multiplies it by the 0 gradient of the squares:
    inf * 0 = NaN in every dtype (docs/probe.md rows 3, 4, 9, 10, 12). An RMSE loss
    therefore turns NaN exactly when the model fits a batch perfectly.

    The mean absolute error is *not* a hazard: `F.l1_loss` and `(p - t).abs()`
    have a zero subgradient at 0 in PyTorch (row 8), so nanlint never flags them
    (the seed's claim that the MAE derivative is NaN at p == t is wrong). Also
    safe and not flagged: `x.norm()` and `x.std()` (guarded, rows 2 and 6),
    `torch.sqrt(F.relu(x))` (row 32), `torch.sqrt(x ** 2 + 1)`.

    ## Example
    ```python
    loss = torch.sqrt(F.mse_loss(pred, target))
    std = torch.sqrt(x.var(dim=0, unbiased=False))
    dist = torch.sqrt((p - t) ** 2)
    ```

    ## Use instead
    ```python
    loss = torch.linalg.vector_norm(pred - target) / (pred - target).numel() ** 0.5
    std = x.std(dim=0, unbiased=False)
    dist = (p - t).abs()
    rms = torch.sqrt(sq.mean().clamp_min(torch.finfo(sq.dtype).tiny))   # anything else
    ```
    The first three are exact rewrites with no eps: the norm, `std` and `abs`
    all have a zero gradient at 0 in PyTorch (rows 2, 4, 8, 10). A literal eps
    must survive the dtype: `+ 1e-8` is not enough in float16 code, it rounds to 0
    (rows 10, 45).

    ## Fix
    - `torch.sqrt((p - t) ** 2)` (also `.pow(2)`, `torch.square`, `d * d`) -> `(p - t).abs()`;
      `torch.sqrt(x.var(...))` -> `x.std(...)`. Same values; safe fixes.
    - RMSE `torch.sqrt(F.mse_loss(p, t))` with plain `p`, `t` ->
      `torch.linalg.vector_norm(p - t) / (p - t).numel() ** 0.5` (`reduction="sum"`: no
      division). Mathematically the same value, but computed differently (and
      in `vector_norm`'s dtype under autocast): unsafe fix.
    - Anything else: the root's argument is clamped,
      `torch.sqrt(v.clamp_min(torch.finfo(<tensor>.dtype).tiny))`; `tiny` (the smallest
      normal number) keeps the value off exact 0 and moves it by at most
      sqrt(tiny): 1.1e-19 in float32/bfloat16, 7.8e-3 in float16. When the root
      is a divisor (`x / torch.sqrt(v)`, also through a variable) the clamp uses
      `.eps` instead, the same fix as NAN101/NAN102, so that the quotient's
      gradient stays bounded (eps ** -0.5: 2896, 11, 32). Finite forward and
      gradient at v = 0 in float32, bfloat16 and float16 (docs/numerics-extra.md);
      unsafe fix.
    - `torch.hypot(a, b)` -> `torch.linalg.vector_norm(torch.stack(torch.broadcast_tensors(a, b)), dim=0)`;
      unsafe fix (a different algorithm: `hypot` avoids overflow of the squares).

    No fix (the finding says why) for `v ** 0.5` when nothing shows that `v` is a
    tensor (`(w * w + h * h) ** 0.5` on Python numbers has no `.clamp_min`), or
    when no tensor names the dtype (set `fix-eps` to use a literal).

    ## Fix safety
    The `abs` and `std` rewrites are safe; the rest change numerics and are unsafe.
    The eps is read from a floating tensor (`torch.finfo(x.dtype)`): the
    guarded value itself, a tensor the value analysis knows is floating, or one
    that flows into a guarded float tensor; for an operand of unknown kind (an
    int tensor or a list would make `torch.finfo` raise) there is no fix, and
    `--show-fixes` says why (`fix-eps` sets a literal instead).
    """

    code = "NAN201"
    name = "sqrt-at-zero"
    summary = "square root of a value that can be exactly zero (infinite gradient)"
    rows = "3, 4, 9, 10, 12, 58, 62"
    fix_availability = SOMETIMES
    fix_applicability = (SAFE, UNSAFE)
    screen = Screen(r"""
          hypot(?<!\whypot)(?!\w)  # torch.hypot
        | rsqrt  # a one-pass variance's cancellation under rsqrt(var + eps)
        | """ + ROOT, re.VERBOSE)
    root_operand = "square or beside"  # an eps outside the root (``_check_eps_outside``) and ``hypot``
    witnesses = (
        Witness(
            setup="p = leaf(torch.ones(4, dtype=dtype)); t = torch.ones(4, dtype=dtype)",
            hazard="y = torch.sqrt(F.mse_loss(p, t))",
            fixed="y = torch.sqrt(F.mse_loss(p, t) + 1e-6)",
        ),
        Witness(
            setup="x = leaf(torch.full((8,), 2.0, dtype=dtype))",
            hazard="y = torch.sqrt(x.var(unbiased=False))",
            fixed="y = x.std(unbiased=False)",
        ),
        Witness(
            setup="p = leaf(torch.ones(4, dtype=dtype)); t = torch.ones(4, dtype=dtype)",
            hazard="y = torch.sqrt((p - t) ** 2)",
            fixed="y = (p - t).abs()",
        ),
        Witness(
            setup="a = leaf(torch.zeros(3, dtype=dtype)); b = leaf(torch.zeros(3, dtype=dtype))",
            hazard="y = torch.hypot(a, b)",
            fixed="y = torch.linalg.vector_norm(torch.stack([a, b]), dim=0)",
        ),
        Witness(  # the texts the fixes write
            setup="p = leaf(torch.ones(4, dtype=dtype)); t = torch.ones(4, dtype=dtype)",
            hazard="y = torch.sqrt(F.mse_loss(p, t))",
            fixed="y = torch.linalg.vector_norm(p - t) / (p - t).numel() ** 0.5",
        ),
        Witness(  # a hand variance E[x^2] - E[x]^2 of a constant row: 0, or negative by rounding
            setup="x = leaf(torch.full((8,), 0.1, dtype=dtype)); w = torch.full((8,), 0.125, dtype=dtype)",
            hazard="mu = (x * w).sum(); y = torch.sqrt((x * x * w).sum() - mu * mu)",
            fixed="mu = (x * w).sum(); y = torch.sqrt(((x * x * w).sum() - mu * mu).clamp_min(1e-4))",
        ),
        Witness(  # the angular-margin sine at parallel vectors
            setup="cos = leaf(torch.ones(4, dtype=dtype))",
            hazard="y = torch.sqrt(1 - cos ** 2)",
            fixed="y = torch.sqrt((1 - cos ** 2).clamp_min(1e-4))",
        ),
        Witness(  # E[x^2] - E[x]^2 + eps: cancellation at a large mean rounds below -eps (row 62)
            setup="x = leaf(torch.tensor([1000.003, 1000.004], dtype=dtype))",
            hazard="var = (x * x).mean() - x.mean() ** 2; y = torch.sqrt(var + 1e-5)",
            fixed="var = ((x - x.mean()) ** 2).mean(); y = torch.sqrt(var + 1e-5)",
            hazard_dtypes=("float32", "float16"),
        ),
        Witness(  # the same cancellation under a reciprocal root (a hand-written norm layer's rsqrt)
            setup="x = leaf(torch.tensor([1000.003, 1000.004], dtype=dtype))",
            hazard="var = (x * x).mean() - x.mean() ** 2; y = torch.rsqrt(var + 1e-5)",
            fixed="var = ((x - x.mean()) ** 2).mean(); y = torch.rsqrt(var + 1e-5)",
            hazard_dtypes=("float32", "float16"),
            # in float16 the two-pass variance is 0 and rsqrt's gradient at 1e-5 (~1.6e7) overflows: NAN501's eps
            fixed_dtypes=("float32", "bfloat16"),
        ),
        Witness(  # an eps outside the root guards the value, not the gradient
            setup="d = leaf(torch.zeros(4, dtype=dtype))",
            hazard="y = torch.sqrt(d) + 1e-8",
            fixed="y = torch.sqrt(d + 1e-4)",
        ),
        Witness(  # an expanded squared distance of a batch to itself: its diagonal is 0 (docs/probe.md row 58)
            setup="x = leaf(torch.ones(4, 8, dtype=dtype))",
            hazard="sq = (x ** 2).sum(1); d = sq[:, None] + sq[None, :] - 2 * x @ x.t(); y = torch.sqrt(d)",
            fixed="sq = (x ** 2).sum(1); d = sq[:, None] + sq[None, :] - 2 * x @ x.t(); y = torch.sqrt(d.clamp_min(1e-4))",
        ),
        Witness(  # clamped at 0 the diagonal is still exactly 0; relu's backward masks it (rows 32, 58)
            setup="x = leaf(torch.ones(4, 8, dtype=dtype))",
            hazard="sq = (x ** 2).sum(1); d = sq[:, None] + sq[None, :] - 2 * x @ x.t(); y = d.clamp(min=0).sqrt()",
            fixed="sq = (x ** 2).sum(1); d = sq[:, None] + sq[None, :] - 2 * x @ x.t(); y = d.relu().sqrt()",
        ),
        Witness(
            setup="x = leaf(torch.full((8,), 2.0, dtype=dtype))",
            hazard="sq = (x - x.mean()) ** 2; y = torch.sqrt(sq.mean())",
            fixed="sq = (x - x.mean()) ** 2; y = torch.sqrt(sq.mean().clamp_min(torch.finfo(sq.dtype).tiny))",
        ),
    )

    def __init__(self, ctx: FileContext) -> None:
        super().__init__(ctx)
        # roots seen as divisors before they were visited / reported roots, by id: their fix clamps with .eps
        self._divisor_roots: set[int] = set()
        self._reported: dict[int, tuple[dict[str, object], Root]] = {}

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        self._note_division(node)
        self._check(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._note_division(node)

    def visit_Call(self, node: cst.Call) -> None:
        self._note_division(node)
        tc = self.ctx.match(node)
        if tc is not None and tc.key == "hypot":
            other = tc.positional(0)
            if tc.operand is None or other is None:
                return
            judged = self.judge(tc.operand, gradient_only=True, values=(tc.operand, other))
            if judged is None:
                return
            self.report(node, f"`torch.hypot` has a NaN gradient when both inputs are 0, {judged.reached_by}; use "
                              "`torch.linalg.vector_norm(torch.stack([a, b]), dim=0)`",
                        **judged.extra(), **self._hypot_fix(tc).extra())
            return
        self._check(node)

    def _check(self, node: cst.CSTNode) -> None:
        found = root(node, self.ctx)
        if found is None:
            return
        if found.reciprocal:  # ``rsqrt(var + eps)``: the root's zero is NAN202's; its cancellation is here
            shifted = self.facts.zero_source(found.operand, self.ctx.at())
            if shifted is not None and shifted.kind == "cancelling variance plus an eps":
                self._check_cancellation(node, found)
            return
        source = self.facts.sqrt_hazard(found.operand, self.ctx.at())
        if source is None:
            shifted = self.facts.zero_source(found.operand, self.ctx.at())
            if shifted is not None and shifted.kind == "cancelling variance plus an eps":
                self._check_cancellation(node, found)
                return
            self._check_eps_outside(node, found)
            return
        # a difference that rounds below 0 makes the root NaN forward too: not a gradient-only hazard
        judged = self.judge(found.operand, gradient_only=not source.negative)
        if judged is None:
            return  # a gradient-only hazard where no gradient flows (or not a tensor)
        advice = "use `(p - t).abs()`" if source.kind == "squared difference" else "add an eps inside the root"
        if source.kind == "expanded squared distance":
            advice = "use `torch.cdist`, or clamp inside the root: `.clamp_min(eps).sqrt()`"
        negative = " (rounding also makes it slightly negative: NaN in the forward pass)" if source.negative else ""
        relu = self._relu_fix(found.operand)
        if relu is not None and id(node) not in self._divisor_roots:
            # ``d.clamp(min=0).sqrt()``: relu has the same values and a zero gradient at 0 (docs/probe.md row 32)
            built = Built(relu)
            advice = "use `relu` instead of the clamp at 0 (same values, zero gradient at 0)"
        elif id(node) in self._divisor_roots:
            built = clamp_inside_root(self.ctx, found, "divide-sqrt", source.kind)
        else:
            built = self._exact_fix(found, source) or clamp_inside_root(self.ctx, found, "sqrt", source.kind)
        self.report(
            node,
            f"square root of `{code(self.ctx, found.operand)}`, {source.described} that is exactly 0 "
            f"{judged.reached_by}{negative}: the gradient there is inf * 0 = NaN; {advice}",
            target=found.operand,
            **judged.extra(),
            **built.extra(),
        )
        self._reported[id(node)] = (self.ctx.findings[-1].extra, found)

    def _check_cancellation(self, node: cst.CSTNode, found: Root) -> None:
        """``torch.sqrt(E[x**2] - E[x]**2 + eps)``: the eps keeps an exact 0 off the root, but the one-pass
        variance cancels, and for a near-constant input whose mean is large next to its spread it rounds
        below -eps: NaN in the forward pass (docs/probe.md row 62)."""
        judged = self.judge(found.operand, trigger=CANCELLATION)
        if judged is None:
            return
        self.report(
            node,
            f"{'reciprocal ' if found.reciprocal else ''}square root of `{code(self.ctx, found.operand)}`, a variance "
            "computed as E[x**2] - E[x]**2 plus an "
            f"eps: it cancels, and rounds below -eps {judged.reached_by} (NaN in the forward pass); compute the "
            "variance in two passes, `((x - mean) ** 2).mean()`, or use `x.var(correction=0)`",
            target=found.operand, **judged.extra(),
        )

    def _check_eps_outside(self, node: cst.CSTNode, found: Root) -> None:
        """``torch.sqrt(d) + eps``: the eps shows the author expected ``d == 0``, but outside the root it
        guards only the value; the root's gradient at 0 is still infinite."""
        parent = self.ctx.parent()
        if not (isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Add)):
            return
        other = parent.right if parent.left is node else parent.left
        value = self.facts.literal(other, self.ctx.at())
        named_eps = isinstance(other, (cst.Name, cst.Attribute)) and "eps" in code(self.ctx, other).lower()
        if not (value is not None and 0 < value < 1e-2 or named_eps) or self.facts.is_constant(found.operand,
                                                                                                  self.ctx.at()):
            return
        judged = self.judge(found.operand, gradient_only=True)
        if judged is None:
            return
        level = "high" if judged.confidence != "low" else "low"
        self.report(
            node,
            f"square root of `{code(self.ctx, found.operand)}` with `{code(self.ctx, other)}` added outside it: the "
            "eps keeps the value off 0 but not the gradient, which is infinite where the operand is 0 (inf * 0 = "
            "NaN); move the eps inside the root: `torch.sqrt(d + eps)`",
            target=found.operand, confidence=level, trigger=EXPECTED.text,
        )

    def _note_division(self, node: cst.CSTNode) -> None:
        """A root used as a divisor gets the divisor's clamp (the one NAN101/NAN102 write)."""
        found = division(node, self.ctx)
        if found is None or not self._may_hold_root(found.divisor):
            return
        source = self.facts.zero_source(found.divisor, self.ctx.at())
        if source is None or source.kind not in ("hand-written norm", "square root of a variance"):
            return
        reported = self._reported.get(id(source.node))
        if reported is None:
            self._divisor_roots.add(id(source.node))
            return
        extra, earlier = reported
        what = self.facts.sqrt_hazard(earlier.operand, self.ctx.at())
        built = clamp_inside_root(self.ctx, earlier, "divide-sqrt", what.kind if what else "value")
        extra.pop("fix", None)
        extra.pop("no_fix_reason", None)
        extra.update(built.extra())

    def _may_hold_root(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """A cheap structural filter before the full ``zero_source`` of a divisor: can a square root be in it?"""
        if depth > 6:
            return False
        if isinstance(expr, cst.Call):
            func = expr.func
            if last_name(expr) in ("sqrt", "sqrt_", "pow", "pow_", "float_power"):
                return True
            return isinstance(func, cst.Attribute) and self._may_hold_root(func.value, depth + 1)
        if isinstance(expr, cst.BinaryOperation):
            return isinstance(expr.operator, cst.Power) or self._may_hold_root(expr.left, depth + 1) \
                or self._may_hold_root(expr.right, depth + 1)
        if isinstance(expr, cst.Subscript):
            return self._may_hold_root(expr.value, depth + 1)
        if isinstance(expr, (cst.Name, cst.Attribute)):
            binding = self.facts.binding(expr, self.ctx.at())
            return binding is not None and binding.value is not None and \
                self._may_hold_root(binding.value, depth + 1)
        return False

    # -- exact rewrites ---------------------------------------------------------------
    def _relu_fix(self, operand: cst.BaseExpression) -> Optional[FixSpec]:
        """The operand is ``x.clamp(min=0)`` itself (not through a name: the fix rewrites that call)."""
        tc = self.ctx.match(operand) if isinstance(operand, cst.Call) else None
        if tc is None or tc.key not in ("clamp", "clip", "clamp_min") or tc.operand is None:
            return None
        if self.facts.literal(tc.argument("min", 0), self.ctx.at()) != 0:
            return None
        return relu_for_clamp(self.ctx, tc)

    def _exact_fix(self, found: Root, source: ZeroSource) -> Optional[Built]:
        operand = found.operand
        module = self.ctx.module
        assert module is not None
        if source.node is not operand or "#" in module.code_for_node(found.node):
            return None  # through a variable, or comments would be lost: clamp instead
        if found.form.startswith("**") and not tensor_evidence(operand, self.ctx, self.ctx.at()):
            return None  # maybe Python numbers, which have no `.abs()` / `.std()`: see clamp_inside_root
        if source.kind == "squared difference":
            difference = _squared_difference(operand, self.ctx)
            if difference is not None:
                text = module.code_for_node(difference).strip()
                if not is_atom(difference):
                    text = f"({text})"
                return Built(FixSpec(SAFE, f"Replace the root of a square by `{text}.abs()` (zero gradient at 0)",
                                     (Replace(found.node, f"{text}.abs()"),)))
        if source.kind == "variance" and isinstance(operand, cst.Call) and isinstance(operand.func, cst.Attribute):
            tc = self.ctx.match(operand)
            if tc is not None and tc.key == "var":
                std = operand.with_changes(func=operand.func.with_changes(attr=cst.Name("std")))
                return Built(FixSpec(SAFE, "Replace the root of a variance by `std` (zero gradient at 0)",
                                     (Replace(found.node, std),)))
        if source.kind == "MSE" and isinstance(operand, cst.Call):
            return self._rmse_fix(found, operand)
        return None

    def _rmse_fix(self, found: Root, call: cst.Call) -> Optional[Built]:
        tc = self.ctx.match(call)
        if tc is None or tc.key != "F.mse_loss" or tc.is_method or tc.operand is None:
            return None
        target = tc.argument("target", 0)
        reduction = tc.keyword("reduction")
        extra = [a for a in tc.args if a.value is not target and a.value is not reduction]
        if target is None or extra or len([a for a in tc.args if a.keyword is None]) > 1:
            return None
        mode = "mean"
        if reduction is not None:
            if not isinstance(reduction, cst.SimpleString) or reduction.evaluated_value not in ("mean", "sum"):
                return None
            mode = str(reduction.evaluated_value)
        if not (_plain(tc.operand) and _plain(target)):
            return None
        assert self.ctx.module is not None
        norm, changes = torch_reference(self.ctx.module, "linalg.vector_norm")
        if norm is None:
            return None
        p = self.ctx.module.code_for_node(tc.operand).strip()
        t = self.ctx.module.code_for_node(target).strip()
        if not (is_atom(tc.operand) or isinstance(tc.operand, (cst.UnaryOperation, cst.BinaryOperation))):
            p = f"({p})"
        t = t if is_atom(target) else f"({t})"
        diff = f"{p} - {t}"
        text = f"{norm}({diff})" if mode == "sum" else f"{norm}({diff}) / ({diff}).numel() ** 0.5"
        if mode == "mean" and not _standalone(self.ctx):
            text = f"({text})"
        return Built(FixSpec(
            UNSAFE,
            f"Compute the RMSE as a norm: `{text}` (same value, zero gradient at 0; no eps)",
            (Replace(found.node, text),) + changes,
        ))

    def _hypot_fix(self, tc: TorchCall) -> Built:
        assert self.ctx.module is not None
        other = tc.argument("other", 0)
        if tc.operand is None or other is None or len(tc.args) != 1 or tc.keyword("out") is not None:
            return Built(reason="only `torch.hypot(a, b)` with two arguments is rewritten")
        if "#" in self.ctx.module.code_for_node(tc.node):
            return Built(reason="the call holds a comment the rewrite would drop")
        norm, changes = torch_reference(self.ctx.module, "linalg.vector_norm")
        stack, more = torch_reference(self.ctx.module, "stack")
        broadcast, more2 = torch_reference(self.ctx.module, "broadcast_tensors")
        if norm is None or stack is None or broadcast is None:
            return Built(reason="no place to add `import torch`")
        a = self.ctx.module.code_for_node(tc.operand).strip()
        b = self.ctx.module.code_for_node(other).strip()
        text = f"{norm}({stack}({broadcast}({a}, {b})), dim=0)"
        return Built(FixSpec(UNSAFE, f"Replace `hypot` by a norm over the stacked inputs: `{text}`",
                             (Replace(tc.node, text),) + changes + more + more2))


def _squared_difference(expr: cst.BaseExpression, ctx: FileContext) -> Optional[cst.BaseExpression]:
    """``d`` of an inline ``d ** 2`` / ``d.pow(2)`` / ``torch.square(d)`` / ``d * d`` where ``d`` is ``a - b``."""
    base: Optional[cst.BaseExpression] = None
    if isinstance(expr, cst.BinaryOperation):
        if isinstance(expr.operator, cst.Power) and ctx.facts.literal(expr.right, ctx.at()) == 2:
            base = expr.left
        elif isinstance(expr.operator, cst.Multiply) and expr.left.deep_equals(expr.right):
            base = expr.left
    elif isinstance(expr, cst.Call):
        tc = ctx.match(expr)
        if tc is not None and tc.key in ("square",):
            base = tc.operand
        elif tc is not None and tc.key in ("pow", "float_power") and \
                ctx.facts.literal(tc.argument("exponent", 0), ctx.at()) == 2:
            base = tc.operand
    if base is None:
        return None
    if isinstance(base, cst.BinaryOperation) and isinstance(base.operator, cst.Subtract):
        return base
    if isinstance(base, cst.Call) and isinstance(base.func, cst.Attribute) and base.func.attr.value in (
            "sub", "subtract"):
        return base
    return None


_UNPLAIN = (cst.Call, cst.NamedExpr, cst.Await, cst.Yield, cst.Lambda, cst.ListComp, cst.GeneratorExp,
            cst.SetComp, cst.DictComp)


def _plain(expr: cst.BaseExpression) -> bool:
    """An expression that can be evaluated twice without side effects or cost: no calls."""
    stack: list[cst.CSTNode] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, _UNPLAIN):
            return False
        stack.extend(node.children)
    return True


def _standalone(ctx: FileContext) -> bool:
    """The node being visited is a whole value (assigned, returned, an argument), not an operand."""
    parent = ctx.parent()
    return isinstance(parent, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Return, cst.Arg, cst.Expr,
                               cst.Element, cst.DictElement))
