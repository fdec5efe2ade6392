"""Which screen matches can hold a literal a finding needs: the second stage's test (``Rule.evidence_at``) for the
rules whose finding rests on ``Facts.literal`` (NAN502: an eps that is 0; NAN604: a NaN a comparison reads;
NAN402: a -inf that a softmax or a product reads).

``Facts.literal`` folds numbers, ``-x``, arithmetic, ``float("nan")``, ``math.inf`` and names bound to those
(an assignment, a parameter's default, ``self.x = ...``, a config's keyword or dict entry, a class field).
:class:`Literals` answers the same question on the stdlib tree without scopes: a name may hold what *any*
plain binding of that name in the file holds, so its answer is a superset of the analysis's (a necessary
condition, as a screen must be).
"""
from __future__ import annotations

import ast
import bisect
import functools
import math
import re
from typing import Callable, Iterator, Optional, Union

from ._screens import BLOCKS, Assignments, callee, first_line, walk

# What a literal may fold to: an exact value, or some of these outcomes
ZERO, NONZERO, NOT_A_LITERAL = "zero", "nonzero", "none"
_ANYTHING = frozenset((ZERO, NONZERO, NOT_A_LITERAL))
_NONE = frozenset((NOT_A_LITERAL,))
Folded = Union[float, frozenset]
_MAX_DEPTH = 12  # deeper than the analysis follows names (``vocabulary._MAX_DEPTH``): past it, anything


def _may_be_zero(value: Folded) -> bool:
    return value == 0 if not isinstance(value, frozenset) else ZERO in value


def _outcomes(value: Folded) -> frozenset:
    if isinstance(value, frozenset):
        return value
    return frozenset((ZERO,)) if value == 0 else frozenset((NONZERO,))


