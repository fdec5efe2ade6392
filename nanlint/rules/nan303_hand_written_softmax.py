import math
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from ..analysis.ops import COPIES, RESHAPES
from ..analysis.triggers import overflow_trigger
from ..analysis.vocabulary import FLOAT_MAX
from ..facts import At, Bound
from ..fixspec import SAFE, UNSAFE, FixSpec, Replace
from ..names import TorchCall
from ..patterns import code, division
from ..scope import lookup
from ._screens import AS_FOREIGN, DIVISION, DIVISION_RENAMED, Screen, not_foreign
from .base import Judgement, Rule, SOMETIMES, Witness

# Largest exp argument that cannot overflow a sum of a few exps (float32 overflows at 88.7, float16 at 11.09).
_SAFE_BOUND = {"float32": 80.0, "float16": 5.0}
# Where exp itself overflows: ln(finfo.max) (docs/probe.md row 22).
_EXP_LIMIT = {"float32": math.log(FLOAT_MAX["float32"]), "float16": math.log(FLOAT_MAX["float16"])}


@dataclass(frozen=True)
class _Exp:
    """An ``exp(argument)`` call found behind an expression, and where it was evaluated."""

    call: TorchCall
    at: At
    nested: bool  # written in place (not through a variable)

    @property
    def argument(self) -> cst.BaseExpression:
        assert self.call.operand is not None
        return self.call.operand


