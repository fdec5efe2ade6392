"""What the screens are made of: screen fragments shared by the rules that look for square roots (see
``Rule.screen``), a screen with a file-level alternative, the file-level conditions and evidence tests the rules
declare, and :class:`RuleScreen`, what the two screening stages read of a rule.

Each fragment is a verbose regular expression (``re.VERBOSE``): a rule joins its own
alternatives with these by ``|``. They must stay *necessary* (tests/test_screens.py).

This module, and every one it imports, imports neither libcst nor a rule module: the engine screens a file
with the rules' ``RuleScreen`` entries (``nanlint/_screen_index.py``, generated from the rule classes), so a
file with nothing to parse costs no import of either (the pre-commit hook on a file no rule can fire in).
"""
from __future__ import annotations

import ast
import bisect
import itertools
import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

from ..analysis.ops import CASTS, TRANSPARENT_OPS

_AT_START = re.compile("")

# -- the stdlib tree, as the second stage's conditions read it ---------------------------------------------------
BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")  # the statement blocks a compound statement holds


# Each node class's statement blocks, in ``BLOCKS`` order: a simple statement (most of them) has none to look up
_BLOCKS_OF = {kind: blocks for kind in vars(ast).values()
              if isinstance(kind, type) and issubclass(kind, (ast.stmt, ast.excepthandler, ast.match_case))
              for blocks in [tuple(block for block in BLOCKS if block in kind._fields)] if blocks}


def statements(body: list) -> Iterator[ast.AST]:
    """Every statement of ``body`` and of the blocks nested in it (not the expressions)."""
    pending = list(body)
    while pending:
        node = pending.pop()
        yield node
        for block in _BLOCKS_OF.get(type(node), ()):
            pending.extend(getattr(node, block))