class Literals:
    """One module's plain bindings, read from its stdlib tree when first asked for: each name's assigned values
    and parameter defaults (``names``), and each member's (``members``: ``x.eps = v``, ``eps=v`` in any call,
    ``{"eps": v}``, a class field)."""

    def __init__(self, assignments: Assignments, line_of: Callable[[int], int]) -> None:
        self.assignments = assignments
        self.line_of = line_of  # the 1-based line of a position in the source
        self._names: Optional[dict[str, list[ast.expr]]] = None
        self._members: dict[str, list[ast.expr]] = {}
        self._done: dict[tuple[bool, str], Folded] = {}  # (member?, key) -> the union of its bindings' values
        self._active: set[tuple[bool, str]] = set()

    @property
    def names(self) -> dict[str, list[ast.expr]]:
        if self._names is None:
            self._names = {name: list(values) for (name, attribute), values in self.assignments.values().items()
                           if not attribute}
            for name, defaults in self.assignments.defaults().items():
                self._names.setdefault(name, []).extend(defaults)
        return self._names

    def members(self, key: str) -> list[ast.expr]:
        """What ``m.key`` / ``m["key"]`` may hold: ``x.key = v``, a field ``key = v``, ``key=v`` in any call,
        ``{"key": v}``. The keywords and entries are looked for only on the lines whose text names them."""
        if key not in self._members:
            values = [*self.assignments.values().get((key, True), ()), *self.assignments.values().get((key, False), ())]
            source, tree = self.assignments.source, self.assignments.tree
            word = re.escape(key)  # any string: ``m["("]`` (literal-first: a leading ``\b`` tries every position)
            named = re.compile(rf"{word}(?<!\w{word})\s*=(?!=)|{word}(?<=['\"]{word})['\"]\s*:")
            lines = {self.line_of(found.start()) for found in named.finditer(source)}
            seen: set[int] = set()
            for line in sorted(lines):
                for node in _header_nodes(tree, line):
                    if id(node) in seen:
                        continue
                    seen.add(id(node))
                    if isinstance(node, ast.keyword) and node.arg == key:
                        values.append(node.value)
                    elif isinstance(node, ast.Dict):
                        values.extend(value for entry, value in zip(node.keys, node.values)
                                      if isinstance(entry, ast.Constant) and entry.value == key)
            self._members[key] = values
        return self._members[key]

    def may_be_zero(self, expr: ast.expr) -> bool:
        return _may_be_zero(self.fold(expr))

    def member_may_be_zero(self, key: str) -> bool:
        """``m["eps"]`` / ``m.eps`` may be 0 for some mapping or object ``m`` the module builds."""
        return _may_be_zero(self._bound(True, key, 0)[0])

    def may_be_infinite(self, expr: ast.expr) -> bool:
        value = self.fold(expr)
        return math.isinf(value) if not isinstance(value, frozenset) else NONZERO in value

    def may_be_nan(self, expr: ast.expr) -> bool:
        value = self.fold(expr)
        return math.isnan(value) if not isinstance(value, frozenset) else NONZERO in value

    def fold(self, expr: ast.expr) -> Folded:
        """What ``Facts.literal`` may give for ``expr``: an exact float, or a set of outcomes."""
        return self._fold(expr, 0)[0]

    def _fold(self, expr: ast.expr, depth: int) -> tuple[Folded, bool]:
        """The value, and whether it is partial: it met a binding whose values are being gathered (``eps =
        eps * 2``), which adds nothing to that binding's own values but must not be remembered elsewhere."""
        if isinstance(expr, ast.Constant):
            value = expr.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return _NONE, False  # ``True`` is a name to libcst; strings only count inside ``float(...)``
            try:
                number = float(value)
            except OverflowError:
                return _NONE, False
            return (number if math.isfinite(number) else _NONE), False  # ``1e400``: an overflow
        if isinstance(expr, ast.UnaryOp):
            if not isinstance(expr.op, (ast.USub, ast.UAdd)):
                return _NONE, False
            inner, partial = self._fold(expr.operand, depth + 1)
            if isinstance(inner, frozenset) or isinstance(expr.op, ast.UAdd):
                return inner, partial
            return -inner, partial
        if isinstance(expr, ast.BinOp):
            return self._arithmetic(expr, depth)
        if isinstance(expr, ast.Call):
            return self._float_call(expr, depth)
        if isinstance(expr, ast.Name):
            return self._bound(False, expr.id, depth)
        if isinstance(expr, ast.Attribute):
            found, partial = self._bound(True, expr.attr, depth)
            if expr.attr.lower() in ("inf", "nan"):  # ``math.inf``, ``torch.nan``, ``np.NaN``
                return frozenset((NONZERO,)) | _outcomes(found), partial
            return found, partial
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant) \
                and isinstance(expr.slice.value, str):
            return self._bound(True, expr.slice.value, depth)
        return _NONE, False

    def _bound(self, member: bool, key: str, depth: int) -> tuple[Folded, bool]:
        """The union of what every binding of ``key`` (in ``members`` or ``names``) may hold."""
        slot = (member, key)
        if slot in self._done:
            return self._done[slot], False
        if slot in self._active:
            return frozenset(), True
        if depth > _MAX_DEPTH:
            return _ANYTHING, False
        values = self.members(key) if member else self.names.get(key, ())
        if not values:
            return _NONE, False  # no plain binding: the analysis finds no literal either
        self._active.add(slot)
        try:
            found = [self._fold(value, depth + 1) for value in values]
        finally:
            self._active.discard(slot)
        value = found[0][0] if len(found) == 1 else frozenset().union(*(_outcomes(v) for v, _ in found))
        partial = any(p for _, p in found)
        if not partial:
            self._done[slot] = value
        return value, partial

    def _arithmetic(self, expr: ast.BinOp, depth: int) -> tuple[Folded, bool]:
        if not isinstance(expr.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            return _NONE, False
        (left, partial_left), (right, partial_right) = self._fold(expr.left, depth + 1), \
            self._fold(expr.right, depth + 1)
        partial = partial_left or partial_right
        if isinstance(left, frozenset) or isinstance(right, frozenset):
            if _outcomes(left) == _NONE or _outcomes(right) == _NONE:
                return _NONE, partial
            return _ANYTHING, partial  # ``1e-5 - eps`` may cancel, ``1e-200 * eps`` may underflow
        try:
            if isinstance(expr.op, ast.Add):
                value = left + right
            elif isinstance(expr.op, ast.Sub):
                value = left - right
            elif isinstance(expr.op, ast.Mult):
                value = left * right
            elif isinstance(expr.op, ast.Div):
                value = left / right
            else:
                value = float(left ** right)
        except (ZeroDivisionError, OverflowError, TypeError):
            return _NONE, partial
        if math.isfinite(left) and math.isfinite(right) and not math.isfinite(value):
            return _NONE, partial  # an overflow of finite literals is not folded
        return value, partial

    def _float_call(self, call: ast.Call, depth: int) -> tuple[Folded, bool]:
        if not (isinstance(call.func, ast.Name) and call.func.id == "float" and len(call.args) == 1
                and not call.keywords and not isinstance(call.args[0], ast.Starred)):
            return _NONE, False
        argument = call.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            try:
                value = float(argument.value)
            except ValueError:
                return _NONE, False
            named = "inf" in argument.value.lower() or "nan" in argument.value.lower()
            return (value if math.isfinite(value) or named else _NONE), False
        return self._fold(argument, depth + 1)


def _literals(memo: dict) -> Literals:
    if "literals" not in memo:
        assignments = memo["assignments"]
        newlines = _newlines_of(assignments.source, memo)
        # (a function reading ``memo`` itself would close a cycle, memo -> Literals -> function -> memo, that only the
        # collector frees: the file's whole stdlib tree, walked node by node by its next young collection)
        memo["literals"] = Literals(assignments, functools.partial(_line_in, newlines))
    return memo["literals"]


def _last_line(node: ast.AST) -> int:
    if isinstance(node, ast.match_case):
        return _last_line(node.body[-1])
    return node.end_lineno or node.lineno  # type: ignore[attr-defined]


def _header_nodes(tree: ast.AST, line: int) -> Iterator[ast.AST]:
    """The nodes of the statements that hold ``line``, but not those of the blocks nested in them: for
    ``if x == nan: y = 1`` both the ``if``'s test and the assignment; for ``def f(x, eps=0.0):`` the
    function's arguments, decorators and annotations, not its body."""
    node = tree
    while True:
        yield node
        for name, value in ast.iter_fields(node):
            if name in BLOCKS:
                continue
            for part in value if isinstance(value, list) else [value]:
                if isinstance(part, ast.AST):
                    yield from walk(part)
        for block in BLOCKS:
            inner = next((child for child in getattr(node, block, ()) if first_line(child) <= line <= _last_line(child)),
                         None)
            if inner is not None:
                node = inner
                break
        else:
            return


def _newlines_of(source: str, memo: dict) -> list[int]:
    """Where ``source``'s newlines are (``_newlines``), computed once per ``memo``."""
    if "newlines" not in memo:
        memo["newlines"] = _newlines(source)
    return memo["newlines"]  # type: ignore[no-any-return]


def _line_of(source: str, position: int, memo: dict) -> int:
    """``position``'s 1-based line."""
    return _line_in(_newlines_of(source, memo), position)


def _line_in(newlines: list[int], position: int) -> int:
    """The 1-based line of ``position`` in a text whose newlines are at ``newlines``."""
    return bisect.bisect_left(newlines, position) + 1


def _line_and_column(source: str, position: int, memo: dict) -> tuple[int, int]:
    """``position``'s 1-based line and its column in UTF-8 bytes, as the stdlib tree counts them."""
    line = _line_of(source, position, memo)
    start = memo["newlines"][line - 2] + 1 if line > 1 else 0
    return line, len(source[start:position].encode("utf-8"))


def _per_line(source: str, start: int, memo: dict, name: str, answer: Callable[[int], bool]) -> bool:
    """``answer`` for the line of ``start``, asked once per line (a line often holds several matches)."""
    line = _line_of(source, start, memo)
    answers = memo.setdefault(name, {})
    if line not in answers:
        answers[line] = answer(line)
    return answers[line]


def _newlines(source: str) -> list[int]:
    found, at = [], source.find("\n")
    while at != -1:
        found.append(at)
        at = source.find("\n", at + 1)
    return found


# -- NAN502: an eps that may be 0 ------------------------------------------------------------------------------
def zero_eps_evidence(source: str, start: int, memo: dict, positions: dict[str, int]) -> bool:
    """Whether NAN502's screen match at ``start`` (the ``norm`` that ends a norm's name) can be a finding: not a
    call of torch's norm whose eps (by keyword, at its position, or in a ``**`` mapping) never folds to 0, nor
    a call of a name that is not torch's (``RmsNorm(...)``: an import that renames torch's matches itself),
    nor the name of a ``def``. ``positions``: each norm's name and the index of eps among its positional
    arguments."""
    line, column = _line_and_column(source, start + len("norm"), memo)
    call = next((node for node in _header_nodes(memo["assignments"].tree, line) if isinstance(node, ast.Call)
                 and node.func.end_lineno == line and node.func.end_col_offset == column), None)
    if call is None:  # an import alias or text: left to the analysis; a definition's name holds no finding
        return _DEFINED.search(source, source.rfind("\n", 0, start) + 1, start) is None
    literals = _literals(memo)
    name = callee(call)
    if not name:
        return True
    if name not in positions:  # unless the name is bound to torch's norm here (``Norm = nn.LayerNorm``)
        return bool(literals.names.get(name) if isinstance(call.func, ast.Name) else literals.members(name))
    for keyword in call.keywords:
        if keyword.arg == "eps":
            return literals.may_be_zero(keyword.value)
    position = positions[name]
    if any(isinstance(arg, ast.Starred) for arg in call.args[:position + 1]):
        return True
    if len(call.args) > position:
        return literals.may_be_zero(call.args[position])
    # ``**norm_kwargs`` holding ``"eps": 0``
    return any(keyword.arg is None for keyword in call.keywords) and literals.member_may_be_zero("eps")


_DEFINED = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+\w*$", re.MULTILINE)


# -- NAN604: a NaN that a comparison may read --------------------------------------------------------------------
_EQUALITY_CALLS = frozenset(("eq", "ne", "not_equal"))
_EQUALITY_RENAMED = re.compile(r"(?:eq|ne|not_equal)\s+as\b")


def nan_evidence(source: str, start: int, memo: dict) -> bool:
    """Whether NAN604's screen match at ``start`` (``nan``, ``inf``) lies on a line where a NaN can be compared
    or bound: an ``==`` / ``!=`` comparison, an ``eq`` / ``ne`` call, or a literal a name, a keyword, a dict
    entry or a default may hold (``NAN = float("nan")``). A ``-inf`` passed to ``masked_fill`` or ``new_full``
    is neither."""
    if "equality_renamed" not in memo:  # ``from torch import eq as same``: any call may compare
        memo["equality_renamed"] = _EQUALITY_RENAMED.search(source) is not None
    return _per_line(source, start, memo, "nan_lines", lambda line: _nan_line(memo, line))


def _nan_line(memo: dict, line: int) -> bool:
    may_be_nan = _literals(memo).may_be_nan

    def comparison(node: ast.AST) -> bool:  # ``x == nan``, ``torch.eq(x, nan)``: not ``x == float('inf')``
        if isinstance(node, ast.Compare):
            return any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops) \
                and any(may_be_nan(operand) for operand in (node.left, *node.comparators))
        return isinstance(node, ast.Call) and (memo["equality_renamed"] or callee(node) in _EQUALITY_CALLS) \
            and any(may_be_nan(argument) for argument in (*node.args, *(k.value for k in node.keywords)))

    return _site_or_binding(memo, line, comparison, may_be_nan)


