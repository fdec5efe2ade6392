"""Guards written away from the hazard: a branch on the divisor, a repair of the result.

Guards next to the operation (``+ eps``, ``clamp_min``, ``log_softmax``...) are
part of the value facts (:class:`nanlint.facts.Facts`); boolean filters
(``x = x[s != 0]``) are part of the triggers (:mod:`.triggers`). These are the
two that sit on other lines:

* a test of the dangerous value before the operation, in the same function
  (``if n > limit: y = y * (limit / n)``; ``if m.sum() == 0: return``), recorded by
  the walker for every rule;
* a repair of the result around it (``torch.nansum(p * torch.log(p / q))``) or after it (``y = torch.where(torch.isfinite(y), y, finfo.min)``,
  ``y.nan_to_num()``, ``y[torch.isnan(y)] = 0``, ``y[y == float('inf')] = 0``): the author expected the
  NaN or inf and replaced it.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import libcst as cst

from ..facts import names_in
from ..names import last_name
from .ops import CAPS as _CAPS, NAN_REPAIRS as _INLINE_REPAIRS

if TYPE_CHECKING:
    from ..context import FileContext


def branch_guarded(ctx: "FileContext", expr: cst.BaseExpression) -> bool:
    """A test earlier in the function (or an enclosing ``if``) examines a name ``expr`` is built from."""
    names = frozenset(n for n in names_in(expr) if "." not in n)
    return bool(names) and ctx.facts.tested_before(names, ctx.at())


def repaired_later(ctx: "FileContext") -> bool:
    """The statement being walked assigns a name whose NaN/Inf the function replaces afterwards."""
    target = assigned_name(ctx)
    if target is None:
        return False
    text = ctx.function_source()
    name = re.escape(target)
    repair = re.compile(
        rf"(?:isfinite|isnan|isinf|nan_to_num|isneginf|isposinf)\(\s*{name}\b|\b{name}\s*\.\s*"
        rf"(?:isfinite|isnan|isinf|nan_to_num|isneginf|isposinf)\("
        # ``d[d == float('inf')] = 0``, ``d.masked_fill_(d == math.inf, 0)`` (PyG's repair of ``deg ** -0.5``)
        rf"|\b{name}\s*==\s*(?:float\(\s*['\"]inf['\"]\s*\)|(?:math|torch|np|numpy)\.inf\b)")
    return repair.search(text) is not None


def repaired_inline(ctx: "FileContext") -> bool:
    """The node being walked sits inside ``torch.nansum(...)`` / ``nanmean`` / ``nan_to_num``: its NaN is
    dropped or replaced before it goes further (``nansum(p * log(p / q))`` in a metric)."""
    for node in reversed(ctx.stack[:-1]):
        if isinstance(node, cst.Call):
            if last_name(node) in _INLINE_REPAIRS:
                return True
        elif isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
            return False
    return False


def assigned_name(ctx: "FileContext") -> Optional[str]:
    """The plain name the statement being walked assigns (``y = ...``, ``y += ...``), or None."""
    if not ctx.statements or not isinstance(ctx.statements[-1], cst.SimpleStatementLine):
        return None
    for small in ctx.statements[-1].body:
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            return small.targets[0].target.value
        if isinstance(small, (cst.AugAssign, cst.AnnAssign)) and isinstance(small.target, cst.Name):
            return small.target.value
    return None


def capped_reciprocal(ctx: "FileContext", numerator: Optional[cst.BaseExpression]) -> bool:
    """``torch.minimum(ones, c / n)`` / ``torch.min(0.5 / d)`` / ``(c / n).clamp(max=1)``: a non-zero number
    divided by a vanishing ``n`` is +-inf, not NaN (0 / 0 needs the numerator to vanish too), and the
    cap around it takes the other operand (or the finite entries) -- a gradient-norm or step-size cap.
    The forward is finite; the gradient through the cap is still 0 * -inf = NaN (docs/probe.md section 4),
    so the hazard becomes gradient-only."""
    from . import kinds

    if numerator is None:
        return False
    if isinstance(numerator, (cst.Integer, cst.Float)):
        if float(numerator.value.replace("_", "")) == 0:
            return False
    elif ctx.facts.kind(numerator, ctx.at()) not in kinds.NUMBERS:
        return False
    division = ctx.stack[-1]
    for node in reversed(ctx.stack[:-1]):
        if isinstance(node, (cst.Arg, cst.Attribute)):
            continue
        if isinstance(node, cst.Call):
            func = node.func
            name = last_name(node)
            if name in _CAPS:
                return any(arg.value is division for arg in node.args) or (
                    isinstance(func, cst.Attribute) and func.value is division)
            if name in ("clamp", "clip", "clamp_", "clip_"):
                capped = any(arg.keyword is not None and arg.keyword.value == "max" for arg in node.args) or (
                    isinstance(func, cst.Attribute) and func.value is division and len(node.args) >= 2)
                return capped
        return False
    return False
