"""Value facts: what an expression is known to be, shared by every rule.

The questions rules ask:

* :meth:`Facts.zero_source` -- can this expression be *exactly* zero for an
  ordinary input (a zero vector, a constant feature, a perfect prediction)? The
  answer is a :class:`ZeroSource` naming what it is (``norm``, ``std``,
  ``variance``, ``sum of squares``...), or ``None`` when it is guarded or
  unknown. Guards are ``+ eps`` / ``eps +``, ``clamp(min=eps)``, ``clamp_min``,
  ``torch.maximum``, builtin ``max(..., eps)``; a named eps counts unless its
  literal value is known to be 0.
* :meth:`Facts.literal` -- the numeric value of a literal, constant, default
  argument or ``self.eps`` set from one.
* :meth:`Facts.is_positive` -- is this a usable guard (``eps``)?

Values are followed through local assignments (see :mod:`nanlint.scope`);
anything that cannot be seen is unknown, and unknown means silence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from .names import ImportTable, TorchCall, builtin_name, match_call
from .scope import Binding, Scope, lookup, lookup_attribute

_MAX_DEPTH = 16

# What a norm is, whatever it is called.
NORM_OPS = frozenset({"norm", "linalg.norm", "linalg.vector_norm", "linalg.matrix_norm", "dist"})
# Reshaping and casting: the value (and whether it can be zero) is unchanged.
TRANSPARENT_OPS = frozenset({
    "detach", "unsqueeze", "squeeze", "view", "view_as", "reshape", "reshape_as", "expand", "expand_as",
    "to", "float", "double", "half", "bfloat16", "type", "type_as", "contiguous", "clone", "flatten",
    "permute", "transpose", "t", "item", "repeat", "repeat_interleave", "broadcast_to", "squeeze_",
    "unsqueeze_", "cpu", "cuda", "movedim", "swapaxes", "mT", "T", "narrow", "select", "index_select",
    "gather", "chunk", "split",
})
REDUCE_OPS = frozenset({"sum", "mean", "nansum", "nanmean"})
# Tensor factories: their results never require grad (unless asked to).
_FACTORIES = frozenset({
    "arange", "linspace", "logspace", "ones", "zeros", "full", "eye", "tensor", "as_tensor", "meshgrid",
    "ones_like", "zeros_like", "full_like", "randn", "rand", "randint", "empty",
})

# Kinds of zero, grouped by the rules that care about them.
NORM_KINDS = frozenset({"norm", "hand-written norm"})
STD_KINDS = frozenset({"standard deviation", "square root of a variance"})
SQUARE_KINDS = frozenset({
    "variance", "sum of squares", "mean of squares", "MSE", "squared difference", "square",
})


@dataclass(frozen=True)
class ZeroSource:
    """Why an expression can be exactly zero: ``kind`` and the node that makes it so."""

    kind: str
    node: cst.CSTNode

    @property
    def described(self) -> str:
        """``a norm``, ``an MSE``: the kind with its article, for messages."""
        return ("an " if self.kind[0] in "aeiouAEIMU" else "a ") + self.kind


@dataclass(frozen=True)
class At:
    """Where an expression is read: the scope and the walk order of the reading."""

    scope: Scope
    order: int


class Facts:
    def __init__(self, imports: ImportTable) -> None:
        self.imports = imports

    # -- name following -------------------------------------------------
    def binding(self, expr: cst.BaseExpression, at: At) -> Optional[Binding]:
        if isinstance(expr, cst.Name):
            return lookup(at.scope, expr.value, at.order)
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name):
            found = lookup_attribute(at.scope, expr.value.value, expr.attr.value)
            if len(found) == 1:
                return found[0]
            if found and all(isinstance(b.value, cst.Name) for b in found):
                # several ``self.eps = eps`` in one class: the same parameter each time
                values = {b.value.value for b in found}  # type: ignore[union-attr]
                if len(values) == 1:
                    return found[0]
        return None

    def resolve(self, expr: cst.BaseExpression, at: At) -> tuple[cst.BaseExpression, At]:
        """Follow a name to the expression it was assigned (when plain), else itself."""
        for _ in range(_MAX_DEPTH):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.index is not None or b.operator is not None:
                return expr, at
            expr, at = b.value, At(b.scope, b.order)
        return expr, at

    def call(self, expr: cst.BaseExpression, at: At) -> Optional[tuple[TorchCall, At]]:
        expr, at = self.resolve(expr, at)
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is not None:
                return tc, at
        return None

    # -- literals -------------------------------------------------------
    def literal(self, expr: Optional[cst.BaseExpression], at: At, depth: int = 0) -> Optional[float]:
        """Numeric value of a literal or of a name bound to one (``-1e9``, ``EPS``, ``self.eps``)."""
        if expr is None or depth > _MAX_DEPTH:
            return None
        if isinstance(expr, (cst.Integer, cst.Float)):
            try:
                return float(expr.evaluated_value)
            except (ValueError, OverflowError):
                return None
        if isinstance(expr, cst.UnaryOperation):
            inner = self.literal(expr.expression, at, depth + 1)
            if inner is None:
                return None
            if isinstance(expr.operator, cst.Minus):
                return -inner
            if isinstance(expr.operator, cst.Plus):
                return inner
            return None
        if isinstance(expr, cst.BinaryOperation):
            left = self.literal(expr.left, at, depth + 1)
            right = self.literal(expr.right, at, depth + 1)
            if left is None or right is None:
                return None
            try:
                if isinstance(expr.operator, cst.Add):
                    return left + right
                if isinstance(expr.operator, cst.Subtract):
                    return left - right
                if isinstance(expr.operator, cst.Multiply):
                    return left * right
                if isinstance(expr.operator, cst.Divide):
                    return left / right
                if isinstance(expr.operator, cst.Power):
                    return float(left ** right)
            except (ZeroDivisionError, OverflowError, TypeError):
                return None
            return None
        if isinstance(expr, cst.Call):
            name = builtin_name(expr, self.imports)
            if name == "float" and len(expr.args) == 1 and isinstance(expr.args[0].value, cst.SimpleString):
                text = expr.args[0].value.evaluated_value
                try:
                    return float(text)
                except (TypeError, ValueError):
                    return None
            return None
        if isinstance(expr, cst.Attribute):
            qualified = self.imports.qualify(expr)
            if qualified in ("math.inf", "torch.inf", "numpy.inf"):
                return math.inf
            if qualified in ("math.nan", "torch.nan", "numpy.nan"):
                return math.nan
        b = self.binding(expr, at)
        if b is None or b.value is None or b.index is not None or b.operator is not None:
            return None
        return self.literal(b.value, At(b.scope, b.order), depth + 1)

    # -- guards ---------------------------------------------------------
    def is_positive(self, expr: Optional[cst.BaseExpression], at: At) -> bool:
        """True when ``expr`` can serve as an eps: not known to be <= 0, not itself zero-possible."""
        if expr is None:
            return False
        value = self.literal(expr, at)
        if value is not None:
            return value > 0
        if isinstance(expr, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            return False
        if isinstance(expr, cst.Name) and expr.value in ("None", "False", "True"):
            return False
        return self.zero_source(expr, at) is None

    def clamp_guard(self, tc: TorchCall, at: At) -> bool:
        """``clamp(min=eps)``, ``clamp_min(eps)``, ``clip(eps)``, ``maximum(x, eps)`` with eps > 0."""
        if tc.key in ("clamp", "clip", "clamp_", "clip_"):
            return self.is_positive(tc.argument("min", 0), at)
        if tc.key in ("clamp_min", "clamp_min_"):
            return self.is_positive(tc.argument("min", 0), at)
        if tc.key in ("maximum", "fmax", "max") and tc.positional(0) is not None:
            other = tc.positional(0)
            return self.is_positive(other, at) or self.is_positive(tc.operand, at)
        return False

    # -- zero sources ---------------------------------------------------
    def zero_source(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[ZeroSource]:
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None:
                return None
            where = At(b.scope, b.order)
            if b.operator is not None:
                if isinstance(b.operator, cst.AddAssign) and self.is_positive(b.value, where):
                    return None
                if isinstance(b.operator, (cst.MultiplyAssign, cst.DivideAssign)) and b.previous is not None:
                    return self._binding_source(b.previous, d)
                return None
            return self._binding_source(b, d)
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

    def _binding_source(self, b: Binding, depth: int) -> Optional[ZeroSource]:
        if b.value is None:
            return None
        where = At(b.scope, b.order)
        if b.index is not None:
            return self._element_source(b.value, b.index, where, depth)
        if b.is_parameter:
            return None  # a default argument is not the value the caller passes
        return self.zero_source(b.value, where, depth)

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
            return self.zero_source(operand, at, depth)
        if key in ("square", "square_"):
            return self._square_of(operand, call, at, depth)
        if key == "pow" or key == "float_power":
            exponent = self.literal(tc.argument("exponent", 0), at)
            return self._power_source(operand, exponent, call, at, depth)
        if key in ("sqrt", "sqrt_"):
            return self._sqrt_of(operand, call, at, depth)
        if key in REDUCE_OPS:
            inner = self.zero_source(operand, at, depth)
            if inner is None:
                return None
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
        if isinstance(op, cst.Add):
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
            # E[x^2] - E[x]^2: a variance that rounding can even make negative
            left = self.zero_source(expr.left, at, depth)
            right = self.zero_source(expr.right, at, depth)
            if left and right and left.kind == "mean of squares" and right.kind == "square":
                return ZeroSource("variance", expr)
            return None
        return None

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
        if inner.kind in ("sum of squares", "mean of squares", "square", "squared difference"):
            return ZeroSource("hand-written norm", node)
        if inner.kind == "MSE":
            return ZeroSource("hand-written norm", node)
        return None

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
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None:
                return False
            if tc.keyword("requires_grad") is not None:
                return False
            if not tc.is_method and tc.key in _FACTORIES:
                return True
            if tc.operand is not None and (tc.key in TRANSPARENT_OPS or tc.key in REDUCE_OPS or tc.key in (
                    "pow", "square", "abs", "float", "repeat_interleave")):
                return self.is_constant(tc.operand, at, d)
        return False


def _literal_index(expr: cst.Subscript) -> Optional[int]:
    if len(expr.slice) != 1:
        return None
    element = expr.slice[0].slice
    if isinstance(element, cst.Index) and isinstance(element.value, cst.Integer):
        return int(element.value.value)
    return None


def _same_code(a: cst.BaseExpression, b: cst.BaseExpression) -> bool:
    return a.deep_equals(b) if type(a) is type(b) else False


def _is_difference(expr: cst.BaseExpression, facts: Optional[Facts] = None, at: Optional[At] = None) -> bool:
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Subtract):
        return True
    if facts is not None and at is not None and isinstance(expr, cst.Name):
        value, _ = facts.resolve(expr, at)
        return isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Subtract)
    if isinstance(expr, cst.Call):  # torch.sub(a, b) / a.sub(b)
        func = expr.func
        return isinstance(func, cst.Attribute) and func.attr.value in ("sub", "subtract")
    return False
