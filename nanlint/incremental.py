"""Re-analyse only the top-level definitions an edit changed: the language server's fast path.

An edit inside one function of a 2,000-line file leaves every other top-level
``def``/``class`` and all module-level text as they were. :func:`relint` then
parses with libcst only the module-level code and the changed definitions (every
other definition becomes the second stage's line-preserving stub,
:func:`nanlint.screening.stub`, which keeps its name and imports; an unchanged
method that sets attributes stays only while kept code mentions one of them, as in
the second stage, :func:`nanlint.screening.unread`), analyses that
with the rules screened on the *whole* new text (``ctx.source`` is the whole
file, as always), keeps the new findings that lie in the changed definitions or
in module-level code, and reuses the previous findings of every unchanged
definition, moved by the lines the edit added or removed above it.

An edit of module-level code (a statement between definitions: a config table,
``EPS = 1e-8``, a loop filling a registry) is analysed afresh with the rest of
the module-level code, and so is every definition it can reach (:func:`_module_reach`):
one whose free names (:mod:`nanlint.free_names`, Python's scoping on stdlib
``ast``) meet the names the changed statements bind, closed over module-level
statements that mention them (``EPS = 0``; ``TINY = EPS / 2``; a function reading
``TINY``); one those statements call; one that mentions an attribute or string
key they store. An edit of blank or comment lines between statements reaches none.

Under the chunk-locality contract (:mod:`nanlint.screening`) the findings *in
the re-analysed definitions* are exactly those of a full lint. The reused ones need
not be: a rule may read facts of the whole text (``ctx.source``: float16
evidence, a ``torch.isfinite`` check anywhere; a message that names the line of
such evidence), a definition may depend on another through a call (a caller's
gradient mode), and module-level findings may depend on what a definition does.
So this is a preview: the server publishes it at once and then confirms it with
a full lint of the same version when typing pauses, publishing again only when
the two differ (``nanlint/server.py``). What the server shows once the document
is at rest is the full lint, identical to ``nanlint check`` (tests/test_server.py).

:func:`relint` declines (returns None, the caller lints the whole file) when the
text does not compile, has ``\\r`` line endings, a definition was added, removed
or renamed, a changed definition's imports changed, a changed module-level
statement imports or is a star import, the edit adds or removes text the analysis
reads anywhere in a file (``fp16_text.FILE_FACTS``, a rule's ``file_facts``), a
``file-ignore`` comment changed, a rule's file-level condition (``may_fire``)
changed, a rule is not ``chunk_local``, or libcst disagrees.
"""
from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

from .files import LintRequest, stdlib_tree
from .finding import Edit, Finding, Fix
from .lines import common_ends

if TYPE_CHECKING:  # pragma: no cover
    from .rules.base import Rule

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_FILE_IGNORE = re.compile(r"#\s*nanlint:\s*file-ignore[^\n]*")


@dataclass(frozen=True)
class Definition:
    """A top-level definition, or a method of a top-level class on lines of its own."""

    first: int  # 1-based, the first decorator's line
    last: int
    node: ast.stmt
    text: str
    methods: tuple["Definition", ...] = ()  # a class's methods (as the second stage cuts them)
    frame: tuple[str, ...] = ()  # a class's text between its methods (class-level statements)

    @property
    def key(self) -> tuple[str, str]:
        return type(self.node).__name__, self.node.name  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Statement:
    """A module-level statement (every top-level statement but a definition)."""

    first: int  # 1-based
    last: int
    node: ast.stmt  # its positions are those of the layout that compiled it (they are not read again)


