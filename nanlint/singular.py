"""Operations with a singular point, the guards that keep their argument away from it, and
the names an expression reads.

Shared by NAN401 (the where trap: a singular op on the unselected side of a
``torch.where``) and NAN501 (an eps guard that vanishes in float16).

A :class:`Singular` is an op whose value or derivative is infinite at one
argument: ``sqrt``/``rsqrt``/fractional powers at 0, ``log`` at 0, ``log1p`` at
-1, a division or ``reciprocal`` at a zero divisor, ``acos``/``asin``/``atanh``
at +-1 (docs/probe.md rows 17, 30, 33, 35, 37; extra measurements in
docs/numerics-extra.md).
"""
from __future__ import annotations

import re

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from .analysis import kinds
from .analysis.ops import FLOOR_CLAMPS as _CLAMPS, GRADIENT_FREE_RESULTS as _CONSTRUCTORS
from .analysis.ops import PROPAGATES_GRADIENT as _PROPAGATING, RESHAPES, REPEATS, TRANSPOSES
from .names import builtin_name, dotted_name, last_name
from .patterns import division

if TYPE_CHECKING:
    from .context import FileContext
    from .facts import At

# op key -> (kind, a value where the op is regular, how the derivative at ``operand = eps`` grows)
_CALL_OPS: dict[str, tuple[str, str, str]] = {
    "sqrt": ("sqrt", "1.0", "sqrt"), "sqrt_": ("sqrt", "1.0", "sqrt"),
    "rsqrt": ("rsqrt", "1.0", "rsqrt"), "rsqrt_": ("rsqrt", "1.0", "rsqrt"),
    "log": ("log", "1.0", "inverse"), "log_": ("log", "1.0", "inverse"),
    "log2": ("log", "1.0", "inverse"), "log10": ("log", "1.0", "inverse"),
    "log1p": ("log1p", "0.0", "none"),
    "reciprocal": ("reciprocal", "1.0", "inverse"), "reciprocal_": ("reciprocal", "1.0", "inverse"),
    "acos": ("acos", "0.0", "none"), "arccos": ("acos", "0.0", "none"),
    "asin": ("asin", "0.0", "none"), "arcsin": ("asin", "0.0", "none"),
    "atanh": ("atanh", "0.0", "none"), "arctanh": ("atanh", "0.0", "none"),
}


@dataclass(frozen=True)
class Singular:
    node: cst.CSTNode  # the op
    operand: cst.BaseExpression  # the argument that must stay away from the singular point
    kind: str  # sqrt, rsqrt, log, log1p, reciprocal, division, power, acos, asin, atanh
    safe: str  # an argument at which the op is regular (for a double-where)
    growth: str  # derivative at ``eps``: "inverse" (1/eps), "rsqrt" (eps^-1.5), "sqrt" (eps^-0.5), "none"
    numerator: Optional[cst.BaseExpression] = None  # for a division: what is divided

    @property
    def described(self) -> str:
        return {"division": "a division", "power": "a fractional or negative power"}.get(self.kind, f"`{self.kind}`")


