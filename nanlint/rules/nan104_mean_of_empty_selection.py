from typing import Optional

import libcst as cst

from ..analysis.ops import MEAN_LOSS_MODULES as _LOSS_MODULES, MEAN_LOSSES as _LOSSES
from ..facts import At
from ..patterns import code
from ._screens import Screen
from .base import NEVER, Witness
from .nan103_divide_by_count import GuardTests, padding_like


class MeanOfEmptySelection(GuardTests):
    """
    ## What it does
    Flags a mean over a boolean selection that can be empty: `loss[mask].mean()`,
    `torch.mean(x[labels != -100])`, `x.masked_select(m).mean()`, and losses that
    average by default over such a selection: `F.mse_loss(pred[mask], target[mask])`,
    `F.cross_entropy(logits[valid], labels[valid])`, `criterion(p[m], t[m])` with
    `criterion = nn.L1Loss()`. Silent when the selection (or its mask) is tested
    first in the same function (`if mask.any():`, `if sel.numel() > 0:`), when
    the loss uses `reduction="sum"` / `"none"`, and for padding / attention /
    length masks (every sequence has at least one real token).

    ## Why is this bad?
    The mean of zero elements is 0 / 0 = NaN, in every dtype (numerics.md
    row 40, and measured for each loss above in docs/numerics-extra.md). The
    gradient stays finite (0), so one step is harmless, but the logged loss is
    NaN and anything that reads it is misled: `GradScaler` skips the step and
    lowers its scale, early stopping and schedulers see NaN, and `loss.item()`
    checks abort the run.

    ## Why preview?
    Whether a mask can select nothing depends on the data (a batch without
    positives, every label ignored); nanlint cannot see it, so this rule is opt-in.

    ## Example
    ```python
    loss = F.smooth_l1_loss(pred[pos_mask], target[pos_mask])
    ```

    ## Use instead
    ```python
    loss = F.smooth_l1_loss(pred[pos_mask], target[pos_mask], reduction="sum") / pos_mask.sum().clamp_min(1)
    ```

    ## Fix safety
    No automatic fix: the divisor must count what the loss sums (elements or
    rows), which depends on the shapes.
    """

    code = "NAN104"
    name = "mean-of-empty-selection"
    summary = "mean over a boolean selection that can be empty (NaN loss)"
    rows = "40"
    fix_availability = NEVER
    fix_applicability = ()
    preview = True
    screen = Screen(r"mean(?<!\wmean)\b|nanmean|_loss\b|cross_entropy|Loss\b")  # literal-first
    witnesses = (
        Witness(
            setup="loss = leaf(torch.ones(4, dtype=dtype)); labels = torch.full((4,), -100)",
            hazard="mask = labels != -100; y = loss[mask].mean()",
            fixed="mask = labels != -100; y = loss[mask].sum() / mask.sum().clamp_min(1)",
        ),
        Witness(
            setup="pred = leaf(torch.ones(4, dtype=dtype)); target = torch.zeros(4, dtype=dtype); "
                  "weight = torch.zeros(4)",
            hazard="pos = weight > 0; y = F.smooth_l1_loss(pred[pos], target[pos])",
            fixed="pos = weight > 0; y = F.smooth_l1_loss(pred[pos], target[pos], reduction='sum') / "
                  "pos.sum().clamp_min(1)",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        at = self.ctx.at()
        tc = self.ctx.match(node)
        selected: Optional[cst.BaseExpression] = None
        if tc is not None and tc.operand is not None and self.facts.is_tensor_method(tc):
            if tc.key in ("mean", "nanmean"):
                selected = tc.operand
            elif tc.key in _LOSSES and _reduces_by_mean(tc.keyword("reduction")):
                selected = tc.operand
        if selected is None:
            module = self.facts.module_kind(node, at)
            if module in _LOSS_MODULES and node.args and node.args[0].keyword is None \
                    and self._module_means(node, at):
                selected = node.args[0].value
        if selected is None:
            return
        names = self.facts.selection(selected, at)
        if names is None or self.facts.tested_before(names, at) or self.under_nan_to_num() or padding_like(names):
            return
        what = "mean" if tc is not None and tc.key in ("mean", "nanmean") else "mean-reduced loss"
        self.report(node, f"`{code(self.ctx, node)}`: {what} over the selection `{code(self.ctx, selected)}` is "
                          "NaN when it selects nothing (the logged loss and GradScaler see NaN); sum and divide by "
                          "the count clamped to 1, or test the mask first", target=selected)

    def _module_means(self, call: cst.Call, at: At) -> bool:
        """The loss module's constructor keeps the default ``reduction='mean'``."""
        func = call.func
        constructor = func if isinstance(func, cst.Call) else self.facts.resolve(func, at)[0]
        if not isinstance(constructor, cst.Call):
            return False
        tc = self.ctx.match(constructor)
        return tc is not None and _reduces_by_mean(tc.keyword("reduction"))


def _reduces_by_mean(reduction: Optional[cst.BaseExpression]) -> bool:
    if reduction is None:
        return True
    if not isinstance(reduction, cst.SimpleString):
        return False
    try:
        return reduction.evaluated_value == "mean"
    except Exception:  # an escape sequence ``ast.literal_eval`` rejects
        return False