def walk(tree: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk``: the same nodes in the same order, a third faster (no generator per node for its fields).
    (``children``'s loop, written out: a call per node would cost most of the gain.)"""
    todo = deque([tree])
    take, add = todo.popleft, todo.append
    while todo:
        node = take()
        for name in node._fields:
            value = getattr(node, name, None)
            if value.__class__ is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        add(item)
            elif isinstance(value, ast.AST):
                add(value)
        yield node


def children(node: ast.AST) -> list[ast.AST]:
    """``list(ast.iter_child_nodes(node))``, the way ``walk`` finds them."""
    found = []
    for name in node._fields:
        value = getattr(node, name, None)
        if value.__class__ is list:
            found.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST):
            found.append(value)
    return found


def walk_lines(tree: ast.AST, lines: list[int]) -> Iterator[ast.AST]:
    """The nodes of ``ast.walk(tree)`` in its order, less the subtrees that span none of ``lines`` (sorted,
    1-based): what ``ast.walk`` finds of a node that can only lie on those lines (``:=`` on a line with
    ``:=``), for a fraction of the walk. A node without a position (``comprehension``, ``arguments``) is
    always entered."""
    todo = deque([tree])
    while todo:
        node = todo.popleft()
        for child in children(node):
            first = getattr(child, "lineno", None)
            if first is not None:
                at = bisect.bisect_left(lines, first)
                if at == len(lines) or lines[at] > (child.end_lineno or first):
                    continue
            todo.append(child)
        yield node


def callee(call: ast.Call) -> str:
    """The name a call is made by: ``f`` of ``f(x)``, ``g`` of ``a.b.g(x)``; "" for anything else."""
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def first_line(node: ast.AST) -> int:
    """Where a statement begins: at its first decorator, if any (a ``match_case`` has no position: its
    pattern's)."""
    decorators = getattr(node, "decorator_list", None)
    first = node.pattern.lineno if isinstance(node, ast.match_case) else node.lineno  # type: ignore[attr-defined]
    return min(first, *(d.lineno for d in decorators)) if decorators else first

# Below this many characters one scan of the joined regex costs less than a search per alternative (a stub, a
# line): a definition's stub in the second stage
_SHORT = 2048
# Compiling a screen's alternatives takes about 0.5 ms, what they save over some 100 k characters of scanning: a
# process compiles them once its joined regex has scanned this much (the pre-commit hook on one file never does)
_PAYS_OFF = 1 << 17


class Screen:
    """A screen regex scanned one top-level alternative at a time. Python's ``re`` finds a pattern that begins
    with a literal by a fast search for that literal, but tries an alternation (``\\bmean\\b|nanmean|Loss\\b``)
    at every position of the text: on timm's 141 k lines, 113 ms for that screen against 12 ms for its
    alternatives written literal-first (``mean(?<!\\wmean)\\b``) and scanned one by one.

    ``search`` returns the joined regex's match (the leftmost, and at that position the first alternative
    that matches, as an alternation does). ``finditer`` yields one match per position where the joined regex
    matches (:func:`alternatives`): every start of its own ``finditer`` and, where an alternative matches
    inside an earlier match, that start too. The second stage reads only the starts, to keep the regions that
    hold one: a superset keeps a region more, never one less (``bool`` of the two is the same). A text shorter
    than ``_SHORT``, and every text until the joined regex has scanned ``_PAYS_OFF`` characters, is scanned by
    the joined regex."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = re.compile(pattern, flags)
        self.flags = flags
        self.scanned = 0  # characters the joined regex scanned before the alternatives were compiled
        self._parts: "Optional[tuple[re.Pattern[str], ...]]" = None
        self._heads: tuple[Optional[str], ...] = ()

    @property
    def parts(self) -> "tuple[re.Pattern[str], ...]":
        """The alternatives, compiled on first use (a process that lints one file never compiles them)."""
        if self._parts is None:
            pieces = alternatives(self.pattern.pattern, self.flags)
            self._heads = tuple(caseless_head(piece, self.flags) for piece in pieces)
            self._parts = tuple(re.compile(piece, self.flags) for piece in pieces) if len(pieces) > 1 \
                else (self.pattern,)
        return self._parts

    def _by_parts(self, length: int) -> bool:
        """Scan ``length`` characters by the alternatives: not a short text, and not before the joined regex
        has scanned ``_PAYS_OFF`` characters (compiling them costs more than they save on a file or two)."""
        if length < _SHORT:
            return False
        if self._parts is None:
            self.scanned += length
            if self.scanned < _PAYS_OFF:
                return False
        return True

    def match(self, text: str, pos: int = 0) -> "Optional[re.Match[str]]":
        return self.pattern.match(text, pos)

    def search(self, text: str, pos: int = 0) -> "Optional[re.Match[str]]":
        if not self._by_parts(len(text) - pos):
            return self.pattern.search(text, pos)
        first = min((m.start() for m in (part.search(text, pos) for part in self.parts) if m), default=None)
        return None if first is None else self.pattern.match(text, first)

    def finditer(self, text: str) -> "Iterator[re.Match[str]]":
        if not self._by_parts(len(text)):
            yield from self.pattern.finditer(text)
            return
        for start in self._part_starts(text, None):
            found = self.pattern.match(text, start)
            assert found is not None  # an alternative matches here, so the alternation does
            yield found

    def starts(self, text: str, shared: Optional[dict] = None) -> list[int]:
        """``[m.start() for m in self.finditer(text)]``. ``shared`` (one dict per text) keeps each alternative's
        starts for the other screens that hold the same alternative (``torch\\s+as\\s+...``: eight rules)."""
        if not self._by_parts(len(text)):
            return [m.start() for m in self.pattern.finditer(text)]
        return self._part_starts(text, shared)

    def _part_starts(self, text: str, shared: Optional[dict]) -> list[int]:
        starts: set[int] = set()
        shared = {} if shared is None else shared
        for part, head in zip(self.parts, self._heads):
            key = (part.pattern, part.flags)
            found = shared.get(key)
            if found is None:
                lowered = _lowered(text, shared) if head is not None else None
                if lowered is not None:  # ``[nN][aA][nN]...``: where ``nan`` is in the lowered text, if it matches
                    found = [at for at in _occurrences(lowered, head) if part.match(text, at)]  # type: ignore
                else:
                    found = []
                    match = part.search(text)
                    while match is not None:
                        found.append(match.start())
                        match = part.search(text, match.start() + 1)
                shared[key] = found
            starts.update(found)
        return sorted(starts)

    def __repr__(self) -> str:
        return f"Screen({self.pattern.pattern!r})"


_CASELESS_LETTER = re.compile(r"\[([a-z])([A-Z])\]")


def caseless_head(piece: str, flags: int = 0) -> Optional[str]:
    """The word ``piece`` begins with, when it begins with two letters or more each written in either case
    (``[nN][aA][nN]\\b`` -> ``nan``): every match starts where the text lowered holds that word. Python's ``re``
    tries such a character class at every position, and finds a literal by a fast search: on timm the lowered
    literal and a ``match`` at each occurrence took a fifth of the scan."""
    at = len(piece) - len(piece.lstrip()) if flags & re.VERBOSE else 0
    word = []
    while True:
        letter = _CASELESS_LETTER.match(piece, at)
        if letter is None or letter.group(1).upper() != letter.group(2):
            break
        word.append(letter.group(1))
        at = letter.end()
    return "".join(word) if len(word) >= 2 else None


def _lowered(text: str, shared: dict) -> Optional[str]:
    """``text.lower()``, once per text, when it keeps every character at its place (it does for ASCII; a
    character that lowers to two, ``İ``, moves the rest); else None. Where it keeps them, a match of
    ``[nN][aA][nN]`` lowers to ``nan`` at the same place (another character that lowers to ``n``, the Kelvin
    sign's kind, only adds an occurrence the ``match`` then rejects)."""
    if "lowered" not in shared:
        lowered = text.lower()
        shared["lowered"] = lowered if len(lowered) == len(text) else None
    return shared["lowered"]  # type: ignore[no-any-return]


def _occurrences(text: str, word: str) -> Iterator[int]:
    at = text.find(word)
    while at >= 0:
        yield at
        at = text.find(word, at + 1)


def alternatives(pattern: str, flags: int = 0) -> list[str]:
    """``pattern`` cut at its top-level ``|`` (outside groups, character classes, escapes and, under
    ``re.VERBOSE``, comments): the regexes that together match where it matches. One piece when the cut
    pieces do not each compile (a backreference to another piece's group)."""
    verbose = bool(flags & re.VERBOSE)
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":  # a class: ``]`` first (or after ``^``) is literal
            i += 1
            if i < len(pattern) and pattern[i] == "^":
                i += 1
            if i < len(pattern) and pattern[i] == "]":
                i += 1
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif char == "#" and verbose:
            while i < len(pattern) and pattern[i] != "\n":
                i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            pieces.append(pattern[start:i])
            start = i + 1
        i += 1
    pieces.append(pattern[start:])
    try:
        for piece in pieces:
            re.compile(piece, flags)
    except re.error:
        return [pattern]
    return pieces


class WithFileCondition:
    """A screen that is ``pattern`` plus a zero-width match at the start of the text when ``condition(text)``
    holds: what the regex ``pattern|\\A(?=...)`` matches, with the file-level alternative tested once per text.
    In a regex that alternative is a lazy scan from the start (``\\A(?=[\\s\\S]*?...)``) that costs more than
    the rest of the screen: three times the screen's time on real files.

    ``search`` and ``finditer`` return what the joined regex would (the same matches, the same starts), so
    the engine and the second stage use it as they use a compiled pattern."""

    def __init__(self, pattern: "re.Pattern[str]", condition: Callable[[str], bool]) -> None:
        self.pattern, self.condition = pattern, condition

    def search(self, text: str) -> "Optional[re.Match[str]]":
        if self.condition(text):
            return self.pattern.match(text) or _AT_START.match(text)  # the leftmost match is at 0
        return self.pattern.search(text)

    def finditer(self, text: str) -> "Iterator[re.Match[str]]":
        found = self.pattern.finditer(text)
        if not self.condition(text) or self.pattern.match(text):
            return found  # (a match of ``pattern`` at 0 comes first, as in the joined regex)
        return itertools.chain((_AT_START.match(text),), found)  # type: ignore[arg-type]

    def starts(self, text: str, shared: Optional[dict] = None) -> list[int]:
        """``[m.start() for m in self.finditer(text)]`` (``Screen.starts``)."""
        found = screen_starts(self.pattern, text, shared)
        if not self.condition(text) or self.pattern.match(text):
            return found
        return [0, *found]


def screen_starts(screen: Any, text: str, shared: Optional[dict] = None) -> list[int]:
    """Where ``screen`` (a ``Screen``, a ``WithFileCondition`` or a compiled regex) matches ``text``: the starts of
    its ``finditer``; ``shared``, one dict per text, lets screens share the scans of their common alternatives."""
    if isinstance(screen, (Screen, WithFileCondition)):
        return screen.starts(text, shared)
    return [m.start() for m in screen.finditer(text)]


def _power_forms(excluded_exponent: str) -> str:
    """``**`` (not ``**kwargs``), ``pow(``, ``float_power(`` whose exponent is not ``excluded_exponent``.

    A call or a group holding a call as exponent is excluded too: the rules only
    understand literal exponents.
    """
    exponent = rf"""
              (?!\s*(?: {excluded_exponent}
                      | [-+]?\s*[(](?=[^()]*?\w(?<!float)\s*[(])  # a group holding a call
                      | [-+]?\s*(?!float\s*[(])(?:[^\W\d]\w*\s*\.\s*)*[^\W\d]\w*\s*[(] ))  # a call"""
    return rf"""
          \*\*(?<![(,{{*]\*\*)(?<![(,{{][ ]\*\*)(?<![(,{{]\n[ ]{{4}}\*\*)(?<![(,{{]\n[ ]{{8}}\*\*)(?<![(,{{]\n[ ]{{12}}\*\*)
              (?<![(,{{]\n[ ]{{16}}\*\*)(?<![(,{{]\n[ ]{{20}}\*\*)(?<![(,{{]\n[ ]{{24}}\*\*){exponent}
        | pow(?<!\wpow)_?\s*[(]{exponent}
        | float_power_?\s*[(]{exponent}
        | pow(?<!\wpow)\s+as\b | float_power\s+as\b
        """


# ``math.log``, ``np.log`` and ``numpy.log`` are no torch ops (``names.op_key``): a screen for ``log`` follows it
# by ``not_foreign("log")``, and adds ``AS_FOREIGN`` for a file that imports torch (or a part) under such a name
AS_FOREIGN = r"torch\s+as\s+(?:c?math|numpy|np)(?!\w)|functional\s+as\s+(?:c?math|numpy|np)(?!\w)"  # literal-first


def not_foreign(op: str) -> str:
    return rf"(?<!math\.{op})(?<!np\.{op})(?<!numpy\.{op})"


# sqrt and ``** e`` / ``pow(e)`` where e may be 0.5: not a negative number, not a nonzero integer
ROOT = r"""
          sqrt(?<!\wsqrt)""" + not_foreign("sqrt") + r"""_?(?!\w)  # torch.sqrt, x.sqrt_()
        | """ + AS_FOREIGN + """  # np.sqrt is torch's
        |""" + _power_forms(r"""-\s*[\d.]  # a negative number
                      | [1-9][\d_]*(?![\w.])(?!\s*\*\*)  # a nonzero integer (but 2 ** -1 is 0.5)""")

# rsqrt and ``** e`` / ``pow(e)`` where e may be -0.5: not a positive number, not minus a nonzero integer
RECIPROCAL_ROOT = r"""
          rsqrt  # torch.rsqrt, x.rsqrt_()
        |""" + _power_forms(r"""\.?\d  # a positive number
                      | -\s*[1-9][\d_]*(?![\w.])(?!\s*\*\*)  # minus a nonzero integer""")

# ``site`` of the divide-by rules: a division, ``/`` or ``/=`` (not ``//``), or a ``div``/``divide``/
# ``true_divide`` call; ``site_anywhere``: an import renaming one of those (its calls need not say "div").
# A ``Screen``: the second stage reads only where it matches (``screen_starts``), a quarter of a ``finditer``.
DIVISION = Screen(r"/(?<!//)(?!/)|div")
DIVISION_RENAMED = re.compile(r"div\w*\s+as\b")


# -- counts (NAN103): which of its screen's matches can be a count ------------------------------------------
# ``selections.count`` takes ``len(x)`` and ``x.numel()`` for a count only when ``x`` is a selection: written
# there (``len(x[mask])``, ``torch.nonzero(m).numel()``) or plainly assigned (``idx = m.nonzero()``,
# ``self.idx = ...``), never a parameter, a loop variable or an unpacked element; and it reads a bare
# ``sum(...)`` as torch's only when the file imports a ``sum``.
_LEN_OF_NAME = re.compile(r"len\s*\(\s*([^\W\d][\w.]*)\s*\)")
_NUMEL_OF_NAME = re.compile(r"(?<![\w.])([^\W\d][\w.]*)\s*\.\s*$")
# literal-first (``import`` then a look back for ``\b``): a leading ``\b`` tries every position, 20 times slower
_IMPORTS_SUM = re.compile(r"import(?<=\bimport)\s+(?:\([^)]*|(?:[^\n]|\\\n)*)\bsum\b")


def count_evidence(source: str, start: int, memo: dict) -> bool:
    """Whether NAN103's screen match at ``start`` can be the count of a finding: not ``len(name)`` or
    ``name.numel()`` of a name no plain assignment (``memo["assignments"]``) gives a selection, nor a bare
    ``sum(`` of a file that imports none."""
    if source.startswith("len", start):
        if start and source[start - 1] == ".":
            return False  # ``x.len()``: a method, not the builtin
        found = _LEN_OF_NAME.match(source, start)
        return found is None or memo["assignments"].reaches(found.group(1), _may_select)
    if source.startswith("numel", start):
        found = _NUMEL_OF_NAME.search(source, max(0, start - 200), start)
        return found is None or found.group(1).split(".")[-1] == "torch" \
            or memo["assignments"].reaches(found.group(1), _may_select)
    if source.startswith("sum", start):
        before = start - 1
        while before >= 0 and source[before] in " \t\\\n":
            before -= 1
        if before < 0 or source[before] != ".":
            if "sum" not in memo:
                memo["sum"] = _IMPORTS_SUM.search(source) is not None
            return memo["sum"]
    return True


class Assignments:
    """The plain assignments of one module, by target: ``n = v``, ``a = n = v``, ``n: T = v``, ``self.n = v``,
    ``n := v``, in any scope, the way the value analysis follows names (``Facts.assignment``): not an
    unpacking ``a, n = v``, an augmented assignment, a loop variable or a parameter. Read from the stdlib tree
    the second stage has parsed, statements only (``:=`` sends it through the expressions too)."""

    def __init__(self, tree: ast.AST, source: str) -> None:
        self.tree, self.source = tree, source
        self._values: Optional[dict[tuple[str, bool], list[ast.expr]]] = None
        self._defaults: Optional[dict[str, list[ast.expr]]] = None
        self._reached: dict[tuple[Callable[[ast.expr], bool], bool], dict[tuple[str, bool], bool]] = {}
        self._literals: dict[tuple[tuple[str, bool], ...], Optional[frozenset[float]]] = {}

    def reaches(self, dotted: str, accepts: Callable[[ast.expr], bool], defaults: bool = False) -> bool:
        """Some chain of plain assignments through names and attributes (``n = m``, ``m = self.s``,
        ``self.s = v``) leads from the last name of ``dotted`` to a value ``accepts`` takes, at any depth; with
        ``defaults``, a parameter's default is one of its values too (``Bindings.resolve`` follows a parameter to
        its default; ``Bindings.assignment``, and so ``selections.selection``, does not)."""
        start = (dotted.rsplit(".", 1)[-1], "." in dotted)
        answers = self._reached.setdefault((accepts, defaults), {})  # False: nothing its chains reach is accepted
        if start in answers:
            return answers[start]
        values = self.values()
        given = self.defaults() if defaults else {}
        pending, seen = [start], {start}
        while pending:
            current = pending.pop()
            found = values.get(current, [])
            if given and not current[1]:  # a parameter is a name
                found = [*found, *given.get(current[0], ())]
            for value in found:
                if accepts(value):
                    answers[start] = True
                    return True
                after = (value.id, False) if isinstance(value, ast.Name) else (value.attr, True) \
                    if isinstance(value, ast.Attribute) else None
                if after is None or after in seen:
                    continue
                known = answers.get(after)
                if known:
                    answers[start] = True
                    return True
                if known is None:
                    seen.add(after)
                    pending.append(after)
        for key in seen:  # every chain from each of them was followed to its end
            answers[key] = False
        return False

    def literals(self, node: Optional[ast.AST]) -> Optional[frozenset[float]]:
        """The numbers ``Bindings.literal`` may fold ``node`` to (an exponent: ``x ** p`` is a root only where
        ``p`` may be 0.5); None when it may be any. A literal, signed or not, is itself; a name is what its
        plain assignments and parameters' defaults hold, followed through names (``p = q``, ``def f(x, q=2)``),
        and ``self.p`` what every ``.p = ...`` and ``p = ...`` of the module does. Arithmetic, ``float(...)``,
        a config's entry or field (``cfg["p"]``, ``cfg.p``) and the rest of a chain's values may be any number;
        any other call, a loop variable or an unpacked element none (no literal)."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return _signed(node.op, self.literals(node.operand))
        if isinstance(node, ast.Name):
            return self._chain((node.id, False))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return self._chain((node.attr, True), (node.attr, False))
        return _literal(node)

    def _chain(self, *starts: tuple[str, bool]) -> Optional[frozenset[float]]:
        """``literals`` of the names ``starts`` (``(name, is_attribute)``): the values of their chains."""
        if starts in self._literals:
            return self._literals[starts]
        values, given = self.values(), self.defaults()
        found: set[float] = set()
        pending, seen = list(starts), set(starts)
        while pending:
            name, attribute = pending.pop()
            for value in [*values.get((name, attribute), ()), *(() if attribute else given.get(name, ()))]:
                if isinstance(value, ast.Name):
                    after: tuple[tuple[str, bool], ...] = ((value.id, False),)
                elif isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) \
                        and value.value.id == "self":
                    after = ((value.attr, True), (value.attr, False))
                else:
                    held = _literal(value)
                    if held is None:
                        self._literals[starts] = None
                        return None
                    found |= held
                    continue
                for key in after:
                    if key not in seen:
                        seen.add(key)
                        pending.append(key)
        self._literals[starts] = frozenset(found)
        return self._literals[starts]

    def defaults(self) -> dict[str, list[ast.expr]]:
        """Each parameter's default values, by the parameter's name, in every function and lambda of the module."""
        if self._defaults is None:
            self._defaults = {}
            functions: Iterator[ast.AST] = statements(getattr(self.tree, "body", []))  # a ``def`` is a statement
            if "lambda" in self.source:  # a lambda is an expression, on a line holding the word
                lambdas = walk_lines(self.tree, self._lines_holding("lambda"))
                functions = itertools.chain(functions, (node for node in lambdas if isinstance(node, ast.Lambda)))
            for node in functions:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    arguments = node.args
                    positional = [*arguments.posonlyargs, *arguments.args]
                    pairs = [*zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults),
                             *zip(arguments.kwonlyargs, arguments.kw_defaults)]
                    for arg, default in pairs:
                        if default is not None:
                            self._defaults.setdefault(arg.arg, []).append(default)
        return self._defaults

    def values(self) -> dict[tuple[str, bool], list[ast.expr]]:
        if self._values is None:
            self._values = {}
            for node in statements(getattr(self.tree, "body", ())):
                found = assignment(node)
                if found is not None:
                    for target in found[0]:
                        self._add(target, found[1])
            if ":=" in self.source:
                for node in walk_lines(self.tree, self._lines_holding(":=")):
                    if isinstance(node, ast.NamedExpr):
                        self._add(node.target, node.value)
        return self._values

    def _lines_holding(self, text: str) -> list[int]:
        """The 1-based numbers of the lines holding ``text``, in order (for ``walk_lines``)."""
        return [number for number, line in enumerate(self.source.split("\n"), 1) if text in line]

    def _add(self, target: ast.expr, value: ast.expr) -> None:
        assert self._values is not None
        if isinstance(target, ast.Name):
            self._values.setdefault((target.id, False), []).append(value)
        elif isinstance(target, ast.Attribute):
            self._values.setdefault((target.attr, True), []).append(value)


def assignment(node: ast.AST) -> Optional[tuple[list[ast.expr], ast.expr]]:
    """The targets and the value of an assignment (``a = b = v``) or of an annotated one with a value
    (``a: T = v``); None for any other node."""
    if isinstance(node, ast.Assign):
        return node.targets, node.value
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [node.target], node.value
    return None


def _literal(node: Optional[ast.AST]) -> Optional[frozenset[float]]:
    """``Assignments.literals`` of what no name is followed through: a number (finite, as ``Bindings.literal``
    reads it), or minus one; None (any number) for arithmetic, ``float(...)``, an attribute, a subscript, a
    name; no number for the rest (a call, a string, ``True``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant):
        return _signed(node.op, _literal(node.operand))
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            return frozenset()
        try:
            value = float(node.value)
        except OverflowError:
            return frozenset()
        return frozenset([value]) if math.isfinite(value) else frozenset()
    if isinstance(node, ast.Call):
        return None if isinstance(node.func, ast.Name) and node.func.id == "float" else frozenset()
    if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Attribute, ast.Subscript, ast.Name)):
        return None
    return frozenset()