def singular(node: cst.CSTNode, ctx: "FileContext") -> Optional[Singular]:
    """``node`` as a singular op, or None."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Power):
        return _power(node, node.left, ctx.facts.literal(node.right, ctx.at()))
    found = division(node, ctx)
    if found is not None:
        if ctx.facts.literal(found.divisor, ctx.at()) is not None:
            return None  # x / 2
        return Singular(node, found.divisor, "division", "1.0", "inverse", found.numerator)
    if isinstance(node, cst.Call):
        tc = ctx.match(node)
        if tc is None or tc.operand is None:
            return None
        if tc.key in ("pow", "pow_", "float_power"):
            return _power(node, tc.operand, ctx.facts.literal(tc.argument("exponent", 0), ctx.at()))
        spec = _CALL_OPS.get(tc.key)
        if spec is not None:
            return Singular(node, tc.operand, *spec)
    return None


def _power(node: cst.CSTNode, base: cst.BaseExpression, exponent: Optional[float]) -> Optional[Singular]:
    if exponent is None or exponent >= 1 or exponent == 0 or (exponent > 0 and exponent == int(exponent)):
        return None
    if exponent < 0:
        return Singular(node, base, "power", "1.0", "inverse")
    return Singular(node, base, "power", "1.0", "sqrt")


def iter_singular(expr: cst.CSTNode, ctx: "FileContext") -> Iterator[Singular]:
    """Every singular op inside ``expr`` (not inside lambdas), outermost first."""
    stack: list[cst.CSTNode] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Lambda):
            continue
        found = singular(node, ctx)
        if found is not None:
            yield found
        stack.extend(reversed(list(_children(node))))


def _children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    if isinstance(node, cst.Call):
        yield node.func
        for arg in node.args:
            yield arg.value
    elif isinstance(node, cst.BinaryOperation):
        yield node.left
        yield node.right
    elif isinstance(node, cst.UnaryOperation):
        yield node.expression
    elif isinstance(node, cst.Attribute):
        yield node.value
    elif isinstance(node, cst.Subscript):
        yield node.value
    elif isinstance(node, (cst.Tuple, cst.List)):
        for element in node.elements:
            yield element.value
    elif isinstance(node, cst.IfExp):
        yield node.body
        yield node.orelse


def follow(expr: cst.BaseExpression, ctx: "FileContext", at: "At") -> tuple[cst.BaseExpression, "At"]:
    """What a name was assigned, like ``Facts.resolve``, also through tuple unpacking of a literal tuple
    (``q, k = q.float(), k.float()`` makes ``k`` -> ``k.float()``); ``expr`` itself when unknown."""
    from .facts import At

    binding = ctx.facts.binding(expr, at)
    if binding is None or binding.value is None or binding.operator is not None:
        return expr, at
    if binding.index is not None:
        value = binding.value
        if isinstance(value, (cst.Tuple, cst.List)) and binding.index < len(value.elements) and not any(
                isinstance(e, cst.StarredElement) for e in value.elements):
            return value.elements[binding.index].value, At(binding.scope, binding.order)
        return expr, at
    return binding.value, At(binding.scope, binding.order)


# -- guards ----------------------------------------------------------------
@dataclass(frozen=True)
class Guard:
    """``x + eps`` / ``x.clamp_min(eps)`` / ``torch.where(c, x, 1)``: what keeps an operand regular."""

    node: cst.CSTNode
    form: str  # "add" | "clamp" | "where" | "masked_fill"
    guarded: Optional[cst.BaseExpression]  # the expression the eps protects
    eps: Optional[cst.BaseExpression]  # the eps expression (add / clamp)


def guard(expr: cst.BaseExpression, ctx: "FileContext", at: "At") -> Optional[Guard]:
    """The guard ``expr`` is, looking through names and casts, or None."""
    facts = ctx.facts
    for _ in range(8):
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            for eps, other in ((expr.right, expr.left), (expr.left, expr.right)):
                value = facts.literal(eps, at)
                if value is not None and value > 0:
                    return Guard(expr, "add", other, eps)
                if _is_comparison(eps, ctx, at):  # d + (d == 0)
                    return Guard(expr, "add", other, None)
            for eps, other in ((expr.right, expr.left), (expr.left, expr.right)):
                if _is_eps_name(eps) and facts.is_positive(eps, at):
                    return Guard(expr, "add", other, eps)
            return None
        if isinstance(expr, cst.Call):
            tc = ctx.match(expr)
            name = builtin_name(expr, ctx.imports)
            if name == "max" and len(expr.args) == 2:
                for eps, other in ((expr.args[1].value, expr.args[0].value), (expr.args[0].value, expr.args[1].value)):
                    value = facts.literal(eps, at)
                    if value is not None and value > 0:
                        return Guard(expr, "clamp", other, eps)
                return None
            if tc is None:
                return None
            if tc.key in _CLAMPS:
                low = tc.argument("min", 0)
                if low is not None and facts.is_positive(low, at):
                    return Guard(expr, "clamp", tc.operand, low)
                return None
            if tc.key in ("maximum", "fmax"):
                other = tc.positional(0)
                if other is not None and tc.operand is not None:
                    for eps, rest in ((other, tc.operand), (tc.operand, other)):
                        value = _tensor_literal(eps, ctx, at)
                        if value is not None and value > 0:
                            return Guard(expr, "clamp", rest, eps)
                return None
            if tc.key == "where" and not tc.is_method and len(expr.args) == 3:
                return Guard(expr, "where", None, None)
            if tc.key in ("masked_fill", "masked_fill_"):
                return Guard(expr, "masked_fill", None, None)
            if tc.key in ("float", "double", "half", "to", "type_as", "contiguous", "view", "reshape",
                          "unsqueeze", "squeeze", "expand_as", "expand", "detach", "clone", "type"):
                if tc.operand is None or not tc.is_method:
                    return None
                expr = tc.operand
                continue
            return None
        if isinstance(expr, cst.Name):
            value, where = facts.resolve(expr, at)
            if value is expr:
                return None
            expr, at = value, where
            continue
        return None
    return None


def _is_eps_name(expr: cst.BaseExpression) -> bool:
    name = dotted_name(expr)
    return name is not None and "eps" in name.split(".")[-1].lower()


def _tensor_literal(expr: cst.BaseExpression, ctx: "FileContext", at: "At") -> Optional[float]:
    """A literal, or ``torch.tensor(literal)``."""
    value = ctx.facts.literal(expr, at)
    if value is not None:
        return value
    if isinstance(expr, cst.Call):
        tc = ctx.match(expr)
        if tc is not None and tc.key in ("tensor", "as_tensor", "full_like") and not tc.is_method:
            arg = tc.operand if tc.key != "full_like" else tc.argument("fill_value", 0)
            return ctx.facts.literal(arg, at)
    return None


def _is_comparison(expr: cst.BaseExpression, ctx: "FileContext", at: "At") -> bool:
    for _ in range(3):
        if isinstance(expr, cst.Comparison):
            return True
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in (
                "float", "to", "type_as", "half", "double", "int", "long"):
            expr = expr.func.value
            continue
        return False
    return False


# -- names an expression reads --------------------------------------------
def read_names(expr: cst.CSTNode, ctx: "FileContext", at: "At", follow: int = 1) -> set[str]:
    """The variables ``expr`` reads (``x``, ``self.mask``), not module names, call targets or indices.

    ``follow`` > 0 also collects the names in what a bare name was assigned
    (``mask = x > 0`` makes ``mask`` read ``x``).
    """
    out: set[str] = set()
    stack: list[tuple[cst.CSTNode, "At", int]] = [(expr, at, follow)]
    while stack:
        node, where, budget = stack.pop()
        if isinstance(node, (cst.Name, cst.Attribute)):
            name = dotted_name(node)
            if name is None:
                if isinstance(node, cst.Attribute):
                    stack.append((node.value, where, budget))
                continue
            if ctx.imports.is_module(node) or name in ("True", "False", "None", "self"):
                continue
            last = name.split(".")[-1].lstrip("_")
            if len(last) > 1 and last.isupper():
                continue  # a constant (EPS, cls._LOGC3_E): never the value a mask tests
            out.add(name)
            root = name.split(".")[0]
            if root != name and root not in ("self", "cls"):
                out.add(root)  # x.T, x.shape read x
            if budget > 0:
                value, value_at = ctx.facts.resolve(node, where)
                if value is not node:
                    stack.append((value, value_at, budget - 1))
        elif isinstance(node, cst.Call):
            if isinstance(node.func, cst.Attribute) and not ctx.imports.is_module(node.func.value):
                stack.append((node.func.value, where, budget))
            for arg in node.args:
                stack.append((arg.value, where, budget))
        elif isinstance(node, cst.BinaryOperation):
            stack.append((node.left, where, budget))
            stack.append((node.right, where, budget))
        elif isinstance(node, cst.BooleanOperation):
            stack.append((node.left, where, budget))
            stack.append((node.right, where, budget))
        elif isinstance(node, cst.UnaryOperation):
            stack.append((node.expression, where, budget))
        elif isinstance(node, cst.Comparison):
            stack.append((node.left, where, budget))
            for target in node.comparisons:
                stack.append((target.comparator, where, budget))
        elif isinstance(node, cst.Subscript):
            stack.append((node.value, where, budget))
        elif isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                stack.append((element.value, where, budget))
    return out


# -- gradient-free code ----------------------------------------------------


def in_no_grad(ctx: "FileContext") -> bool:
    """No gradient flows at the walk's position: the one policy, :func:`nanlint.analysis.gradient.grad_mode`."""
    return ctx.in_no_grad()


