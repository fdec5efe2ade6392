"""How many elements a reduction's dimensions hold: what makes a reduced dimension size 1, and how ordinary
that input is (NAN204: the unbiased ``std``/``var`` of one element is 0/0).

:func:`size_one` answers for a ``std``/``var`` call, from what its operand is built of and which dims it
reduces:

===========================================  ===================================================  ============
the reduced dimension                        the trigger (size 1)                                 likelihood
===========================================  ===================================================  ============
``view(B, C, 1)``'s literal 1                always (the dimension has one element)               ordinary
``view(N, C, -1).var(2)``, ``dim=(2, 3)``,   a 1x1 feature map (a small input after striding)     plausible
``x.flatten(2).std(-1)``
``view(B, G, -1)`` / ``view(B, G, C // G)``  a group of one element (the group size is 1)         plausible
``x[i, :length]``                            a slice of one element (a length of 1)               plausible
dim 0 in model, loss or training code        a batch of one sample (a last batch of one)          plausible
one dim in statistics pooling                an utterance of one frame (a sequence of length 1)   plausible
``dim=(1, 2, 3)``, ``(0, 2, 3)``             one element in every reduced dim at once             degenerate
any other dim                                nothing nanlint can see                              degenerate
``view(B, -1, 4)``, a known config size > 1  nothing: at least two elements by construction       impossible
``self.weight.std(dim=(1, 2, 3))``           nothing: module state has a fixed shape              impossible
a tensor computed from constants             nothing: its shape does not depend on data           impossible
===========================================  ===================================================  ============

A size test of the operand before the reduction (``if x.size(1) > 1``, ``n = x.shape[1]`` ... ``if n > 1``)
guards it (:func:`size_tested`).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import libcst as cst

from ..names import TorchCall
from .ops import CONCATENATIONS as _POOLING_CALLS, SAME_SHAPE as _SAME_SHAPE, SHAPED_RESHAPES as _RESHAPES
from .triggers import DEGENERATE, IMPOSSIBLE, ORDINARY, PLAUSIBLE, Trigger
from .vocabulary import At, names_in

if TYPE_CHECKING:
    from ..context import FileContext
    from ..facts import Facts

ALWAYS_ONE = Trigger("every input: the dimension has one element by construction", ORDINARY)
FEATURE_MAP = Trigger("a 1x1 feature map (a small input after striding)", PLAUSIBLE)
GROUP = Trigger("a group of one element (a configured group size of 1: groups == channels, a 1x1 map)", PLAUSIBLE)
LENGTH = Trigger("a slice of one element (a length of 1)", PLAUSIBLE)
BATCH = Trigger("a batch of one sample (a last batch of one, single-sample inference)", PLAUSIBLE)
FRAMES = Trigger("a pooled dimension of one element (an utterance of one frame, a sequence of length 1)", PLAUSIBLE)
EVERY_DIM = Trigger("an input with one element in every reduced dimension at once", DEGENERATE)
UNSIZED = Trigger("a reduced dimension of size 1 (nothing shows its size)", DEGENERATE)
FIXED_SIZE = Trigger("nothing: the reduced dimensions hold at least two elements by construction", IMPOSSIBLE)
STATE = Trigger("nothing: module state (a weight) has a shape fixed by construction", IMPOSSIBLE)
CONSTANT_SHAPE = Trigger("nothing: a tensor computed from constants has a fixed shape", IMPOSSIBLE)

_GROUP_NAME = re.compile(r"(?i)^(?:g|groups?|num_groups|n_groups|groups?_size|num_channels_per_group|"
                         r"channels_per_group|per_group|group_channels)$")
_SPATIAL_NAME = re.compile(r"(?i)^(?:h|w|height|width|hh|ww|h_?out|w_?out|spatial|hw)$")
_FRAME_NAME = re.compile(r"(?i)^(?:t|seq_?len(?:gth)?|length|num_frames|n_frames|frames|time|time_steps)$")
# ``StatsPool``, ``stat_pooling``, ``Dct2dStats``, ``update_latent_stats``; not ``state`` or ``static``
_POOLING_NAME = re.compile(r"[Pp]ool|(?:^|_)[Ss]tat(?:s|istics?)?(?:$|_|[A-Z])|[a-z0-9]Stat(?:s|istics?)?(?:$|_|[A-Z])")
_SIZING = frozenset({"size", "numel", "nelement", "shape"})


def dim_argument(tc: TorchCall) -> Optional[cst.BaseExpression]:
    """The ``dim`` a reduction is given: ``dim=``, its ``axis=`` alias, or the first positional argument."""
    for found in (tc.keyword("dim"), tc.keyword("axis"), tc.positional(0)):
        if found is not None:
            return found
    return None


def reduced_dims(facts: "Facts", tc: TorchCall, at: At) -> Optional[tuple[int, ...]]:
    """The dims a ``std``/``var`` call reduces, as integers (``dim=(2, 3)``, ``axis=-1``, ``torch.var(x, 1)``),
    or None when they are not literals."""
    dim = dim_argument(tc)
    if dim is None:
        return None
    items: Sequence[cst.BaseExpression] = [e.value for e in dim.elements] \
        if isinstance(dim, (cst.Tuple, cst.List)) else [dim]
    dims = []
    for item in items:
        value = facts.literal(item, at)
        if value is None or value != int(value):
            return None
        dims.append(int(value))
    return tuple(dims) or None


def size_one(ctx: "FileContext", tc: TorchCall) -> Trigger:
    """What makes every dimension the ``std``/``var`` call ``tc`` reduces hold one element, and how ordinary
    that input is (the module docstring's table). Read from the operand's construction first (a reshape, a
    flatten, a slice, module state), then from the dims themselves and the code's place (statistics pooling,
    a batch in training code)."""
    facts = ctx.facts
    at = ctx.at()
    dims = reduced_dims(facts, tc, at)
    if tc.operand is None:
        return UNSIZED
    built = _built(facts, tc.operand, dims, at, 0)
    if built is not None:
        return built
    if dims is None:
        return EVERY_DIM if _all_but_first(facts, dim_argument(tc), at) else UNSIZED
    if _pooling(ctx) and len(dims) == 1:
        return FRAMES
    positive = {d % 4 if d < 0 else d for d in dims}  # an NCHW map: -2, -1 are 2, 3
    if len(dims) == 2 and positive == {2, 3}:
        return FEATURE_MAP
    if dims == (0,):
        from .gradient import evidence

        return BATCH if evidence(ctx, (tc.operand,), at) else UNSIZED
    if len(dims) > 1:
        return EVERY_DIM
    return UNSIZED


def _all_but_first(facts: "Facts", dim: Optional[cst.BaseExpression], at: At) -> bool:
    """``list(range(1, x.ndim))`` (also through a name): every dim of a sample, the batch's excepted."""
    if dim is None:
        return False
    dim, at = facts.resolve(dim, at)
    for _ in range(2):
        if isinstance(dim, cst.Call) and isinstance(dim.func, cst.Name) and dim.func.value in ("list", "tuple") \
                and len(dim.args) == 1:
            dim = dim.args[0].value
    return isinstance(dim, cst.Call) and isinstance(dim.func, cst.Name) and dim.func.value == "range" \
        and len(dim.args) >= 2 and facts.literal(dim.args[0].value, at) == 1


