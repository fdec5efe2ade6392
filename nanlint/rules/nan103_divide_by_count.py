import re
from typing import Iterable

import libcst as cst

from ..analysis.gradient import gradient_at
from ..analysis.triggers import FIXED, MASKED_MODELLING, PARAMETER
from ..facts import names_in
from ..fixspec import UNSAFE, FixSpec, append_to
from ..patterns import code, division
from ._screens import DIVISION, DIVISION_RENAMED
from .base import Rule, Witness


# Padding / attention / length masks mark the real positions of a sequence: every sample has at least one,
# so their sums are not 0 in practice (measured on the corpus: most mask-sum divisions were such poolings).
_PADDING = re.compile(
    r"(?i)(?:attention|attn|pad(?:ding)?|seq(?:uence)?|src|tgt|input|caption|text|spectrogram|duration|frame"
    r"|pool|patch)_?masks?(?![a-z])|length.*mask|pad.*mask|sequence_mask|\barange\b|(?:^|[_.])(?:lengths?|lens)$"
)


def padding_like(names: Iterable[str]) -> bool:
    """The mask was built from a padding / attention / length mask (``attention_mask``, ``arange(T) < lengths``)."""
    return any(_PADDING.search(name) for name in names)


class GuardTests(Rule):
    """Shared helpers of NAN103 and NAN104 (not a rule). The walker records the guard tests and in-place
    calls they read (:meth:`nanlint.facts.Facts.tested_before`), whichever rules are enabled."""

    def under_nan_to_num(self) -> bool:
        for ancestor in reversed(self.ctx.stack[:-1]):
            if isinstance(ancestor, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return False
            if isinstance(ancestor, cst.Call):
                tc = self.ctx.match(ancestor)
                if tc is not None and tc.key in ("nan_to_num", "nan_to_num_"):
                    return True
        return False


class DivideByCount(GuardTests):
    """
    ## What it does
    Flags a division by a count of selected items that can be 0: the sum of a
    mask (`(loss * mask).sum() / mask.sum()`, `/ attention_mask.sum(1, keepdim=True)`,
    `/ (labels != -100).sum()`), `torch.count_nonzero(m)`, and `len(...)` /
    `.numel()` of a boolean selection (`len(x[mask])`), directly or through
    local variables (`num_valid = valid.sum()` ... `/ num_valid`).

    A mask is a comparison, a boolean combination of masks, `.bool()`, `isfinite`...,
    a cast or reshape of one, or a value named like a mask (`attention_mask`,
    `loss_mask`) whose origin nanlint cannot see. Padding, attention and length
    masks (`attention_mask`, `padding_mask`, `arange(T) < lengths`) are left out:
    they mark the real tokens of a sequence and every sample has at least one, so
    the mean pooling `(h * attention_mask).sum(1) / attention_mask.sum(1)` is not
    reported. It stays silent when the count
    is clamped (`.clamp(min=1)`, `.clamp_min(1)`), has an eps added, or is tested
    first in the same function (`if mask.any():`, `if num_valid > 0:`,
    `x / n if n > 0 else 0`, an early `return` when it is 0), or when the
    result goes through `torch.nan_to_num`.

    ## Why is this bad?
    When nothing is selected (a batch whose labels are all `ignore_index`, no
    masked tokens, no positive anchors) the count is 0 and the masked sum is 0:
    `0 / 0` is NaN, forward and backward, in every dtype (numerics.md row 39).
    One such batch makes the loss NaN and, through the optimizer, every weight.

    ## Example
    ```python
    loss = (token_loss * mask).sum() / mask.sum()
    ```

    ## Use instead
    ```python
    loss = (token_loss * mask).sum() / mask.sum().clamp_min(1)
    ```

    ## Fix safety
    The fix appends `.clamp_min(1)` to a tensor count. It is unsafe: it changes
    nothing when at least one item is selected and a 0/1 mask is used, but with
    a fractional (soft) mask whose total is below 1 it changes the result. For a
    Python count (`len(...)`, `.item()`) no fix is offered; use `max(n, 1)`.
    """

    code = "NAN103"
    name = "divide-by-count"
    summary = "division by a mask sum or count that can be zero"
    rows = "39"
    screen = re.compile(r"sum(?<!\wsum)\s*\(|nansum\s*\(|count_nonzero|len(?<!\wlen)\s*\(|numel\s*\(")
    site = DIVISION
    site_anywhere = DIVISION_RENAMED
    witnesses = (
        Witness(
            setup="token_loss = leaf(torch.ones(2, 3, dtype=dtype)); labels = torch.full((2, 3), -100)",
            hazard="mask = labels != -100; y = (token_loss * mask).sum() / mask.sum()",
            fixed="mask = labels != -100; y = (token_loss * mask).sum() / mask.sum().clamp_min(1)",
        ),
        Witness(
            setup="h = leaf(torch.ones(2, 3, 4, dtype=dtype)); "
                  "loss_mask = torch.tensor([[0, 0, 0], [1, 1, 0]])",
            hazard="y = (h * loss_mask[..., None]).sum(1) / loss_mask.sum(1, keepdim=True)",
            fixed="y = (h * loss_mask[..., None]).sum(1) / loss_mask.sum(1, keepdim=True).clamp_min(1)",
        ),
        Witness(
            setup="loss = leaf(torch.ones(4, dtype=dtype)); keep = torch.zeros(4) > 0",
            hazard="y = loss[keep].sum() / torch.count_nonzero(keep)",
            fixed="y = loss[keep].sum() / torch.count_nonzero(keep).clamp_min(1)",
        ),
    )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        self._check(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node)

    def visit_Call(self, node: cst.Call) -> None:
        self._check(node)

    def _check(self, node: cst.CSTNode) -> None:
        found = division(node, self.ctx)
        if found is None:
            return
        at = self.ctx.at()
        count = self.facts.count(found.divisor, at)
        if count is None:
            return
        names = count.names | names_in(found.divisor)
        if self.facts.tested_before(names, at) or self.under_nan_to_num() or padding_like(count.origin):
            return
        divisor = code(self.ctx, found.divisor)
        fix = None
        if count.tensor:
            fix = FixSpec(UNSAFE, "clamp the count to at least 1", append_to(found.divisor, ".clamp_min(1)"))
            advice = f"`{divisor}.clamp_min(1)`" if _atomic(found.divisor) else "`.clamp_min(1)` on the count"
        else:
            advice = f"`max({divisor}, 1)`"
        gradient = gradient_at(self.ctx)
        configured = bool(count.origin) and all(name.startswith("self.") for name in count.origin) \
            or self.facts.trigger(found.divisor, at) in (PARAMETER, FIXED, MASKED_MODELLING)
        if configured:  # a selection over module state (``self.weights > 0``) or a masked-modelling ratio
            effect, level = f"(0 / 0 = NaN) if the configuration {_SELECTS_NOTHING}", "low"
        elif gradient.flows:
            effect, level = "(0 / 0 = NaN in the loss and its gradient)", "high"
        else:  # statistics or a metric: the NaN reaches a number, not the weights
            effect, level = f"(0 / 0 = NaN; no gradient flows here: {gradient.reason})", "low"
        self.report(node, f"division by `{divisor}`, {_article(count.kind)} that is 0 when nothing is selected "
                          f"{effect}; use {advice} or test it first",
                    fix=fix, target=found.divisor, confidence=level, trigger="an empty selection")


_SELECTS_NOTHING = "selects nothing"


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _atomic(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or bool(getattr(expr, "lpar", ()))
