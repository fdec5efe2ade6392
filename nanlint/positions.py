"""Line/column positions of the nodes a file's findings need, without positioning the whole module.

libcst's ``PositionProvider`` runs a position-tracking code generation over the
whole module: about twice the cost of parsing it, paid by every file with a
finding. Findings sit in a few top-level statements, so this module positions
only those: the lines before each one are counted from plain code generation
(a third of the cost), and the statement is positioned alone, as the body of a
one-statement module, then shifted down by that count. Columns need no shift:
a top-level statement starts at column 0, and its code is generated with the
module's own indentation and newline.

A needed node that is not inside one of those statements (a fix that edits
another statement) makes :func:`positions_of` fall back to the whole module.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider


def whole_module(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


def positions_of(module: cst.Module, tops: Iterable[cst.CSTNode],
                 needed: Iterable[cst.CSTNode]) -> Mapping[cst.CSTNode, CodeRange]:
    """Positions covering at least the nodes of the top-level statements ``tops`` (items of
    ``module.body``); the whole module's when some ``needed`` node lies outside them."""
    tops = list(tops)
    wanted = {id(top) for top in tops}
    if not wanted or not wanted <= {id(statement) for statement in module.body}:
        return whole_module(module)
    found: dict[cst.CSTNode, CodeRange] = {}
    line = len(module.header)  # each header item is one EmptyLine
    remaining = len(wanted)
    for statement in module.body:
        if not remaining:
            break  # the lines after the last wanted statement are not needed
        if id(statement) in wanted:
            remaining -= 1
            alone = module.with_changes(body=[statement], header=(), footer=())
            for node, span in whole_module(alone).items():
                if node is not alone:
                    found[node] = _shifted(span, line) if line else span
        line += module.code_for_node(statement).count(module.default_newline)
    if not all(node in found for node in needed):
        return whole_module(module)
    return found


def _shifted(span: CodeRange, lines: int) -> CodeRange:
    return CodeRange(CodePosition(span.start.line + lines, span.start.column),
                     CodePosition(span.end.line + lines, span.end.column))
