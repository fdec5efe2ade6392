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
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import libcst as cst

from .names import ImportTable, TorchCall, builtin_name, dotted_name, match_call
from .scope import Binding, Scope, lookup, lookup_attribute

if TYPE_CHECKING:
    from .analysis.summary import ModuleSummary
    from .analysis.triggers import Trigger

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
    "one minus a squared cosine",
})


@dataclass(frozen=True)
class ZeroSource:
    """Why an expression can be exactly zero: ``kind`` and the node that makes it so."""

    kind: str
    node: cst.CSTNode

    @property
    def described(self) -> str:
        """``a norm``, ``an MSE``: the kind with its article, for messages."""
        vowel = self.kind[0] in "aeiouAEIMU" and not self.kind.startswith("one ")
        return ("an " if vowel else "a ") + self.kind


@dataclass(frozen=True)
class At:
    """Where an expression is read: the scope and the walk order of the reading."""

    scope: Scope
    order: int


class Facts:
    def __init__(self, imports: ImportTable) -> None:
        self.imports = imports
        # recorded by the walker (``nanlint.walker``), read by every rule: in-place calls on local names and
        # the names each guard test examines, by function scope
        self._in_place: dict[tuple[int, str], list[int]] = {}
        self._guard_tests: dict[int, list[tuple[int, frozenset]]] = {}
        # the whole-module summary (set by the file context), for questions about callers
        self.summary_source: Optional[Callable[[], "ModuleSummary"]] = None

    @property
    def summary(self) -> "Optional[ModuleSummary]":
        return self.summary_source() if self.summary_source is not None else None

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

    # -- what a value is (nanlint.analysis) ---------------------------------
    def kind(self, expr: cst.BaseExpression, at: At) -> str:
        """A constant of :mod:`nanlint.analysis.kinds`: float/int/bool tensor, Python number, numpy..."""
        from .analysis.kinds import kind

        return kind(self, expr, at)

    def trigger(self, expr: cst.BaseExpression, at: At) -> "Trigger":
        """The input that makes the vector ``expr`` exactly 0, and how ordinary it is (:mod:`.analysis.triggers`)."""
        from .analysis.triggers import trigger_of

        return trigger_of(self, expr, at)

    # -- literals -------------------------------------------------------
    def literal(self, expr: Optional[cst.BaseExpression], at: At, depth: int = 0) -> Optional[float]:
        """Numeric value of a literal or of a name bound to one (``-1e9``, ``EPS``, ``self.eps``)."""
        if expr is None or depth > _MAX_DEPTH:
            return None
        if isinstance(expr, (cst.Integer, cst.Float)):
            try:
                value = float(expr.evaluated_value)
            except (ValueError, OverflowError):
                return None
            return value if math.isfinite(value) else None  # ``1e400``: an overflow, not a named infinity
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
            if math.isfinite(left) and math.isfinite(right):
                # arithmetic that overflows finite literals (``1e200 * 1e200``) is not followed: the
                # infinities and NaNs nanlint knows are the ones the code names (``inf``, ``nan``), which
                # the rules' screens can see
                folded = self._fold(expr.operator, left, right)
                return folded if folded is None or math.isfinite(folded) else None
            return self._fold(expr.operator, left, right)
        if isinstance(expr, cst.Call):
            name = builtin_name(expr, self.imports)
            if name == "float" and len(expr.args) == 1 and isinstance(expr.args[0].value, cst.SimpleString):
                text = expr.args[0].value.evaluated_value
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    return None
                named = isinstance(text, str) and ("inf" in text.lower() or "nan" in text.lower())
                return value if math.isfinite(value) or named else None
            return None
        return self._literal_name(expr, at, depth)

    @staticmethod
    def _fold(operator: cst.BaseBinaryOp, left: float, right: float) -> Optional[float]:
        try:
            if isinstance(operator, cst.Add):
                return left + right
            if isinstance(operator, cst.Subtract):
                return left - right
            if isinstance(operator, cst.Multiply):
                return left * right
            if isinstance(operator, cst.Divide):
                return left / right
            if isinstance(operator, cst.Power):
                return float(left ** right)
        except (ZeroDivisionError, OverflowError, TypeError):
            return None
        return None

    def _literal_name(self, expr: cst.BaseExpression, at: At, depth: int) -> Optional[float]:
        """``math.inf``/``torch.nan``..., or the literal a name or ``self.attr`` is bound to."""
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
            # E[x^2] - E[x]^2: a variance that rounding can even make negative
            if self.literal(expr.left, at) == 1.0:
                base = _squared_base(expr.right, self, at)
                if base is not None and _cosine_like(base, self, at):
                    return ZeroSource("one minus a squared cosine", expr)  # sin(theta) at parallel vectors
            left = self.zero_source(expr.left, at, depth)
            right = self.zero_source(expr.right, at, depth)
            if left and right and left.kind in ("mean of squares", "sum of squares") and right.kind == "square":
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
            if tc.key in ("cat", "stack", "concat") and isinstance(tc.operand, (cst.Tuple, cst.List)):
                return all(self.is_constant(e.value, at, d) for e in tc.operand.elements)
            if tc.operand is not None and (tc.key in TRANSPARENT_OPS or tc.key in REDUCE_OPS or tc.key in (
                    "pow", "square", "abs", "float", "repeat_interleave")):
                return self.is_constant(tc.operand, at, d)
        return False

    # -- probabilities, counts, selections, bounds (NAN103/104/203/301-304) ------------
    # A probability is "probability-like" only when its origin is visible: a softmax or
    # sigmoid (function, method or ``nn.Softmax``/``nn.Sigmoid`` module), a value divided
    # by its own sum, or an element, product, power or complement of one of those.
    def probability(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional["Probability"]:
        """Where ``expr`` is known to be a probability, and whether it can be exactly 0 or 1."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is not None and b.is_parameter and isinstance(expr, cst.Name) and PROBABILITY_NAME.search(expr.value):
                if self.mutated_in_place(expr.value, b, at):
                    return None
                # a parameter named like a probability (``probs``, ``p``): its callers are unseen, the name is
                # the documented prior (docs/analysis.md)
                return Probability("probability (by its name)", expr, at, direct=False)
            if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
                return None
            if isinstance(expr, cst.Name) and self.mutated_in_place(expr.value, b, at):
                return None  # ``p.clamp_(min=eps)`` between the assignment and this read
            return self.probability(b.value, At(b.scope, b.order), d)
        if isinstance(expr, cst.Subscript):
            inner = self.probability(expr.value, at, d)
            return inner.derived() if inner is not None else None
        if isinstance(expr, cst.Call):
            return self._call_probability(expr, at, d)
        if isinstance(expr, cst.BinaryOperation):
            return self._binary_probability(expr, at, d)
        return None

    def _call_probability(self, call: cst.Call, at: At, depth: int) -> Optional["Probability"]:
        module = self.module_kind(call, at)
        if module in _PROBABILITY_MODULES:
            return Probability(_PROBABILITY_MODULES[module], call, at, direct=True, module=True)
        tc = match_call(call, self.imports)
        if tc is None or tc.operand is None or not self.is_tensor_method(tc):
            return None
        key = tc.key
        if key in SOFTMAX_OPS:
            return Probability("softmax", call, at, direct=True)
        if key in SIGMOID_OPS:
            if tc.is_method and tc.args:
                return None  # ``obj.sigmoid(x)``: not Tensor.sigmoid, which takes no argument
            return Probability("sigmoid", call, at, direct=True)
        if key == "F.gumbel_softmax":
            return Probability("softmax", call, at, direct=False)
        if key in ("clamp", "clip", "clamp_min", "clamp_max", "clamp_", "clip_", "maximum", "fmax", "minimum",
                   "fmin"):
            inner = self.probability(tc.operand, at, depth)
            if inner is None:
                return None
            low = high = None
            if key in ("clamp", "clip", "clamp_", "clip_"):
                low, high = tc.argument("min", 0), tc.argument("max", 1)
            elif key == "clamp_min" or key in ("maximum", "fmax"):
                low = tc.argument("min", 0) if key == "clamp_min" else tc.positional(0)
            else:
                high = tc.argument("max", 0) if key == "clamp_max" else tc.positional(0)
            zero = inner.zero and not (low is not None and self.is_positive(low, at))
            one = inner.one and not (high is not None and self._below_one(high, at))
            return inner.derived(zero=zero, one=one) if zero or one else None
        if key in TRANSPARENT_OPS:
            inner = self.probability(tc.operand, at, depth)
            return inner.derived() if inner is not None else None
        if key == "where":
            a, b = tc.positional(0), tc.positional(1)
            if a is None or b is None:
                return None
            pa, pb = self.probability(a, at, depth), self.probability(b, at, depth)
            if pa is None or pb is None:
                return None
            return pa.derived(zero=pa.zero or pb.zero, one=pa.one or pb.one)
        if key in ("mul", "multiply"):
            other = tc.positional(0)
            return self._product_probability(tc.operand, other, at, depth) if other is not None else None
        if key in ("sum", "nansum"):
            # the probability of the target, ``(probs * onehot).sum(-1)``; a bare ``p.sum(-1)`` is 1
            inner, _ = self.resolve(tc.operand, at)
            if isinstance(inner, cst.BinaryOperation) and isinstance(inner.operator, cst.Multiply):
                product = self.probability(tc.operand, at, depth)
                return product.derived(zero=True, one=product.one) if product is not None else None
            return None
        return None

    def _binary_probability(self, expr: cst.BinaryOperation, at: At, depth: int) -> Optional["Probability"]:
        op = expr.operator
        if isinstance(op, cst.Subtract):
            if self.literal(expr.left, at) != 1.0:
                return None
            inner = self.probability(expr.right, at, depth)
            if inner is None:
                return None
            if inner.complement or not inner.direct or inner.kind != "sigmoid":
                return inner.derived(zero=inner.one, one=inner.zero)
            return Probability(inner.kind, inner.node, inner.at, direct=True, zero=inner.one, one=inner.zero,
                               module=inner.module, complement=True)
        if isinstance(op, cst.Multiply):
            return self._product_probability(expr.left, expr.right, at, depth)
        if isinstance(op, cst.Divide):
            numerator, _ = self.resolve(expr.left, at)
            divisor, divisor_at = self.resolve(expr.right, at)
            if isinstance(divisor, cst.Call):
                tc = match_call(divisor, self.imports)
                if tc is not None and tc.key in ("sum", "nansum") and tc.operand is not None:
                    summed, _ = self.resolve(tc.operand, divisor_at)
                    if _same_code(summed, numerator) or _same_code(tc.operand, expr.left):
                        kind = "hand-written softmax" if self.exp_call(numerator, at) is not None else "normalised"
                        return Probability(kind, expr, at, direct=False)
            return None
        if isinstance(op, cst.Add):
            left = self.probability(expr.left, at, depth)
            right = self.probability(expr.right, at, depth)
            if left is not None and right is not None:  # ``p * y + (1 - p) * (1 - y)``
                return left.derived(zero=True, one=True)
            return None
        if isinstance(op, cst.Power):
            exponent = self.literal(expr.right, at)
            inner = self.probability(expr.left, at, depth)
            if inner is None or exponent is None or exponent <= 0:
                return None
            return inner.derived()
        return None

    def _product_probability(self, a: cst.BaseExpression, b: cst.BaseExpression, at: At,
                             depth: int) -> Optional["Probability"]:
        for p_expr, other in ((a, b), (b, a)):
            inner = self.probability(p_expr, at, depth)
            if inner is None:
                continue
            scale = self.literal(other, at)
            if scale is not None:
                return inner.derived(one=False) if scale > 0 and inner.zero else None
            return inner.derived(zero=True, one=inner.one)
        return None

    def _below_one(self, expr: cst.BaseExpression, at: At) -> bool:
        """An upper clamp that keeps ``1 - p`` away from 0: ``1 - eps``, ``0.999``, a named bound."""
        value = self.literal(expr, at)
        if value is not None:
            return value < 1
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Subtract):
            return self.literal(expr.left, at) == 1.0 and self.is_positive(expr.right, at)
        if isinstance(expr, cst.Name) and expr.value in ("None", "True", "False"):
            return False
        return True  # a named bound: prefer silence

    def module_kind(self, call: cst.Call, at: At) -> Optional[str]:
        """``self.softmax(x)`` where ``self.softmax = nn.Softmax(dim=-1)``: the module's op key."""
        func = call.func
        if isinstance(func, cst.Call):
            tc = match_call(func, self.imports)
            return tc.key if tc is not None and tc.key.startswith("nn.") else None
        if not isinstance(func, (cst.Name, cst.Attribute)) or self.imports.is_module(func):
            return None
        if isinstance(func, cst.Attribute) and self.imports.qualify(func) is not None:
            return None
        target, _ = self.resolve(func, at)
        if target is func:
            return None
        for _ in range(_MAX_DEPTH):
            if not isinstance(target, cst.Call):
                return None
            tc = match_call(target, self.imports)
            if tc is None:
                return None
            if tc.key.startswith("nn."):
                return tc.key
            if not (tc.is_method and tc.key in _MODULE_CASTS and tc.operand is not None):
                return None
            target = tc.operand  # ``nn.Linear(4, 1).to(device)``
        return None

    @staticmethod
    def is_tensor_method(tc: TorchCall) -> bool:
        """False for ``self.log(...)`` (LightningModule.log) and other calls on ``self``/``cls``."""
        return not (tc.is_method and isinstance(tc.operand, cst.Name) and tc.operand.value in ("self", "cls"))

    # -- in-place mutation and guard tests (recorded by the walker) --------
    def note_in_place(self, call: cst.Call, at: At) -> None:
        """Record ``p.clamp_(...)``-style in-place calls on a local name: later reads are not the assigned value."""
        func = call.func
        if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
            return
        name = func.attr.value
        if not name.endswith("_") or name.startswith("_") or self.imports.is_module(func.value):
            return
        self._in_place.setdefault((id(_function_scope(at.scope)), func.value.value), []).append(at.order)

    def mutated_in_place(self, name: str, binding: Binding, at: At) -> bool:
        if not self._in_place:
            return False
        orders = self._in_place.get((id(_function_scope(binding.scope)), name), ())
        return any(binding.order < order < at.order for order in orders)

    def note_guard_test(self, test: cst.BaseExpression, at: At) -> None:
        """Record the names an ``if``/``assert``/``while``/``x if c else y``/``where(c, ...)`` test examines.

        ``x is None`` / ``isinstance(x, ...)`` tests say nothing about a value and are skipped.
        """
        names = guard_names(test)
        for name in [n for n in names if "." not in n]:
            b = lookup(at.scope, name, at.order)
            if b is not None and b.value is not None and b.index is None and b.operator is None \
                    and isinstance(b.value, (cst.Comparison, cst.BooleanOperation, cst.UnaryOperation)):
                names = names | guard_names(b.value)  # ``exists = area > 0 and n > 0`` ... ``if exists:``
        if names:
            self._guard_tests.setdefault(id(_function_scope(at.scope)), []).append((at.order, names))

    def tested_before(self, names: frozenset, at: At) -> bool:
        """Some test earlier in the same function (or an enclosing ``if``) examines one of ``names``."""
        if not self._guard_tests or not names:
            return False
        for order, tested in self._guard_tests.get(id(_function_scope(at.scope)), ()):
            if order < at.order and tested & names:
                return True
        return False

    # -- masks, counts and selections ----------------------------------------------
    def mask(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[frozenset]:
        """Names behind ``expr`` when it is a 0/1 mask that may be all zero (else None).

        A mask is a comparison (``labels != -100``), a boolean op of masks, ``.bool()``,
        ``isfinite``..., a cast/reshape of a mask, or a value named ``*mask``/``*_mask_*``
        whose origin cannot be seen (``attention_mask``). ``torch.ones(...)`` is never one.
        """
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, cst.Comparison):
            if all(isinstance(t.operator, _VALUE_COMPARISONS) for t in expr.comparisons):
                return names_in(expr)
            return None
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.BitInvert, cst.Not)):
            return self.mask(expr.expression, at, d)
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, (cst.BitAnd, cst.BitOr, cst.BitXor)):
                left, right = self.mask(expr.left, at, d), self.mask(expr.right, at, d)
                if left is None and right is None:
                    return None
                return (left or frozenset()) | (right or frozenset())
            if isinstance(expr.operator, cst.Multiply):
                left, right = self.mask(expr.left, at, d), self.mask(expr.right, at, d)
                return left | right if left is not None and right is not None else None
            return None
        if isinstance(expr, cst.Subscript):
            key = _string_index(expr)
            if key is not None:
                return frozenset({key, *names_in(expr.value)}) if _MASK_NAME.search(key) else None
            return self.mask(expr.value, at, d)
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None or not self.is_tensor_method(tc):
                return None
            if tc.key in _NEVER_ZERO_FACTORIES:
                return None
            if tc.key in _MASK_OPS:
                return names_in(expr)
            if tc.key in TRANSPARENT_OPS or tc.key in _CASTS:
                return self.mask(tc.operand, at, d)
            return None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            own = frozenset({dotted_name(expr) or ""}) - {""}
            if b is not None and b.value is not None and not b.is_parameter and b.operator is None \
                    and b.index is None:
                inner = self.mask(b.value, At(b.scope, b.order), d)
                if inner is not None:
                    return inner | own
                value, _ = self.resolve(b.value, At(b.scope, b.order))
                if isinstance(value, cst.Call):
                    tc = match_call(value, self.imports)
                    if tc is not None and tc.key in _NEVER_ZERO_FACTORIES:
                        return None  # ``mask = torch.ones_like(x)``: never all zero
                    callee = dotted_name(value.func)
                    if callee is not None:
                        own = own | {callee}  # ``mask = self._length_to_mask(...)``: keep where it came from
            last = expr.value if isinstance(expr, cst.Name) else expr.attr.value
            return own if _MASK_NAME.search(last) else None
        return None

    def count(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional["Count"]:
        """``mask.sum()``, ``count_nonzero(m)``, ``len(x[m])``...: a number of selected items that can be 0."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
                return None
            if isinstance(expr, cst.Name) and self.mutated_in_place(expr.value, b, at):
                return None  # ``n.clamp_(min=1)`` between the assignment and this read
            inner = self.count(b.value, At(b.scope, b.order), d)
            return inner.with_names({dotted_name(expr) or ""}) if inner is not None else None
        if isinstance(expr, cst.Subscript):
            return self.count(expr.value, at, d)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            for c, other in ((expr.left, expr.right), (expr.right, expr.left)):
                scale = self.literal(other, at)
                if scale is not None and scale > 0:
                    return self.count(c, at, d)
            return None
        if not isinstance(expr, cst.Call):
            return None
        builtin = builtin_name(expr, self.imports)
        if builtin in ("float", "int") and len(expr.args) == 1:
            inner = self.count(expr.args[0].value, at, d)
            return inner.as_number() if inner is not None else None
        if builtin == "len" and len(expr.args) == 1:
            selected = self.selection(expr.args[0].value, at, d)
            return Count("length of a selection", expr, selected, selected, False) if selected is not None else None
        tc = match_call(expr, self.imports)
        if tc is None or tc.operand is None or not self.is_tensor_method(tc):
            return None
        key = tc.key
        if key == "count_nonzero":
            return Count("count of nonzero elements", expr, names_in(tc.operand), names_in(tc.operand), True)
        if key in ("sum", "nansum"):
            selected = self.mask(tc.operand, at, d)
            return Count("mask sum", expr, selected, selected, True) if selected is not None else None
        if key == "numel":
            selected = self.selection(tc.operand, at, d)
            return Count("length of a selection", expr, selected, selected, False) if selected is not None else None
        if key in ("clamp", "clip", "clamp_min", "maximum", "fmax", "clamp_", "clamp_min_"):
            return None if self.clamp_guard(tc, at) else self.count(tc.operand, at, d)
        if key in TRANSPARENT_OPS or key in _CASTS:
            inner = self.count(tc.operand, at, d)
            if inner is None:
                return None
            return inner.as_number() if key in ("item", "tolist") else inner
        return None

    def selection(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[frozenset]:
        """Names behind ``expr`` when it is a boolean-mask selection that may be empty: ``x[mask]``,
        ``x[labels != -100]``, ``x.masked_select(m)``, ``x[torch.nonzero(m)]``, ``torch.nonzero(m)``."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
                return None
            inner = self.selection(b.value, At(b.scope, b.order), d)
            return inner | {dotted_name(expr) or ""} if inner is not None else None
        if isinstance(expr, cst.Subscript):
            for element in expr.slice:
                index = element.slice
                if not isinstance(index, cst.Index):
                    continue
                found = self.mask(index.value, at, d)
                if found is None:
                    found = self._index_selection(index.value, at, d)
                if found is not None:
                    return found
            return None
        if isinstance(expr, cst.Call):
            tc = match_call(expr, self.imports)
            if tc is None or tc.operand is None or not self.is_tensor_method(tc):
                return None
            if tc.key == "masked_select":
                m = tc.argument("mask", 0)
                found = self.mask(m, at, d) if m is not None else None
                return (found or frozenset()) | names_in(m) if m is not None else None
            if tc.key in ("nonzero", "argwhere"):
                return names_in(tc.operand)
            if tc.key in TRANSPARENT_OPS or tc.key in _CASTS:
                return self.selection(tc.operand, at, d)
        return None

    def _index_selection(self, expr: cst.BaseExpression, at: At, depth: int) -> Optional[frozenset]:
        """An index tensor that may be empty: ``torch.nonzero(m)``, ``torch.where(m)[0]``, ``m.nonzero(...)``."""
        value, where = self.resolve(expr, at)
        if isinstance(value, cst.Subscript):
            value, where = self.resolve(value.value, where)
        if isinstance(value, cst.Call):
            tc = match_call(value, self.imports)
            if tc is not None and tc.operand is not None and self.is_tensor_method(tc):
                if tc.key in ("nonzero", "argwhere"):
                    return names_in(tc.operand)
                if tc.key == "where" and tc.positional(0) is None:
                    return names_in(tc.operand)
                if tc.key in TRANSPARENT_OPS:
                    return self._index_selection(tc.operand, where, depth + 1)
        return None

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

    # -- spelling a torch name the way this module imports it (for fixes) ------------
    def spell(self, key: str, prefer: Optional[cst.BaseExpression] = None) -> Optional[str]:
        """How to write ``torch.<key>`` (``F.<name>`` for ``F.`` keys) with this module's imports, or None.

        ``from torch.nn.functional import log_softmax`` -> ``log_softmax``; ``import torch.nn.functional
        as F`` -> ``F.log_softmax``; ``from torch import nn`` -> ``nn.functional.log_softmax``;
        ``import torch as th`` -> ``th.logsumexp`` / ``th.nn.functional.softplus``. ``prefer`` is the
        callee the user wrote nearby (``th.log``): its import alias wins when several fit.
        """
        qualified = "torch.nn.functional." + key[2:] if key.startswith("F.") else "torch." + key
        module, _, name = qualified.rpartition(".")
        by_target: dict[str, str] = {}
        preferred = dotted_name(prefer).split(".")[0] if prefer is not None and dotted_name(prefer) else None
        if preferred is not None and preferred in self.imports.aliases:
            by_target[self.imports.aliases[preferred]] = preferred
        for local, full in self.imports.aliases.items():
            if not local.startswith("*"):
                by_target.setdefault(full, local)
        if qualified in by_target:
            return by_target[qualified]
        parts = module.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in by_target:
                rest = parts[cut:] + [name]
                return ".".join([by_target[prefix], *rest])
        return None


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


# -- probabilities, counts, bounds: records and vocabularies (NAN103/104/203/301-304) --
@dataclass(frozen=True)
class Probability:
    """A value known to be a probability: ``kind`` softmax / sigmoid / normalised / hand-written softmax.

    ``node`` is the call (or division) that produced it and ``at`` where it was evaluated.
    ``direct``: the value *is* that call's result, reached only through names (``log`` of it can be
    rewritten to ``log_softmax`` / ``logsigmoid``); ``complement``: the value is ``1 - sigmoid(x)``.
    ``zero`` / ``one``: whether it can be exactly 0 / 1 (underflow, saturation) after any clamp seen.
    ``module``: produced by an ``nn.Softmax`` / ``nn.Sigmoid`` module call.
    """

    kind: str
    node: cst.CSTNode
    at: At
    direct: bool
    zero: bool = True
    one: bool = True
    module: bool = False
    complement: bool = False

    def derived(self, zero: Optional[bool] = None, one: Optional[bool] = None) -> "Probability":
        return Probability(self.kind, self.node, self.at, False, self.zero if zero is None else zero,
                           self.one if one is None else one, self.module, False)


@dataclass(frozen=True)
class Count:
    """A number of selected items (``kind``) computed by ``node``; ``names`` are what a guard would test;
    ``origin`` the names the mask or selection was built from; ``tensor``: still a tensor
    (``.clamp_min(1)`` applies), not a Python number."""

    kind: str
    node: cst.CSTNode
    names: frozenset
    origin: frozenset
    tensor: bool

    def with_names(self, extra: set) -> "Count":
        return Count(self.kind, self.node, self.names | (frozenset(extra) - {""}), self.origin, self.tensor)

    def as_number(self) -> "Count":
        return Count(self.kind, self.node, self.names, self.origin, False)


@dataclass(frozen=True)
class Bound:
    """An upper bound of an exp argument; ``shifted``: ``x - max(x)`` or a log-probability (its maximum
    term is 1, so a sum of its exps can neither overflow nor underflow to 0)."""

    value: float
    shifted: bool = False


SOFTMAX_OPS = frozenset({"softmax", "F.softmax", "special.softmax"})
SIGMOID_OPS = frozenset({"sigmoid", "F.sigmoid", "special.expit"})
_PROBABILITY_MODULES = {"nn.Softmax": "softmax", "nn.Softmax2d": "softmax", "nn.Sigmoid": "sigmoid"}
_VALUE_COMPARISONS = (cst.Equal, cst.NotEqual, cst.LessThan, cst.LessThanEqual, cst.GreaterThan,
                      cst.GreaterThanEqual)
_MASK_OPS = frozenset({
    "eq", "ne", "gt", "ge", "lt", "le", "greater", "greater_equal", "less", "less_equal", "not_equal",
    "isfinite", "isnan", "isinf", "isneginf", "isposinf", "isin", "isclose", "logical_and", "logical_or",
    "logical_not", "logical_xor", "bool", "bernoulli",
})
_CASTS = frozenset({"float", "long", "int", "bool", "to", "type", "type_as", "half", "double", "short", "byte"})
_MODULE_CASTS = frozenset({"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "train", "eval",
                           "requires_grad_", "type"})
_NEVER_ZERO_FACTORIES = frozenset({"ones", "ones_like", "new_ones"})
# parameter names that mean a probability in [0, 1] (the name prior of docs/analysis.md)
PROBABILITY_NAME = re.compile(r"^(p|probs?|probas?|probabilit(?:y|ies)|\w+_probs?|probs?_\w+|\w+_proba)$")
_MASK_NAME = re.compile(r"(?i)(?:^|_)masks?(?:_|$)")
_LOG_PROBABILITY_OPS = frozenset({
    "log_softmax", "F.log_softmax", "special.log_softmax", "F.logsigmoid",
})
_UNIT_BOUNDED_OPS = frozenset({
    "sigmoid", "F.sigmoid", "special.expit", "tanh", "F.tanh", "cos", "sin", "softmax", "F.softmax",
    "special.softmax", "F.hardtanh", "F.cosine_similarity", "cosine_similarity", "F.hardsigmoid",
})
_NON_NEGATIVE_OPS = frozenset({
    "abs", "absolute", "F.relu", "relu", "relu_", "F.relu6", "square", "exp", "F.softplus", "sqrt", "cdist",
    "F.pairwise_distance", "pairwise_distance", "F.pdist", "pdist", "sigmoid", "F.sigmoid", "softmax",
    "F.softmax", "numel", "count_nonzero", *NORM_OPS,
})


def _function_scope(scope: Scope) -> Scope:
    while scope.kind == "class" and scope.parent is not None:
        scope = scope.parent
    return scope


def names_in(expr: cst.CSTNode) -> frozenset:
    """Every name and dotted name in an expression (``self.mask`` gives ``self.mask`` and ``self``)."""
    found: set[str] = set()
    stack: list[cst.CSTNode] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            found.add(node.value)
        elif isinstance(node, cst.Attribute):
            dotted = dotted_name(node)
            if dotted is not None:
                found.add(dotted)
        elif isinstance(node, cst.SimpleString):
            text = _string_value(node)
            if text is not None and text.isidentifier():
                found.add(text)  # ``batch["attention_mask"]``
        stack.extend(node.children)
    return frozenset(found - {"self", "cls", "torch", "F", "nn", "None", "True", "False"})


def _squared_base(expr: cst.BaseExpression, facts: "Facts", at: At) -> Optional[cst.BaseExpression]:
    """``c`` for ``c ** 2`` / ``c * c`` / ``c.pow(2)`` / ``c.square()``."""
    if isinstance(expr, cst.BinaryOperation):
        if isinstance(expr.operator, cst.Power) and facts.literal(expr.right, at) == 2:
            return expr.left
        if isinstance(expr.operator, cst.Multiply) and _same_code(expr.left, expr.right):
            return expr.left
    if isinstance(expr, cst.Call):
        tc = match_call(expr, facts.imports)
        if tc is not None and tc.operand is not None and (
                tc.key in ("square",) or tc.key == "pow" and facts.literal(tc.argument("exponent", 0), at) == 2):
            return tc.operand
    return None


COSINE_NAME = re.compile(r"(^|_)(cos|cosine|cos_theta|cosines|sim|similarity|cos_sim)($|_)", re.I)


def _cosine_like(expr: cst.BaseExpression, facts: "Facts", at: At) -> bool:
    """A cosine by provenance (``F.cosine_similarity``) or by name (``cos``, ``cosine``, ``sim``)."""
    value, where = facts.resolve(expr, at)
    if isinstance(value, cst.Call):
        tc = match_call(value, facts.imports)
        if tc is not None and tc.key in ("F.cosine_similarity", "cosine_similarity"):
            return True
    name = expr.value if isinstance(expr, cst.Name) else expr.attr.value if isinstance(expr, cst.Attribute) else ""
    return bool(name) and COSINE_NAME.search(name) is not None


def guard_names(test: cst.BaseExpression) -> frozenset:
    """Names a condition tests for emptiness or zero: ``n > 0``, ``if n``, ``mask.any()``,
    ``mask.sum() == 0``, ``len(idx)``, ``x.numel()``, ``x.shape[0]``. ``x is None``,
    ``isinstance(x, T)`` and ``labels.dim() == 2`` say nothing about a count and are left out."""
    if isinstance(test, cst.BooleanOperation):
        return guard_names(test.left) | guard_names(test.right)
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return guard_names(test.expression)
    if isinstance(test, cst.Comparison):
        if any(isinstance(t.operator, (cst.Is, cst.IsNot, cst.In, cst.NotIn)) for t in test.comparisons):
            return frozenset()
        found = _guard_operand(test.left)
        for target in test.comparisons:
            found |= _guard_operand(target.comparator)
        return found
    return _guard_operand(test)


_COUNTING_METHODS = frozenset({
    "any", "all", "sum", "numel", "nelement", "nonzero", "count_nonzero", "item", "size", "max", "min", "bool",
})


def _guard_operand(expr: cst.BaseExpression) -> frozenset:
    if isinstance(expr, cst.Name):
        return frozenset({expr.value})
    if isinstance(expr, cst.NamedExpr):  # ``if (n := mask.sum()) > 0:``
        return _guard_operand(expr.target) | _guard_operand(expr.value)
    if isinstance(expr, cst.Attribute):
        if expr.attr.value == "shape":
            return names_in(expr.value)
        dotted = dotted_name(expr)
        return frozenset({dotted}) if dotted is not None else frozenset()
    if isinstance(expr, cst.Subscript):
        return _guard_operand(expr.value)
    if isinstance(expr, cst.UnaryOperation):
        return _guard_operand(expr.expression)
    if isinstance(expr, cst.BinaryOperation):
        return _guard_operand(expr.left) | _guard_operand(expr.right)
    if isinstance(expr, cst.Call):
        func = expr.func
        first = expr.args[0].value if expr.args else None
        if isinstance(func, cst.Name) and func.value in ("len", "bool", "int", "float", "any", "all"):
            return names_in(first) if first is not None else frozenset()
        if isinstance(func, cst.Attribute) and func.attr.value in _COUNTING_METHODS:
            found = names_in(func.value)
            return found | names_in(first) if first is not None else found
    return frozenset()


def _string_index(expr: cst.Subscript) -> Optional[str]:
    if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
        return None
    value = expr.slice[0].slice.value
    return _string_value(value) if isinstance(value, cst.SimpleString) else None


def _string_value(node: cst.SimpleString) -> Optional[str]:
    try:
        text = node.evaluated_value
    except Exception:  # an escape sequence ``ast.literal_eval`` rejects
        return None
    return text if isinstance(text, str) else None
