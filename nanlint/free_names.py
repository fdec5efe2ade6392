"""The names a piece of code reads without binding them itself, by Python's scoping rules, on stdlib ``ast``.

For a top-level definition these are the module-level names it can read (and the
builtins): the language server's preview (:mod:`nanlint.incremental`) re-analyses
a definition after a module-level edit only when the edit binds one of them.

Each function, lambda, class body and comprehension is a scope. A name read in a
scope is free unless that scope binds it (a parameter, an assignment or ``del``,
a ``for``/``with``/``except``/``match`` target, an import, a nested ``def`` or
``class``) or an enclosing function scope does; a class body's names are not
visible to the functions inside it. A ``global`` or ``nonlocal`` name counts as
free. Decorators, default values, annotations and base classes are read in the
enclosing scope, and so is the first iterable of a comprehension. The answer errs
towards more names: a walrus target inside a comprehension stays local to it.
"""
from __future__ import annotations

import ast
from typing import Iterable

from .rules._screens import children

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def free_names(nodes: Iterable[ast.AST]) -> set[str]:
    """The names ``nodes`` (statements or expressions of one scope, such as ``[a_function_def]``) read that
    neither they nor a scope inside them binds for that read."""
    out: set[str] = set()
    _scope(list(nodes), [], frozenset(), out, is_class=False)
    return out


def _scope(body: list[ast.AST], params: list[str], enclosing: frozenset[str], out: set[str], is_class: bool
           ) -> None:
    loads: set[str] = set()
    local: set[str] = set(params)
    declared: set[str] = set()
    nested: list[tuple[list[ast.AST], list[str], bool]] = []
    stack = list(body)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Name:  # (most nodes are names, attributes and constants: no chain of tests for them)
            (loads if isinstance(node.ctx, ast.Load) else local).add(node.id)  # type: ignore[attr-defined]
            continue  # (its only child is its context)
        if kind is ast.Constant:
            continue
        if kind is ast.Attribute:
            stack.append(node.value)  # type: ignore[attr-defined]
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.add(node.name)
            stack.extend(node.decorator_list)
            stack.extend(_signature(node.args))
            if node.returns is not None:
                stack.append(node.returns)
            nested.append((list(node.body), _parameters(node.args), False))
            continue
        if isinstance(node, ast.Lambda):
            stack.extend(_signature(node.args))
            nested.append(([node.body], _parameters(node.args), False))
            continue
        if isinstance(node, ast.ClassDef):
            local.add(node.name)
            stack.extend(node.decorator_list)
            stack.extend(node.bases)
            stack.extend(keyword.value for keyword in node.keywords)
            nested.append((list(node.body), [], True))
            continue
        if isinstance(node, _COMPREHENSIONS):
            first, *rest = node.generators
            stack.append(first.iter)
            inner: list[ast.AST] = [first.target, *first.ifs]
            for generator in rest:
                inner.extend((generator.target, generator.iter, *generator.ifs))
            inner.extend((node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,))
            nested.append((inner, [], False))
            continue
        if isinstance(node, ast.alias):
            local.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            local.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            local.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            local.add(node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        stack.extend(children(node))
    local -= declared
    out.update(name for name in loads if name not in local and name not in enclosing)
    out.update(declared)
    visible = enclosing if is_class else enclosing | local
    for inner_body, inner_params, inner_is_class in nested:
        _scope(inner_body, inner_params, visible, out, inner_is_class)


def _parameters(arguments: ast.arguments) -> list[str]:
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    every.extend(a for a in (arguments.vararg, arguments.kwarg) if a is not None)
    return [a.arg for a in every]


def _signature(arguments: ast.arguments) -> list[ast.AST]:
    """What a signature evaluates where the function is defined: default values and annotations."""
    out: list[ast.AST] = [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    every.extend(a for a in (arguments.vararg, arguments.kwarg) if a is not None)
    out.extend(a.annotation for a in every if a.annotation is not None)
    return out
