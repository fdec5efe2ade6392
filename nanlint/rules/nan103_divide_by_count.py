import re
from typing import Iterable, Optional

import libcst as cst

from ..analysis import kinds
from ..analysis.gradient import gradient_at, metric_code
from ..analysis import confidence
from ..analysis.guards import repaired_later
from ..analysis.ops import CASTS, VALUE_KEEPING, ZERO_ONE_OPS as _ZERO_ONE_OPS
from ..analysis.triggers import ABSENT_CATEGORY, EMPTY_BIN, EMPTY_SELECTION, FIXED, ISOLATED, MASKED_MODELLING, PADDING, PARAMETER, count_trigger
from ..eps import dtype_ref
from ..facts import At, Count, names_in
from ..fixspec import DISPLAY_ONLY, UNSAFE, FixSpec, Replace, append_to
from ..patterns import code, division
from ._guards import Built, eps_receiver
from ._screens import DIVISION, DIVISION_RENAMED, Screen, count_evidence
from .base import SOMETIMES, Rule, Witness


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

    Also a sum of masked values, 0 for a row the mask removes entirely: the soft
    dice denominator `p.sum(-1) + t.sum(-1)` with `p = torch.sigmoid(x) * valid`
    and `t = target * valid` (a crop whose pixels are all `ignore_index`, row 64),
    or a weighted count `(weights * keep).sum(-1)`; a sum of such sums is 0 when
    each is, and a positive term (`+ smooth`) makes it never 0. A count per
    category of one-hot rows, `F.one_hot(y, K).sum(0)`, is 0 for a class absent
    from the batch (`counts.sum() / counts`); the per-row sum `.sum(-1)` is 1.

    Also a node degree or bin count, 0 for an isolated node (graph normalisation,
    an expert no token is routed to): `degree(row, N)` (torch_geometric),
    `torch.bincount(idx, minlength=N)`, `zeros(N).scatter_add_(0, row, ones)`,
    `zeros(N).index_add_(0, row, ones)` (also in place on a separate line),
    torch_scatter's `scatter_add(w, row, dim=0, dim_size=N)` and `scatter(...)` /
    PyG's `utils.scatter(...)` summing (of ones a degree, of edge weights a
    weighted degree),
    `g.in_degrees()`, and `adj.sum(-1)` of a dense adjacency; divided by
    (`x / deg[:, None]`, `1 / deg.sqrt()`) or raised to a negative power
    (`deg.pow(-0.5)`, `deg ** -0.5`, `deg.rsqrt()`, `deg.reciprocal()`). Silent
    when the edge index comes from `add_self_loops` / `add_remaining_self_loops`
    or the adjacency has the identity added (every degree is at least 1), when
    the degree is shifted (`deg + 1`) or clamped, and when the power's infinities
    are replaced afterwards (PyG's `d.masked_fill_(d == float('inf'), 0)`,
    `d[d == float('inf')] = 0`).

    Masks of label pairs in contrastive and metric-learning losses are read by
    their diagonal: `labels[:, None] == labels[None, :]` (`torch.eq(l, l.T)`)
    pairs each sample with itself, so its row sums are at least 1 and dividing
    by them is not reported; with the diagonal removed (SupCon's `logits_mask`,
    `* (1 - torch.eye(n))`, `fill_diagonal_(0)`) an anchor whose label no other
    sample in the batch shares has no positive, and the division is flagged.

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
    `0 / 0` is NaN, forward and backward, in every dtype (docs/probe.md row 39).
    One such batch makes the loss NaN and, through the optimizer, every weight.
    An isolated node has degree 0: `x / deg` is `0 / 0` at its empty sum, and
    `deg ** -0.5` is inf, which times its all-zero adjacency row is NaN
    (`D^-1/2 A D^-1/2`; docs/probe.md row 57). The message names the trigger: a row whose labels are
    all `ignore_index` (a prompt-only row in supervised fine-tuning) for a
    per-row count of labels, an isolated node for a degree.

    ## Example
    ```python
    loss = (token_loss * mask).sum() / mask.sum()
    ```

    ## Use instead
    ```python
    loss = (token_loss * mask).sum() / mask.sum().clamp_min(1)
    ```

    ## Fix safety
    An integer-valued count (the sum of a boolean or 0/1 mask, `count_nonzero`,
    `len`, `numel`) gets `.clamp_min(1)` (`max(n, 1)` for a Python count): only a
    count of 0 changes. A sum of float weights (`torch.sigmoid(...)`) gets
    `.clamp_min(torch.finfo(w.dtype).eps)` instead, since `clamp_min(1)` would
    rescale sums below 1. Both are unsafe. The fix is display-only (shown by
    `--show-fixes`, never applied) where the mask's values are not visible (a
    parameter named like a mask could hold soft weights) and in metric code
    (autograd off, or a function or class named like a metric), where NaN may be
    the intended result of an average over an empty class.

    ## Confidence
    From the trigger (`nanlint.analysis.triggers.count_trigger`): high for an
    ordinary one (an empty selection, a row whose labels are all ignored, an
    isolated node, an empty bin) where a gradient flows, medium for a
    whole-batch count of labels (a batch whose labels are all ignored).
    Low (not shown by default) in metric code (a function, class or module
    named like a metric: the NaN of an empty class is the metric's value), for a
    whole-batch `mask.sum()` of a padding mask (0 only when every position of
    the batch is padding), and for a selection over module state or a
    masked-modelling ratio (0 only for a configuration that selects nothing).
    """

    code = "NAN103"
    name = "divide-by-count"
    summary = "division by a mask sum or count that can be zero"
    rows = "39, 57, 59, 64"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE, DISPLAY_ONLY)
    screen = Screen(r"sum(?<!\wsum)\s*\(|nansum\s*\(|count_nonzero|len(?<!\wlen)\s*\(|numel\s*\("
                        r"|scatter_add|index_add|bincount|degree")  # degrees and bin counts
    # a division, or a negative power / reciprocal of a count (``deg.pow(-0.5)``, ``deg ** -1``, ``rsqrt``)
    site = Screen(DIVISION.pattern.pattern + r"|\*\*|pow|rsqrt|reciprocal")
    # (one literal-first alternative per name: ``(?:pow|rsqrt|reciprocal)\w*`` is tried at every position)
    site_anywhere = Screen(DIVISION_RENAMED.pattern + r"|pow\w*\s+as\b|rsqrt\w*\s+as\b|reciprocal\w*\s+as\b")
    evidence_at = staticmethod(count_evidence)  # ``len(x)`` of a parameter, Python's ``sum``: no count
    reciprocals = True  # ``deg ** -0.5``, ``deg.rsqrt()``: ``_reciprocal``
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
        Witness(  # float weights that sum to 0: a dtype-aware eps (clamp_min(1) would rescale sums below 1)
            setup="x = leaf(torch.zeros(4, dtype=dtype))",
            hazard="soft_mask = torch.sigmoid(x) * 0; y = (x * soft_mask).sum() / soft_mask.sum()",
            fixed="soft_mask = torch.sigmoid(x) * 0; "
                  "y = (x * soft_mask).sum() / soft_mask.sum().clamp_min(torch.finfo(soft_mask.dtype).eps)",
        ),
        Witness(  # a soft dice over valid pixels: the second row has none, every denominator term is 0 (row 64)
            setup="x = leaf(torch.zeros(2, 3, dtype=dtype)); labels = torch.tensor([[1, 0, 255], [255, 255, 255]]); "
                  "valid = (labels != 255).to(dtype); target = (labels == 1).to(dtype)",
            hazard="p = torch.sigmoid(x) * valid; t = target * valid; "
                   "y = 2 * (p * t).sum(-1) / (p.sum(-1) + t.sum(-1))",
            fixed="p = torch.sigmoid(x) * valid; t = target * valid; "
                  "y = 2 * (p * t).sum(-1) / (p.sum(-1) + t.sum(-1)).clamp_min(torch.finfo(p.dtype).eps)",
        ),
        Witness(  # SupCon's positives: label pairs without the diagonal; every label distinct -> no positive
            setup="x = leaf(torch.ones(4, 4, dtype=dtype)); labels = torch.arange(4).view(-1, 1)",
            hazard="mask = torch.eq(labels, labels.T).to(dtype) * (1 - torch.eye(4, dtype=dtype)); "
                   "y = (mask * x).sum(1) / mask.sum(1)",
            fixed="mask = torch.eq(labels, labels.T).to(dtype) * (1 - torch.eye(4, dtype=dtype)); "
                  "y = (mask * x).sum(1) / mask.sum(1).clamp_min(1)",
        ),
        Witness(  # a Python count
            setup="loss = leaf(torch.ones(4, dtype=dtype)); keep = torch.zeros(4) > 0",
            hazard="y = loss[keep].sum() / len(loss[keep])",
            fixed="y = loss[keep].sum() / max(len(loss[keep]), 1)",
        ),
        Witness(  # mean aggregation over a graph: node 2 has no edge, degree 0 and an empty sum (0 / 0)
            setup="x = leaf(torch.ones(3, 2, dtype=dtype)); row = torch.tensor([0, 1]); col = torch.tensor([1, 0])",
            hazard="deg = torch.zeros(3, dtype=dtype).scatter_add_(0, row, torch.ones(2, dtype=dtype)); "
                   "out = torch.zeros_like(x).index_add_(0, row, x[col]); y = out / deg[:, None]",
            fixed="deg = torch.zeros(3, dtype=dtype).scatter_add_(0, row, torch.ones(2, dtype=dtype)); "
                  "out = torch.zeros_like(x).index_add_(0, row, x[col]); y = out / deg[:, None].clamp_min(1)",
        ),
        Witness(  # GCN normalisation D^-1/2 A D^-1/2: an isolated node's inf times its empty adjacency row
            setup="x = leaf(torch.ones(3, 2, dtype=dtype)); "
                  "adj = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=dtype)",
            hazard="deg = adj.sum(-1); d = deg ** -0.5; y = (d[:, None] * adj * d[None, :]) @ x",
            fixed="deg = adj.sum(-1); d = deg.clamp_min(1) ** -0.5; y = (d[:, None] * adj * d[None, :]) @ x",
        ),
    )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Power):
            self._reciprocal(node, node.left, node.right)
        else:
            self._check(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node)

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is not None and tc.operand is not None and self.facts.is_tensor_method(tc):
            if tc.key in ("pow", "pow_", "float_power"):
                self._reciprocal(node, tc.operand, tc.argument("exponent", 0))
                return
            if tc.key in ("rsqrt", "rsqrt_", "reciprocal", "reciprocal_"):
                self._reciprocal(node, tc.operand, None)
                return
        self._check(node)

    def _reciprocal(self, node: cst.CSTNode, base: cst.BaseExpression,
                    exponent: Optional[cst.BaseExpression]) -> None:
        """``deg.pow(-0.5)``, ``deg ** -1``, ``deg.rsqrt()``, ``deg.reciprocal()``: 1 / 0 = inf at an empty
        count, and the inf times the 0 row it scales (an isolated node's empty adjacency row) is NaN."""
        if exponent is not None:
            value = self.facts.literal(exponent, self.ctx.at())
            if value is None or value >= 0:
                return
        at = self.ctx.at()
        count = self.facts.count(base, at)
        if count is None or not count.tensor:
            return
        self._report(node, base, count, at, reciprocal=True)

    def _check(self, node: cst.CSTNode) -> None:
        found = division(node, self.ctx)
        if found is None:
            return
        at = self.ctx.at()
        count = self.facts.count(found.divisor, at)
        if count is None:
            return
        self._report(node, found.divisor, count, at, reciprocal=False)

    def _report(self, node: cst.CSTNode, divisor_node: cst.BaseExpression, count: Count, at: At,
                reciprocal: bool) -> None:
        names = count.names | names_in(divisor_node)
        if self.facts.tested_before(names, at) or self.under_nan_to_num() or padding_like(count.origin):
            return
        if reciprocal and repaired_later(self.ctx):
            return  # ``d = deg.pow(-0.5); d.masked_fill_(d == float('inf'), 0)``: PyG's repair
        divisor = code(self.ctx, divisor_node)
        if count.tensor:
            advice = f"`{divisor}.clamp_min(1)`" if _atomic(divisor_node) else "`.clamp_min(1)` on the count"
        else:
            advice = f"`max({divisor}, 1)`"
        built = count_fix(self, divisor_node, count, at)
        if built.receiver is not None or count.kind == "masked sum":  # float weights: a dtype-aware eps
            advice = "`.clamp_min(torch.finfo(w.dtype).eps)` on the sum of weights"
        gradient = gradient_at(self.ctx)
        # a masked sum is 0 through its mask, whatever the values it sums are (``(weights * keep).sum(-1)``)
        trigger = self.facts.trigger(divisor_node, at) if count.kind != "masked sum" else None
        zero = count_trigger(count.kind, count.origin, _whole_batch(count))
        configured = bool(count.origin) and all(name.startswith("self.") for name in count.origin) \
            or trigger in (PARAMETER, FIXED, MASKED_MODELLING)
        metric = metric_code(self.ctx)
        graph = zero in (ISOLATED, EMPTY_BIN, ABSENT_CATEGORY)
        nan = "inf, and 0 * inf = NaN where it scales an empty row" if reciprocal else \
            "x / 0 = inf, 0 / 0 = NaN" if graph else "0 / 0 = NaN"
        if configured and not graph:  # a selection over module state (``self.weights > 0``) or a masked-modelling ratio
            effect, level = f"({nan}) if the configuration {_SELECTS_NOTHING}", "low"
        elif trigger == PADDING and _whole_batch(count):
            effect, level = f"({nan}) only for a batch that is padding everywhere", "low"
        elif metric:  # a metric's average over an empty class is NaN by design (torchmetrics' zero_division)
            effect, level = f"({nan} in a metric: {metric}; NaN may be its intended value)", "low"
        elif gradient.flows:
            effect, level = f"({nan} in the loss and its gradient)", confidence(zero, gradient) or "low"
        else:  # statistics or a metric: the NaN reaches a number, not the weights
            effect, level = f"({nan}; no gradient flows here: {gradient.reason})", "low"
        what = f"`{code(self.ctx, node)}`, a negative power of `{divisor}`," if reciprocal else f"division by `{divisor}`,"
        when = "when nothing is selected" if zero == EMPTY_SELECTION else f"for {zero.text}"
        self.report(node, f"{what} {_article(count.kind)} that is 0 {when} {effect}; use {advice} or test it "
                          "first", target=divisor_node, confidence=level, trigger=zero.text, **built.extra())


_SELECTS_NOTHING = "selects nothing"


# a 0/1 mask stays 0/1 through layout ops and every cast
_VALUE_KEEPING = VALUE_KEEPING | CASTS


def _whole_batch(count: Count) -> bool:
    """``mask.sum()`` with no dim: 0 only when nothing in the whole batch is selected."""
    node = count.node
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "sum" \
        and not node.args


def zero_one(rule: Rule, expr: cst.BaseExpression, at: At, depth: int = 0) -> bool:
    """``expr`` holds only 0 and 1 (or other non-negative integers): a comparison, a boolean op, an int or bool
    tensor, a cast or reshape of one, or a name assigned one. A positive sum of it is at least 1."""
    if depth > 8:
        return False
    if rule.facts.kind(expr, at) in (kinds.BOOL_TENSOR, kinds.INT_TENSOR):
        return True
    if isinstance(expr, cst.Comparison):
        return True
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.BitInvert):
        return zero_one(rule, expr.expression, at, depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        if isinstance(expr.operator, (cst.BitAnd, cst.BitOr, cst.BitXor)):
            return zero_one(rule, expr.left, at, depth + 1) or zero_one(rule, expr.right, at, depth + 1)
        if isinstance(expr.operator, cst.Multiply):
            return zero_one(rule, expr.left, at, depth + 1) and zero_one(rule, expr.right, at, depth + 1)
        return False
    if isinstance(expr, cst.Subscript):
        return zero_one(rule, expr.value, at, depth + 1)
    if isinstance(expr, (cst.Name, cst.Attribute)):
        value, where = rule.facts.resolve(expr, at)
        return value is not expr and zero_one(rule, value, where, depth + 1)
    if isinstance(expr, cst.Call):
        tc = rule.ctx.match(expr)
        if tc is None:
            return False
        key = tc.key.rsplit(".", 1)[-1]
        if key in _ZERO_ONE_OPS:
            return True
        if key in _VALUE_KEEPING and tc.operand is not None:
            return zero_one(rule, tc.operand, at, depth + 1)
    return False


def count_fix(rule: Rule, divisor: cst.BaseExpression, count: Count, at: At) -> Built:
    """The fix of a division by ``count``: ``.clamp_min(1)`` for an integer-valued count (a sum of a 0/1 mask,
    ``count_nonzero``, a length), ``max(n, 1)`` for a Python count, a dtype-aware eps for a sum of float
    weights; display-only where the count's values are not visible or the code computes a metric."""
    ctx = rule.ctx
    metric = metric_code(rule.ctx)
    text = code(ctx, divisor)
    # count_nonzero, len(...), numel(), degrees and bin counts of ones: integers by construction
    integer = count.kind not in ("mask sum", "masked sum", "weighted node degree", "weighted bin count")
    operand: Optional[cst.BaseExpression] = None
    if count.kind in ("mask sum", "masked sum") and isinstance(count.node, cst.Call):
        tc = ctx.match(count.node)
        operand = tc.operand if tc is not None else None
        integer = operand is not None and zero_one(rule, operand, at)
    elif count.kind == "masked sum":  # ``p.sum(-1) + t.sum(-1)``: masked values, each sum a float
        operand = divisor
    if not count.tensor:
        spec = FixSpec(UNSAFE, "take at least 1: `max(n, 1)` (a Python count)", (Replace(divisor, f"max({text}, 1)"),))
        if not integer:
            spec = FixSpec(DISPLAY_ONLY, f"{spec.message}; display-only: the mask's values are not visible (right "
                                         "for a 0/1 mask, wrong for soft weights summing below 1)", spec.changes)
    elif integer:
        spec = FixSpec(UNSAFE, "clamp the count to at least 1 (an integer count: only 0 changes)",
                       append_to(divisor, ".clamp_min(1)"))
    elif operand is not None and (rule.facts.kind(operand, at) == kinds.FLOAT_TENSOR or count.kind == "masked sum"):
        # a sum of float weights: `clamp_min(1)` would rescale sums in (0, 1); an eps changes only a sum near 0
        eps, changes, reason, receiver = eps_receiver(ctx, "divide", dtype_ref(operand, ctx.imports), divisor, at)
        if eps is None:
            return Built(reason=reason)
        spec = FixSpec(UNSAFE, f"clamp the sum of weights at eps: `.clamp_min({eps})` (float weights: "
                               "`clamp_min(1)` would change sums below 1)", append_to(divisor, f".clamp_min({eps})")
                       + changes)
        if metric:
            spec = FixSpec(DISPLAY_ONLY, f"{spec.message}; display-only: {metric}, where an average over nothing "
                                         "may be meant to be NaN", spec.changes)
        return Built(spec, receiver=receiver)
    else:
        return Built(FixSpec(DISPLAY_ONLY, "clamp the count to at least 1; display-only: the mask's values are not "
                                           "visible (right for a 0/1 mask, wrong for soft weights summing below 1)",
                             append_to(divisor, ".clamp_min(1)")))
    if metric:
        spec = FixSpec(DISPLAY_ONLY, f"{spec.message}; display-only: {metric}, where an average over nothing may "
                                     "be meant to be NaN (undefined), not 0", spec.changes)
    return Built(spec)


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _atomic(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or bool(getattr(expr, "lpar", ()))