def _signed(sign: ast.unaryop, values: Optional[frozenset[float]]) -> Optional[frozenset[float]]:
    """``values`` under a unary ``-`` or ``+``."""
    return frozenset(-value for value in values) if values is not None and isinstance(sign, ast.USub) else values


_SELECTING = TRANSPARENT_OPS | CASTS | {"masked_select", "nonzero", "argwhere"}


def _may_select(value: ast.expr) -> bool:
    """``value`` may be a selection to ``selections.selection``: a subscript by something other than numbers and
    slices, or a call of a selecting, transparent or casting op (its operand followed no further). A name is
    followed through its own assignments (``Assignments.reaches``)."""
    if isinstance(value, ast.Subscript):
        index = value.slice
        elements = index.elts if isinstance(index, ast.Tuple) else [index]
        return any(not isinstance(e, (ast.Slice, ast.Constant)) for e in elements)
    if isinstance(value, ast.Call):
        return callee(value) in _SELECTING
    return False


# -- file-level conditions (``Rule.file_condition``) --------------------------------------------------------
def never(source: str, precision: Optional[tuple[str, ...]]) -> bool:
    """A rule that is no tree walk (NAN001: the engine compares comments with the other rules' findings)."""
    return False


_BACKWARD = re.compile(r"backward(?<!def backward)\s*\(")
_SCALE = re.compile(r"\.\s*scale\s*\(")