def torch_alias(ctx: "FileContext") -> Optional[str]:
    """The local name bound to the ``torch`` module (``torch``, ``th``), or None."""
    if ctx.imports.aliases.get("torch") == "torch":
        return "torch"
    for local, full in ctx.imports.aliases.items():
        if full == "torch" and not local.startswith("*"):
            return local
    return None


def plain_code(ctx: "FileContext", node: cst.CSTNode) -> str:
    """Source of ``node`` without its own parentheses (positions exclude them; code_for_node keeps them)."""
    assert ctx.module is not None
    if isinstance(node, cst.BaseExpression) and (getattr(node, "lpar", None) or getattr(node, "rpar", None)):
        node = node.with_changes(lpar=[], rpar=[])
    return ctx.module.code_for_node(node)


# Parameter names of raw model inputs (documented in docs/analysis.md): data, which never requires grad.
RAW_INPUT = re.compile(r"^(input_(values|features|ids)|pixel_values|waveforms?|raw_\w+|audio_values|"
                       r"input_features_mask|attention_mask|labels?|token_ids|images?_raw)$")


def _passed_gradient_free(ctx: "FileContext", name: str) -> bool:
    from .analysis.gradient import method_owner

    function = ctx.enclosing_def()
    if function is None:
        return False
    return ctx.summary.gradient_free_parameter(function.name.value, method_owner(ctx, function), name)


