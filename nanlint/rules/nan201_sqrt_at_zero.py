import re

import libcst as cst

from ..patterns import code, root
from .base import Rule, Witness


class SqrtAtZero(Rule):
    """
    ## What it does
    Flags a square root of something that is exactly 0 for ordinary inputs and
    has no eps: a variance (`torch.sqrt(var)`, `x.var(dim=0).sqrt()`,
    `((x - mu) ** 2).mean() ** 0.5`), a mean or sum of squares (a hand-written
    norm or RMS), an MSE (`torch.sqrt(F.mse_loss(pred, target))`, the RMSE loss),
    a squared difference (`torch.sqrt((p - t) ** 2)`, a hand-written abs), and
    `torch.hypot`. Written as `torch.sqrt(v)`, `v.sqrt()`, `v ** 0.5` or
    `v.pow(0.5)`, directly or through local variables. Silent where no gradient
    is taken: under `torch.no_grad()` / `inference_mode()` (as a context or a
    decorator, e.g. an optimizer's `step`) and on tensors built only from
    factories such as `torch.arange` (position grids).

    ## Why is this bad?
    The forward value is fine, but d/dv sqrt(v) = 1 / (2 sqrt(v)) is infinite at
    v = 0, and the chain rule multiplies it by the 0 gradient of the squares:
    inf * 0 = NaN in every dtype (numerics.md rows 3, 4, 9, 10, 12). An RMSE loss
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
    ```

    ## Use instead
    ```python
    loss = torch.sqrt(F.mse_loss(pred, target) + 1e-6)
    std = x.std(dim=0, unbiased=False)          # or torch.sqrt(var + eps)
    dist = (p - t).abs()                        # instead of sqrt((p - t) ** 2)
    ```
    `+ 1e-8` is not enough in float16 code: it rounds to 0 (rows 10, 45).

    ## Fix safety
    Adding eps inside the root changes the value by about sqrt(eps); unsafe fix.
    """

    code = "NAN201"
    name = "sqrt-at-zero"
    summary = "square root of a value that can be exactly zero (infinite gradient)"
    rows = "3, 4, 9, 10, 12"
    screen = re.compile(r"sqrt|\*\*\s*\(?\s*0?\.5|pow|hypot")
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
    )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not self.ctx.in_no_grad():
            self._check(node)

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.in_no_grad():
            return  # the hazard is the gradient; none is recorded here
        tc = self.ctx.match(node)
        if tc is not None and tc.key == "hypot":
            self.report(node, "`torch.hypot` has a NaN gradient when both inputs are 0; use "
                              "`torch.linalg.vector_norm(torch.stack([a, b]), dim=0)`")
            return
        self._check(node)

    def _check(self, node: cst.CSTNode) -> None:
        found = root(node, self.ctx)
        if found is None or found.reciprocal:
            return
        source = self.facts.sqrt_hazard(found.operand, self.ctx.at())
        if source is None:
            return
        advice = "use `(p - t).abs()`" if source.kind == "squared difference" else "add an eps inside the root"
        self.report(
            node,
            f"square root of `{code(self.ctx, found.operand)}`, {source.described} that can be exactly 0: "
            f"the gradient there is inf * 0 = NaN; {advice}",
            target=found.operand,
        )