def size_tested(ctx: "FileContext", operand: cst.BaseExpression) -> bool:
    """A test earlier in the function examines the operand's size (``if x.size(1) > 1``, ``if len(x) > 1``),
    directly or through a name bound to it (``n = x.shape[1]`` ... ``... if n > 1 else ...``)."""
    at = ctx.at()
    names = {n for n in names_in(operand) if "." not in n}
    scope = at.scope
    for name, bindings in scope.bindings.items():
        for binding in bindings:
            if binding.order < at.order and binding.value is not None and _sizes(binding.value, names):
                names.add(name)
    return bool(names) and ctx.facts.tested_before(frozenset(names), at)


def _sizes(value: cst.BaseExpression, names: Iterable[str]) -> bool:
    """``value`` reads the size of one of ``names`` (``x.size(1)``, ``x.shape[-1]``, ``len(x)``)."""
    names = set(names)
    for node in _walk(value):
        if isinstance(node, cst.Attribute) and node.attr.value in _SIZING and names_in(node.value) & names:
            return True
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "len" \
                and node.args and names_in(node.args[0].value) & names:
            return True
    return False


def _walk(node: cst.CSTNode, limit: int = 64) -> Iterable[cst.CSTNode]:
    stack = [node]
    while stack and limit:
        limit -= 1
        current = stack.pop()
        yield current
        stack.extend(current.children)


