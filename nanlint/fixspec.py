"""How a rule describes a fix: replace a node, or insert statements around one.

Rules speak in nodes (they have no positions during the walk); the engine turns
a :class:`FixSpec` into text :class:`~nanlint.finding.Edit` s once positions are
known. Text edits touch only their span, so comments and formatting elsewhere
are untouched by construction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import libcst as cst
from libcst.metadata import CodeRange

from .finding import Edit, Fix

SAFE, UNSAFE = "safe", "unsafe"


@dataclass(frozen=True)
class Replace:
    node: cst.CSTNode
    new: Union[cst.CSTNode, str]  # a node, or its code


@dataclass(frozen=True)
class InsertBefore:
    statement: cst.CSTNode  # the statement (``SimpleStatementLine`` or compound) to insert above
    code: str  # one or more lines, unindented: the statement's indentation is added


@dataclass(frozen=True)
class InsertAfter:
    statement: cst.CSTNode
    code: str


Change = Union[Replace, InsertBefore, InsertAfter]


@dataclass(frozen=True)
class FixSpec:
    applicability: str  # SAFE or UNSAFE
    message: str
    changes: tuple[Change, ...]


def split_lines(source: str) -> list[str]:
    """Lines with their endings, split only where Python splits (\\n, \\r\\n, \\r), unlike ``str.splitlines``."""
    return re.findall(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$", source)


def to_fix(spec: FixSpec, positions: Mapping[cst.CSTNode, CodeRange], module: cst.Module,
           lines: Sequence[str]) -> Fix:
    newline = module.default_newline
    edits: list[Edit] = []
    for change in spec.changes:
        if isinstance(change, Replace):
            span = positions[change.node]
            content = change.new if isinstance(change.new, str) else module.code_for_node(change.new)
            edits.append(Edit(span.start.line, span.start.column + 1, span.end.line, span.end.column + 1, content))
            continue
        span = positions[change.statement]
        first = lines[span.start.line - 1] if span.start.line - 1 < len(lines) else ""
        indent = first[: len(first) - len(first.lstrip(" \t"))]
        body = newline.join(indent + line if line else line for line in change.code.splitlines())
        if isinstance(change, InsertBefore):
            edits.append(Edit(span.start.line, 1, span.start.line, 1, body + newline))
        else:
            last = lines[span.end.line - 1].rstrip("\r\n") if span.end.line - 1 < len(lines) else ""
            column = len(last) + 1
            edits.append(Edit(span.end.line, column, span.end.line, column, newline + body))
    return Fix(spec.applicability, spec.message, tuple(sorted(edits, key=lambda e: (e.line, e.column))))
