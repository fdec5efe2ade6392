import re

import libcst as cst

from ..analysis.triggers import ZERO_ROW
from ..patterns import code, root
from ._guards import add_eps
from ._screens import RECIPROCAL_ROOT, Screen
from ..fixspec import UNSAFE
from .base import Rule, SOMETIMES, Witness


class RsqrtAtZero(Rule):
    """
    ## What it does
    Flags a reciprocal square root of a variance or mean of squares with no eps:
    `torch.rsqrt(var)`, `var.rsqrt()`, `var ** -0.5`, `var.pow(-0.5)`, as in a
    hand-written LayerNorm or RMSNorm.

    ## Why is this bad?
    For a constant (LayerNorm) or all-zero (RMSNorm, padding) input the variance
    is exactly 0: `rsqrt(0)` is +Inf in the forward pass and the gradient is NaN,
    in every dtype (docs/probe.md row 5).

    ## Example
    ```python
    variance = hidden.pow(2).mean(-1, keepdim=True)
    hidden = hidden * torch.rsqrt(variance)
    ```

    ## Use instead
    ```python
    hidden = hidden * torch.rsqrt(variance + torch.finfo(variance.dtype).eps)
    ```
    A literal eps must be at least about 6.2e-4 in float16: the derivative of
    rsqrt at eps is about eps^-1.5, and `1e-5` or `1e-6` (the usual LayerNorm and
    RMSNorm values) overflow it, leaving a NaN gradient (rows 5 and 45).
    `torch.finfo(dtype).eps` is 2**-10 in float16, where eps^-1.5 = 2**15 fits.
    Production RMSNorms compute the statistics in float32 (`hidden.float()`),
    which is the most robust choice.

    ## Fix
    `rsqrt(v)` -> `rsqrt(v + torch.finfo(v.dtype).eps)` (also for `v.rsqrt()`,
    `v ** -0.5`, `v.pow(-0.5)`). Finite forward and gradient at v = 0 in float32,
    bfloat16 and float16 (docs/numerics-extra.md). In float16 the gradient at
    v = 0 is 2**15, half the float16 maximum: finite at the trigger, but an
    upstream gradient above 2 there still overflows; compute in float32 when
    that matters. `fix-eps` sets a literal instead (refused below 6.2e-4 in
    float16).

    ## Fix safety
    Adding eps changes the result slightly; unsafe fix.
    The eps is read from a floating tensor (`torch.finfo(x.dtype)`): the
    guarded value itself, a tensor the value analysis knows is floating, or one
    that flows into a guarded float tensor; for an operand of unknown kind (an
    int tensor or a list would make `torch.finfo` raise) there is no fix, and
    `--show-fixes` says why (`fix-eps` sets a literal instead).
    """

    code = "NAN202"
    name = "rsqrt-at-zero"
    summary = "reciprocal square root of a variance that can be zero"
    rows = "5, 45"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    screen = Screen(RECIPROCAL_ROOT, re.VERBOSE)
    attribute_flow = False  # reports at the root its screen matches
    root_operand = "square"
    witnesses = (
        Witness(
            setup="h = leaf(torch.zeros(2, 8, dtype=dtype))",
            hazard="variance = h.pow(2).mean(-1, keepdim=True); y = h * torch.rsqrt(variance)",
            fixed="variance = h.pow(2).mean(-1, keepdim=True); y = h * torch.rsqrt(variance + 1e-6)",
            fixed_dtypes=("float32", "bfloat16"),
        ),
        Witness(
            setup="h = leaf(torch.zeros(2, 8, dtype=dtype))",
            hazard="variance = h.pow(2).mean(-1, keepdim=True); y = h * torch.rsqrt(variance)",
            fixed="hf = h.float(); variance = hf.pow(2).mean(-1, keepdim=True); "
                  "y = (hf * torch.rsqrt(variance + 1e-6)).to(h.dtype)",
        ),
        Witness(  # the text the fix writes
            setup="h = leaf(torch.zeros(2, 8, dtype=dtype))",
            hazard="variance = h.pow(2).mean(-1, keepdim=True); y = h * torch.rsqrt(variance)",
            fixed="variance = h.pow(2).mean(-1, keepdim=True); "
                  "y = h * torch.rsqrt(variance + torch.finfo(variance.dtype).eps)",
        ),
    )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        self._check(node)

    def visit_Call(self, node: cst.Call) -> None:
        self._check(node)

    def _check(self, node: cst.CSTNode) -> None:
        found = root(node, self.ctx)
        if found is None or not found.reciprocal:
            return
        source = self.facts.sqrt_hazard(found.operand, self.ctx.at())
        if source is None:
            return
        # a normalisation layer (rsqrt of a mean of squares) sees zero rows at padding tokens
        floor = ZERO_ROW if source.kind in ("variance", "mean of squares") else None
        judged = self.judge(found.operand, floor=floor)
        if judged is None:
            return
        effect = "forward Inf, NaN gradient" if judged.gradient.flows else "forward Inf"
        self.report(
            node,
            f"reciprocal square root of `{code(self.ctx, found.operand)}`, {source.described} that is 0 for a "
            f"constant or zero input, here {judged.trigger.text} ({effect}); add an eps: `rsqrt(var + eps)`",
            target=found.operand,
            **judged.extra(),
            **add_eps(self.ctx, found, source.kind).extra(),
        )