# methods whose positional arguments are sizes or dims, not tensors
_SHAPED = RESHAPES | TRANSPOSES | REPEATS


def no_grad_value(expr: cst.BaseExpression, ctx: "FileContext", at: "At", depth: int = 0) -> bool:
    """True when ``expr`` visibly cannot carry a gradient: it is built only from literals, comparisons
    (masks), tensor constructors (``arange``, ``meshgrid``, ``zeros``...), ``.detach()``, shapes and sizes,
    through arithmetic and shape/reduction ops. Anything unseen (a parameter, a module call) is False."""
    if depth > 24:
        return False
    d = depth + 1
    if isinstance(expr, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Comparison)):
        return True
    if isinstance(expr, cst.Name):
        if expr.value in ("True", "False", "None"):
            return True
        if "mask" in expr.value.lower():
            return True  # masks are boolean or 0/1 tensors by convention
        binding = ctx.facts.binding(expr, at)
        if binding is not None and binding.is_parameter and RAW_INPUT.search(expr.value):
            return True  # ``input_values``, ``pixel_values``: a batch of data never requires grad
        if binding is not None and binding.is_parameter and (
                _passed_gradient_free(ctx, expr.value)
                or kinds.kind(ctx.facts, expr, at) in kinds.GRADIENT_FREE
                or isinstance(binding.value, (cst.Integer, cst.Float))):
            # every caller in the module passes indices, constants or integers; ``n: int``; a hyperparameter
            # with a number as its default (``grid_size=0.05``)
            return True
        if binding is not None and binding.counter:
            return True  # ``for level, x in enumerate(xs)``: a Python int
        if binding is None or binding.is_parameter:
            return False  # what callers pass is unseen
        if binding.index is not None and binding.value is not None and binding.operator is None:
            # ``rows, cols = torch.where(mask)``: the unpacked value has the gradient of what it unpacks
            return no_grad_value(binding.value, ctx, type(at)(binding.scope, binding.order), d)
        if isinstance(binding.value, cst.List) and not binding.value.elements and binding.operator is None:
            # ``anchors = []`` filled by ``anchors.append(...)`` in a loop: what it is filled with
            from .analysis.uses import appended_values

            appended = appended_values(ctx, expr.value)
            return bool(appended) and all(no_grad_value(v, ctx, at, d) for v in appended)  # type: ignore[union-attr]
        value, where = follow(expr, ctx, at)
        return value is not expr and no_grad_value(value, ctx, where, d)
    if isinstance(expr, cst.Attribute):
        if expr.attr.value in ("shape", "dtype", "device", "ndim"):
            return True
        if expr.attr.value in ("T", "mT"):
            return no_grad_value(expr.value, ctx, at, d)
        if ctx.imports.is_module(expr.value):
            return True  # math.pi, torch.float16, np.inf
        value, where = ctx.facts.resolve(expr, at)
        return value is not expr and no_grad_value(value, ctx, where, d)
    if isinstance(expr, cst.UnaryOperation):
        return no_grad_value(expr.expression, ctx, at, d)
    if isinstance(expr, cst.BinaryOperation):
        return no_grad_value(expr.left, ctx, at, d) and no_grad_value(expr.right, ctx, at, d)
    if isinstance(expr, cst.IfExp):
        return no_grad_value(expr.body, ctx, at, d) and no_grad_value(expr.orelse, ctx, at, d)
    if isinstance(expr, cst.Subscript):
        return no_grad_value(expr.value, ctx, at, d)
    if isinstance(expr, (cst.Tuple, cst.List)):
        # an empty list is filled by appends nanlint does not follow: unknown
        return bool(expr.elements) and all(no_grad_value(e.value, ctx, at, d) for e in expr.elements)
    if isinstance(expr, cst.Call):
        name = builtin_name(expr, ctx.imports)
        if name in ("len", "int", "float", "range", "min", "max", "abs", "round", "sum"):
            return all(no_grad_value(a.value, ctx, at, d) for a in expr.args) if name in ("min", "max", "abs",
                                                                                        "round", "sum") else True
        qualified = ctx.imports.qualify(expr.func) if isinstance(expr.func, (cst.Name, cst.Attribute)) else None
        if qualified is not None and qualified.split(".")[0] in ("math", "numpy", "np"):
            return True
        tc = ctx.match(expr)
        if tc is None and last_name(expr).endswith("meshgrid"):
            return True  # ``create_meshgrid(h, w)``: pixel coordinates, built from sizes
        if tc is None or tc.keyword("requires_grad") is not None:
            return False
        if kinds.kind(ctx.facts, expr, at) in (kinds.INT_TENSOR, kinds.BOOL_TENSOR):
            return True  # ``F.one_hot(codes, K)``, ``argmax``: integers carry no gradient, nor their casts
        key = tc.key.split(".")[-1]
        if key in _CONSTRUCTORS:
            return True
        if key == "where" and not tc.is_method and len([a for a in expr.args if a.keyword is None]) == 1:
            return True  # ``torch.where(cond)``: the indices of the true entries
        if key in _PROPAGATING:
            inputs = [tc.operand] if tc.operand is not None else []
            if not (tc.is_method and key in _SHAPED):  # ``x.reshape(-1, h * w)``: sizes carry no gradient
                inputs += [a.value for a in tc.args if a.keyword is None and not a.star]
            return bool(inputs) and all(no_grad_value(i, ctx, at, d) for i in inputs if i is not None)
        return False
    return False
