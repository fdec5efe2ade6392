"""Following names to values: bindings, literals, eps guards, and the facts the walker records
(in-place calls, guard tests). The base every other question builds on."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Optional

import libcst as cst

from ..names import ImportTable, TorchCall, builtin_name, dotted_name, match_call
from ..scope import Binding, lookup, lookup_attribute
from .vocabulary import At, _MAX_DEPTH, _function_scope, guard_names

if TYPE_CHECKING:
    from .summary import ModuleSummary
    from .triggers import Trigger


class Bindings:
    """Following names to values: bindings, literals, eps guards, and the facts the walker records"""
    def __init__(self, imports: ImportTable) -> None:
        self.imports = imports
        # recorded by the walker (``nanlint.walker``), read by every rule: in-place calls on local names and
        # the names each guard test examines, by function scope
        self._in_place: dict[tuple[int, str], list[tuple[int, cst.Call]]] = {}
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

    def assignment(self, expr: cst.BaseExpression, at: At) -> Optional[Binding]:
        """The plain assignment ``expr`` reads: not a parameter, an augmented assignment or an unpacked element
        (whose value is not the assigned expression)."""
        b = self.binding(expr, at)
        if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
            return None
        return b

    def reduction_values(self, expr: cst.BaseExpression, at: At) -> tuple[cst.BaseExpression, At, bool]:
        """``x.max(1)[0]`` / ``x.max(dim=1).values`` -> the reduction call ``x.max(1)``, where it is evaluated,
        and True (its values were taken); anything else resolved through names, and False."""
        value, where = self.resolve(expr, at)
        if isinstance(value, cst.Subscript) or isinstance(value, cst.Attribute) and value.attr.value == "values":
            inner, inner_at = self.resolve(value.value, where)
            return inner, inner_at, True
        b = self.binding(value, where)
        if b is not None and b.index == 0 and b.operator is None and isinstance(b.value, cst.Call):
            return b.value, At(b.scope, b.order), True  # ``m, _ = torch.max(x, dim=1, keepdim=True)``
        return value, where, False

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
        from .kinds import kind

        return kind(self, expr, at)

    def trigger(self, expr: cst.BaseExpression, at: At) -> "Trigger":
        """The input that makes the vector ``expr`` exactly 0, and how ordinary it is (:mod:`.analysis.triggers`)."""
        from .triggers import trigger_of

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
            if name == "float" and len(expr.args) == 1 and expr.args[0].keyword is None and not expr.args[0].star:
                return self.literal(expr.args[0].value, at, depth + 1)  # ``float(-1e30)``
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
        if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index) \
                and isinstance(expr.slice[0].slice.value, cst.SimpleString):
            key = expr.slice[0].slice.value.evaluated_value  # ``cfg["eps"]`` of ``cfg = {"eps": 0.0}``
            entry = self.entry(expr.value, key, at) if isinstance(key, str) else None
            return self.literal(entry[0], entry[1], depth + 1) if entry is not None else None
        b = self.binding(expr, at)
        if b is None and isinstance(expr, cst.Attribute) and not self.imports.is_module(expr.value):
            entry = self.entry(expr.value, expr.attr.value, at)  # ``config.eps`` of ``config = Config(eps=0)``
            return self.literal(entry[0], entry[1], depth + 1) if entry is not None else self._field(expr, at)
        if b is None or b.value is None or b.index is not None or b.operator is not None:
            return None
        return self.literal(b.value, At(b.scope, b.order), depth + 1)

    def entry(self, mapping: cst.BaseExpression, key: str, at: At) -> Optional[tuple[cst.BaseExpression, At]]:
        """The value stored under ``key`` in a config the module builds as a literal: a dict display
        (``{"eps": 0.0}``), ``dict(eps=0.0)`` or a call with that keyword (``Config(eps=0.0)``,
        ``SimpleNamespace(eps=0.0)``). None when unknown, or when the module writes that key or attribute
        anywhere (``cfg["eps"] = 1e-5``, ``config.eps = 1e-5``)."""
        value, where = self.resolve(mapping, at)
        if value is mapping and self.binding(mapping, at) is None:
            return None
        found: Optional[cst.BaseExpression] = None
        if isinstance(value, cst.Dict):
            for element in value.elements:
                if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString) \
                        and element.key.evaluated_value == key:
                    found = element.value
        elif isinstance(value, cst.Call) and not self.imports.is_module(value.func):
            for arg in value.args:
                if arg.keyword is not None and arg.keyword.value == key:
                    found = arg.value
        if found is None:
            return None
        # only now the whole-module summary (built once, and only for a file that has such a config)
        summary = self.summary
        if summary is None or key in summary.stored_keys:
            return None
        return found, where

    def _field(self, expr: cst.Attribute, at: At) -> Optional[float]:
        """``config.eps`` of ``config = Config()`` with ``class Config: eps: float = 0.0`` in the module."""
        value, _ = self.resolve(expr.value, at)
        if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name) or value.func is expr.value:
            return None
        if any(arg.keyword is None or arg.keyword.value == expr.attr.value for arg in value.args):
            return None  # a positional argument or ``**kw`` may set the field
        summary = self.summary
        if summary is None or expr.attr.value in summary.stored_keys:
            return None
        fields = summary.class_fields.get(value.func.value)
        return fields.get(expr.attr.value) if fields is not None else None

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

    # -- in-place mutation and guard tests (recorded by the walker) --------
    def note_in_place(self, call: cst.Call, at: At) -> None:
        """Record ``p.clamp_(...)``-style in-place calls on a local name: later reads are not the assigned value."""
        func = call.func
        if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
            return
        name = func.attr.value
        if not name.endswith("_") or name.startswith("_") or self.imports.is_module(func.value):
            return
        self._in_place.setdefault((id(_function_scope(at.scope)), func.value.value), []).append((at.order, call))

    def mutated_in_place(self, name: str, binding: Binding, at: At) -> bool:
        return bool(self.in_place_calls(name, binding, at))

    def in_place_calls(self, name: str, binding: Binding, at: At) -> list[tuple[cst.Call, int]]:
        """The in-place calls on ``name`` after ``binding`` and before ``at`` (``denom.index_add_(...)``), with
        the order each was read at."""
        if not self._in_place:
            return []
        calls = self._in_place.get((id(_function_scope(binding.scope)), name), ())
        return [(call, order) for order, call in calls if binding.order < order < at.order]

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