def _pooling(ctx: "FileContext") -> bool:
    """Statistics pooling: the reduction goes into ``cat``/``stack`` (beside a mean), directly or through the
    name it is assigned (``std = h.std(dim=1)`` ... ``torch.cat([mean, std], dim=-1)``), or sits in a function
    or class named for pooling or statistics (``StatsPool``, ``stat_pooling``)."""
    from .guards import assigned_name

    for ancestor in reversed(ctx.stack[:-1]):
        if isinstance(ancestor, cst.Call):
            tc = ctx.match(ancestor)
            if tc is not None and tc.key in _POOLING_CALLS:
                return True
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)) and _POOLING_NAME.search(ancestor.name.value):
            return True
    name = assigned_name(ctx)
    if name is None:
        return False
    joined = re.compile(rf"\b(?:{'|'.join(_POOLING_CALLS)})\(\s*[\[(][^\])]*\b{re.escape(name)}\b")
    return joined.search(ctx.function_source()) is not None


def _built(facts: "Facts", expr: cst.BaseExpression, dims: Optional[tuple[int, ...]], at: At,
           depth: int) -> Optional[Trigger]:
    """The trigger read from how ``expr`` is built (a reshape, a flatten, a slice, module state, constants),
    or None when its construction says nothing about the reduced dims."""
    if depth > 8:
        return None
    d = depth + 1
    if isinstance(expr, cst.Attribute) and expr.attr.value in ("data", "T", "mT"):
        return _built(facts, expr.value, dims if expr.attr.value == "data" else None, at, d)
    if isinstance(expr, (cst.Name, cst.Attribute)):
        if _module_state(expr):
            return STATE
        binding = facts.binding(expr, at)
        if binding is None or binding.value is None or binding.is_parameter or binding.index is not None \
                or binding.operator is not None:
            return None
        return _built(facts, binding.value, dims, At(binding.scope, binding.order), d)
    if facts.is_constant(expr, at):
        return CONSTANT_SHAPE
    if isinstance(expr, cst.BinaryOperation) and not isinstance(expr.operator, cst.MatrixMultiply):
        found = _built(facts, expr.left, dims, at, d)
        return found if found is not None else _built(facts, expr.right, dims, at, d)
    if isinstance(expr, cst.Subscript):
        return _sliced(facts, expr, dims, at, d)
    if not isinstance(expr, cst.Call):
        return None
    from ..names import match_call

    tc = match_call(expr, facts.imports)
    if tc is None or tc.operand is None:
        return None
    if tc.key in _SAME_SHAPE:
        return _built(facts, tc.operand, dims, at, d)
    if tc.key not in _RESHAPES and tc.key != "flatten":
        return None
    fixed = _built(facts, tc.operand, None, at, d)  # a reshaped weight keeps its fixed size
    if fixed is not None or dims is None:
        return fixed
    return _reshaped(facts, tc, dims, at) if tc.key in _RESHAPES else _flattened(facts, tc, dims, at)


def _module_state(expr: cst.BaseExpression) -> bool:
    """``self.weight``, ``lm_head.bias`` (not a call's result): a parameter or buffer whose shape the
    constructor fixed."""
    if not isinstance(expr, cst.Attribute):
        return False
    return isinstance(expr.value, cst.Name) and expr.value.value == "self" or expr.attr.value in _PARAMETERS


_PARAMETERS = frozenset({"weight", "bias", "running_mean", "running_var"})


def _reshaped(facts: "Facts", tc: TorchCall, dims: tuple[int, ...], at: At) -> Optional[Trigger]:
    """``x.view(N, C, -1).var(2)``: each reduced dim's entry in the new shape."""
    args = [a for a in tc.args if a.keyword is None]
    if any(a.star for a in args) or not args:
        return None
    entries = [e.value for e in args[0].value.elements] \
        if len(args) == 1 and isinstance(args[0].value, (cst.Tuple, cst.List)) else [a.value for a in args]
    if len(args) == 1 and len(entries) == 1 and not isinstance(args[0].value, (cst.Tuple, cst.List)) \
            and facts.literal(entries[0], at) is None:
        return None  # ``x.view(shape)``, ``x.reshape(x.shape)``: not the entries themselves
    if any(not -len(entries) <= dim < len(entries) for dim in dims):
        return None
    grouped = any(_named(e, _GROUP_NAME) for e in entries)
    found = []
    for dim in dims:
        entry = entries[dim]
        value = facts.literal(entry, at)
        if value == -1:
            found.append(GROUP if grouped else FEATURE_MAP)
        elif value is not None:
            found.append(ALWAYS_ONE if value == 1 else FIXED_SIZE)
        else:
            found.append(_entry(entry, grouped))
    return _combined(found)


