from typing import Optional

import libcst as cst

from ..facts import TRANSPARENT_OPS, At
from ..fixspec import SAFE
from ..names import TorchCall
from ..analysis import confidence
from ..analysis.gradient import gradient_at
from ..analysis.triggers import ORDINARY, Trigger
from ..patterns import code
from ._guards import relu_for_clamp
from ._screens import Screen
from .base import Rule, SOMETIMES, Witness


# ``x.clamp(min=0) ** p`` is exactly 0 for every non-positive input: an ordinary trigger.
CLAMPED = Trigger("by every non-positive input", ORDINARY)


class FractionalPowAtZero(Rule):
    """
    ## What it does
    Flags a fractional power (0 < p < 1: `** 0.5`, `.pow(1 / 3)`, `torch.sqrt`)
    of a value forced to be exactly 0 by an `abs` or by a clamp at 0:
    `x.abs() ** 0.5` (the "signed square root" `torch.sign(x) * x.abs().sqrt()`),
    `torch.sqrt(x.clamp(min=0))`, `d.clamp_min(0).pow(0.3)`, directly or through
    local variables.

    ## Why is this bad?
    The derivative of x^p (p < 1) is infinite at 0. A clamp at 0 passes the
    gradient through at its boundary, so `sqrt(x.clamp(min=0))` has a +Inf
    gradient at x = 0 (docs/probe.md row 31); `abs` multiplies the infinite
    derivative by sign(0) = 0, which gives NaN (row 36); a plain `x ** 0.5` at 0
    is already Inf (row 35). Exactly-zero inputs are ordinary here: the clamp
    exists because the value goes negative (a distance computed as
    `a**2 + b**2 - 2ab`, whose diagonal is 0), and zero features make the abs 0.

    Not flagged: `torch.sqrt(F.relu(x))` (relu's backward masks the infinity,
    row 32), powers with p >= 1 (row 38), a clamp at a positive floor, code
    under `torch.no_grad()` / `inference_mode()` and tensors built only from
    factories (no gradient is taken), and square roots of variances, squares,
    MSEs and expanded squared distances `a2 + b2 - 2 * ab`, clamped at 0 or not
    (NAN201 reports those).

    ## Why preview?
    The hazard is the gradient, and only where one is taken. On the 2 M-line
    corpus (transformers, diffusers, timm, Lightning) every finding was in code
    that is never differentiated (diffusers schedulers, running statistics of
    input data), which a static linter cannot tell apart from a loss. Enable it
    with `preview = true` or `--select NAN203` for training code (a signed
    square root of features, a root of a clamped score).

    ## Example
    ```python
    r = score.clamp(min=0).sqrt()
    feat = torch.sign(x) * x.abs() ** 0.5
    ```

    ## Use instead
    ```python
    r = F.relu(score).sqrt()         # same values, zero gradient at 0
    r = score.clamp(min=1e-6).sqrt()
    feat = torch.sign(x) * (x.abs() + 1e-6) ** 0.5
    ```
    A floor of 1e-12 underflows in float16 and the gradient is Inf again (row 31).

    ## Fix safety
    For a clamp at 0 with no upper bound the fix replaces it with `relu`
    (`x.clamp(min=0)` -> `x.relu()`, `torch.clamp(x, min=0)` -> `torch.relu(x)`):
    the forward values are identical and the gradient differs only at exactly 0,
    where the original is infinite, so the fix is safe. There is no fix for
    `abs`: any eps changes the value at 0 by eps^p.
    """

    code = "NAN203"
    name = "fractional-pow-at-zero"
    summary = "fractional power of abs(x) or of a clamp at 0 (infinite / NaN gradient at 0)"
    rows = "31, 35, 36"
    fix_availability = SOMETIMES
    fix_applicability = (SAFE,)
    preview = True
    screen = Screen(r"abs|clamp|clip")
    witnesses = (
        Witness(
            setup="x = leaf(torch.zeros(3, dtype=dtype))",
            hazard="y = torch.sign(x) * x.abs() ** 0.5",
            fixed="y = torch.sign(x) * (x.abs() + 1e-6) ** 0.5",
        ),
        Witness(
            setup="x = leaf(torch.tensor([0.0, -1.0, 4.0], dtype=dtype))",
            hazard="y = torch.sqrt(x.clamp(min=0))",
            fixed="y = torch.sqrt(x.relu())",
        ),
        Witness(
            setup="x = leaf(torch.zeros(3, dtype=dtype))",
            hazard="d = torch.clamp(x, min=0.0); y = d.pow(0.3)",
            fixed="d = torch.clamp(x, min=1e-6); y = d.pow(0.3)",
        ),
    )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Power):
            self._check(node, node.left, self.facts.literal(node.right, self.ctx.at()))

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.operand is None or not self.facts.is_tensor_method(tc):
            return
        if tc.key in ("sqrt", "sqrt_"):
            self._check(node, tc.operand, 0.5)
        elif tc.key in ("pow", "pow_", "float_power"):
            self._check(node, tc.operand, self.facts.literal(tc.argument("exponent", 0), self.ctx.at()))

    def _check(self, node: cst.CSTNode, base: cst.BaseExpression, exponent: Optional[float]) -> None:
        if exponent is None or not 0 < exponent < 1:
            return
        at = self.ctx.at()
        if exponent == 0.5 and self.facts.sqrt_hazard(base, at) is not None:
            return  # NAN201: square root of a variance / sum of squares / MSE
        if self.facts.is_constant(base, at):
            return
        found = self._zero_forcing(base, at)
        if found is None:
            return
        tc, where = found
        power = "a square root" if exponent == 0.5 else f"a power {exponent:g}"
        if tc.key in ("abs", "absolute"):
            judged = self.judge(tc.operand if tc.operand is not None else base, gradient_only=True, values=(base,))
            if judged is None:
                return
            self.report(node, f"`{code(self.ctx, node)}`: {power} of `{code(self.ctx, tc.node)}` has a NaN gradient "
                              f"where the value is 0, {judged.reached_by} (sign(0) * inf); add an eps inside: "
                              "`(x.abs() + 1e-6)`", target=base, **judged.extra())
            return
        gradient = gradient_at(self.ctx, (base,))
        level = confidence(CLAMPED, gradient, gradient_only=True)
        if level is None:
            return
        fix = relu_for_clamp(self.ctx, tc)
        self.report(node, f"`{code(self.ctx, node)}`: {power} of `{code(self.ctx, tc.node)}` has an infinite "
                          f"gradient at 0, reached {CLAMPED.text} (the clamp passes it through); use `relu` (same "
                          "values, zero gradient at 0) or clamp at a positive floor such as 1e-6", fix=fix,
                    target=base, confidence=level, trigger=CLAMPED.text)

    def _zero_forcing(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[tuple[TorchCall, At]]:
        """The ``abs`` / ``clamp(min=0)`` call that makes ``expr`` exactly 0 for some inputs."""
        if depth > 12:
            return None
        found = self.facts.call(expr, at)
        if found is None:
            return None
        tc, where = found
        if tc.operand is None or not self.facts.is_tensor_method(tc):
            return None
        if tc.key in ("abs", "absolute"):
            return tc, where
        if tc.key in ("clamp", "clip", "clamp_", "clip_", "clamp_min", "clamp_min_"):
            low = tc.argument("min", 0)
            return (tc, where) if low is not None and self.facts.literal(low, where) == 0 else None
        if tc.key in TRANSPARENT_OPS:
            return self._zero_forcing(tc.operand, where, depth + 1)
        return None
