"""What kind of value an expression is: a float tensor, an int or bool tensor, a Python number, numpy...

Rules ask it to stay silent where a hazard cannot exist (``H, W = x.shape`` are
ints, never a zero vector; numpy code records no gradient) and fixes ask it
which dtype an eps can be read from (only a floating tensor has ``finfo``).
Unknown is an answer: a parameter whose callers are unseen is ``UNKNOWN``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from ..names import builtin_name, match_call
from .ops import BOOL_OPS as _BOOL_OPS, FLOAT_CASTS as _FLOAT_CASTS, FLOAT_OPS as _FLOAT_OPS, INT_OPS as _INT_OPS
from .ops import KIND_PRESERVING as _KIND_PRESERVING, SIZE_ATTRIBUTES as _SIZE_ATTRIBUTES

if TYPE_CHECKING:
    from ..facts import At, Facts
    from ..scope import Binding

FLOAT_TENSOR = "float tensor"
INT_TENSOR = "int tensor"
BOOL_TENSOR = "bool tensor"
TENSOR = "tensor"  # a tensor whose dtype is not visible
PY_INT = "Python int"
PY_FLOAT = "Python float"
NUMPY = "numpy array"
SEQUENCE = "Python sequence"
UNKNOWN = "unknown"

NUMBERS = frozenset({PY_INT, PY_FLOAT})
TENSORS = frozenset({FLOAT_TENSOR, INT_TENSOR, BOOL_TENSOR, TENSOR})
# kinds that never carry an autograd gradient
GRADIENT_FREE = frozenset({INT_TENSOR, BOOL_TENSOR, PY_INT, PY_FLOAT, NUMPY, SEQUENCE})


def kind(facts: "Facts", expr: cst.BaseExpression, at: "At", depth: int = 0) -> str:
    """The kind of ``expr`` at ``at`` (one of the constants above)."""
    if depth > 12:
        return UNKNOWN
    d = depth + 1
    if isinstance(expr, cst.Integer):
        return PY_INT
    if isinstance(expr, cst.Float):
        return PY_FLOAT
    if isinstance(expr, (cst.List, cst.Tuple, cst.ListComp, cst.GeneratorExp)):
        return SEQUENCE
    if isinstance(expr, cst.Comparison):
        sides = [expr.left, *(c.comparator for c in expr.comparisons)]
        if any(kind(facts, side, at, d) in TENSORS for side in sides):
            return BOOL_TENSOR
        return UNKNOWN
    if isinstance(expr, cst.UnaryOperation):
        inner = kind(facts, expr.expression, at, d)
        if isinstance(expr.operator, cst.Not):
            return UNKNOWN
        return inner
    if isinstance(expr, cst.BinaryOperation):
        return _binary(facts, expr, at, d)
    if isinstance(expr, cst.Subscript):
        inner = kind(facts, expr.value, at, d)
        if inner == SEQUENCE:
            value, where = facts.resolve(expr.value, at)
            if isinstance(value, cst.Attribute) and value.attr.value == "shape":
                return PY_INT  # x.shape[-1]
            return UNKNOWN
        return inner if inner in TENSORS or inner == NUMPY else UNKNOWN
    if isinstance(expr, cst.Attribute):
        if expr.attr.value in _SIZE_ATTRIBUTES:
            return SEQUENCE if expr.attr.value == "shape" else PY_INT
        qualified = facts.imports.qualify(expr)
        if qualified is not None:
            root = qualified.split(".")[0]
            if root == "math":
                return PY_FLOAT
            if root == "numpy":
                return NUMPY
        if expr.attr.value in ("T", "mT", "data", "real"):
            return kind(facts, expr.value, at, d)
        if expr.attr.value == "grad":
            return FLOAT_TENSOR
    if isinstance(expr, (cst.Name, cst.Attribute)):
        return _named(facts, expr, at, d)
    if isinstance(expr, cst.Call):
        return _call(facts, expr, at, d)
    return UNKNOWN


def _binary(facts: "Facts", expr: cst.BinaryOperation, at: "At", depth: int) -> str:
    left, right = kind(facts, expr.left, at, depth), kind(facts, expr.right, at, depth)
    if isinstance(expr.operator, cst.MatrixMultiply):
        return FLOAT_TENSOR if FLOAT_TENSOR in (left, right) else (TENSOR if TENSORS & {left, right} else UNKNOWN)
    if NUMPY in (left, right) and not TENSORS & {left, right}:
        return NUMPY
    if TENSORS & {left, right}:
        if FLOAT_TENSOR in (left, right) or PY_FLOAT in (left, right):
            return FLOAT_TENSOR
        if isinstance(expr.operator, cst.Divide):
            return FLOAT_TENSOR  # true division of integer tensors is float
        if left in (INT_TENSOR, BOOL_TENSOR, PY_INT) and right in (INT_TENSOR, BOOL_TENSOR, PY_INT):
            if isinstance(expr.operator, (cst.BitAnd, cst.BitOr, cst.BitXor)) and BOOL_TENSOR in (left, right):
                return BOOL_TENSOR if left == right == BOOL_TENSOR else INT_TENSOR
            return INT_TENSOR
        return TENSOR
    if left in NUMBERS and right in NUMBERS:
        if PY_FLOAT in (left, right) or isinstance(expr.operator, cst.Divide):
            return PY_FLOAT
        return PY_INT
    if SEQUENCE in (left, right) and isinstance(expr.operator, (cst.Add, cst.Multiply)):
        return SEQUENCE
    return UNKNOWN


def _named(facts: "Facts", expr: "cst.Name | cst.Attribute", at: "At", depth: int) -> str:
    binding = facts.binding(expr, at)
    if binding is not None and binding.is_parameter:
        # a default argument is not what callers pass; an annotation (``width: int``) says what they may
        return _annotated(binding, expr.value if isinstance(expr, cst.Name) else "")
    if binding is not None and binding.counter:
        return PY_INT  # ``for level, x in enumerate(xs)``
    if binding is None or binding.value is None:
        return UNKNOWN
    where = type(at)(binding.scope, binding.order)
    if binding.operator is not None:
        previous = binding.previous
        if previous is not None and previous.value is not None and previous.index is None:
            return kind(facts, previous.value, type(at)(previous.scope, previous.order), depth)
        return UNKNOWN
    if binding.index is not None:
        value, value_at = facts.resolve(binding.value, where)
        if isinstance(value, cst.Attribute) and value.attr.value == "shape":
            return PY_INT  # H, W = x.shape
        if isinstance(value, cst.Call):
            tc = match_call(value, facts.imports)
            if tc is not None and tc.key in ("size",) and tc.is_method:
                return PY_INT
        if isinstance(value, (cst.Tuple, cst.List)) and binding.index < len(value.elements):
            element = value.elements[binding.index]
            if not isinstance(element, cst.StarredElement):
                return kind(facts, element.value, value_at, depth)
        return UNKNOWN
    return kind(facts, binding.value, where, depth)


_ANNOTATION_KINDS = {
    "int": PY_INT, "float": PY_FLOAT, "bool": PY_INT, "complex": PY_FLOAT,
    "ndarray": NUMPY, "list": SEQUENCE, "tuple": SEQUENCE, "List": SEQUENCE, "Tuple": SEQUENCE,
    "Sequence": SEQUENCE, "LongTensor": INT_TENSOR, "BoolTensor": BOOL_TENSOR, "FloatTensor": FLOAT_TENSOR,
}


def _annotated(binding: "Binding", name: str) -> str:
    """The kind a parameter's annotation names (``x: int``, ``mask: torch.BoolTensor``); unions of several
    kinds (``Union[Tensor, float]``) and anything else are unknown."""
    function = binding.scope.node
    if not name or not isinstance(function, cst.FunctionDef):
        return UNKNOWN
    params = function.params
    for param in (*params.posonly_params, *params.params, *params.kwonly_params):
        if param.name.value == name and param.annotation is not None:
            annotation = param.annotation.annotation
            if isinstance(annotation, cst.Subscript):
                annotation = annotation.value  # ``List[int]`` -> ``List``
            last = annotation.attr.value if isinstance(annotation, cst.Attribute) else \
                annotation.value if isinstance(annotation, cst.Name) else ""
            return _ANNOTATION_KINDS.get(last, UNKNOWN)
    return UNKNOWN


def _call(facts: "Facts", call: cst.Call, at: "At", depth: int) -> str:
    name = builtin_name(call, facts.imports)
    if name == "len" or name == "int" or name == "round":
        return PY_INT
    if name == "float":
        return PY_FLOAT
    if name in ("list", "tuple", "sorted", "range", "zip", "enumerate"):
        return SEQUENCE
    if name in ("min", "max", "abs", "sum"):
        kinds = {kind(facts, a.value, at, depth) for a in call.args if not a.star}
        if kinds and kinds <= NUMBERS:
            return PY_FLOAT if PY_FLOAT in kinds else PY_INT
        return UNKNOWN
    func = call.func
    if isinstance(func, (cst.Name, cst.Attribute)):
        qualified = facts.imports.qualify(func)
        if qualified is not None:
            root = qualified.split(".")[0]
            if root == "math":
                return PY_FLOAT if not qualified.endswith(("floor", "ceil", "comb", "factorial", "gcd", "isqrt")) \
                    else PY_INT
            if root == "numpy":
                return NUMPY
    tc = match_call(call, facts.imports)
    if tc is None:
        if isinstance(func, cst.Attribute) and func.attr.value in ("numpy", "tolist"):
            return NUMPY if func.attr.value == "numpy" else SEQUENCE
        if isinstance(func, cst.Attribute) and func.attr.value == "item":
            return UNKNOWN  # a Python number of the tensor's kind
        return UNKNOWN
    key = tc.key.rsplit(".", 1)[-1]
    dtype = tc.keyword("dtype")
    if dtype is not None:
        return _dtype_kind(facts, dtype)
    if tc.is_method and tc.key in ("to", "type") and tc.positional(0) is not None:
        first = tc.positional(0)
        qualified = facts.imports.qualify(first) if isinstance(first, (cst.Name, cst.Attribute)) else None
        if qualified is not None and qualified.startswith("torch."):
            return _dtype_kind(facts, first)
    if tc.key in ("numpy", "tolist"):
        return NUMPY if tc.key == "numpy" else SEQUENCE
    if tc.key in ("item",):
        return UNKNOWN
    if tc.key in ("size", "numel", "dim", "nelement") and tc.is_method:
        return SEQUENCE if tc.key == "size" and not tc.args else PY_INT
    if tc.key in _BOOL_OPS or key in _BOOL_OPS:
        return BOOL_TENSOR
    if tc.key in _INT_OPS or key in _INT_OPS:
        return INT_TENSOR
    if tc.key in _FLOAT_CASTS or tc.key in _FLOAT_OPS:
        return FLOAT_TENSOR
    if tc.key in ("arange",):
        args = [a.value for a in call.args if a.keyword is None]
        kinds = {kind(facts, a, at, depth) for a in args}
        return FLOAT_TENSOR if PY_FLOAT in kinds else (INT_TENSOR if kinds and kinds <= {PY_INT} else TENSOR)
    if tc.key in ("zeros", "ones", "full", "empty", "eye", "zeros_like", "ones_like", "full_like", "empty_like",
                  "tensor", "as_tensor"):
        if tc.key.endswith("_like") and tc.positional(0) is not None:
            return kind(facts, tc.positional(0), at, depth)  # type: ignore[arg-type]
        return FLOAT_TENSOR if tc.key in ("zeros", "ones", "full", "empty", "eye") else TENSOR
    if tc.key in ("where",) and tc.positional(0) is not None:
        a, b = tc.positional(0), tc.positional(1)
        kinds = {kind(facts, x, at, depth) for x in (a, b) if x is not None}
        if FLOAT_TENSOR in kinds or PY_FLOAT in kinds:
            return FLOAT_TENSOR
        return TENSOR
    if tc.operand is not None and tc.key in _KIND_PRESERVING:
        inner = kind(facts, tc.operand, at, depth)
        if tc.key in ("sum", "cumsum", "prod") and inner == BOOL_TENSOR:
            return INT_TENSOR
        if inner in (NUMPY,) or inner in TENSORS:
            return inner
        return TENSOR if tc.is_method is False else inner
    if not tc.is_method:
        return TENSOR  # a torch function: its result is a tensor
    return UNKNOWN


def _dtype_kind(facts: "Facts", dtype: cst.BaseExpression) -> str:
    qualified = facts.imports.qualify(dtype) if isinstance(dtype, (cst.Name, cst.Attribute)) else None
    if qualified is None:
        return TENSOR
    name = qualified.rsplit(".", 1)[-1]
    if name in ("float16", "float32", "float64", "bfloat16", "half", "float", "double"):
        return FLOAT_TENSOR
    if name == "bool":
        return BOOL_TENSOR
    if name in ("int8", "int16", "int32", "int64", "uint8", "long", "int", "short"):
        return INT_TENSOR
    return TENSOR
