"""How a rule describes a fix: replace a node, insert text at a node, insert or delete statements.

Rules speak in nodes (they have no positions during the walk); the engine turns
a :class:`FixSpec` into text :class:`~nanlint.finding.Edit` s once positions are
known. Text edits touch only their span, so comments and formatting elsewhere
are untouched by construction. Prefer the smallest change: ``InsertAt`` an
``.clamp_min(eps)`` after a divisor rather than re-printing the divisor.

Spans and parentheses: libcst's positions of a parenthesised expression exclude
its parentheses. ``Replace(node, "text")`` replaces the text *inside* them (the
parentheses stay); ``Replace(node, new_node)`` replaces the node *with* its
parentheses by the code of ``new_node`` (which carries its own); ``InsertAt``
inserts outside them.

The second half of this module holds helpers rules share to build fixes: the
local name of ``torch`` (and the ``import torch`` to add when there is none),
wrapping in parentheses when an expression is not an atom, and whether an
expression means the same thing at another place of the function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import libcst as cst
from libcst.metadata import CodeRange

from .finding import Edit, Fix
from .lines import split_lines
from .names import dotted_name

if TYPE_CHECKING:
    from .facts import At

SAFE, UNSAFE = "safe", "unsafe"
# shown (``--show-fixes``, the JSON/SARIF reports, the editor), never applied, not even with ``--unsafe-fixes``:
# the rewrite is right for some code and wrong for other (an average that is meant to be NaN when empty)
DISPLAY_ONLY = "display-only"
APPLICABILITIES = (SAFE, UNSAFE, DISPLAY_ONLY)


@dataclass(frozen=True)
class Replace:
    node: cst.CSTNode
    new: Union[cst.CSTNode, str]  # a node (replaces the node with its parentheses), or text (inside them)


@dataclass(frozen=True)
class InsertAt:
    """Insert ``text`` right after (``at_end``) or right before an expression, outside its parentheses."""

    node: cst.CSTNode
    text: str
    at_end: bool = True


@dataclass(frozen=True)
class InsertBefore:
    statement: cst.CSTNode  # the statement (``SimpleStatementLine`` or compound) to insert above
    code: str  # one or more lines, unindented: the statement's indentation is added


@dataclass(frozen=True)
class InsertAfter:
    statement: cst.CSTNode
    code: str


@dataclass(frozen=True)
class Delete:
    """Remove a statement's lines (a ``SimpleStatementLine`` alone on its lines; comments above stay)."""

    statement: cst.CSTNode


Change = Union[Replace, InsertAt, InsertBefore, InsertAfter, Delete]


@dataclass(frozen=True)
class FixSpec:
    applicability: str  # SAFE, UNSAFE or DISPLAY_ONLY
    message: str
    changes: tuple[Change, ...]


_LINES_CACHE: list[tuple[cst.Module, list[str]]] = []


def _source_lines(module: cst.Module, lines: Sequence[object]) -> Sequence[str]:
    """The source lines: those given when they are text, else the module's own code (computed once per module)."""
    if lines and isinstance(lines[0], str):
        return lines  # type: ignore[return-value]
    cached = _LINES_CACHE[0] if _LINES_CACHE else None
    if cached is not None and cached[0] is module:
        return cached[1]
    computed = split_lines(module.code)
    _LINES_CACHE[:] = [(module, computed)]
    return computed


def _outer(positions: Mapping[cst.CSTNode, CodeRange], node: cst.CSTNode) -> tuple[int, int, int, int]:
    """0-based-column span of ``node`` including its parentheses: (line, col, end_line, end_col)."""
    span = positions[node]
    start, end = span.start, span.end
    lpar = getattr(node, "lpar", None)
    rpar = getattr(node, "rpar", None)
    if lpar and lpar[0] in positions:
        start = positions[lpar[0]].start
    if rpar and rpar[-1] in positions:
        end = positions[rpar[-1]].end
    return start.line, start.column, end.line, end.column