def may_hold_backward(source: str, precision: Optional[tuple[str, ...]]) -> bool:
    """No ``backward()`` call in the file: no training step."""
    return _BACKWARD.search(source) is not None


def may_scale_loss(source: str, precision: Optional[tuple[str, ...]]) -> bool:
    """No ``scaler.scale(...)`` call in the file: no gradient is scaled."""
    return _SCALE.search(source) is not None


# A sum that vanishes with its inputs (``g2 / (2 * g2 + (a * g3).sum())``) makes the whole file a candidate:
# a ``+`` somewhere and a square somewhere (``** 2``, ``pow(2``, ``square``, ``v * v``, a variance, an MSE).
_SQUARE = Screen(r"[*][*]\s*2(?![\d.]) | pow\s*[(]\s*2(?![\d.]) | square | var(?<!\wvar) | mse", re.VERBOSE)
_TIMES_NAME = re.compile(r"[*]\s*+(\w++)(?!\w)")  # ``* v``: a product's right side, found literal-first


def plus_and_square(source: str) -> bool:
    """NAN101's file-level condition: a ``+`` and a square somewhere in the file."""
    return "+" in source and (_SQUARE.search(source) is not None or _self_product(source))


def _self_product(source: str) -> bool:
    """``v * v``: what ``(?<![\\w.])(\\w++)\\s*+[*]\\s*+\\1(?!\\w)`` matches, found from each ``*`` (that regex
    starts at every word of the text: six times slower)."""
    for times in _TIMES_NAME.finditer(source):
        name = times.group(1)
        end = times.start()
        while end and source[end - 1].isspace():
            end -= 1
        start = end - len(name)
        if start >= 0 and source.startswith(name, start) and \
                not (start and (source[start - 1].isalnum() or source[start - 1] in "_.")):
            return True
    return False


