"""Where a value goes: does a NaN computed here reach anything that matters?

The other modules look backwards (where a value comes from); this one looks forwards, through the
rest of the function. A value whose every use is a comparison (``d < tol``, ``(p >= 0) * (p <= 1)``)
or the index result of a ranking (``argsort``, ``argmax``, ``argmin``), directly or through names
assigned from it, never reaches an output or a loss: a NaN compares False, a ranking returns
integers, and no gradient flows back through either. SOLD2's line detector divides by segment
lengths that are 0 for the segment's own start point and only thresholds the result.

Followed: plain assignments to names (``x = f(v)`` makes ``x`` carry ``v``), augmented assignments,
every read of such a name anywhere in the function (an over-approximation: a read of a later,
unrelated value of the name counts as a use). At least one use must be a comparison or a ranking: a value
nothing reads is not known to be harmless. Anything else (a return, an attribute or item store,
a call statement, a loop or ``with`` header, a nested function) may carry the value out: the
answer is then no, and the finding stands.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from ..names import last_name
from .ops import INDEX_RESULTS as _INDEX_RESULTS, INF_KEEPING as _INF_KEEPING

if TYPE_CHECKING:
    from ..context import FileContext

_MAX_NAMES = 24  # names followed before giving up (the answer is then "it may matter")


def only_compared(ctx: "FileContext") -> bool:
    """The value computed at the node being visited reaches only comparisons and ranking indices in its
    function (see the module docstring). False when anything may carry it further, or outside a function."""
    stack = ctx.stack
    function = next((n for n in reversed(stack) if isinstance(n, (cst.FunctionDef, cst.Lambda))), None)
    if not isinstance(function, cst.FunctionDef):
        return False
    start = stack.index(function)
    tainted = _carried(stack[start:])
    if tainted is None:
        return False
    if not tainted:
        return True  # a comparison or a ranking right here
    return _all_uses_compared(ctx, function, tainted)


def _carried(path: list[cst.CSTNode]) -> Optional[set[str]]:
    """For the ancestor ``path`` of one occurrence (from its function down to it): the names an assignment
    gives its value to, an empty set when a comparison or ranking consumes it first, None when it may
    escape (a return, a store into an attribute or item, a call statement...)."""
    for depth in range(len(path) - 1, 0, -1):
        parent, child = path[depth - 1], path[depth]
        if isinstance(parent, (cst.Comparison, cst.ComparisonTarget)):
            return set()
        if isinstance(parent, cst.Call) and last_name(parent) in _INDEX_RESULTS and child is not parent.func \
                or isinstance(parent, cst.Attribute) and isinstance(path[depth - 2] if depth >= 2 else None, cst.Call) \
                and path[depth - 2].func is parent and parent.attr.value in _INDEX_RESULTS:  # type: ignore[attr-defined]
            return set()
        if isinstance(parent, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            if child is not getattr(parent, "value", None):
                return None  # a store target's own index or attribute: not followed
            targets = [t.target for t in parent.targets] if isinstance(parent, cst.Assign) else [parent.target]
            names: set[str] = set()
            for target in targets:
                found = _target_names(target)
                if found is None:
                    return None
                names |= found
            return names
        if isinstance(parent, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.FunctionDef, cst.Lambda,
                               cst.Yield, cst.Await)):
            return None
    return None


def _target_names(target: cst.BaseExpression) -> Optional[set[str]]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        names: set[str] = set()
        for element in target.elements:
            found = _target_names(element.value)
            if found is None:
                return None
            names |= found
        return names
    return None  # ``self.x = v``, ``a[i] = v``: the value leaves the function's names


def _all_uses_compared(ctx: "FileContext", function: cst.FunctionDef, tainted: set[str]) -> bool:
    """Every read of the ``tainted`` names (and of names assigned from them) ends in a comparison or a
    ranking, and at least one does: a value nothing reads is not known to be harmless (a debugger, a
    later edit), so it stays reported."""
    frontier = list(tainted)
    seen = set(tainted)
    compared = False
    while frontier:
        name = frontier.pop()
        for path in _reads(ctx, function, name):
            carried = _carried(path)
            if carried is None:
                return False
            compared = compared or not carried
            for new in carried - seen:
                if len(seen) >= _MAX_NAMES:
                    return False
                seen.add(new)
                frontier.append(new)
    return compared


def _reads(ctx: "FileContext", function: "cst.FunctionDef | cst.Module", name: str) -> list[list[cst.CSTNode]]:
    """The ancestor path (from ``function``) of every read of ``name`` in ``function``. One walk per
    function collects the reads of every name (kept for the file)."""
    cache = ctx.reads_by_function
    cached = cache.get(id(function))
    if cached is None or cached[0] is not function:
        reads: dict[str, list[list[cst.CSTNode]]] = {}
        path: list[cst.CSTNode] = [function]

        def walk(node: cst.CSTNode) -> None:
            for child in node.children:
                if isinstance(child, cst.Name):
                    if not _is_store(node, child):
                        reads.setdefault(child.value, []).append(path + [child])
                    continue
                path.append(child)
                if isinstance(child, cst.Attribute):  # ``x.attr``: only the receiver can be a read
                    if isinstance(child.value, cst.Name):
                        reads.setdefault(child.value.value, []).append(path + [child.value])
                    else:  # ``(a * b).sum``: the receiver is on the path of what it reads
                        path.append(child.value)
                        walk(child.value)
                        path.pop()
                else:
                    walk(child)
                path.pop()

        walk(function if isinstance(function, cst.Module) else function.body)
        del walk  # (a recursive closure is a cycle: left alone, it keeps ``reads`` and its nodes for the collector)
        cached = cache[id(function)] = (function, reads)
    return cached[1].get(name, [])


def _is_store(parent: cst.CSTNode, name: cst.Name) -> bool:
    """``name`` is written or named, not read, in ``parent``: an assignment or loop target, a parameter, a
    keyword argument's name, a definition's or an import's name. A target inside a tuple counts as a read:
    its path then ends at an assignment target, which :func:`_carried` treats as an escape."""
    if isinstance(parent, cst.AssignTarget):
        return parent.target is name
    if isinstance(parent, cst.AnnAssign):
        return parent.target is name
    if isinstance(parent, cst.Param):
        return parent.name is name
    if isinstance(parent, cst.Arg):
        return parent.keyword is name
    if isinstance(parent, (cst.For, cst.CompFor)):
        return parent.target is name
    return isinstance(parent, (cst.AsName, cst.FunctionDef, cst.ClassDef, cst.ImportAlias))


def multiplied_by(ctx: "FileContext") -> Optional[cst.BaseExpression]:
    """The factor the value computed at the node being visited is multiplied by, element-wise, right where it
    is computed (``(pos * F.log_softmax(s, 1)).sum(1)``) or through a name it is assigned to
    (``log_prob = F.log_softmax(s, 1)`` ... ``pos * log_prob``); None when no such product is seen."""
    stack = ctx.stack
    function = next((n for n in reversed(stack) if isinstance(n, (cst.FunctionDef, cst.Lambda))), None)
    if function is None and stack and isinstance(stack[0], cst.Module):
        function = stack[0]  # a script or notebook cell: its module-level names
    if not isinstance(function, (cst.FunctionDef, cst.Module)):
        return None
    path = stack[stack.index(function):]
    factor = _factor(path)
    if factor is not None:
        return factor
    names = _carried(path)
    for name in sorted(names or ()):
        for read in _reads(ctx, function, name):
            factor = _factor(read)
            if factor is not None:
                return factor
    return None


def _factor(path: list[cst.CSTNode]) -> Optional[cst.BaseExpression]:
    """The other side of the first product over the path's last node, through negation, parentheses and sums
    (``(log(p) - log(g)) * m``: every term of the sum is multiplied)."""
    child = path[-1]
    for parent in reversed(path[:-1]):
        if isinstance(parent, cst.UnaryOperation) or isinstance(parent, cst.BinaryOperation) and isinstance(
                parent.operator, (cst.Add, cst.Subtract)):
            child = parent
            continue
        if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Multiply):
            return parent.right if parent.left is child else parent.left
        if isinstance(parent, cst.AugAssign) and isinstance(parent.operator, cst.MultiplyAssign) \
                and parent.target is child:
            return parent.value  # ``d *= mask``
        if isinstance(parent, cst.Attribute) and parent.value is child and parent.attr.value in (
                "mul", "mul_", "multiply"):
            child = parent
            continue
        if isinstance(parent, cst.Attribute) and parent.value is child and parent.attr.value in _INF_KEEPING:
            child = parent  # ``d.abs()``: then the call, below
            continue
        if isinstance(parent, cst.Arg) and parent.keyword is None:
            child = parent  # ``torch.abs(d)``: then the call, below
            continue
        if isinstance(parent, cst.Call) and (child is parent.func and isinstance(child, cst.Attribute)
                                             and child.attr.value in _INF_KEEPING
                                             or isinstance(child, cst.Arg) and last_name(parent) in _INF_KEEPING):
            child = parent
            continue
        if isinstance(parent, cst.Call) and child is parent.func and parent.args:
            return parent.args[0].value  # ``log_prob.mul(w)``
        return None
    return None


def appended_values(ctx: "FileContext", name: str) -> Optional[list[cst.BaseExpression]]:
    """What a list ``name`` built empty is filled with in the function being walked: the arguments of every
    ``name.append(v)`` / ``name.extend(v)`` / ``name.insert(i, v)`` (anchors built level by level in a loop, then
    ``torch.cat``-ed). None outside a function or when the list is also filled some other way (an item store,
    ``+=``) or passed where it could be filled."""
    function = ctx.enclosing_def()
    if function is None:
        return None
    values: list[cst.BaseExpression] = []
    for path in _reads(ctx, function, name):
        parent = path[-2] if len(path) >= 2 else None
        if isinstance(parent, cst.Attribute) and len(path) >= 3 and isinstance(path[-3], cst.Call) \
                and path[-3].func is parent:
            call = path[-3]
            if parent.attr.value in ("append", "extend") and len(call.args) == 1:
                values.append(call.args[0].value)
            elif parent.attr.value == "insert" and len(call.args) == 2:
                values.append(call.args[1].value)
            continue
        if isinstance(parent, (cst.AugAssign, cst.SubscriptElement, cst.Subscript)) and not isinstance(parent, cst.Arg):
            if isinstance(parent, cst.AugAssign) or isinstance(parent, cst.Subscript) and len(path) >= 3 and \
                    isinstance(path[-3], cst.AssignTarget):
                return None  # ``anchors += [...]``, ``anchors[i] = v``
    return values