def to_fix(spec: FixSpec, positions: Mapping[cst.CSTNode, CodeRange], module: cst.Module,
           lines: Sequence[object]) -> Fix:
    source_lines = _source_lines(module, lines)
    newline = module.default_newline
    edits: list[Edit] = []
    for change in spec.changes:
        if isinstance(change, Replace):
            if isinstance(change.new, str):
                span = positions[change.node]
                edits.append(Edit(span.start.line, span.start.column + 1, span.end.line, span.end.column + 1,
                                  change.new))
            else:
                line, col, end_line, end_col = _outer(positions, change.node)
                edits.append(Edit(line, col + 1, end_line, end_col + 1, module.code_for_node(change.new)))
            continue
        if isinstance(change, InsertAt):
            line, col, end_line, end_col = _outer(positions, change.node)
            at = (end_line, end_col + 1) if change.at_end else (line, col + 1)
            edits.append(Edit(at[0], at[1], at[0], at[1], change.text))
            continue
        span = positions[change.statement]
        if isinstance(change, Delete):
            edits.append(Edit(span.start.line, 1, span.end.line + 1, 1, ""))
            continue
        first = source_lines[span.start.line - 1] if span.start.line - 1 < len(source_lines) else ""
        indent = first[: len(first) - len(first.lstrip(" \t"))]
        body = newline.join(indent + line if line else line for line in change.code.splitlines())
        if isinstance(change, InsertBefore):
            edits.append(Edit(span.start.line, 1, span.start.line, 1, body + newline))
        else:
            last = source_lines[span.end.line - 1].rstrip("\r\n") if span.end.line - 1 < len(source_lines) else ""
            column = len(last) + 1
            edits.append(Edit(span.end.line, column, span.end.line, column, newline + body))
    unique = sorted(set(edits), key=lambda e: (e.line, e.column, e.end_line, e.end_column, e.content))
    return Fix(spec.applicability, spec.message, tuple(unique))


# -- helpers for rules that build fixes ---------------------------------------------------
_ATOMS = (
    cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.List, cst.Dict, cst.Set, cst.ListComp, cst.SetComp,
    cst.DictComp, cst.GeneratorExp, cst.SimpleString, cst.FormattedString,
)
# ``a OP b + eps`` keeps meaning ``(a OP b) + eps`` for these operators (they bind at least as tightly as +)
_TIGHT_BINARY = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo, cst.MatrixMultiply,
                 cst.Power)


def is_atom(node: cst.BaseExpression) -> bool:
    """True when ``node.attr`` can be written after the expression without parentheses."""
    return bool(getattr(node, "lpar", None)) or isinstance(node, _ATOMS)


def append_to(node: cst.BaseExpression, text: str) -> tuple[Change, ...]:
    """``node`` followed by ``text`` (``.clamp_min(eps)``), with parentheses added when ``node`` is not an atom."""
    if is_atom(node):
        return (InsertAt(node, text),)
    return (InsertAt(node, "(", at_end=False), InsertAt(node, ")" + text))


def add_term(node: cst.BaseExpression, term: str, standalone: bool) -> tuple[Change, ...]:
    """``node + term``: bare where ``node`` stands alone (a call argument) and binds at least as
    tightly as ``+``, else in parentheses (before ``.rsqrt()``, as the base of ``**``)."""
    tight = is_atom(node) or isinstance(node, (cst.UnaryOperation, cst.Await, cst.Integer, cst.Float)) or (
        isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _TIGHT_BINARY)
    )
    if standalone and tight:
        return (InsertAt(node, f" + {term}"),)
    return (InsertAt(node, "(", at_end=False), InsertAt(node, f" + {term})"))


def _top_level_imports(module: cst.Module) -> list[Union[cst.Import, cst.ImportFrom]]:
    found: list[Union[cst.Import, cst.ImportFrom]] = []

    def scan(body: Sequence[cst.CSTNode]) -> None:
        for statement in body:
            if isinstance(statement, cst.SimpleStatementLine):
                found.extend(s for s in statement.body if isinstance(s, (cst.Import, cst.ImportFrom)))
            elif isinstance(statement, cst.Try):
                scan(statement.body.body)

    scan(module.body)
    del scan  # (a recursive closure is a cycle that would keep ``found`` for the collector)
    return found


