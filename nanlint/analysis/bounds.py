"""Upper bounds of exp arguments and non-negative values."""
from __future__ import annotations

import math
from typing import Optional

import libcst as cst

from ..names import TorchCall, builtin_name, match_call
from .ops import ENTRY_SELECTIONS
from .vocabulary import At, Bound, REDUCE_OPS, SEGMENT_FUNCTIONS, SEGMENT_HELPER, SEGMENT_METHODS, TRANSPARENT_OPS, \
    _LOG_PROBABILITY_OPS, _MAX_DEPTH, _NON_NEGATIVE_OPS, _SEGMENT_REDUCTIONS, _UNIT_BOUNDED_OPS, _same_code


class Bounds:
    """Upper bounds of exp arguments and non-negative values."""
    # -- exp arguments: upper bounds -----------------------------------------------
    def exp_call(self, expr: cst.BaseExpression, at: At, selected: bool = False) -> Optional[tuple[TorchCall, At]]:
        """``torch.exp(a)`` / ``a.exp()`` behind ``expr`` (through names): the call and where it is evaluated.
        ``selected``: also behind a selection of its entries (``e.diag()``, ``e.gather(1, y)``, ``e[:, 0]``: the
        numerator of one softmax entry)."""
        if selected:
            for _ in range(_MAX_DEPTH):
                value, where = self.resolve(expr, at)
                if isinstance(value, cst.Subscript):
                    expr, at = value.value, where
                    continue
                picked = match_call(value, self.imports) if isinstance(value, cst.Call) else None
                if picked is None or picked.operand is None or not (picked.key in ENTRY_SELECTIONS
                                                                     or picked.key in TRANSPARENT_OPS):
                    break
                expr, at = picked.operand, where
        found = self.call(expr, at)
        if found is not None and found[0].key in ("exp", "special.exp") and found[0].operand is not None \
                and self.is_tensor_method(found[0]):
            return found
        return None

    def upper_bound(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional["Bound"]:
        """A visible upper bound of ``expr``: clamps, ``x - x.max(...)``, log-probabilities, bounded
        activations, negated non-negative values, and literal arithmetic over those."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        value = self.literal(expr, at)
        if value is not None:
            return Bound(value) if not math.isnan(value) else None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.index is not None:
                return None
            where = At(b.scope, b.order)
            if b.operator is not None:
                if isinstance(b.operator, cst.SubtractAssign) and b.previous is not None \
                        and self._is_max_of(b.value, expr, where):
                    return Bound(0.0, shifted=True)  # ``x -= x.max(-1, keepdim=True)[0]``
                return None
            return self.upper_bound(b.value, where, d)
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return Bound(0.0) if self.non_negative(expr.expression, at, d) else None
        if isinstance(expr, cst.Subscript):
            return self.upper_bound(expr.value, at, d)
        if isinstance(expr, cst.BinaryOperation):
            return self._binary_bound(expr, at, d)
        if isinstance(expr, cst.Call):
            return self._call_bound(expr, at, d)
        return None

    def _binary_bound(self, expr: cst.BinaryOperation, at: At, depth: int) -> Optional["Bound"]:
        op = expr.operator
        if isinstance(op, cst.Subtract):
            if self._is_max_of(expr.right, expr.left, at):
                return Bound(0.0, shifted=True)
            left = self.upper_bound(expr.left, at, depth)
            if left is not None and self.non_negative(expr.right, at, depth):
                return left
            return None
        if isinstance(op, cst.Add):
            left, right = self.upper_bound(expr.left, at, depth), self.upper_bound(expr.right, at, depth)
            return Bound(left.value + right.value) if left is not None and right is not None else None
        if isinstance(op, cst.Multiply):
            for a, b in ((expr.left, expr.right), (expr.right, expr.left)):
                scale = self.literal(a, at)
                if scale is None:
                    continue
                if scale >= 0:
                    inner = self.upper_bound(b, at, depth)
                    return Bound(scale * inner.value, inner.shifted) if inner is not None else None
                return Bound(0.0) if self.non_negative(b, at, depth) else None
            return None
        if isinstance(op, cst.Divide):
            inner = self.upper_bound(expr.left, at, depth)
            if inner is None:
                return None
            scale = self.literal(expr.right, at)
            if scale is not None:
                return Bound(inner.value / scale, inner.shifted) if scale > 0 else None
            if inner.value <= 0 and (self.is_positive(expr.right, at) or self.non_negative(expr.right, at, depth)):
                return Bound(0.0, inner.shifted)  # ``(x - x.max()) / temperature``, ``-d2 / (2 * sigma ** 2)``
            return None
        return None

    def _call_bound(self, call: cst.Call, at: At, depth: int) -> Optional["Bound"]:
        builtin = builtin_name(call, self.imports)
        if builtin == "min" and call.args:
            bounds = [self.upper_bound(a.value, at, depth) for a in call.args if not a.star]
            known = [b for b in bounds if b is not None]
            return min(known, key=lambda b: b.value) if known else None
        tc = match_call(call, self.imports)
        if tc is None or not self.is_tensor_method(tc):
            return None
        key = tc.key
        if key in _LOG_PROBABILITY_OPS:
            return Bound(0.0, shifted=True)
        if key in _UNIT_BOUNDED_OPS:
            return Bound(1.0)
        if tc.operand is None:
            return None
        if key in ("clamp", "clip", "clamp_max", "clamp_", "clip_", "minimum", "fmin"):
            if key in ("clamp", "clip", "clamp_", "clip_"):
                high = tc.argument("max", 1)
            elif key == "clamp_max":
                high = tc.argument("max", 0)
            else:
                high = tc.positional(0)
            limit = self.literal(high, at) if high is not None else None
            inner = self.upper_bound(tc.operand, at, depth)
            if limit is not None and not math.isnan(limit):
                return Bound(limit) if inner is None or limit < inner.value else inner
            return inner
        if key in ("log", "log_") and self.probability(tc.operand, at) is not None:
            return Bound(0.0, shifted=True)  # the log of a softmax output is a log-probability
        if key in ("neg", "negative"):
            return Bound(0.0) if self.non_negative(tc.operand, at, depth) else None
        if key in ("sub", "subtract") and tc.positional(0) is not None:
            if self._is_max_of(tc.positional(0), tc.operand, at):
                return Bound(0.0, shifted=True)
            return None
        if key in TRANSPARENT_OPS:
            return self.upper_bound(tc.operand, at, depth)
        return None

    # -- segment (scatter) reductions -------------------------------------------
    def segment_reduction(self, expr: cst.BaseExpression, at: At) -> Optional[tuple[str, cst.BaseExpression, At]]:
        """``expr`` as a per-segment reduction read back at each element, through names: ``("sum", src, at)``
        for ``denom[index]`` / ``denom.index_select(0, index)`` / ``denom.gather(...)`` with ``denom =
        zeros(n).index_add_(0, index, src)`` (or ``denom.index_add_(...)`` as a statement), ``scatter_add_``,
        ``scatter_reduce(..., "sum")``, ``torch_scatter.scatter(src, index)``, ``segment_sum(src, ...)``;
        ``("max", src, at)`` for ``scatter_max(src, index)[0][index]``, ``scatter(src, index, reduce="max")``,
        ``scatter_reduce(..., "amax")``. Also the reduction itself, unindexed, and with an eps added."""
        value, where = expr, at
        for _ in range(8):  # names, ``[index]``, ``[0]`` (scatter_max's values), ``.index_select(0, index)``
            if isinstance(value, cst.Name):
                in_place = self._segment_in_place(value, where)
                if in_place is not None:
                    return in_place
                followed, where = self.resolve(value, where)
                if followed is value:
                    return None
                value = followed
                continue
            if isinstance(value, cst.Subscript):
                value = value.value
                continue
            if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
                eps = self.literal(value.right, where)  # ``scatter(e, index) + 1e-16``
                if eps is None or eps <= 0:
                    return None
                value = value.left
                continue
            if isinstance(value, cst.Call):
                tc = match_call(value, self.imports)
                if tc is not None and tc.operand is not None and tc.key in ("index_select", "gather") \
                        and tc.is_method:
                    value = tc.operand
                    continue
                return self._segment_call(value, where)
            return None
        return None

    def _segment_call(self, call: cst.Call, at: At) -> Optional[tuple[str, cst.BaseExpression, At]]:
        qualified = self.imports.qualify(call.func) if isinstance(call.func, (cst.Name, cst.Attribute)) else None
        helper = call.func.value if isinstance(call.func, cst.Name) else None
        if qualified in SEGMENT_FUNCTIONS or qualified is None and helper and SEGMENT_HELPER.match(helper):
            kind = SEGMENT_FUNCTIONS.get(qualified or "") or ("max" if "max" in (helper or "") else "sum")
            positional = [a.value for a in call.args if a.keyword is None and not a.star]
            reduce = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "reduce"), None)
            if reduce is not None:
                kind = _SEGMENT_REDUCTIONS.get(reduce.evaluated_value) if isinstance(reduce, cst.SimpleString) \
                    else None  # type: ignore[assignment]
            return (kind, positional[0], at) if positional and kind else None
        tc = match_call(call, self.imports)
        if tc is None or tc.key not in SEGMENT_METHODS or tc.operand is None:
            return None
        index, keyword = SEGMENT_METHODS[tc.key]
        source = tc.argument(keyword, index)
        if tc.key.startswith(("scatter_reduce", "index_reduce")):
            reduce = tc.argument("reduce", index + 1)
            kind = _SEGMENT_REDUCTIONS.get(reduce.evaluated_value) if isinstance(reduce, cst.SimpleString) else None
        else:
            kind = "sum"
        return (kind, source, at) if source is not None and kind else None  # type: ignore[return-value]

    def _segment_in_place(self, name: cst.BaseExpression, at: At) -> Optional[tuple[str, cst.BaseExpression, At]]:
        """``denom = torch.zeros(n); denom.index_add_(0, index, src)``: the in-place reduction into a name."""
        b = self.binding(name, at)
        if b is None or not isinstance(name, cst.Name):
            return None
        for call, order in self.in_place_calls(name.value, b, at):
            found = self._segment_call(call, At(at.scope, order))
            if found is not None:
                return found
        return None

    def _is_max_of(self, m: cst.BaseExpression, x: cst.BaseExpression, at: At, reduced: bool = False) -> bool:
        """``m`` is ``x.max(...)[0]``, ``x.max(...).values``, ``x.amax(...)``, ``x.logsumexp(...)``, ``x.max()``,
        or ``x``'s per-segment max read back at each element (``scatter_max(x, index)[0][index]``)."""
        segment = self.segment_reduction(m, at)
        if segment is not None and segment[0] == "max":
            source, _ = self.resolve(_undetached(segment[1]), segment[2])
            target, _ = self.resolve(x, at)
            return _same_code(_undetached(segment[1]), x) or _same_code(source, target)
        value, where, picked = self.reduction_values(m, at)
        reduced = reduced or picked
        if not isinstance(value, cst.Call):
            return False
        tc = match_call(value, self.imports)
        if tc is None or tc.operand is None:
            return False
        if tc.key in TRANSPARENT_OPS:
            return self._is_max_of(tc.operand, x, where, reduced)
        if tc.key not in ("max", "amax", "logsumexp", "special.logsumexp"):
            return False
        if tc.key == "max" and tc.args and not reduced:
            return False  # ``torch.max(a, b)`` is elementwise; the reduction returns (values, indices)
        operand, _ = self.resolve(tc.operand, where)
        target, _ = self.resolve(x, at)
        return _same_code(tc.operand, x) or _same_code(operand, target)

    def non_negative(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> bool:
        """Known to be >= 0: a norm, square, variance, MSE, abs, relu, exp, softplus, distance, probability."""
        if depth > _MAX_DEPTH:
            return False
        d = depth + 1
        value = self.literal(expr, at)
        if value is not None:
            return value >= 0
        source = self.zero_source(expr, at)
        if source is not None:
            return not source.negative
        if self.probability(expr, at) is not None:
            return True
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.assignment(expr, at)
            if b is None:
                return False
            return self.non_negative(b.value, At(b.scope, b.order), d)
        if isinstance(expr, cst.Subscript):
            return self.non_negative(expr.value, at, d)
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, cst.Power):
                exponent = self.literal(expr.right, at)
                return exponent is not None and exponent % 2 == 0 or self.non_negative(expr.left, at, d)
            if isinstance(expr.operator, (cst.Add, cst.Multiply, cst.Divide)):
                return self.non_negative(expr.left, at, d) and self.non_negative(expr.right, at, d)
            return False
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None or not self.is_tensor_method(tc):
                return False
            if tc.key in _NON_NEGATIVE_OPS:
                return True
            if tc.key in ("clamp", "clip", "clamp_min", "clamp_", "clip_"):
                low = self.literal(tc.argument("min", 0), at)
                return low is not None and low >= 0 or self.non_negative(tc.operand, at, d)
            if tc.key in TRANSPARENT_OPS or tc.key in REDUCE_OPS:
                return self.non_negative(tc.operand, at, d)
        return False



def _undetached(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``x.detach()`` -> ``x`` (a max taken without gradient shifts the same values)."""
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "detach" \
            and not expr.args:
        expr = expr.func.value
    return expr
