"""The analysis's shared vocabulary: the records rules get back (zero sources, probabilities, counts, bounds),
the small syntactic helpers every question uses, and the op families of ``ops.py`` (re-exported here under
the names the analysis modules import). One table of op names, not copies."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from ..names import dotted_name, match_call
from ..scope import Scope
from .ops import (  # noqa: F401 (re-exported)
    BROADCASTS, CASTS as _CASTS, COUNTING_METHODS as _COUNTING_METHODS, DEGREE_FUNCTIONS, FACTORIES as _FACTORIES,
    LOG_PROBABILITY_OPS as _LOG_PROBABILITY_OPS, MASK_OPS as _MASK_OPS, MODULE_SELF_METHODS as _MODULE_CASTS,
    NON_NEGATIVE_OPS as _NON_NEGATIVE_OPS, NORM_OPS, ONE_FACTORIES as _NEVER_ZERO_FACTORIES, REDUCE_OPS,
    SCATTER_COUNTS, SCATTER_SUM_FUNCTIONS, SIGMOID_OPS, SOFTMAX_OPS, TRANSPARENT_OPS, UNIT_BOUNDED_OPS as _UNIT_BOUNDED_OPS, VARIANCE_NAME,
    COSINE_NAME,  # the second-stage screen reads it from ``ops`` too
)

if TYPE_CHECKING:
    from ..facts import Facts

_MAX_DEPTH = 16

# Segment (scatter) reductions: a GNN's per-node softmax sums ``exp`` over each node's edges with one of these.
# Tensor methods ``dst.index_add_(dim, index, src)`` (also ``torch.index_add(dst, dim, index, src)``): the
# position of ``src`` among the arguments after ``dst``, and its keyword.
SEGMENT_METHODS = {"index_add": (2, "source"), "index_add_": (2, "source"), "scatter_add": (2, "src"),
                   "scatter_add_": (2, "src"), "scatter_reduce": (2, "src"), "scatter_reduce_": (2, "src"),
                   "index_reduce": (2, "source"), "index_reduce_": (2, "source")}
# Library functions that take ``src`` first: torch_scatter / PyG (``reduce=`` says which reduction, "sum" by
# default for ``scatter``), and helpers named like one (``segment_sum``, ``unsorted_segment_sum``).
SEGMENT_FUNCTIONS = {
    "torch_scatter.scatter": "sum", "torch_scatter.scatter_add": "sum", "torch_scatter.scatter_sum": "sum",
    "torch_scatter.segment_csr": "sum", "torch_scatter.segment_coo": "sum", "torch_scatter.segment_sum_csr": "sum",
    "torch_scatter.segment_sum_coo": "sum", "torch_geometric.utils.scatter": "sum",
    "torch_scatter.scatter_max": "max", "torch_scatter.segment_max_csr": "max",
    "torch_scatter.segment_max_coo": "max",
}
SEGMENT_HELPER = re.compile(r"^(?:unsorted_)?segment_(sum|max)$|^scatter_(add|sum|max)$")
_SEGMENT_REDUCTIONS = {"sum": "sum", "add": "sum", "amax": "max", "max": "max"}
# ``torch.finfo(d).max`` of each float dtype, by the names torch spells them (``-max`` is ``finfo(d).min``).
# float32's max is beyond bfloat16's (3.39e38): ``finfo(torch.float32).min`` overflows both half types.
FLOAT_MAX = {
    "float16": 65504.0, "half": 65504.0, "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38, "float": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308, "double": 1.7976931348623157e308,
}

# Kinds of zero, grouped by the rules that care about them.
NORM_KINDS = frozenset({"norm", "hand-written norm"})
STD_KINDS = frozenset({"standard deviation", "square root of a variance", "range (max - min)"})
SQUARE_KINDS = frozenset({
    "variance", "expanded squared distance", "sum of squares", "mean of squares", "MSE", "squared difference", "square",
    "one minus a squared cosine",
})


@dataclass(frozen=True)
class ZeroSource:
    """Why an expression can be exactly zero: ``kind`` and the node that makes it so."""

    kind: str
    node: cst.CSTNode
    # a difference that rounding can push below 0 (``E[x^2] - E[x]^2``, ``|a|^2 + |b|^2 - 2 a.b``): its root is
    # NaN in the forward pass too, not only in the gradient
    negative: bool = False

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


def _literal_index(expr: cst.Subscript) -> Optional[int]:
    if len(expr.slice) != 1:
        return None
    element = expr.slice[0].slice
    if isinstance(element, cst.Index) and isinstance(element.value, cst.Integer):
        return int(element.value.value)
    return None


def _same_code(a: cst.BaseExpression, b: cst.BaseExpression) -> bool:
    return a.deep_equals(b) if type(a) is type(b) else False


def vector_base(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``labels[:, None]``, ``labels.unsqueeze(0)``, ``labels.view(-1, 1).T`` -> ``labels``: the vector a
    reshape or broadcast is of (by text: a name reads the same binding on both sides of one comparison)."""
    for _ in range(_MAX_DEPTH):
        if isinstance(expr, cst.Subscript) and all(
                isinstance(e.slice, cst.Slice) and e.slice.lower is None and e.slice.upper is None
                or isinstance(e.slice, cst.Index) and isinstance(e.slice.value, cst.Name) and e.slice.value.value == "None"
                for e in expr.slice):
            expr = expr.value
        elif isinstance(expr, cst.Attribute) and expr.attr.value in ("T", "mT"):
            expr = expr.value
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
                and expr.func.attr.value in BROADCASTS:
            expr = expr.func.value
        else:
            return expr
    return expr


def same_vector(a: cst.BaseExpression, b: cst.BaseExpression) -> bool:
    """``labels[:, None]`` and ``labels[None, :]``, ``emb`` and ``emb.t()``: one vector, broadcast two ways."""
    base_a, base_b = vector_base(a), vector_base(b)
    return isinstance(base_a, (cst.Name, cst.Attribute, cst.Subscript)) and _same_code(base_a, base_b)


def _is_difference(expr: cst.BaseExpression, facts: "Optional[Facts]" = None, at: Optional[At] = None) -> bool:
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


_PROBABILITY_MODULES = {"nn.Softmax": "softmax", "nn.Softmax2d": "softmax", "nn.Sigmoid": "sigmoid"}
_VALUE_COMPARISONS = (cst.Equal, cst.NotEqual, cst.LessThan, cst.LessThanEqual, cst.GreaterThan,
                      cst.GreaterThanEqual)
SELF_LOOP_NAME = re.compile(r"(?i)self_loops?")
ADJACENCY_NAME = re.compile(r"(?i)(?:^|_)adj(?:acency)?(?:_?mat(?:rix)?|_t)?$")
# parameter names that mean a probability in [0, 1] (the name prior of docs/analysis.md)
PROBABILITY_NAME = re.compile(r"^(p|probs?|probas?|probabilit(?:y|ies)|\w+_probs?|probs?_\w+|\w+_proba)$")
_MASK_NAME = re.compile(r"(?i)(?:^|_)masks?(?:_|$)")
# 0/1 indicators that are masks by their conventional names: survival analysis's event indicator (DeepSurv,
# pycox: a mini-batch in which every sample is censored has no event)
INDICATOR_NAME = re.compile(r"(?i)^(?:events?|event_indicators?|observed|is_event|event_observed)$")


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
    if isinstance(test, cst.BooleanOperation) or isinstance(test, cst.BinaryOperation) and isinstance(
            test.operator, (cst.BitAnd, cst.BitOr)):  # ``(w > 0) & (g > 0)``: a tensor condition's conjunction
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
