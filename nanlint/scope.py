"""Local value tracking: which expression a name was last assigned, in source order.

The engine walks each file once; as it leaves an assignment it records a
:class:`Binding` in the innermost function (or module) scope, stamped with the
walk's running order. A rule that meets ``x / n`` asks for the binding of ``n``
visible at its own order and gets the expression ``x.norm(dim=1)`` back. Only
plain local assignments, tuple unpacking, augmented assignments, parameters
(with their default values) and ``self.attr = value`` in methods are tracked;
anything else (loop targets, ``with`` targets, globals from other modules) binds
the name to "unknown" so a rule stays silent rather than guess.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst


@dataclass(frozen=True)
class Binding:
    """``name = value`` (``index`` set for ``a, b = value``); ``value`` None means unknown."""

    value: Optional[cst.BaseExpression]
    order: int
    scope: "Scope"
    index: Optional[int] = None
    operator: Optional[cst.BaseAugOp] = None  # for ``n += eps``: value is the right-hand side
    previous: Optional["Binding"] = None  # for augmented assignments
    is_parameter: bool = False
    counter: bool = False  # a loop counter: ``i`` of ``for i in range(n)`` / ``for i, x in enumerate(xs)``


@dataclass(eq=False)
class Scope:
    kind: str  # "module" | "class" | "function"
    node: cst.CSTNode
    parent: Optional["Scope"]
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    # ``self.attr = ...`` inside this class's methods (class scopes only)
    attributes: dict[str, list[Binding]] = field(default_factory=dict)
    self_name: Optional[str] = None  # first parameter of a method

    def bind(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)

    def latest(self, name: str, before: int) -> Optional[Binding]:
        found = self.bindings.get(name)
        if not found:
            return None
        i = bisect.bisect_left([b.order for b in found], before)
        return found[i - 1] if i else None

    def enclosing_class(self) -> Optional["Scope"]:
        scope = self.parent
        return scope if scope is not None and scope.kind == "class" else None


def lookup(scope: Scope, name: str, before: int) -> Optional[Binding]:
    """The binding of ``name`` visible at ``before``, following Python's LEGB minus classes."""
    current: Optional[Scope] = scope
    first = True
    while current is not None:
        if current.kind != "class" or first:
            binding = current.latest(name, before)
            if binding is not None:
                return binding
            # A later binding in the same function makes the name local there:
            # at this point it is unbound or bound by a loop back-edge. Stay silent.
            if current.kind == "function" and name in current.bindings:
                return Binding(None, -1, current)
        first = False
        current = current.parent
    return None


def lookup_attribute(scope: Scope, owner: str, attr: str) -> list[Binding]:
    """All ``self.attr = ...`` bindings of the class around ``scope`` (``owner`` is ``self``)."""
    function = scope
    while function is not None and function.kind != "function":
        function = function.parent
    if function is None or function.self_name != owner:
        return []
    cls = function.enclosing_class()
    if cls is None:
        return []
    return cls.attributes.get(attr, [])


def assignment_targets(target: cst.BaseExpression) -> list[tuple[cst.BaseExpression, Optional[int]]]:
    """Targets of one ``=`` with their tuple index: ``a, b = v`` -> [(a, 0), (b, 1)]."""
    if isinstance(target, (cst.Tuple, cst.List)):
        out: list[tuple[cst.BaseExpression, Optional[int]]] = []
        for i, element in enumerate(target.elements):
            if isinstance(element, cst.StarredElement):
                return [(e.value, None) for e in target.elements]
            out.append((element.value, i))
        return out
    return [(target, None)]
