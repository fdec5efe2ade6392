"""Which float16 evidence applies to the code being analysed: the value's own dataflow, not the file's.

A file that mentions ``torch.float16`` does not make every value in it float16.
Evidence found by :mod:`nanlint.precision`'s patterns counts for a value only when

* it is code, not a docstring, a string or a comment;
* it is not a dtype *test* (``if x.dtype == torch.float16: x = x.float()`` is the
  upcast branch: the code after it runs in float32), ``autocast(enabled=False)``, nor a
  round trip (``x.half().float()`` quantises and is float32 again);
* it lies in the same top-level definition (the class or function that owns the
  value), in module-level code, or in a top-level function (a script's
  ``model = Net().half()``, a training loop under autocast), never in
  another class: a dtype check in
  ``AudioEncoder`` says nothing about ``Token2Wav``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from ..fp16_text import DISABLED_AUTOCAST, ROUND_TRIP

if TYPE_CHECKING:
    from ..context import FileContext


def walk_owner(ctx: "FileContext") -> Optional[str]:
    """The name of the top-level class or function the walk is in, None at module level."""
    if len(ctx.stack) > 1 and isinstance(ctx.stack[1], (cst.ClassDef, cst.FunctionDef)):
        return ctx.stack[1].name.value  # type: ignore[union-attr]
    for node in ctx.stack[1:3]:  # ``if TYPE_CHECKING:`` / decorated blocks hold definitions one level down
        if isinstance(node, (cst.ClassDef, cst.FunctionDef)):
            return node.name.value
    return None


def applies(ctx: "FileContext", offset: int) -> bool:
    """True when the evidence at ``offset`` of the source applies to the walk's current position."""
    source = ctx.source
    line = source.count("\n", 0, offset) + 1
    line_start = source.rfind("\n", 0, offset) + 1
    column = offset - line_start
    prefix = source[line_start:offset]
    if "#" in prefix and prefix.count('"') % 2 == 0 and prefix.count("'") % 2 == 0:
        return False  # a comment
    line_end = source.find("\n", offset)
    if DISABLED_AUTOCAST.search(source, line_start, line_end if line_end >= 0 else len(source)):
        return False
    if source.startswith(".half()", offset) and ROUND_TRIP.match(source, offset + len(".half()")):
        return False
    summary = ctx.summary
    if summary.in_string(line, column) or summary.in_comparison(line, column):
        return False
    region = summary.region_at(line)
    if region is None or region.kind == "def":
        # module-level code and top-level functions (a script's ``model = Net().half()``, a training
        # loop under autocast) set up the models of the whole file
        return True
    return region.name == walk_owner(ctx)
