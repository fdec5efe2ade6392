import re

import libcst as cst

from ..patterns import code, root
from .base import Rule, Witness


class RsqrtAtZero(Rule):
    """
    ## What it does
    Flags a reciprocal square root of a variance or mean of squares with no eps:
    `torch.rsqrt(var)`, `var.rsqrt()`, `var ** -0.5`, `var.pow(-0.5)`, as in a
    hand-written LayerNorm or RMSNorm.

    ## Why is this bad?
    For a constant (LayerNorm) or all-zero (RMSNorm, padding) input the variance
    is exactly 0: `rsqrt(0)` is +Inf in the forward pass and the gradient is NaN,
    in every dtype (numerics.md row 5).

    ## Example
    ```python
    variance = hidden.pow(2).mean(-1, keepdim=True)
    hidden = hidden * torch.rsqrt(variance)
    ```

    ## Use instead
    ```python
    hidden = hidden * torch.rsqrt(variance + 1e-6)
    ```
    In float16 even `+ 1e-5` leaves a NaN gradient (rsqrt's derivative, about
    eps^-1.5, overflows; rows 5 and 45): compute the statistics in float32
    (`hidden.float()`), as most production RMSNorms do.

    ## Fix safety
    Adding eps changes the result slightly; unsafe fix.
    """

    code = "NAN202"
    name = "rsqrt-at-zero"
    summary = "reciprocal square root of a variance that can be zero"
    rows = "5, 45"
    screen = re.compile(r"rsqrt|\*\*\s*\(?\s*-\s*0?\.5|pow")
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
        self.report(
            node,
            f"reciprocal square root of `{code(self.ctx, found.operand)}`, {source.described} that is 0 for a "
            "constant or zero input (forward Inf, NaN gradient); add an eps: `rsqrt(var + eps)`",
            target=found.operand,
        )