@dataclass
class Layout:
    """A text cut into its top-level definitions and the module-level statements between them. The spans are
    exact; the stdlib nodes of what an edit moved keep their old positions (nothing reads them again)."""

    text: str
    lines: list[str]
    body: list[ast.stmt]
    definitions: tuple[Definition, ...]
    statements: tuple[Statement, ...]
    file_ignores: tuple[str, ...]
    conditions: dict[Any, tuple[bool, ...]] = field(default_factory=dict)  # may_fire per (rules, precision)
    stubs: dict[str, str] = field(default_factory=dict)  # a definition's text -> its stub, as the last relint made
    free: dict[str, frozenset[str]] = field(default_factory=dict)  # a definition's text -> the names it reads freely
    earlier: dict[str, frozenset[str]] = field(default_factory=dict)  # ``free`` of the layout this one followed

    def free_names(self, definition: "Definition") -> frozenset[str]:
        """The module-level names ``definition`` can read (:mod:`nanlint.free_names`), kept for its text."""
        found = self.free.get(definition.text)
        if found is None:
            found = self.earlier.get(definition.text)
        if found is None:
            from .free_names import free_names

            found = frozenset(free_names([definition.node]))
        self.free[definition.text] = found
        return found

    def knows_free_names(self, definition: "Definition") -> bool:
        return definition.text in self.free or definition.text in self.earlier

    def prepare(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Read ahead what a preview after a module-level edit reads of each definition and method (its free
        names), until ``stop()``: the language server does this while the editor is idle."""
        for definition in self.definitions:
            for unit in (definition, *definition.methods):
                if stop():
                    return
                self.free_names(unit)

    def may_fire(self, rules: tuple[type[Rule], ...], precision: Optional[tuple[str, ...]]) -> tuple[bool, ...]:
        key = (rules, precision)
        if key not in self.conditions:
            self.conditions[key] = tuple(rule.may_fire(self.text, precision) for rule in rules)
        return self.conditions[key]


def layout(text: str, path: str = "<unknown>", tree: Optional[ast.Module] = None) -> Optional[Layout]:
    """The layout of ``text``; None where it does not compile, holds a carriage return, or a definition shares a
    line with what precedes it. ``tree``: the stdlib tree of ``text``, where the caller has one (the lint that was
    just published parsed it)."""
    if "\r" in text:
        return None
    if tree is None:
        tree = stdlib_tree(text, path)
        if tree is None:
            return None
    lines = text.split("\n")
    definitions: list[Definition] = []
    statements: list[Statement] = []
    previous = 0
    for statement in tree.body:  # type: ignore[attr-defined]
        if not isinstance(statement, _DEFINITIONS):
            statements.append(Statement(statement.lineno, statement.end_lineno or statement.lineno, statement))
            continue
        first, last = _span(statement)
        if first <= previous or (statements and statements[-1].last >= first):
            return None  # shares a line with what precedes it
        definitions.append(_definition(statement, lines, first, last))
        previous = last
    return Layout(text, lines, tree.body, tuple(definitions), tuple(statements),  # type: ignore[attr-defined]
                  tuple(_FILE_IGNORE.findall(text)))


def edited_layout(before: Layout, text: str, path: str = "<unknown>") -> Optional[Layout]:
    """The layout of ``text``, an edit of ``before.text`` that lies inside one definition, compiling only that
    definition (or method) again; None when the edit is elsewhere or the definition alone does not compile as one
    definition (then :func:`layout` decides). An edit of module-level text: :func:`_edited_module_level`.

    The edit is what lies between the lines the two texts share at their start and at their end; it is inside a
    definition when an unchanged line of it comes first (its header) and an unchanged line of it comes last. Such
    an edit cannot change how Python reads the rest of the file: a definition that compiles alone ends with every
    bracket and string closed, and its last line, unchanged, ends it at the same indentation as before. The other
    definitions keep their stdlib nodes, moved by the lines the edit added (only their spans are read again: the
    stubs, ``binds_attributes`` and the imports compare nodes without positions)."""
    old = before.lines
    new = text.split("\n")
    if "\r" in text:
        return None
    same_start, same_end = common_ends(old, new)
    start, end = same_start + 1, len(old) - same_end  # the old lines the edit replaced (end < start: inserted)
    delta = len(new) - len(old)
    index = next((i for i, d in enumerate(before.definitions) if d.first < start and end < d.last), None)
    if index is None:
        return _edited_module_level(before, text, new, start, end, path)
    definition = before.definitions[index]
    position = next((i for i, m in enumerate(definition.methods) if m.first < start and end < m.last), None)
    unit = definition if position is None else definition.methods[position]
    node = _compiled_alone(new[unit.first - 1:unit.last + delta], unit, path, nested=position is not None)
    if node is None:
        return None
    if position is None:
        edited = _definition(node, new, unit.first, unit.last + delta)
    else:
        edited = Definition(unit.first, unit.last + delta, node, "\n".join(new[unit.first - 1:unit.last + delta]))
        methods = (*definition.methods[:position], edited,
                   *(_shifted(m, delta) for m in definition.methods[position + 1:]))
        frame = copy.copy(definition.node)
        frame.body = [node if child is unit.node else child for child in definition.node.body]  # type: ignore
        frame.end_lineno = (definition.node.end_lineno or definition.last) + delta
        edited = Definition(definition.first, definition.last + delta, frame,
                            "\n".join(new[definition.first - 1:definition.last + delta]), methods, definition.frame)
    body = [edited.node if statement is definition.node else statement for statement in before.body]
    definitions = (*before.definitions[:index], edited, *(_shifted(d, delta) for d in before.definitions[index + 1:]))
    statements = tuple(_shifted_statement(st, delta) if st.first > definition.last else st
                       for st in before.statements)
    return Layout(text, new, body, definitions, statements, tuple(_FILE_IGNORE.findall(text)))


def _edited_module_level(before: Layout, text: str, new: list[str], start: int, end: int, path: str
                         ) -> Optional[Layout]:
    """The layout of ``text`` where the edit (old lines ``start``..``end``; ``end < start``: lines inserted before
    ``start``) lies inside one module-level statement, compiling only that statement again, or puts only blank
    and comment lines where no statement or definition was; None otherwise.

    As for a definition: a statement that compiles alone as one statement spanning its lines ends with every
    bracket and string closed, and the unchanged lines after it begin where they began (a statement or a
    definition at the first column, or blank and comment lines, which Python skips). A ``from __future__``
    import is left to :func:`layout` (it is valid alone, not after other statements); so is an edit that makes
    a statement a definition (the definitions would differ)."""
    delta = len(new) - len(before.lines)
    inserted = end < start

    def holds(first: int, last: int) -> bool:  # the edit lies inside these old lines
        return first < start <= last if inserted else first <= start and end <= last

    index = next((i for i, st in enumerate(before.statements) if holds(st.first, st.last)), None)
    if index is None:
        if any(first <= end and start <= last for first, last in
               [*((st.first, st.last) for st in before.statements), *((d.first, d.last) for d in before.definitions)]):
            return None
        if not all(not line.strip() or line.lstrip().startswith("#") for line in new[start - 1:end + delta]):
            return None
        statements = tuple(_shifted_statement(st, delta) if st.first > end else st for st in before.statements)
        definitions = tuple(_shifted(d, delta) if d.first > end else d for d in before.definitions)
        return Layout(text, new, before.body, definitions, statements, tuple(_FILE_IGNORE.findall(text)))
    statement = before.statements[index]
    lines = new[statement.first - 1:statement.last + delta]
    tree = stdlib_tree("\n".join(lines), path)
    if tree is None:
        return None
    if len(tree.body) != 1:  # type: ignore[attr-defined]
        return None
    node = tree.body[0]  # type: ignore[attr-defined]
    if isinstance(node, _DEFINITIONS) or (isinstance(node, ast.ImportFrom) and node.module == "__future__") \
            or (node.lineno, node.end_lineno) != (1, len(lines)):
        return None
    ast.increment_lineno(node, statement.first - 1)
    edited = Statement(statement.first, statement.last + delta, node)
    statements = (*before.statements[:index], edited,
                  *(_shifted_statement(st, delta) for st in before.statements[index + 1:]))
    definitions = tuple(_shifted(d, delta) if d.first > statement.last else d for d in before.definitions)
    body = [node if child is statement.node else child for child in before.body]
    return Layout(text, new, body, definitions, statements, tuple(_FILE_IGNORE.findall(text)))


def _shifted_statement(statement: Statement, delta: int) -> Statement:
    return replace(statement, first=statement.first + delta, last=statement.last + delta) if delta else statement


def _compiled_alone(lines: list[str], unit: Definition, path: str, nested: bool) -> Optional[ast.stmt]:
    """The stdlib node of ``lines``, the new text of ``unit`` (a method when ``nested``), at its place in the file;
    None unless it compiles as exactly one definition of the same kind and name spanning every line."""
    wrapped = ["class _:", *lines] if nested else lines
    tree = stdlib_tree("\n".join(wrapped), path)
    if tree is None:
        return None
    body = tree.body[0].body if nested and len(tree.body) == 1 else tree.body  # type: ignore[attr-defined]
    if len(body) != 1 or type(body[0]) is not type(unit.node) \
            or body[0].name != unit.node.name:  # type: ignore[attr-defined]
        return None
    node = body[0]
    if _span(node) != (1 + nested, len(wrapped)):
        return None
    ast.increment_lineno(node, unit.first - 1 - nested)
    return node


def _shifted(definition: Definition, delta: int) -> Definition:
    if not delta:
        return definition
    return replace(definition, first=definition.first + delta, last=definition.last + delta,
                   methods=tuple(_shifted(m, delta) for m in definition.methods))


def _definition(statement: ast.stmt, lines: list[str], first: int, last: int) -> Definition:
    """The top-level definition ``statement`` on ``lines[first - 1:last]``, a class cut into its methods."""
    methods: list[Definition] = []
    frame: list[str] = []
    if isinstance(statement, ast.ClassDef):
        inner = first - 1
        for child in statement.body:
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            start, end = _span(child)
            if start <= max(statement.lineno, inner) or not lines[start - 1].lstrip().startswith(
                    ("@", "def", "async")):
                continue  # shares a line with the class header or what precedes it
            frame.append("\n".join(lines[inner:start - 1]))
            methods.append(Definition(start, end, child, "\n".join(lines[start - 1:end])))
            inner = end
        frame.append("\n".join(lines[inner:last]))
    return Definition(first, last, statement, "\n".join(lines[first - 1:last]), tuple(methods), tuple(frame))


def _span(node: ast.stmt) -> tuple[int, int]:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)]), node.end_lineno or node.lineno  # type: ignore


@dataclass
class Relinted:
    findings: list[Finding]
    layout: Layout
    changed: int  # definitions (or methods) re-analysed
    kept_lines: int  # lines libcst parsed
    module_level: bool = False  # module-level text changed (its findings were made afresh)

    @property
    def reused_all(self) -> bool:
        """Nothing was analysed again: the findings are those of the last lint, moved (exact when it was)."""
        return not self.changed and not self.module_level


@dataclass(frozen=True)
class _Unit:
    """A changed definition or method: its lines before and after the edit."""

    old_first: int
    old_last: int
    new_first: int
    new_last: int

    @property
    def delta(self) -> int:
        return (self.new_last - self.new_first) - (self.old_last - self.old_first)


@dataclass(frozen=True)
class _Piece(_Unit):
    """A changed piece of module-level text: its lines before and after the edit, and (within it) the lines the
    edit replaced and the lines it put there."""

    old_edit: range = range(0)
    new_edit: range = range(0)


def relint(path: str, request: LintRequest, before: Layout, findings: list[Finding], text: str
           ) -> Optional[Relinted]:
    """The findings of ``text``, re-analysing only the definitions that differ from ``before`` (whose findings
    were ``findings``) or that mention a name a changed module-level statement holds; None when that cannot be
    done (see the module docstring): lint the whole text."""
    after = edited_layout(before, text, path) or layout(text, path)
    if after is None or not _same_frame(before, after):
        return None
    pieces = _changed_pieces(before, after)
    after.earlier = before.free
    changed = [i for i, (old, new) in enumerate(zip(before.definitions, after.definitions)) if old.text != new.text]
    if not changed and not pieces:
        return Relinted(list(findings), after, 0, 0)
    rules = request.rule_screens()  # no rule imported (nor libcst) unless the kept text holds something to analyse
    if not all(rule.chunk_local for rule in rules):
        return None
    conditions = after.may_fire(rules, request.precision)
    if before.may_fire(rules, request.precision) != conditions:
        return None
    if _file_facts_changed(before.lines, after.lines, rules):
        return None
    from . import screening
    from .engine import lint_sliced

    reach = _module_reach(before, after, pieces) if pieces else _Reach()
    if reach is None:
        return None
    units: list[_Unit] = []
    stubbed: list[Definition] = []  # what libcst need not see, in the new text
    setters: list[Definition] = []  # unchanged methods of a changed class that set attributes
    for index, (old, new) in enumerate(zip(before.definitions, after.definitions)):
        if index not in changed and not reach.reaches(new, after):
            stubbed.append(new)
            continue
        methods = _changed_methods(old, new, reach, after)
        if methods is None:  # the definition as a whole
            if old.text != new.text and _imports(old) != _imports(new):
                return None
            units.append(_Unit(old.first, old.last, new.first, new.last))
            continue
        for position, (was, now) in enumerate(zip(old.methods, new.methods)):
            if position in methods:
                if was.text != now.text and _imports(was) != _imports(now):
                    return None
                units.append(_Unit(was.first, was.last, now.first, now.last))
            elif screening.binds_attributes(now.node):
                setters.append(now)
            else:
                stubbed.append(now)

    def stub_of(definition: Definition) -> str:  # a stub depends on the definition's text only: reuse the last
        stub = before.stubs.get(definition.text)
        if stub is None:
            stub = screening.stub(after.lines, definition.first, definition.last, definition.node)
        after.stubs[definition.text] = stub
        return stub

    replaced = [(d.first, d.last, stub_of(d)) for d in stubbed]
    if setters:  # a setter matters to the changed methods only through an attribute name kept code mentions
        found = screening.unread(after.lines, replaced, [(d.first, d.last, screening.stored_attributes(d.node))
                                                         for d in setters])
        replaced.extend((setters[i].first, setters[i].last, stub_of(setters[i])) for i in found)
    replaced.sort(key=lambda item: item[0])
    kept_text, kept = screening.sliced(after.lines, replaced)
    result = lint_sliced(path, text, kept_text, request, screening.first_indent(after.lines, after.body),
                         [rule for rule, fires in zip(rules, conditions) if fires])
    if result is None or result.internal_error:
        return None
    old_tops = [(d.first, d.last) for d in before.definitions]
    new_tops = [(d.first, d.last) for d in after.definitions]
    fresh = [(u.new_first, u.new_last) for u in units]
    stale = [(u.old_first, u.old_last) for u in units]
    out = [f for f in result.findings if _inside(f.line, fresh) or not _inside(f.line, new_tops)]
    shifts = [*units, *pieces]

    def moved(line: int) -> int:  # where an old line outside the changed definitions and pieces is now
        return line + sum(u.delta for u in shifts if u.old_last < line)

    for finding in findings:
        if _inside(finding.line, old_tops) and not _inside(finding.line, stale):
            out.append(_moved(finding, moved(finding.line) - finding.line, moved))
    out.sort(key=Finding.sort_key)
    return Relinted(out, after, len(units), kept, bool(pieces))


def _changed_pieces(before: Layout, after: Layout) -> list[_Piece]:
    """The pieces of module-level text (what lies before each definition, and after the last) an edit changed."""
    out: list[_Piece] = []
    for index in range(len(before.definitions) + 1):
        old_first, old_last = _piece(before, index)
        new_first, new_last = _piece(after, index)
        was, now = before.lines[old_first - 1:old_last], after.lines[new_first - 1:new_last]
        if was != now:
            same_start, same_end = common_ends(was, now)
            out.append(_Piece(old_first, old_last, new_first, new_last,
                              range(old_first + same_start, old_last - same_end + 1),
                              range(new_first + same_start, new_last - same_end + 1)))
    return out


def _piece(lay: Layout, index: int) -> tuple[int, int]:
    """The lines (1-based; last < first when empty) of module-level piece ``index``: what lies before definition
    ``index``, or after the last one."""
    first = lay.definitions[index - 1].last + 1 if index else 1
    last = lay.definitions[index].first - 1 if index < len(lay.definitions) else len(lay.lines)
    return first, last


@dataclass
class _Reach:
    """What a definition must do to depend on the module-level statements an edit changed (nothing, when the
    edit changed none: a blank line, a comment between statements)."""

    bound: set[str] = field(default_factory=set)  # names they bind, and what module-level code computes from them
    called: set[str] = field(default_factory=set)  # the last names of what they call (``summary.call_sites``)
    keys: Optional["re.Pattern[str]"] = None  # ``x["key"] = ...``, ``x.key = ...``: what they store
    words: Optional["re.Pattern[str]"] = None  # ``bound`` as words: a name a text reads is a word of it

    def reaches(self, definition: Definition, lay: Layout) -> bool:
        """``definition`` reads a name they bind, is called by them, or mentions a key they store."""
        return bool(definition.key[1] in self.called
                    or (self.words is not None and self._reads_bound(definition, lay))
                    or (self.keys is not None and self.keys.search(definition.text)))

    def _reads_bound(self, definition: Definition, lay: Layout) -> bool:
        if not lay.knows_free_names(definition) and not self.words.search(definition.text):  # type: ignore[union-attr]
            return False  # (a name it reads is a word of its text): its free names are not needed yet
        return bool(self.bound & lay.free_names(definition))

    def reaches_frame(self, definition: Definition) -> bool:
        """The class ``definition``'s own code (what lies between its methods, its decorators and bases)."""
        from .free_names import free_names

        node = definition.node
        own = [*getattr(node, "decorator_list", ()), *getattr(node, "bases", ()),
               *(k.value for k in getattr(node, "keywords", ())),
               *(child for child in getattr(node, "body", ()) if not isinstance(child, _FUNCTIONS))]
        return bool(definition.key[1] in self.called or self.bound & free_names(own)
                    or (self.keys is not None and any(self.keys.search(piece) for piece in definition.frame)))


def _module_reach(before: Layout, after: Layout, pieces: list[_Piece]) -> Optional[_Reach]:
    """What the module-level statements an edit changed (before or after it) reach: the names they bind, with
    every name a module-level statement binds while its text mentions one of them (``EPS = 0``; ``TINY = EPS /
    2``; a function reading ``TINY``); the names they call; the keys they store. None when a changed statement
    imports (a star import may bind any name; any import changes what fixes must import)."""
    from .screening import bound_names, word_pattern

    reach = _Reach()
    keys: set[str] = set()
    for lay, edits in ((before, [p.old_edit for p in pieces]), (after, [p.new_edit for p in pieces])):
        for statement in lay.statements:
            if any(statement.first <= edit[-1] and edit[0] <= statement.last for edit in edits if edit):
                names = bound_names(statement.node)
                if names is None or any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(statement.node)):
                    return None  # a star import may bind any name; an import changes what fixes must import
                reach.bound |= names
                _calls_and_keys(statement.node, reach.called, keys)
    if reach.bound:  # the closure, over the new text's statements (reading their text: strings and comments count)
        texts = [(statement, "\n".join(after.lines[statement.first - 1:statement.last]))
                 for statement in after.statements]
        absorbed: set[int] = set()
        while True:
            pattern, more = word_pattern(reach.bound), set()
            for index, (statement, text) in enumerate(texts):
                if index not in absorbed and pattern.search(text):
                    absorbed.add(index)
                    more |= bound_names(statement.node) or set()
            if more <= reach.bound:
                break
            reach.bound |= more
    reach.keys = word_pattern(keys) if keys else None
    reach.words = word_pattern(reach.bound) if reach.bound else None
    return reach