def torch_reference(module: cst.Module, attribute: str) -> tuple[Optional[str], tuple[Change, ...]]:
    """How to write ``torch.<attribute>`` in ``module`` and the import to add when nothing names it.

    Uses what the module imports at its top level: ``from torch.nn.utils import
    clip_grad_norm_`` -> ``clip_grad_norm_``; ``import torch as th`` -> ``th.nn.utils...``;
    ``from torch import nn`` -> ``nn.utils...``. With none of these it returns
    ``torch.<attribute>`` and an ``import torch`` to insert above the first torch
    import (else the first import, else the first statement after the docstring and
    ``__future__`` imports). Returns (None, ()) when there is no place to insert it.
    """
    target = f"torch.{attribute}"
    best: Optional[tuple[int, str]] = None  # (rank, code): lower rank wins
    for node in _top_level_imports(module):
        if isinstance(node, cst.Import) and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                full = dotted_name(alias.name) or ""
                local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
                if local is None:
                    if full.split(".")[0] == "torch":
                        candidate = (1, target)  # ``import torch`` / ``import torch.nn`` bind ``torch``
                    else:
                        continue
                elif full == "torch":
                    candidate = (1, f"{local}.{attribute}")
                elif target.startswith(full + "."):
                    candidate = (2, f"{local}.{target[len(full) + 1:]}")
                else:
                    continue
                if best is None or candidate[0] < best[0]:
                    best = candidate
        elif isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None \
                and not isinstance(node.names, cst.ImportStar):
            base = dotted_name(node.module) or ""
            for alias in node.names:
                full = f"{base}.{dotted_name(alias.name)}"
                local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) \
                    else dotted_name(alias.name) or ""
                if full == target:
                    candidate = (0, local)
                elif target.startswith(full + "."):
                    candidate = (2, f"{local}.{target[len(full) + 1:]}")
                else:
                    continue
                if best is None or candidate[0] < best[0]:
                    best = candidate
    if best is not None:
        return best[1], ()
    anchor = _import_anchor(module)
    if anchor is None:
        return None, ()
    return target, (InsertBefore(anchor, "import torch"),)


def _import_anchor(module: cst.Module) -> Optional[cst.CSTNode]:
    """The top-level statement to put a new ``import torch`` above."""
    candidates: list[cst.CSTNode] = []
    first_import: Optional[cst.CSTNode] = None
    first_torch: Optional[cst.CSTNode] = None
    for index, statement in enumerate(module.body):
        if isinstance(statement, cst.SimpleStatementLine):
            small = statement.body[0] if statement.body else None
            if index == 0 and isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString,
                                                                                       cst.ConcatenatedString)):
                continue  # the docstring
            if isinstance(small, cst.ImportFrom) and small.module is not None \
                    and dotted_name(small.module) == "__future__":
                continue
            if isinstance(small, (cst.Import, cst.ImportFrom)):
                first_import = first_import or statement
                names = [dotted_name(a.name) or "" for a in small.names] if isinstance(small, cst.Import) \
                    else [dotted_name(small.module) or ""] if small.module is not None else []
                if first_torch is None and any(n.split(".")[0] == "torch" for n in names):
                    first_torch = statement
        candidates.append(statement)
    return first_torch or first_import or (candidates[0] if candidates else None)


def names_in(expr: cst.CSTNode) -> list[str]:
    """Names an expression reads (not attribute names or keyword names)."""
    found: list[str] = []
    stack: list[cst.CSTNode] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            found.append(node.value)
            continue
        if isinstance(node, cst.Attribute):
            stack.append(node.value)
            continue
        if isinstance(node, cst.Arg):
            stack.append(node.value)
            continue
        stack.extend(node.children)
    return found


def same_meaning(expr: cst.CSTNode, written: "At", used: "At") -> bool:
    """Does ``expr``, written at ``written``, name the same values at ``used``?

    Every name it reads must resolve to the same binding at both places (a name
    bound in neither, like a builtin, is the same). ``self`` in two methods of
    the same class counts as the same object.
    """
    from .scope import lookup

    for name in set(names_in(expr)):
        if name == written.scope.self_name and name == used.scope.self_name:
            if written.scope.enclosing_class() is not None \
                    and written.scope.enclosing_class() is used.scope.enclosing_class():
                continue
        if lookup(written.scope, name, written.order) is not lookup(used.scope, name, used.order):
            return False
    return True