def _site_or_binding(memo: dict, line: int, site: Callable[[ast.AST], bool],
                     holds: Callable[[ast.expr], bool]) -> bool:
    """Whether ``line`` lies in a ``site`` node, or in a value that a name, a keyword, a dict entry or a default
    takes and that ``holds`` accepts: of the statements that hold ``line``, their own lines only."""
    def covers(node: ast.AST) -> bool:
        return node.lineno <= line <= (node.end_lineno or node.lineno)  # type: ignore[attr-defined]

    def bound(value: Optional[ast.expr]) -> bool:
        return value is not None and covers(value) and holds(value)

    for node in _header_nodes(memo["assignments"].tree, line):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr, ast.keyword)):
            if bound(node.value):
                return True
        elif isinstance(node, ast.Dict):
            if any(bound(value) for value in node.values):
                return True
        elif isinstance(node, ast.arguments):
            if any(bound(default) for default in (*node.defaults, *node.kw_defaults)):
                return True
        elif site(node) and covers(node):
            return True
    return False


# -- NAN402: a -inf fill that may reach a softmax --------------------------------------------------------------
_SOFTMAX = re.compile(r"[sS][oO][fF][tT][mM][aA][xX]")


def neg_inf_evidence(source: str, start: int, memo: dict) -> bool:
    """Whether NAN402's screen match at ``start`` can be part of a finding: an infinity in a product (``mask *
    float('-inf')``), bound to a name, a keyword, a dict entry or a default (which any code may read), at module
    level, or in a top-level definition that holds a softmax (``F.softmax``, ``log_softmax``, an ``nn.Softmax``
    module set in the class). The analysis follows a fill only through names, ``self.x`` of the same class and
    module-level names, never into a call: a ``-inf`` bias a helper function returns reaches no softmax it
    sees. Where the file names a softmax in module-level code (``from torch.nn.functional import softmax as
    sm``), every match counts."""
    return _per_line(source, start, memo, "neg_inf_lines",
                     lambda line: _product_or_binding(memo, line) or _near_softmax(source, memo, line))