# -- what the screening stages read of a rule -----------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RuleScreen:
    """A rule's screen attributes (``Rule.screen``, ``site``, ``evidence_at``...: see nanlint/rules/base.py),
    without its visitor: what ``engine.screened_rules`` and ``screening.plan`` read, under the same names as on
    the rule class, so both accept either. ``nanlint/_screen_index.py`` holds one per rule, generated from the
    classes by ``python -m nanlint.registry --write`` (tests/test_registry.py fails when it is stale); the
    engine imports the rule class (``BY_CODE[code]``) only to analyse a file the plan parses."""

    code: str
    screen: "Union[re.Pattern[str], Screen, WithFileCondition]"
    preview: bool = False
    file_condition: Optional[Callable[[str, Optional[tuple[str, ...]]], bool]] = None
    site: "Optional[Union[re.Pattern[str], Screen]]" = None
    site_anywhere: "Optional[Union[re.Pattern[str], Screen]]" = None
    attribute_flow: bool = True
    root_operand: Optional[str] = None
    root_evidence: bool = False
    reciprocals: bool = False
    site_reads: str = "divisor"
    evidence_at: Optional[Callable[[str, int, dict], Any]] = None
    chunk_local: bool = True
    file_facts: "Optional[re.Pattern[str]]" = None

    def may_fire(self, source: str, precision: Optional[tuple[str, ...]]) -> bool:
        return self.file_condition is None or self.file_condition(source, precision)

    def default_on(self) -> bool:
        return not self.preview


# The attributes a ``RuleScreen`` copies from its rule class, in its field order.
SCREEN_ATTRIBUTES = tuple(name for name in RuleScreen.__dataclass_fields__ if name != "code")
