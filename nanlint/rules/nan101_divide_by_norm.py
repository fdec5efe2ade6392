import re

import libcst as cst

from ..facts import NORM_KINDS
from ..patterns import code, division
from .base import Rule, Witness


class DivideByNorm(Rule):
    """
    ## What it does
    Flags a division by a vector norm that has no eps: `x / x.norm()`,
    `x / torch.linalg.norm(x, dim=-1, keepdim=True)`, `x / torch.linalg.vector_norm(x)`,
    a hand-written norm `x / torch.sqrt((x ** 2).sum())`, also when the norm was
    stored in a variable first (`n = x.norm(dim=1, keepdim=True)` ... `x / n`).

    ## Why is this bad?
    A norm is exactly 0 for a zero vector: an all-padding embedding, a dead
    feature row, a zero gradient. `0 / 0` is NaN in the forward pass and the
    gradient is NaN as well, in float32, bfloat16 and float16 alike
    (numerics.md row 1; row 3 for the hand-written norm). The norm itself is
    safe: PyTorch masks its gradient at 0 (row 2), so `x.norm()` alone is never
    flagged; only dividing by it is.

    ## Example
    ```python
    direction = x / x.norm(dim=-1, keepdim=True)
    ```

    ## Use instead
    ```python
    direction = F.normalize(x, dim=-1)                                  # float32 / bfloat16
    direction = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-4)        # also float16
    ```
    `F.normalize`'s default eps (1e-12) underflows in float16 (row 1): in half
    precision code pass `eps=1e-4` or clamp with at least 1e-4.

    ## Fix safety
    Adding a clamp changes the result only for vectors whose norm is below eps;
    it is an unsafe fix because it changes numerics.
    """

    code = "NAN101"
    name = "divide-by-norm"
    summary = "division by a norm that can be zero"
    rows = "1, 3"
    screen = re.compile(r"norm|sqrt|\*\*\s*\(?\s*0?\.5|pow")
    witnesses = (
        Witness(
            setup="x = leaf(torch.zeros(2, 4, dtype=dtype))",
            hazard="y = x / x.norm(dim=-1, keepdim=True)",
            fixed="y = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-4)",
        ),
        Witness(
            setup="x = leaf(torch.zeros(2, 4, dtype=dtype))",
            hazard="y = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)",
            fixed="y = F.normalize(x, dim=-1)",
            fixed_dtypes=("float32", "bfloat16"),
        ),
        Witness(
            setup="x = leaf(torch.zeros(4, dtype=dtype))",
            hazard="y = x / torch.sqrt((x ** 2).sum())",
            fixed="y = x / x.norm().clamp_min(1e-4)",
        ),
    )

    def _check(self, node: cst.CSTNode) -> None:
        found = division(node, self.ctx)
        if found is None:
            return
        source = self.facts.zero_source(found.divisor, self.ctx.at())
        if source is None or source.kind not in NORM_KINDS:
            return
        self.report(
            node,
            f"division by `{code(self.ctx, found.divisor)}`, {source.described} that is 0 for a zero vector "
            "(forward NaN, NaN gradient); use `F.normalize` or `.clamp_min(eps)` on the norm",
            target=found.divisor,
        )

    visit_BinaryOperation = _check
    visit_AugAssign = _check
    visit_Call = _check