def _product_or_binding(memo: dict, line: int) -> bool:
    def product(node: ast.AST) -> bool:
        return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)

    return _site_or_binding(memo, line, product, _literals(memo).may_be_infinite)


def _near_softmax(source: str, memo: dict, line: int) -> bool:
    if "definitions" not in memo:
        definitions = [(first_line(node), _last_line(node)) for node in getattr(memo["assignments"].tree, "body", [])
                       if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        softmax_lines = sorted({_line_of(source, found.start(), memo) for found in _SOFTMAX.finditer(source)})
        firsts = [first for first, _ in definitions]
        inside = [(first, last) for first, last in definitions
                  if _holds_line(softmax_lines, first, last)]
        module_level = any(_definition_at(definitions, firsts, softmax_line) is None for softmax_line in softmax_lines)
        memo["definitions"] = (definitions, firsts, set(inside), module_level)
    definitions, firsts, with_softmax, module_level = memo["definitions"]
    if module_level:
        return True
    where = _definition_at(definitions, firsts, line)
    return where is None or where in with_softmax


def _definition_at(definitions: list[tuple[int, int]], firsts: list[int], line: int) -> Optional[tuple[int, int]]:
    index = bisect.bisect_right(firsts, line) - 1
    return definitions[index] if index >= 0 and definitions[index][1] >= line else None


def _holds_line(lines: list[int], first: int, last: int) -> bool:
    index = bisect.bisect_left(lines, first)
    return index < len(lines) and lines[index] <= last