class HandWrittenSoftmax(Rule):
    """
    ## What it does
    Flags softmax, logsumexp and softplus written by hand from `exp`:

    * `torch.exp(x) / torch.exp(x).sum(dim, keepdim=True)` (also through variables:
      `e = x.exp(); e / e.sum(-1, keepdim=True)`), and one entry of it: InfoNCE's
      `torch.diag(e) / e.sum(1)`, `e.gather(1, y) / e.sum(1)`;
    * `torch.log(torch.exp(x).sum(dim))`, `x.exp().sum(-1).log()`, and
      `torch.log(torch.exp(a) + torch.exp(b))`;
    * softplus in any spelling: `torch.log(1 + torch.exp(x))`, `torch.log(torch.exp(x) + 1)`,
      `(1 + x.exp()).log()`, `x.exp().add(1).log()`, `torch.log1p(torch.exp(x))`;
    * a per-segment softmax (GNN attention over each node's edges) that sums `exp` with
      `index_add_`, `scatter_add_`, `scatter_reduce(..., "sum")`, `torch_scatter.scatter_add` /
      `scatter`, or a `segment_sum`-style helper, and divides by the sum read back at each element
      (`e = alpha.exp(); e / zeros(n).index_add_(0, index, e)[index]`), without first subtracting
      each segment's max (`alpha - scatter_max(alpha, index)[0][index]`).

    Softplus and segment-softmax findings are judged by the value analysis: `exp(x)` overflows for x
    above 88.72 (float32) or 11.09 (float16, where the code shows it); a data-dependent x is a plausible
    edge case (medium), module state or a Gaussian sample a degenerate one (low).

    It stays silent when the argument is shifted by its maximum
    (`exp(x - x.max(dim, keepdim=True).values)`, `x - logsumexp(x)`), is a
    log-probability (`exp(log_softmax(x))`), is visibly bounded (a clamp, a
    sigmoid, a cosine over a literal temperature, a negated distance such as a
    Gaussian kernel `exp(-d ** 2 / (2 * sigma ** 2))`) so that `exp` cannot
    overflow, or is built only from literals and factories (`torch.linspace`):
    a constant kernel is either always finite or always NaN, which a first run shows.

    ## Why is this bad?
    `exp` overflows to inf above 88.7 in float32/bfloat16 and above 11.09 in
    float16 (docs/probe.md row 22), and `inf / inf` is NaN: a hand-written softmax
    of logits `[1000, 0]` is NaN forward and backward in every dtype, and a
    hand-written logsumexp is +inf with a NaN gradient (row 21).
    `log(1 + exp(x))` overflows to inf at x = 89 (float32) or x = 12 (float16),
    with a NaN gradient (exp / (1 + exp) = inf / inf; row 53). A segment softmax of scores
    `[100, 0, 1]` over segments `[0, 0, 1]` is NaN forward and backward in every dtype (row 54);
    subtracting a global max (`alpha - alpha.max()`) fixes the overflow but not segments whose
    maxima lie far apart (every term of such a segment underflows to 0, and 0 / 0 is NaN: measured
    in row 54; not reported, like any never-positive argument below). `torch.softmax`, `torch.logsumexp`, `torch.logaddexp`
    and `F.softplus` subtract the maximum (or switch to the linear branch)
    internally and stay finite.

    A never-positive argument (`exp(-d)`, a softmin) cannot overflow, but every
    term can underflow to 0 and `0 / 0` is NaN too (measured for distances of
    200 and 300). Whether that can happen depends on the data, so it is not
    reported.

    ## Example
    ```python
    attn = torch.exp(scores) / torch.exp(scores).sum(-1, keepdim=True)
    lse = torch.log(torch.exp(logits).sum(-1))
    sp = torch.log(1 + torch.exp(x))
    ```

    ## Use instead
    ```python
    attn = torch.softmax(scores, dim=-1)
    lse = torch.logsumexp(logits, dim=-1)
    sp = F.softplus(x)
    ```

    ## Fix safety
    `torch.softmax`, `torch.logsumexp` and `torch.logaddexp` are safe fixes: the
    same functions, equal to the hand-written forms up to rounding wherever those
    are finite and correct (measured: logsumexp within one unit in the last
    place in all three dtypes, softmax within 3e-7 in float32;
    docs/numerics-extra.md), and finite where those overflow. They are offered
    only when the sum names its dimension (`keepdim=True` for the softmax) and
    the argument can be re-evaluated at the fix site.

    `F.softplus` is an unsafe fix: it is not numerically identical. It uses
    `log1p(exp(x))` below its threshold (20) and returns `x` above it, so for
    x < -17 it returns about exp(x) where the hand-written form rounds to 0, and
    it differs by an ulp elsewhere (measured: up to 9.5e-7 in float32, 0.03 in
    bfloat16). It is the more accurate value, but it is a change of numbers.
    """

    code = "NAN303"
    name = "hand-written-softmax"
    summary = "softmax / logsumexp / softplus written with a bare exp (overflows)"
    rows = "21, 22, 53, 54"
    fix_availability = SOMETIMES
    fix_applicability = (SAFE, UNSAFE)
    # literal-first (no leading \b): 25x faster; ``math.exp`` is not torch's
    screen = Screen(r"exp(?<!\wexp)" + not_foreign("exp") + r"_?\s*\(|" + AS_FOREIGN)
    # every finding is a division whose numerator is the exp (``exp(x) / exp(x).sum()``) or a log of a sum of exps
    site = Screen(DIVISION.pattern.pattern + r"|log")
    site_anywhere = Screen(DIVISION_RENAMED.pattern + r"|log\w*\s+as\b")
    site_reads = "division or log"
    witnesses = (
        Witness(
            setup="x = leaf(torch.tensor([[1000.0, 0.0]], dtype=dtype))",
            hazard="y = torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)",
            fixed="y = torch.softmax(x, dim=-1)",
        ),
        Witness(
            setup="x = leaf(torch.tensor([[1000.0, 0.0]], dtype=dtype))",
            hazard="e = x.exp(); y = e / e.sum(dim=-1, keepdim=True)",
            fixed="e = (x - x.max(dim=-1, keepdim=True).values).exp(); y = e / e.sum(dim=-1, keepdim=True)",
        ),
        Witness(
            setup="x = leaf(torch.tensor([[1000.0, 0.0]], dtype=dtype))",
            hazard="y = torch.log(torch.exp(x).sum(-1))",
            fixed="y = torch.logsumexp(x, dim=-1)",
        ),
        Witness(
            setup="x = leaf(torch.tensor([100.0], dtype=dtype))",
            hazard="y = torch.log(1 + torch.exp(x))",
            fixed="y = F.softplus(x)",
        ),
        Witness(
            setup="x = leaf(torch.tensor([100.0], dtype=dtype))",
            hazard="y = x.exp().add(1).log()",
            fixed="y = torch.logaddexp(x, torch.zeros_like(x))",
        ),
        Witness(  # a per-node softmax over edges (GNN attention): edges 0 and 1 point at node 0, edge 2 at node 1
            setup="alpha = leaf(torch.tensor([100.0, 0.0, 1.0], dtype=dtype)); idx = torch.tensor([0, 0, 1])",
            hazard="e = alpha.exp(); denom = torch.zeros(2, dtype=dtype).index_add_(0, idx, e); y = e / denom[idx]",
            fixed="m = torch.full((2,), float('-inf'), dtype=dtype).scatter_reduce(0, idx, alpha.detach(), 'amax'); "
                  "e = (alpha - m[idx]).exp(); denom = torch.zeros(2, dtype=dtype).index_add_(0, idx, e); "
                  "y = e / denom[idx]",
        ),
    )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        self._check_division(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check_division(node)

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.operand is None or not self.facts.is_tensor_method(tc):
            self._check_division(node)
            return
        if tc.key in ("log", "log_"):
            self._check_log(node, tc)
        elif tc.key in ("log1p", "special.log1p"):
            found = self._exp(tc.operand, self.ctx.at())
            if found is not None:
                self._softplus(node, found, tc.args)
        else:
            self._check_division(node)

    # -- exp(x) / exp(x).sum() --------------------------------------------
    def _check_division(self, node: cst.CSTNode) -> None:
        found = division(node, self.ctx)
        if found is None or found.numerator is None:
            return
        at = self.ctx.at()
        numerator = self._exp(found.numerator, at, selected=True)  # ``e.diag() / e.sum(1)``: one entry
        if numerator is None:
            return
        divisor, where, eps = _strip_eps(self, found.divisor, at)
        total = self._sum_of_exp(divisor, where)
        if total is None:
            self._check_segment(node, numerator, divisor, where)
            return
        summed, sum_call = total
        if summed.call.node is not numerator.call.node and not summed.call.node.deep_equals(numerator.call.node):
            return
        verdict = self._danger(numerator)
        if verdict is None:
            return
        fix = None
        if verdict == "overflow" and not eps and isinstance(node, cst.BinaryOperation):
            fix = self._softmax_fix(node, numerator, sum_call, at)
        self.report(node, f"hand-written softmax `{code(self.ctx, node)}`: {_WHY[verdict]}; use "
                          f"`torch.softmax(x, dim)`", fix=fix, target=numerator.argument)

    # -- exp(x) / scatter_sum(exp(x), index)[index]: a per-segment softmax (GNN attention) --------
    def _check_segment(self, node: cst.CSTNode, numerator: _Exp, divisor: cst.BaseExpression, at: At) -> None:
        segment = self.facts.segment_reduction(divisor, at)
        if segment is None or segment[0] != "sum":
            return
        summed = self._exp(segment[1], segment[2])
        if summed is None or summed.call.node is not numerator.call.node \
                and not summed.call.node.deep_equals(numerator.call.node):
            return
        judged = self._overflow(numerator, "a score")
        if judged is None:
            return
        self.report(node, f"hand-written segment softmax `{code(self.ctx, node)}`: exp overflows to inf "
                          f"{judged.reached_by} and inf / inf is NaN; subtract each segment's max first "
                          "(`x - scatter_max(x, index)[0][index]`) or use `torch_geometric.utils.softmax`",
                    target=numerator.argument, **judged.extra())

    # -- log(sum(exp(x))), log(exp(a) + exp(b)), log(1 + exp(x)) ----------
    def _check_log(self, node: cst.Call, tc: TorchCall) -> None:
        at = self.ctx.at()
        assert tc.operand is not None
        inner, inner_at, eps = _strip_eps(self, tc.operand, at, keep_one=True)
        total = self._sum_of_exp(inner, inner_at)
        if total is not None:
            found, sum_call = total
            verdict = self._danger(found)
            if verdict is None:
                return
            fix = self._logsumexp_fix(node, found, sum_call, at) if not eps and not tc.args else None
            self.report(node, f"hand-written logsumexp `{code(self.ctx, node)}`: {_WHY_LOG[verdict]}; use "
                              "`torch.logsumexp(x, dim)`", fix=fix, target=found.argument)
            return
        value, where = self.facts.resolve(inner, inner_at)
        terms = self._terms(value)
        if terms is None:
            return
        first, second = terms
        left, right = self._exp(first, where), self._exp(second, where)
        if left is not None and right is not None:
            if self._danger(left) == "overflow" or self._danger(right) == "overflow":
                fix = self._logaddexp_fix(node, left, right, at) if not tc.args else None
                self.report(node, f"`{code(self.ctx, node)}`: log of a sum of exps overflows to inf for large "
                                  "arguments (NaN gradient); use `torch.logaddexp(a, b)`", fix=fix,
                            target=left.argument)
            return
        for one, other in ((first, right), (second, left)):
            if other is not None and self.facts.literal(one, where) == 1.0:
                self._softplus(node, other, tc.args)
                return

    def _terms(self, value: cst.BaseExpression) -> Optional[tuple[cst.BaseExpression, cst.BaseExpression]]:
        """The two terms of ``a + b``, ``a.add(b)`` or ``torch.add(a, b)`` (without ``alpha=``)."""
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
            return value.left, value.right
        if isinstance(value, cst.Call):
            tc = self.ctx.match(value)
            if tc is not None and tc.key == "add" and tc.operand is not None and len(tc.args) == 1 \
                    and tc.args[0].keyword is None and not tc.args[0].star:
                return tc.operand, tc.args[0].value
        return None

    def _overflow(self, found: _Exp, noun: str) -> "Optional[Judgement]":
        """The analysis's judgement of ``exp(argument)`` overflowing (None: it cannot, or nothing matters)."""
        fp16 = self.ctx.fp16_evidence() is not None
        limit, dtype = (_EXP_LIMIT["float16"], "float16") if fp16 else (_EXP_LIMIT["float32"], "float32")
        bound = self.facts.upper_bound(found.argument, found.at)
        if bound is not None and (bound.shifted or bound.value <= limit) \
                or self.facts.is_constant(found.argument, found.at):
            return None
        trigger = overflow_trigger(self.facts, found.argument, found.at, limit, dtype, noun)
        return self.judge(found.argument, trigger=trigger)

    def _softplus(self, node: cst.Call, found: _Exp, args) -> None:
        judged = self._overflow(found, "an argument")
        if judged is None:
            return
        fix = None
        callee = self.facts.spell("F.softplus", _callee(node))
        if callee is not None and not args and self._reusable(found, self.ctx.at()):
            fix = FixSpec(UNSAFE, "use `F.softplus`",
                          (Replace(node, f"{callee}({self._text(found.argument)})"),))
        if self._selected_below(node, found.argument):
            # ``where(x > 20, x, log(1 + exp(x)))``: the forward value is finite; only the where trap's
            # gradient (NaN where exp overflows, x above 88) remains
            self.report(node, f"hand-written softplus `{code(self.ctx, node)}` inside a `where` that selects x "
                              "for large x: the forward value is finite, but the unselected branch's gradient "
                              "is NaN where exp(x) overflows (x above 88 in float32); use `F.softplus(x)`",
                        fix=fix, target=found.argument, confidence="low")
            return
        self.report(node, f"hand-written softplus `{code(self.ctx, node)}`: exp overflows to inf "
                          f"{judged.reached_by}, with a NaN gradient (exp / (1 + exp) = inf / inf); use "
                          "`F.softplus(x)`", fix=fix, target=found.argument, **judged.extra())

    def _selected_below(self, node: cst.CSTNode, argument: cst.BaseExpression) -> bool:
        """``node`` is a branch of ``where(x > c, ..., node)`` testing its own argument ``x`` from above."""
        for ancestor in reversed(self.ctx.stack[:-1]):
            if not isinstance(ancestor, cst.Call):
                continue
            tc = self.ctx.match(ancestor)
            if tc is None or tc.key != "where" or not isinstance(tc.operand, cst.Comparison):
                continue
            test = tc.operand
            return len(test.comparisons) == 1 and isinstance(
                test.comparisons[0].operator, (cst.GreaterThan, cst.GreaterThanEqual)) \
                and self.ctx.module is not None \
                and self.ctx.module.code_for_node(test.left) == self.ctx.module.code_for_node(argument)
        return False

    # -- helpers ----------------------------------------------------------
    def _exp(self, expr: cst.BaseExpression, at: At, selected: bool = False) -> Optional[_Exp]:
        found = self.facts.exp_call(expr, at, selected)
        if found is None:
            return None
        tc, where = found
        stripped = expr
        return _Exp(tc, where, nested=stripped is tc.node)

    def _sum_of_exp(self, expr: cst.BaseExpression, at: At) -> Optional[tuple[_Exp, TorchCall]]:
        expr, at = self._unexpanded(expr, at)
        found = self.facts.call(expr, at)
        if found is None:
            return None
        tc, where = found
        if tc.key != "sum" or tc.operand is None or not self.facts.is_tensor_method(tc):
            return None
        inner = self._exp(tc.operand, where)
        if inner is None:
            return None
        return _Exp(inner.call, inner.at, inner.nested and tc.node is expr), tc

    def _unexpanded(self, expr: cst.BaseExpression, at: At) -> tuple[cst.BaseExpression, At]:
        """A sum given its dim back for broadcasting: ``s.unsqueeze(-1)``, ``s[:, None]``, ``s.view(-1, 1)``
        (through names) -> ``s``; anything else as it is."""
        for _ in range(4):
            value, where = self.facts.resolve(expr, at)
            if isinstance(value, cst.Subscript) and all(
                    isinstance(e.slice, cst.Index) and (isinstance(e.slice.value, cst.Name) and e.slice.value.value
                                                        == "None" or isinstance(e.slice.value, cst.Ellipsis))
                    or isinstance(e.slice, cst.Slice) and e.slice.lower is None and e.slice.upper is None
                    for e in value.slice):
                expr, at = value.value, where
                continue
            tc = self.ctx.match(value) if isinstance(value, cst.Call) else None
            if tc is not None and tc.operand is not None and (tc.key in RESHAPES or tc.key in COPIES):
                expr, at = tc.operand, where
                continue
            return expr, at
        return expr, at

    def _danger(self, found: _Exp) -> Optional[str]:
        """``overflow`` or None (safe) for a sum of ``exp(argument)`` terms."""
        bound: Optional[Bound] = self.facts.upper_bound(found.argument, found.at)
        if bound is None:
            return None if self.facts.is_constant(found.argument, found.at) else "overflow"
        if bound.shifted or bound.value <= 0:
            # A never-positive argument cannot overflow. Every term could still underflow to 0
            # (``exp(-d)`` with all distances above ~104), but whether they can is a guess: a
            # Gaussian kernel's centre term is exp(0) = 1. Prefer silence.
            return None
        limit = _SAFE_BOUND["float16"] if self.ctx.fp16_evidence() else _SAFE_BOUND["float32"]
        return None if bound.value <= limit else "overflow"

    def _reusable(self, found: _Exp, now: At) -> bool:
        """The exp argument can be written again at ``now`` and mean the same value."""
        if found.nested:
            return True
        return _stable(self, found.argument, found.at, now)

    def _text(self, node: cst.CSTNode) -> str:
        assert self.ctx.module is not None
        return self.ctx.module.code_for_node(node).strip()

    def _softmax_fix(self, node: cst.BinaryOperation, found: _Exp, sum_call: TorchCall,
                     at: At) -> Optional[FixSpec]:
        dim = sum_call.argument("dim", 0)
        keepdim = sum_call.argument("keepdim", 1)
        if dim is None or keepdim is None or not (isinstance(keepdim, cst.Name) and keepdim.value == "True"):
            return None
        if len(sum_call.args) != 2 or not self._reusable(found, at):
            return None
        callee = self.facts.spell("softmax", _callee(node)) or self.facts.spell("F.softmax", _callee(node))
        if callee is None:
            return None
        return FixSpec(SAFE, "use `torch.softmax`", (
            Replace(node, f"{callee}({self._text(found.argument)}, dim={self._text(dim)})"),))

    def _logsumexp_fix(self, node: cst.Call, found: _Exp, sum_call: TorchCall, at: At) -> Optional[FixSpec]:
        dim = sum_call.argument("dim", 0)
        keepdim = sum_call.argument("keepdim", 1)
        expected = 1 + (keepdim is not None)
        if dim is None or len(sum_call.args) != expected or not self._reusable(found, at):
            return None
        callee = self.facts.spell("logsumexp", _callee(node))
        if callee is None:
            return None
        text = f"{callee}({self._text(found.argument)}, dim={self._text(dim)}"
        if keepdim is not None:
            text += f", keepdim={self._text(keepdim)}"
        return FixSpec(SAFE, "use `torch.logsumexp`", (Replace(node, text + ")"),))

    def _logaddexp_fix(self, node: cst.Call, left: _Exp, right: _Exp, at: At) -> Optional[FixSpec]:
        callee = self.facts.spell("logaddexp", _callee(node))
        if callee is None or not self._reusable(left, at) or not self._reusable(right, at):
            return None
        return FixSpec(SAFE, "use `torch.logaddexp`", (
            Replace(node, f"{callee}({self._text(left.argument)}, {self._text(right.argument)})"),))


_WHY = {
    "overflow": "exp overflows to inf for logits above ~88 (float32) or ~11 (float16) and inf / inf is NaN",
}
_WHY_LOG = {
    "overflow": "exp overflows to inf for arguments above ~88 (float32) or ~11 (float16), giving inf and a NaN "
                "gradient",
}


def _strip_eps(rule: Rule, expr: cst.BaseExpression, at: At,
               keep_one: bool = False) -> tuple[cst.BaseExpression, At, bool]:
    """``s + eps`` -> (s, where s is read, True); ``keep_one`` leaves ``1 + exp(x)`` alone (a softplus)."""
    value, where = rule.facts.resolve(expr, at)
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
        for guard, rest in ((value.right, value.left), (value.left, value.right)):
            literal = rule.facts.literal(guard, where)
            if keep_one and literal == 1.0:
                continue
            if literal is not None and literal > 0 or literal is None and isinstance(guard, (cst.Name, cst.Attribute)) \
                    and rule.facts.exp_call(guard, where) is None and rule.facts.is_positive(guard, where):
                return rest, where, True
    return expr, at, False


def _callee(node: cst.CSTNode) -> Optional[cst.BaseExpression]:
    """The function a flagged expression calls (``th.log``), or the first call inside it: its alias is reused."""
    stack = [node]
    while stack:
        current = stack.pop(0)
        if isinstance(current, cst.Call) and isinstance(current.func, (cst.Name, cst.Attribute)):
            return current.func
        stack.extend(current.children)
    return None


def _stable(rule: Rule, expr: cst.BaseExpression, then: At, now: At) -> bool:
    """``expr`` holds the same value at ``now`` as at ``then``: literals and names that were not rebound."""
    if isinstance(expr, (cst.Integer, cst.Float)):
        return True
    if isinstance(expr, cst.Name):
        before = lookup(then.scope, expr.value, then.order)
        if before is None or before is not lookup(now.scope, expr.value, now.order):
            return False
        return not rule.facts.mutated_in_place(expr.value, before, now)
    if isinstance(expr, cst.UnaryOperation):
        return _stable(rule, expr.expression, then, now)
    if isinstance(expr, cst.BinaryOperation):
        return _stable(rule, expr.left, then, now) and _stable(rule, expr.right, then, now)
    return False