def _entry(entry: cst.BaseExpression, grouped: bool) -> Trigger:
    """A named entry of a new shape: a group size (``C // G``, ``group_size``), a spatial or time extent."""
    if isinstance(entry, cst.BinaryOperation) and isinstance(entry.operator, cst.FloorDivide):
        return GROUP
    if _named(entry, _GROUP_NAME) or grouped and isinstance(entry, cst.BinaryOperation):
        return GROUP
    if _named(entry, _SPATIAL_NAME):
        return FEATURE_MAP
    if _named(entry, _FRAME_NAME):
        return FRAMES
    return UNSIZED


def _named(entry: cst.BaseExpression, pattern: re.Pattern[str]) -> bool:
    name = entry.value if isinstance(entry, cst.Name) else entry.attr.value if isinstance(entry, cst.Attribute) \
        else None
    return name is not None and pattern.search(name) is not None


def _flattened(facts: "Facts", tc: TorchCall, dims: tuple[int, ...], at: At) -> Optional[Trigger]:
    """``x.flatten(2).std(-1)``: the dimension ``flatten`` collects (its ``start_dim`` onwards)."""
    start = facts.literal(tc.argument("start_dim", 0), at) if tc.argument("start_dim", 0) is not None else 0
    end = tc.argument("end_dim", 1)
    if start is None or start < 0 or end is not None and facts.literal(end, at) != -1:
        return None
    start = int(start)
    rank = start + 1
    if any(not -rank <= dim < rank for dim in dims):
        return None
    collected = [dim % rank == start for dim in dims]
    if not any(collected):
        return None
    if all(collected) and len(dims) == 1:
        # the spatial dims of an NCHW map; from dim 1 on, the whole sample (C x H x W)
        return FEATURE_MAP if start >= 2 else EVERY_DIM
    return EVERY_DIM


def _sliced(facts: "Facts", expr: cst.Subscript, dims: Optional[tuple[int, ...]], at: At,
            depth: int) -> Optional[Trigger]:
    """``x[i, :length].std(0)``: a reduced dim that is a slice with a data-dependent bound; whole dims
    (``x[:, i].var(0)``) are the sliced tensor's, at their places there."""
    if dims is None or any(dim < 0 for dim in dims):
        return None
    # the result's dims, in order: the slice (None for an added ``None`` dim) and the sliced tensor's dim
    kept: list[tuple[Optional[cst.Slice], Optional[int]]] = []
    consumed = 0
    for element in expr.slice:
        part = element.slice
        if isinstance(part, cst.Slice):
            kept.append((part, consumed))
            consumed += 1
        elif isinstance(part.value, cst.Name) and part.value.value == "None":
            kept.append((None, None))
        elif isinstance(part.value, (cst.Integer, cst.Name, cst.UnaryOperation)):
            consumed += 1  # an integer index drops the dim
        else:
            return None  # an ellipsis, a mask or an index tensor: the shape changes in ways not followed here
    place = lambda dim: kept[dim] if dim < len(kept) else (_WHOLE, consumed + dim - len(kept))  # noqa: E731
    if all(place(dim)[0] is _WHOLE or _whole(place(dim)[0]) for dim in dims):
        return _built(facts, expr.value, tuple(place(dim)[1] for dim in dims), at, depth)  # type: ignore[misc]
    found = []
    for dim in dims:
        part = place(dim)[0]
        if part is None:
            found.append(ALWAYS_ONE)  # ``x[:, None]``
            continue
        if part is _WHOLE or _whole(part) or part.step is not None:
            return None
        lower = facts.literal(part.lower, at) if part.lower is not None else 0
        upper = facts.literal(part.upper, at) if part.upper is not None else None
        if lower is not None and upper is not None and lower >= 0 and upper >= 0:
            found.append(ALWAYS_ONE if upper - lower == 1 else FIXED_SIZE if upper - lower > 1 else UNSIZED)
        else:
            found.append(LENGTH)
    return _combined(found)


_WHOLE = cst.Slice(lower=None, upper=None)  # a dim the subscript does not mention


def _whole(part: Optional[cst.Slice]) -> bool:
    return part is not None and part.lower is None and part.upper is None and part.step is None


def _combined(found: Sequence[Trigger]) -> Trigger:
    """Several reduced dims hold one element together only when each does: one at least two by construction
    makes them safe; two data-dependent ones at once (other than a map's height and width) are degenerate."""
    if any(t.likelihood == IMPOSSIBLE for t in found):
        return FIXED_SIZE
    varying = [t for t in found if t != ALWAYS_ONE]
    if not varying:
        return ALWAYS_ONE
    if len(set(varying)) == 1 and (len(varying) == 1 or varying[0] == FEATURE_MAP):
        return varying[0]
    return next((t for t in varying if not t.at_least(PLAUSIBLE)), EVERY_DIM)