def _file_facts_changed(old: list[str], new: list[str], rules: tuple[type[Rule], ...]) -> bool:
    """The edit adds or removes text the analysis reads anywhere in a file (``fp16_text.FILE_FACTS``, a rule's
    ``file_facts``): then every definition may read it, and the whole text is linted."""
    from .fp16_text import FILE_FACTS

    same_start, same_end = common_ends(old, new)
    was = "\n".join(old[same_start:len(old) - same_end])
    now = "\n".join(new[same_start:len(new) - same_end])
    patterns = [*FILE_FACTS, *(rule.file_facts for rule in rules if rule.file_facts is not None)]
    return any([m.group(0) for m in p.finditer(was)] != [m.group(0) for m in p.finditer(now)] for p in patterns)


def _calls_and_keys(statement: ast.AST, called: set[str], keys: set[str]) -> None:
    for node in ast.walk(statement):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name:
                called.add(name)
        elif isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            keys.add(node.attr)
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load) \
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str) \
                and node.slice.value.isidentifier():
            keys.add(node.slice.value)


def _changed_methods(old: Definition, new: Definition, reach: _Reach, lay: Layout) -> Optional[set[int]]:
    """The positions of the methods to re-analyse (those that differ, and those a changed module-level statement
    reaches) when only such methods of one class need it and none of them sets ``self.x`` (before or after);
    None when the definition must be re-analysed as a whole."""
    if not old.methods or old.frame != new.frame or [m.key for m in old.methods] != [m.key for m in new.methods] \
            or reach.reaches_frame(new):
        return None
    changed = {i for i, (was, now) in enumerate(zip(old.methods, new.methods))
               if was.text != now.text or reach.reaches(now, lay)}
    from .screening import binds_attributes

    if any(binds_attributes(old.methods[i].node) or binds_attributes(new.methods[i].node) for i in changed):
        return None
    return changed


