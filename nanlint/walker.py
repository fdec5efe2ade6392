"""The single walk: scopes, bindings and imports bookkeeping, and dispatch to rules.

libcst's own visitor machinery rebuilds every node as it walks (a do-nothing
visit costs about a parse, docs/architecture.md §2). This walker reads each node's
dataclass fields directly, skipping whitespace and punctuation, and calls the
rules' ``visit_<Type>`` / ``leave_<Type>`` hooks from one table per file.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Optional

import libcst as cst

from .cancellation import Superseded, current_event
from .context import FileContext
from .analysis.ops import CONSTANT_FACTORIES, DATA_FACTORIES
from .names import last_name
from .scope import Binding, Scope, assignment_targets, lookup

_SKIPPED_FIELDS = frozenset({
    "lpar", "rpar", "semicolon", "comma", "header", "footer", "leading_lines", "lines_after_decorators",
    "newline", "dot", "equal", "colon", "star", "lbracket", "rbracket", "lbrace", "rbrace", "arrow",
    "whitespace", "operator", "asynchronous", "default_indent", "default_newline", "encoding",
    "has_trailing_newline", "trailing_whitespace", "indent", "star_arg", "lambda_token",
})
_FIELDS: dict[type, tuple[str, ...]] = {}

# What a field's value is, by its type: ``CSTNode`` is an ABC, and an ``isinstance`` test against it costs
# several times a dict lookup; the walk makes three or four per node.
_OTHER, _NODE, _STATEMENT, _SEQUENCE = 0, 1, 2, 3
_KINDS: dict[type, int] = {tuple: _SEQUENCE, list: _SEQUENCE}

Hook = Callable[[cst.CSTNode], object]


def _child_fields(cls: type) -> tuple[str, ...]:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = tuple(
            f.name for f in dataclasses.fields(cls)
            if f.name not in _SKIPPED_FIELDS and not f.name.startswith("whitespace")
        )
        _FIELDS[cls] = fields
    return fields


def _kind(cls: type) -> int:
    kind = _KINDS.get(cls)
    if kind is None:
        if issubclass(cls, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            kind = _STATEMENT
        elif issubclass(cls, cst.CSTNode):
            kind = _NODE
        elif issubclass(cls, (tuple, list)):
            kind = _SEQUENCE
        else:
            kind = _OTHER
        _KINDS[cls] = kind
    return kind


class Walker:
    def __init__(self, ctx: FileContext, rules: Iterable[object]) -> None:
        self.ctx = ctx
        self.visits: dict[str, list[Hook]] = {}
        self.leaves: dict[str, list[Hook]] = {}
        self.failures: list[tuple[object, Exception, cst.CSTNode]] = []
        self.scopes: list[Scope] = []
        self.superseded = current_event()  # set when the language server no longer needs this lint
        for rule in rules:
            for attr in dir(type(rule)):
                if attr.startswith("visit_"):
                    self.visits.setdefault(attr[6:], []).append(getattr(rule, attr))
                elif attr.startswith("leave_"):
                    self.leaves.setdefault(attr[6:], []).append(getattr(rule, attr))

    def _disable(self, hook: Hook, exc: Exception, node: cst.CSTNode) -> None:
        """A rule raised: record it and stop calling that rule in this file; the others go on."""
        rule = getattr(hook, "__self__", None)
        self.failures.append((rule, exc, node))
        for table in (self.visits, self.leaves):
            for key, hooks in table.items():
                table[key] = [h for h in hooks if getattr(h, "__self__", None) is not rule]

    def run(self, module: cst.Module) -> None:
        self.ctx.module = module
        self.ctx.scope = Scope("module", module, None)
        self.scopes.append(self.ctx.scope)
        self._walk(module)

    def release(self) -> None:
        """Break the reference cycles the analysis of a file makes (a binding refers to its scope, which lists
        it; the facts call back into the context), once its findings are out: reference counting then frees the
        file's trees at once, where the cyclic collector would have to walk them all (nanlint/collector.py)."""
        for scope in self.scopes:
            scope.bindings.clear()
            scope.attributes.clear()
        self.scopes.clear()
        self.ctx.facts.summary_source = None

    def _walk(self, node: cst.CSTNode) -> None:
        ctx = self.ctx
        ctx.order += 1
        ctx.stack.append(node)
        cls = type(node)
        name = cls.__name__
        is_statement = _kind(cls) == _STATEMENT
        if is_statement:
            if self.superseded is not None and self.superseded.is_set():
                raise Superseded
            ctx.statements.append(node)
        self._enter(node, name)
        for hook in self.visits.get(name, ()):
            try:
                hook(node)
            except RecursionError:
                raise
            except Exception as exc:
                self._disable(hook, exc, node)
        for field in _child_fields(cls):
            value = getattr(node, field)
            kind = _kind(type(value))
            if kind == _SEQUENCE:
                for item in value:
                    if _kind(type(item)) != _OTHER:
                        self._walk(item)
            elif kind != _OTHER:
                self._walk(value)
        for hook in self.leaves.get(name, ()):
            try:
                hook(node)
            except RecursionError:
                raise
            except Exception as exc:
                self._disable(hook, exc, node)
        self._leave(node, name)
        if is_statement:
            ctx.statements.pop()
        ctx.stack.pop()

    # -- bookkeeping ----------------------------------------------------
    def _enter(self, node: cst.CSTNode, name: str) -> None:
        ctx = self.ctx
        if name == "FunctionDef" or name == "Lambda":
            outer = ctx.scope
            scope = Scope("function", node, outer)
            self.scopes.append(scope)
            params = node.params  # type: ignore[attr-defined]
            all_params = [*params.posonly_params, *params.params, *params.kwonly_params]
            if outer.kind == "class" and all_params and name == "FunctionDef":
                scope.self_name = all_params[0].name.value
            for param in all_params:
                scope.bind(param.name.value, Binding(param.default, ctx.order, scope, is_parameter=True))
            for star in (params.star_arg, params.star_kwarg):
                if isinstance(star, cst.Param):
                    scope.bind(star.name.value, Binding(None, ctx.order, scope))
            if name == "FunctionDef":
                outer.bind(node.name.value, Binding(None, ctx.order, outer))  # type: ignore[attr-defined]
            ctx.scope = scope
        elif name == "ClassDef":
            ctx.scope.bind(node.name.value, Binding(None, ctx.order, ctx.scope))  # type: ignore[attr-defined]
            ctx.scope = Scope("class", node, ctx.scope)
            self.scopes.append(ctx.scope)
        elif name == "For":
            self._bind_unknown(node.target)  # type: ignore[attr-defined]
            self._bind_counter(node)  # type: ignore[arg-type]
        elif name == "Call":
            self._note_call(node)  # type: ignore[arg-type]
        elif name in ("If", "While", "Assert", "IfExp"):
            ctx.facts.note_guard_test(node.test, ctx.at())  # type: ignore[attr-defined]
        elif name == "Import":
            ctx.imports.add_import(node)  # type: ignore[arg-type]
        elif name == "ImportFrom":
            ctx.imports.add_import_from(node)  # type: ignore[arg-type]

    def _note_call(self, node: cst.Call) -> None:
        """In-place calls (``n.clamp_(min=1)``) and ``torch.where(n > 0, a / n, 0)`` conditions: facts every
        rule may read, recorded whichever rules are enabled."""
        last = last_name(node)
        if last.endswith("_"):
            self.ctx.facts.note_in_place(node, self.ctx.at())
        elif last == "where" and len(node.args) >= 3:
            tc = self.ctx.match(node)
            if tc is not None and tc.key == "where" and tc.operand is not None \
                    and not all(_plain_value(arg.value) for arg in node.args[1:3]):
                # ``where(n > 0, s / n, 0)`` guards what its branches compute; ``where(t == ignore, zeros, t)``
                # only picks values and guards nothing
                self.ctx.facts.note_guard_test(tc.operand, self.ctx.at())

    def _leave(self, node: cst.CSTNode, name: str) -> None:
        ctx = self.ctx
        if name in ("FunctionDef", "Lambda", "ClassDef"):
            ctx.scope = ctx.scope.parent  # type: ignore[assignment]
        elif name == "Assign":
            for target in node.targets:  # type: ignore[attr-defined]
                self._bind(target.target, node.value)  # type: ignore[attr-defined]
        elif name == "AnnAssign":
            if node.value is not None:  # type: ignore[attr-defined]
                self._bind(node.target, node.value)  # type: ignore[attr-defined]
        elif name == "AugAssign":
            target = node.target  # type: ignore[attr-defined]
            if isinstance(target, cst.Name):
                previous = lookup(ctx.scope, target.value, ctx.order)
                ctx.scope.bind(target.value, Binding(
                    node.value, ctx.order, ctx.scope, operator=node.operator, previous=previous,  # type: ignore[attr-defined]
                ))
        elif name == "NamedExpr":
            self._bind(node.target, node.value)  # type: ignore[attr-defined]
        elif name == "WithItem":
            if node.asname is not None:  # type: ignore[attr-defined]
                self._bind_unknown(node.asname.name)  # type: ignore[attr-defined]
        elif name == "ExceptHandler":
            if node.name is not None:  # type: ignore[attr-defined]
                self._bind_unknown(node.name.name)  # type: ignore[attr-defined]

    def _bind(self, target: cst.BaseExpression, value: Optional[cst.BaseExpression]) -> None:
        ctx = self.ctx
        targets = assignment_targets(target)
        multiple = len(targets) > 1 or isinstance(target, (cst.Tuple, cst.List))
        for element, index in targets:
            bound_value = value if index is not None or not multiple else None
            if isinstance(element, cst.Name):
                ctx.scope.bind(element.value, Binding(bound_value, ctx.order, ctx.scope, index=index if multiple else None))
            elif isinstance(element, cst.Attribute) and isinstance(element.value, cst.Name):
                self._bind_attribute(element, bound_value, index if multiple else None)
            elif isinstance(element, (cst.Tuple, cst.List)):
                self._bind_unknown(element)

    def _bind_attribute(self, target: cst.Attribute, value: Optional[cst.BaseExpression], index: Optional[int]) -> None:
        scope = self.ctx.scope
        if scope.kind != "function" or scope.self_name != target.value.value:  # type: ignore[attr-defined]
            return
        cls = scope.enclosing_class()
        if cls is not None:
            cls.attributes.setdefault(target.attr.value, []).append(Binding(value, self.ctx.order, scope, index=index))

    def _bind_counter(self, node: cst.For) -> None:
        """``for i in range(n)`` / ``for i, x in enumerate(xs)``: ``i`` is a Python int (its value unknown)."""
        if not (isinstance(node.iter, cst.Call) and isinstance(node.iter.func, cst.Name)):
            return
        builtin = node.iter.func.value
        target = node.target
        if builtin == "enumerate" and isinstance(target, (cst.Tuple, cst.List)) and target.elements:
            target = target.elements[0].value
        elif builtin != "range":
            return
        bindings = self.ctx.scope.bindings.get(target.value) if isinstance(target, cst.Name) else None
        if bindings:  # the unknown binding ``_bind_unknown`` just made, now known to be an int
            bindings[-1] = dataclasses.replace(bindings[-1], counter=True)

    def _bind_unknown(self, target: cst.BaseExpression) -> None:
        for element, _ in assignment_targets(target):
            if isinstance(element, cst.Name):
                self.ctx.scope.bind(element.value, Binding(None, self.ctx.order, self.ctx.scope))
            elif isinstance(element, (cst.Tuple, cst.List)):
                self._bind_unknown(element)
            elif isinstance(element, cst.Attribute) and isinstance(element.value, cst.Name):
                self._bind_attribute(element, None, None)


def _plain_value(expr: cst.BaseExpression) -> bool:
    """A value read or made as it is (a name, an entry, a literal, ``zeros_like(t)``): no computation that a
    condition could guard."""
    if isinstance(expr, (cst.Name, cst.Attribute, cst.Subscript, cst.Integer, cst.Float)):
        return True
    if isinstance(expr, cst.UnaryOperation):
        return _plain_value(expr.expression)
    if isinstance(expr, cst.Call):
        return last_name(expr) in _FACTORIES
    return False


_FACTORIES = CONSTANT_FACTORIES | DATA_FACTORIES | {"float"}
