"""Can a value be exactly zero, and what kind of zero is it (a norm, a variance, an MSE...)?"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import libcst as cst

from ..names import TorchCall, last_name, match_call
from ..scope import Binding
from .ops import ADD_PRODUCT_OPS as _ADD_PRODUCT_OPS, ORDER_STATISTICS as _ORDER_STATISTICS, MATRIX_PRODUCTS as _MATRIX_PRODUCTS, VANISHING_OPS as _VANISHING_OPS
from .vocabulary import VARIANCE_NAME, At, NORM_KINDS, NORM_OPS, REDUCE_OPS, SQUARE_KINDS, TRANSPARENT_OPS, ZeroSource, _FACTORIES, _MAX_DEPTH, _cosine_like, _is_difference, _literal_index, _same_code, _squared_base, same_vector



def _self_product(a: Optional[cst.BaseExpression], b: Optional[cst.BaseExpression]) -> bool:
    """``x`` times ``x.t()``: a batch times its own transpose."""
    return a is not None and b is not None and same_vector(a, b)


def _unscaled(expr: cst.BaseExpression, facts: "ZeroSources", at: At) -> cst.BaseExpression:
    """``2 * x`` -> ``x``: a factor of a matrix product without its literal scale."""
    while isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
        if facts.literal(expr.left, at) is not None:  # type: ignore[attr-defined]
            expr = expr.right
        elif facts.literal(expr.right, at) is not None:  # type: ignore[attr-defined]
            expr = expr.left
        else:
            break
    return expr


def _signed_terms(expr: cst.BaseExpression, sign: int = 1) -> list[tuple[int, cst.BaseExpression]]:
    """The terms of a chain of ``+`` and ``-`` with their signs: ``a - b + c`` -> [(1, a), (-1, b), (1, c)]."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract)):
        right = -sign if isinstance(expr.operator, cst.Subtract) else sign
        return _signed_terms(expr.left, sign) + _signed_terms(expr.right, right)
    return [(sign, expr)]


