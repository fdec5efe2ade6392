import re

import libcst as cst

from ..facts import STD_KINDS
from ..patterns import code, division
from .base import Rule, Witness


class DivideByStd(Rule):
    """
    ## What it does
    Flags standardisation by a standard deviation with no eps:
    `(x - x.mean()) / x.std()`, `adv / adv.std(dim=0)`, `(x - mu) / torch.sqrt(var)`,
    `/ torch.std_mean(x)[0]`, through local variables too.

    ## Why is this bad?
    The standard deviation is exactly 0 for a constant input: a batch of equal
    rewards (advantage normalisation in RL), a constant feature, a zero-padded
    frame. Then `(x - mean) / std` is `0 / 0`: NaN in the forward pass, in every
    dtype (numerics.md rows 4 and 6). `x.std()` on its own is safe — PyTorch
    masks its gradient at 0 (row 6) — only the division is the hazard. Dividing
    by `torch.sqrt(var)` is worse still: the square root's gradient is infinite at
    0 (row 4), so the same line is also reported as NAN201.

    ## Example
    ```python
    advantages = (returns - returns.mean()) / returns.std()
    ```

    ## Use instead
    ```python
    advantages = (returns - returns.mean()) / (returns.std() + 1e-5)
    x_hat = (x - mu) / torch.sqrt(var + 1e-5)
    ```

    ## Fix safety
    Adding eps changes the result slightly for every input; unsafe fix.
    """

    code = "NAN102"
    name = "divide-by-std"
    summary = "standardisation by a standard deviation that can be zero"
    rows = "4, 6"
    screen = re.compile(r"std|var|sqrt|\*\*\s*\(?\s*0?\.5|pow")
    witnesses = (
        Witness(
            setup="x = leaf(torch.full((8,), 3.0, dtype=dtype))",
            hazard="y = (x - x.mean()) / x.std()",
            fixed="y = (x - x.mean()) / (x.std() + 1e-5)",
            fixed_dtypes=("float32", "bfloat16"),
        ),
        Witness(
            setup="x = leaf(torch.full((8,), 3.0, dtype=dtype))",
            hazard="y = (x - x.mean()) / x.std()",
            fixed="y = (x - x.mean()) / x.std().clamp_min(1e-3)",
        ),
        Witness(
            setup="x = leaf(torch.full((2, 8), 3.0, dtype=dtype))",
            hazard="mu = x.mean(-1, keepdim=True); var = x.var(-1, keepdim=True, unbiased=False); "
                   "y = (x - mu) / torch.sqrt(var)",
            fixed="mu = x.mean(-1, keepdim=True); var = x.var(-1, keepdim=True, unbiased=False); "
                  "y = (x - mu) / torch.sqrt(var + 1e-5)",
        ),
    )

    def _check(self, node: cst.CSTNode) -> None:
        found = division(node, self.ctx)
        if found is None:
            return
        source = self.facts.zero_source(found.divisor, self.ctx.at())
        if source is None or source.kind not in STD_KINDS:
            return
        self.report(
            node,
            f"division by `{code(self.ctx, found.divisor)}`, {source.described} that is 0 for a constant input "
            "(forward NaN); add an eps: `/ (std + eps)` or `sqrt(var + eps)`",
            target=found.divisor,
        )

    visit_BinaryOperation = _check
    visit_AugAssign = _check
    visit_Call = _check