def _same_frame(before: Layout, after: Layout) -> bool:
    """The same definitions, in the same order, under the same ``file-ignore`` comments (module-level text may
    differ: :func:`_changed_pieces`)."""
    return before.file_ignores == after.file_ignores and \
        [d.key for d in before.definitions] == [d.key for d in after.definitions]


def _imports(definition: Definition) -> list[str]:
    if "import" not in definition.text:
        return []
    return [ast.dump(n) for n in ast.walk(definition.node) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _inside(line: int, spans: list[tuple[int, int]]) -> bool:
    return any(first <= line <= last for first, last in spans)


def moved_findings(findings: list[Finding], before: str, text: str) -> list[Finding]:
    """``findings`` of the text ``before`` where ``text`` still has their lines: those above the edit as they
    were, those below it moved by the lines it added; those on the lines it replaced are dropped. For a preview
    of a text that cannot be analysed (a syntax error while typing), until the confirmation."""
    old, new = before.split("\n"), text.split("\n")
    same_start, same_end = common_ends(old, new)
    end, delta = len(old) - same_end, len(new) - len(old)

    def moved(line: int) -> int:
        return line + delta if line > end else line

    kept = [f for f in findings if f.line <= same_start or f.line > end]
    return [_moved(f, moved(f.line) - f.line, moved) for f in kept]


_EVIDENCE_LINE = re.compile(r"(` on line )(\d+)")  # precision.Evidence in a message: "`x.half()` on line 36"


def _moved(finding: Finding, delta: int, moved: Callable[[int], int]) -> Finding:
    """``finding`` moved down ``delta`` lines; the line of float16 evidence its message names moved as well."""
    message = _EVIDENCE_LINE.sub(lambda m: f"{m.group(1)}{moved(int(m.group(2)))}", finding.message)
    if not delta and message == finding.message:
        return finding
    fix = finding.fix
    if fix is not None:
        fix = Fix(fix.applicability, fix.message, tuple(Edit(e.line + delta, e.column, e.end_line + delta,
                                                             e.end_column, e.content) for e in fix.edits))
    extra: dict[str, Any] = dict(finding.extra)
    span = extra.get("target_span")
    if isinstance(span, tuple) and len(span) == 4:
        extra["target_span"] = (span[0] + delta, span[1], span[2] + delta, span[3])
    return replace(finding, line=finding.line + delta, end_line=finding.end_line + delta, message=message, fix=fix,
                   extra=extra)