def _terms(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The terms of a sum written with ``+`` (``a + b + c``), else ``[expr]``."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
        return _terms(expr.left) + _terms(expr.right)
    return [expr]


class ZeroSources:
    """Can a value be exactly zero, and what kind of zero is it (a norm, a variance, an MSE...)?"""
    # -- zero sources ---------------------------------------------------
    def zero_source(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[ZeroSource]:
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, cst.Attribute) and expr.attr.value == "values" and isinstance(expr.value, cst.Call):
            return self.zero_source(expr.value, at, d)  # ``d2.min(dim=1).values``
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.is_parameter:
                # a parameter or another object's statistic named like a variance (``var``, ``rms.var``): its
                # origin is unseen, the name is the prior (docs/analysis.md)
                last = expr.value if isinstance(expr, cst.Name) else expr.attr.value
                if VARIANCE_NAME.match(last) and not (isinstance(expr, cst.Name) and b is not None
                                                      and self.mutated_in_place(expr.value, b, at)):
                    return ZeroSource("variance", expr)
            if b is None or b.value is None:
                return None
            where = At(b.scope, b.order)
            if b.operator is not None:
                if isinstance(b.operator, cst.AddAssign) and self.is_positive(b.value, where):
                    return None
                if isinstance(b.operator, (cst.MultiplyAssign, cst.DivideAssign)) and b.previous is not None:
                    return self._binding_source(b.previous, d)
                return None
            return self._binding_source(b, d, expr.value if isinstance(expr, cst.Name) else "", at)
        if isinstance(expr, cst.Subscript):
            index = _literal_index(expr)
            if index is not None:
                source = self._element_source(expr.value, index, at, d)
                if source is not None:
                    return source
            return self.zero_source(expr.value, at, d)
        if isinstance(expr, cst.Call):
            return self._call_source(expr, at, d)
        if isinstance(expr, cst.BinaryOperation):
            return self._binary_source(expr, at, d)
        return None

    def _binding_source(self, b: Binding, depth: int, name: str = "", at: Optional[At] = None
                        ) -> Optional[ZeroSource]:
        if b.value is None:
            return None
        where = At(b.scope, b.order)
        if name and at is not None:
            calls = self.in_place_calls(name, b, at)
            if calls:  # ``dist = xx + yy; dist.addmm_(x, y.t(), alpha=-2)``
                tc = match_call(calls[0][0], self.imports)
                if len(calls) == 1 and tc is not None and tc.key in _ADD_PRODUCT_OPS and b.index is None \
                        and not b.is_parameter:
                    return self._expanded_distance(tc, tc.node, b.value, where, depth)
                floors = [self._in_place_floor(call, where) for call, _ in calls]
                if b.index is None and not b.is_parameter and any(f is not None for f in floors):
                    # ``var.clamp_(min=0)`` between the assignment and this read: no longer below 0; a positive
                    # floor keeps it off 0 altogether
                    if any(f is not None and f > 0 for f in floors):
                        return None
                    source = self.zero_source(b.value, where, depth)
                    return replace(source, negative=False) if source is not None else None
        if b.index is not None:
            return self._element_source(b.value, b.index, where, depth)
        if b.is_parameter:
            return None  # a default argument is not the value the caller passes
        return self.zero_source(b.value, where, depth)

    def _reduces(self, tc: TorchCall, at: At) -> bool:
        """``x.min(1)``, ``torch.min(x, dim=1)``, ``x.min()``: a reduction, not ``torch.min(x, y)`` elementwise."""
        if tc.key not in ("min", "max"):
            return True
        if tc.keyword("dim") is not None or not tc.args:
            return True
        first = tc.positional(0)
        value = self.literal(first, at) if first is not None else None
        return value is not None and value == int(value)

    def _in_place_floor(self, call: cst.Call, at: At) -> Optional[float]:
        """The floor an in-place clamp sets (``x.clamp_(min=0)``, ``x.clamp_min_(eps)``, ``x.relu_()``: 0); None
        for any other in-place call or a floor that is not a literal."""
        tc = match_call(call, self.imports)
        if tc is None:
            return None
        if tc.key == "relu_":
            return 0.0
        if tc.key in ("clamp_", "clip_", "clamp_min_"):
            return self.literal(tc.argument("min", 0), at)
        return None

    def _element_source(self, expr: cst.BaseExpression, index: int, at: At, depth: int) -> Optional[ZeroSource]:
        """``torch.std_mean(x)[0]`` / ``std, mean = torch.std_mean(x)`` / ``a, b = x.norm(), y``."""
        value, where = self.resolve(expr, at)
        if isinstance(value, (cst.Tuple, cst.List)):
            elements = value.elements
            if index < len(elements) and not any(isinstance(e, cst.StarredElement) for e in elements):
                return self.zero_source(elements[index].value, where, depth)
            return None
        found = self.call(expr, at)
        if found is None:
            return None
        tc, _ = found
        if tc.key == "std_mean" and index == 0:
            return ZeroSource("standard deviation", tc.node)
        if tc.key == "var_mean" and index == 0:
            return ZeroSource("variance", tc.node)
        if tc.key in _ORDER_STATISTICS and index == 0 and tc.operand is not None and self._reduces(tc, where):
            return self.zero_source(tc.operand, where, depth)  # ``m, _ = d2.min(2)``: the values
        return None

    def _call_source(self, call: cst.Call, at: At, depth: int) -> Optional[ZeroSource]:
        criterion = self._criterion_source(call, at)
        if criterion is not None:
            return criterion
        tc = match_call(call, self.imports)
        if tc is None:
            return None
        key = tc.key
        operand = tc.operand
        if key in NORM_OPS:
            return ZeroSource("norm", call)
        if key == "std":
            return ZeroSource("standard deviation", call)
        if key == "var":
            return ZeroSource("variance", call)
        if key in ("F.mse_loss",):
            return ZeroSource("MSE", call)
        if operand is None:
            return None
        if key in TRANSPARENT_OPS or key in ("abs", "absolute"):
            if key in ("abs", "absolute"):
                inner = self.zero_source(operand, at, depth)
                return inner
            return self.zero_source(operand, at, depth)
        if key in ("clamp", "clip", "clamp_min", "maximum", "fmax", "clamp_", "clamp_min_"):
            if self.clamp_guard(tc, at):
                return None
            inner = self.zero_source(operand, at, depth)
            low = self.literal(tc.argument("min", 0) if key != "maximum" and key != "fmax" else tc.positional(0), at)
            if inner is not None and inner.negative and low is not None and low >= 0:
                return replace(inner, negative=False)  # ``d.clamp(min=0)``: 0, no longer below it
            return inner
        if key in _ORDER_STATISTICS and self._reduces(tc, at):
            # ``d2.min(dim=1).values`` (Chamfer, batch-hard mining): some entry of a zero-able tensor, 0 when it is
            return self.zero_source(operand, at, depth)
        if key in ("square", "square_"):
            return self._square_of(operand, call, at, depth)
        if key in ("diag", "diagonal") and self._gram(operand, at):
            return ZeroSource("sum of squares", call)  # ``torch.diag(x @ x.t())``: each row's squared norm
        if key in _ADD_PRODUCT_OPS:  # ``torch.addmm(xx + yy, x, y.t(), alpha=-2)``
            return self._expanded_distance(tc, call, operand, at, depth)
        if key == "pow" or key == "float_power":
            exponent = self.literal(tc.argument("exponent", 0), at)
            return self._power_source(operand, exponent, call, at, depth)
        if key in ("sqrt", "sqrt_"):
            return self._sqrt_of(operand, call, at, depth)
        if key in REDUCE_OPS:
            inner = self.zero_source(operand, at, depth)
            if inner is None:
                return None
            if inner.kind == "weighted square":
                return ZeroSource("sum of squares", call)
            if inner.kind in ("square", "squared difference", "sum of squares", "mean of squares"):
                if key in ("mean", "nanmean") and inner.kind == "squared difference":
                    return ZeroSource("variance", call)  # ((x - mu) ** 2).mean()
                return ZeroSource("mean of squares" if "mean" in key else "sum of squares", call)
            if inner.kind in ("norm", "variance", "standard deviation", "MSE"):
                return ZeroSource(inner.kind, call)
            return None
        return None

    def _criterion_source(self, call: cst.Call, at: At) -> Optional[ZeroSource]:
        """``criterion(pred, target)`` where ``criterion = nn.MSELoss()``."""
        if not isinstance(call.func, (cst.Name, cst.Attribute)) or self.imports.is_module(call.func):
            return None
        target, _ = self.resolve(call.func, at)
        if target is not call.func and isinstance(target, cst.Call):
            tc = match_call(target, self.imports)
            if tc is not None and tc.key == "nn.MSELoss":
                return ZeroSource("MSE", call)
        return None

    def _binary_source(self, expr: cst.BinaryOperation, at: At, depth: int) -> Optional[ZeroSource]:
        op = expr.operator
        if isinstance(op, cst.Power):
            return self._power_source(expr.left, self.literal(expr.right, at), expr, at, depth)
        if isinstance(op, (cst.Add, cst.Subtract)) and self._expanded(expr, at, depth):
            return ZeroSource("expanded squared distance", expr, negative=True)  # |a|^2 + |b|^2 - 2 a.b
        if isinstance(op, cst.Add):
            for eps, other in ((expr.right, expr.left), (expr.left, expr.right)):
                small = self.literal(eps, at)
                named = isinstance(eps, (cst.Name, cst.Attribute)) and "eps" in last_name(eps).lower()
                if small is not None and 0 < small <= 1e-2 or small is None and named:
                    inner = self.zero_source(other, at, depth)
                    if inner is not None and inner.kind == "variance" and inner.negative:
                        # E[x^2] - E[x]^2 + eps: cancellation rounds below -eps (docs/probe.md row 62)
                        return ZeroSource("cancelling variance plus an eps", expr, negative=True)
            if self.is_positive(expr.left, at) or self.is_positive(expr.right, at):
                return None
            left = self.zero_source(expr.left, at, depth)
            right = self.zero_source(expr.right, at, depth)
            if left and right and left.kind in SQUARE_KINDS | NORM_KINDS and right.kind in SQUARE_KINDS | NORM_KINDS:
                return ZeroSource("sum of squares", expr)
            return None
        if isinstance(op, cst.Multiply):
            if _same_code(expr.left, expr.right):
                return ZeroSource(
                    "squared difference" if _is_difference(expr.left) else "square", expr
                )
            if all(isinstance(f, (cst.Call, cst.Name, cst.Attribute, cst.Subscript)) for f in (expr.left, expr.right)):
                left, right = self.zero_source(expr.left, at, depth), self.zero_source(expr.right, at, depth)
                if left is not None and right is not None and left.kind in NORM_KINDS and right.kind in NORM_KINDS:
                    return ZeroSource("norm", expr)  # ``a.norm() * b.norm()``: 0 when either vector is
            for factor, weight in ((expr.left, expr.right), (expr.right, expr.left)):
                inner = self.zero_source(factor, at, depth) if isinstance(factor, cst.BinaryOperation) else None
                if inner is not None and inner.kind in ("square", "squared difference") \
                        and self.literal(weight, at) is None:
                    return ZeroSource("weighted square", expr)  # ``x * x * w``: a weighted second moment
            left_const = self.literal(expr.left, at)
            right_const = self.literal(expr.right, at)
            if right_const is not None and right_const > 0:
                return self.zero_source(expr.left, at, depth)
            if left_const is not None and left_const > 0:
                return self.zero_source(expr.right, at, depth)
            return None
        if isinstance(op, cst.Divide):
            denominator = self.literal(expr.right, at)
            inner = self.zero_source(expr.left, at, depth)
            if inner is None:
                return None
            if inner.kind == "sum of squares" and denominator is None:
                return ZeroSource("mean of squares", expr)
            return ZeroSource(inner.kind, expr)
        if isinstance(op, cst.Subtract):
            if self.range_operand(expr, at) is not None:
                return ZeroSource("range (max - min)", expr)  # min-max scaling: 0 for a constant input
            # E[x^2] - E[x]^2: a variance that rounding can even make negative
            if self.literal(expr.left, at) == 1.0:
                base = _squared_base(expr.right, self, at)
                if base is not None and _cosine_like(base, self, at):
                    return ZeroSource("one minus a squared cosine", expr)  # sin(theta) at parallel vectors
                if base is not None and self.tanh_of(base, at):
                    return ZeroSource("one minus a squared tanh", expr)  # tanh's derivative, 0 once it saturates
            left = self.zero_source(expr.left, at, depth)
            right = self.zero_source(expr.right, at, depth)
            if left and right and left.kind in ("mean of squares", "sum of squares") and right.kind == "square":
                return ZeroSource("variance", expr, negative=True)
            return None
        return None

    def range_operand(self, expr: cst.BaseExpression, at: At) -> Optional[cst.BaseExpression]:
        """``x.max() - x.min()``, ``x.amax(dim) - x.amin(dim)``, ``x.max(1)[0] - x.min(1)[0]`` (also through
        names: ``hi - lo``): the range of ``x`` over the same dims, 0 for a constant input. Its operand, or
        None. ``torch.max(a, b)`` (element-wise) is not a range."""
        value, where = self.resolve(expr, at)
        if not (isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Subtract)):
            return None
        top, bottom = self._extremum(value.left, where), self._extremum(value.right, where)
        if top is None or bottom is None or top[0] != "max" or bottom[0] != "min":
            return None
        (_, high, high_args), (_, low, low_args) = top, bottom
        if not _same_code(high, low) or len(high_args) != len(low_args) \
                or not all(_same_code(a, b) for a, b in zip(high_args, low_args)):
            return None
        return high

    def _extremum(self, expr: cst.BaseExpression, at: At
                  ) -> Optional[tuple[str, cst.BaseExpression, list[cst.BaseExpression]]]:
        """``x.max(...)`` / ``x.amax(...)`` / ``torch.max(x)``, also ``[0]`` / ``.values`` of a reduction over a
        dim: ("max" or "min", x, the reduction's arguments)."""
        resolved, _ = self.resolve(expr, at)
        if isinstance(resolved, cst.Subscript) and _literal_index(resolved) != 0:
            return None  # ``x.max(1)[1]``: the indices
        value, where, _ = self.reduction_values(expr, at)
        if not isinstance(value, cst.Call):
            return None
        tc = match_call(value, self.imports)
        if tc is None or tc.operand is None or tc.key not in ("max", "min", "amax", "amin"):
            return None
        other = tc.positional(0)
        if tc.key in ("max", "min") and other is not None and self.literal(other, where) is None:
            return None  # ``torch.max(a, b)``: element-wise
        args = [a.value for a in value.args if a.value is not tc.operand]
        return ("max" if tc.key in ("max", "amax") else "min"), tc.operand, args

    def _expanded(self, expr: cst.BaseExpression, at: At, depth: int) -> bool:
        """``a2 + b2 - 2 * a @ b.T`` in any order of its terms (``sq[None] - 2 * dot + sq[:, None]``; also
        ``d - 2 * a @ b.T`` with ``d = a2 + b2``): added sums of squares and one subtracted cross term."""
        terms = _signed_terms(expr)
        subtracted = [t for sign, t in terms if sign < 0]
        added = [t for sign, t in terms if sign > 0]
        if len(subtracted) != 1 or not added or not self.cross_term(subtracted[0], at):
            return False
        for term in added:
            source = self.zero_source(term, at, depth + 1)
            if source is None or source.kind != "sum of squares":
                return False
        return True

    def tanh_of(self, expr: cst.BaseExpression, at: At) -> bool:
        """``torch.tanh(u)`` / ``u.tanh()`` / ``F.tanh(u)`` (through names): it rounds to exactly +-1 for
        |u| above 9.02 in float32, 4.51 in float16, 3.47 in bfloat16 (docs/probe.md row 61)."""
        found = self.call(expr, at)
        return found is not None and found[0].key in ("tanh", "F.tanh") and found[0].operand is not None

    def _gram(self, expr: cst.BaseExpression, at: At) -> bool:
        """``x @ x.t()`` (also ``(2 * x) @ x.t()``), ``torch.mm(x, x.T)``, also through a name: each row's inner
        product with each other."""
        value, where = self.resolve(expr, at)
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.MatrixMultiply):
            return _self_product(_unscaled(value.left, self, where), _unscaled(value.right, self, where))
        found = match_call(value, self.imports) if isinstance(value, cst.Call) else None
        return found is not None and found.key in ("mm", "matmul", "bmm") and _self_product(found.operand,
                                                                                          found.positional(0))

    def cross_term(self, expr: cst.BaseExpression, at: At) -> bool:
        """``2 * a @ b.t()``, ``2 * torch.mm(a, b.t())``, ``torch.matmul(a, b.T) * 2``: twice a matrix product,
        the cross term of an expanded squared distance ``|a|^2 + |b|^2 - 2 a.b``."""
        factors: list[cst.BaseExpression] = []
        product = False
        pending = [expr]
        while pending:
            node = pending.pop()
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.MatrixMultiply)):
                product = product or isinstance(node.operator, cst.MatrixMultiply)
                pending.extend((node.left, node.right))
            else:
                factors.append(node)
        two = [f for f in factors if self.literal(f, at) == 2]
        if len(two) != 1:
            return False
        for factor in factors:
            value, _ = self.resolve(factor, at)
            found = match_call(value, self.imports) if isinstance(value, cst.Call) else None
            if found is not None and found.key in _MATRIX_PRODUCTS or isinstance(value, cst.BinaryOperation) \
                    and isinstance(value.operator, cst.MatrixMultiply):
                product = True  # ``2 * torch.mm(a, b.t())``, ``2.0 * dot`` with ``dot = a @ b.T``
        return product

    def distance_to_itself(self, expr: cst.BaseExpression, at: At) -> bool:
        """An expanded squared distance whose cross term is a batch times its own transpose (``x @ x.t()``,
        ``torch.mm(e, e.T)``, ``dist.addmm_(x, x.t(), alpha=-2)``): its diagonal is each row's distance to
        itself, 0 (or below 0 by rounding) in every batch."""
        if isinstance(expr, cst.Name):
            b = self.binding(expr, at)
            if b is not None and b.value is not None and b.operator is None and b.index is None:
                calls = self.in_place_calls(expr.value, b, at)
                if calls:
                    tc = match_call(calls[0][0], self.imports)
                    return tc is not None and tc.key in _ADD_PRODUCT_OPS and _self_product(tc.positional(0),
                                                                                          tc.positional(1))
                return self.distance_to_itself(b.value, At(b.scope, b.order))
            return False
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None:
                return False
            if tc.key in _ADD_PRODUCT_OPS:
                return _self_product(tc.positional(0), tc.positional(1))
            if tc.key in ("clamp", "clip", "clamp_min", "clamp_") or tc.key in TRANSPARENT_OPS:
                return self.distance_to_itself(tc.operand, at)
            return False
        if not (isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract))):
            return False
        pending: list[cst.BaseExpression] = [t for sign, t in _signed_terms(expr) if sign < 0]
        while pending:
            node = pending.pop()
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
                pending.extend((node.left, node.right))
                continue
            if self._gram(node, at):
                return True
        return False

    def _expanded_distance(self, tc: TorchCall, node: cst.CSTNode, base: cst.BaseExpression, at: At,
                           depth: int) -> Optional[ZeroSource]:
        """``addmm(xx + yy, x, y.t(), alpha=-2)`` (or its in-place form on ``xx + yy``): an expanded squared
        distance when ``base`` is a sum of squares and ``alpha`` is -2."""
        if self.literal(tc.keyword("alpha"), at) != -2:
            return None
        inner = self.zero_source(base, at, depth)
        if inner is None or inner.kind != "sum of squares":
            return None
        return ZeroSource("expanded squared distance", node, negative=True)

    def _power_source(self, base: cst.BaseExpression, exponent: Optional[float], node: cst.CSTNode,
                      at: At, depth: int) -> Optional[ZeroSource]:
        if exponent is None:
            return None
        if exponent == 2:
            return self._square_of(base, node, at, depth)
        if exponent == 0.5:
            return self._sqrt_of(base, node, at, depth)
        return None

    def _square_of(self, base: cst.BaseExpression, node: cst.CSTNode, at: At, depth: int) -> ZeroSource:
        return ZeroSource("squared difference" if _is_difference(base, self, at) else "square", node)

    def _sqrt_of(self, operand: cst.BaseExpression, node: cst.CSTNode, at: At, depth: int) -> Optional[ZeroSource]:
        inner = self.zero_source(operand, at, depth)
        if inner is None:
            return None
        if inner.kind in ("variance",):
            return ZeroSource("square root of a variance", node)
        if inner.kind in ("sum of squares", "mean of squares", "square", "squared difference",
                          "expanded squared distance"):
            return ZeroSource("hand-written norm", node)
        if inner.kind == "MSE":
            return ZeroSource("hand-written norm", node)
        return None

    # -- sums that vanish with their inputs ---------------------------------------
    def vanishing_sum(self, expr: cst.BaseExpression, at: At) -> Optional[ZeroSource]:
        """A sum of terms that are all 0 for the same input, with no positive constant: ``2 * g2 + (a * g3).sum()``
        with ``g2 = (g * g).sum()``, ``g3 = g ** 3``. It vanishes when that input does (a zero gradient, a zero
        row), whatever else the terms hold. At least one term must be a square or a norm of the input (a
        magnitude); the sum itself may be negative. ``node`` is the root that makes it 0 (a name or ``p.grad``)."""
        value, where = self.resolve(expr, at)
        terms = _terms(value)
        if len(terms) < 2:
            return None
        roots: list[cst.BaseExpression] = []
        for term in terms:
            source = self.zero_source(term, where)
            if source is not None and source.kind in SQUARE_KINDS | NORM_KINDS:
                roots.extend(self._roots(term, where))
        for root in roots:
            if all(self.vanishes_at(term, root, where) for term in terms):
                return ZeroSource("sum that vanishes with its inputs", root)
        return None

    def _roots(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> list[cst.BaseExpression]:
        """The leaves ``expr`` is computed from: unbound names, parameters, ``p.grad``."""
        if depth > _MAX_DEPTH:
            return []
        if isinstance(expr, cst.Attribute) and expr.attr.value == "grad":
            return [expr]
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.operator is not None or b.index is not None:
                return [] if self.imports.is_module(expr) else [expr]
            if isinstance(b.value, cst.Call) and match_call(b.value, self.imports) is None:
                return [expr]  # ``g = model(x)``, ``g = leaf(...)``: the name is the input
            return self._roots(b.value, At(b.scope, b.order), depth + 1)
        found: list[cst.BaseExpression] = []
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is not None and tc.operand is not None:
                found.extend(self._roots(tc.operand, at, depth + 1))
            return found
        for child in expr.children:
            if isinstance(child, cst.BaseExpression):
                found.extend(self._roots(child, at, depth + 1))
        return found

    def vanishes_at(self, expr: cst.BaseExpression, root: cst.BaseExpression, at: At, depth: int = 0) -> bool:
        """``expr`` is exactly 0 whenever ``root`` is: a product with a factor that is, a sum or difference of
        terms that all are, a positive power, a reduction, a norm or a reshape of one."""
        if depth > _MAX_DEPTH:
            return False
        d = depth + 1
        if _same_code(expr, root):
            return True
        if isinstance(expr, (cst.Integer, cst.Float)):
            return self.literal(expr, at) == 0
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.operator is not None or b.index is not None:
                return False
            return self.vanishes_at(b.value, root, At(b.scope, b.order), d)
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return self.vanishes_at(expr.expression, root, at, d)
        if isinstance(expr, cst.Subscript):
            return self.vanishes_at(expr.value, root, at, d)
        if isinstance(expr, cst.BinaryOperation):
            op = expr.operator
            if isinstance(op, (cst.Multiply, cst.MatrixMultiply)):
                return self.vanishes_at(expr.left, root, at, d) or self.vanishes_at(expr.right, root, at, d)
            if isinstance(op, (cst.Add, cst.Subtract)):
                return self.vanishes_at(expr.left, root, at, d) and self.vanishes_at(expr.right, root, at, d)
            if isinstance(op, cst.Divide):
                return self.vanishes_at(expr.left, root, at, d)
            if isinstance(op, cst.Power):
                exponent = self.literal(expr.right, at)
                return exponent is not None and exponent > 0 and self.vanishes_at(expr.left, root, at, d)
            return False
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None:
                return False
            key = tc.key
            if key in ("pow", "float_power"):
                exponent = self.literal(tc.argument("exponent", 0), at)
                return exponent is not None and exponent > 0 and self.vanishes_at(tc.operand, root, at, d)
            if key in ("mul", "multiply", "dot", "vdot", "inner", "matmul", "mm", "bmm", "mv", "outer"):
                other = tc.positional(0)
                return self.vanishes_at(tc.operand, root, at, d) or (
                    other is not None and self.vanishes_at(other, root, at, d))
            if key in TRANSPARENT_OPS or key in REDUCE_OPS or key in NORM_OPS or key in _VANISHING_OPS:
                return self.vanishes_at(tc.operand, root, at, d)
        return False

    def sqrt_hazard(self, operand: cst.BaseExpression, at: At) -> Optional[ZeroSource]:
        """The zero source of a sqrt/rsqrt argument, when it is one of the squared kinds."""
        inner = self.zero_source(operand, at)
        if inner is not None and inner.kind in SQUARE_KINDS and not self.is_constant(operand, at):
            return inner
        return None

    def is_constant(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> bool:
        """Built only from literals and factory calls (``arange``, ``linspace``...): no gradient flows.

        ``torch.arange(n) ** 2 + ...`` grids never require grad, so an infinite
        derivative there can never be taken.
        """
        if depth > _MAX_DEPTH:
            return False
        d = depth + 1
        if isinstance(expr, (cst.Integer, cst.Float)):
            return True
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.operator is not None:
                return False
            return self.is_constant(b.value, At(b.scope, b.order), d)
        if isinstance(expr, cst.UnaryOperation):
            return self.is_constant(expr.expression, at, d)
        if isinstance(expr, cst.BinaryOperation):
            return self.is_constant(expr.left, at, d) and self.is_constant(expr.right, at, d)
        if isinstance(expr, cst.Subscript):
            return self.is_constant(expr.value, at, d)
        if isinstance(expr, (cst.Tuple, cst.List)):
            return bool(expr.elements) and all(
                not isinstance(e, cst.StarredElement) and self.is_constant(e.value, at, d) for e in expr.elements)
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None:
                return False
            if tc.keyword("requires_grad") is not None:
                return False
            if not tc.is_method and tc.key in ("tensor", "as_tensor"):
                # ``torch.tensor([0.5, 1.0])`` is a constant; ``torch.tensor(returns)`` holds what ``returns`` holds
                return tc.operand is not None and self.is_constant(tc.operand, at, d)
            if not tc.is_method and tc.key in _FACTORIES:
                return True
            if tc.key in ("cat", "stack", "concat") and isinstance(tc.operand, (cst.Tuple, cst.List)):
                return all(self.is_constant(e.value, at, d) for e in tc.operand.elements)
            if tc.operand is not None and (tc.key in TRANSPARENT_OPS or tc.key in REDUCE_OPS or tc.key in (
                    "pow", "square", "abs", "float", "repeat_interleave")):
                return self.is_constant(tc.operand, at, d)
        return False

