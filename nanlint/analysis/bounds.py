"""Upper bounds of exp arguments and non-negative values."""
from __future__ import annotations

import math
from typing import Optional

import libcst as cst

from ..names import TorchCall, builtin_name, match_call
from .vocabulary import At, Bound, REDUCE_OPS, TRANSPARENT_OPS, _LOG_PROBABILITY_OPS, _MAX_DEPTH, _NON_NEGATIVE_OPS, _UNIT_BOUNDED_OPS, _same_code


class Bounds:
    """Upper bounds of exp arguments and non-negative values."""
    # -- exp arguments: upper bounds -----------------------------------------------
    def exp_call(self, expr: cst.BaseExpression, at: At) -> Optional[tuple[TorchCall, At]]:
        """``torch.exp(a)`` / ``a.exp()`` behind ``expr`` (through names): the call and where it is evaluated."""
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

    def _is_max_of(self, m: cst.BaseExpression, x: cst.BaseExpression, at: At, reduced: bool = False) -> bool:
        """``m`` is ``x.max(...)[0]``, ``x.max(...).values``, ``x.amax(...)``, ``x.logsumexp(...)``, ``x.max()``."""
        value, where = self.resolve(m, at)
        if isinstance(value, cst.Subscript):
            value, where = self.resolve(value.value, where)
            reduced = True
        elif isinstance(value, cst.Attribute) and value.attr.value == "values":
            value, where = self.resolve(value.value, where)
            reduced = True
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
        if self.zero_source(expr, at) is not None or self.probability(expr, at) is not None:
            return True
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
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

