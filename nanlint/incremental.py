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

Under the chunk-locality contract (:mod:`nanlint.screening`) the findings *in
the changed definitions* are exactly those of a full lint. The reused ones need
not be: a rule may read facts of the whole text (``ctx.source``: float16
evidence, a ``torch.isfinite`` check anywhere; a message that names the line of
such evidence), and module-level findings may depend on what a definition does.
So this is a preview: the server publishes it at once and then confirms it with
a full lint of the same version when typing pauses, publishing again only when
the two differ (``nanlint/server.py``). What the server shows once the document
is at rest is the full lint, identical to ``nanlint check`` (tests/test_server.py).

:func:`relint` declines (returns None, the caller lints the whole file) when the
text does not compile, has ``\\r`` line endings, module-level text changed, a
definition was added, removed or renamed, a changed definition's imports
changed, a ``file-ignore`` comment changed, a rule's file-level condition
(``may_fire``) changed, a rule is not ``chunk_local``, or libcst disagrees.
"""
from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

from .files import LintRequest
from .finding import Edit, Finding, Fix
from .lines import common_ends

if TYPE_CHECKING:  # pragma: no cover
    from .rules.base import Rule

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
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


@dataclass
class Layout:
    """A text cut into its top-level definitions and what lies between them (module-level text)."""

    text: str
    lines: list[str]
    body: list[ast.stmt]
    definitions: tuple[Definition, ...]
    between: tuple[str, ...]  # len(definitions) + 1 pieces of module-level text
    file_ignores: tuple[str, ...]
    conditions: dict[Any, tuple[bool, ...]] = field(default_factory=dict)  # may_fire per (rules, precision)
    stubs: dict[str, str] = field(default_factory=dict)  # a definition's text -> its stub, as the last relint made

    def may_fire(self, rules: tuple[type[Rule], ...], precision: Optional[tuple[str, ...]]) -> tuple[bool, ...]:
        key = (rules, precision)
        if key not in self.conditions:
            self.conditions[key] = tuple(rule.may_fire(self.text, precision) for rule in rules)
        return self.conditions[key]


def layout(text: str, path: str = "<unknown>") -> Optional[Layout]:
    if "\r" in text:
        return None
    try:
        tree = compile(text, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None
    lines = text.split("\n")
    definitions: list[Definition] = []
    between: list[str] = []
    previous = 0
    for statement in tree.body:  # type: ignore[attr-defined]
        if not isinstance(statement, _DEFINITIONS):
            continue
        first, last = _span(statement)
        if first <= previous:
            return None  # shares a line with what precedes it
        between.append("\n".join(lines[previous:first - 1]))
        definitions.append(_definition(statement, lines, first, last))
        previous = last
    between.append("\n".join(lines[previous:]))
    return Layout(text, lines, tree.body, tuple(definitions), tuple(between),  # type: ignore[attr-defined]
                  tuple(_FILE_IGNORE.findall(text)))


def edited_layout(before: Layout, text: str, path: str = "<unknown>") -> Optional[Layout]:
    """The layout of ``text``, an edit of ``before.text`` that lies inside one definition, compiling only that
    definition (or method) again; None when the edit is elsewhere or the definition alone does not compile as one
    definition (then :func:`layout` decides).

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
        return None
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
    return Layout(text, new, body, definitions, before.between, tuple(_FILE_IGNORE.findall(text)))


def _compiled_alone(lines: list[str], unit: Definition, path: str, nested: bool) -> Optional[ast.stmt]:
    """The stdlib node of ``lines``, the new text of ``unit`` (a method when ``nested``), at its place in the file;
    None unless it compiles as exactly one definition of the same kind and name spanning every line."""
    wrapped = ["class _:", *lines] if nested else lines
    try:
        tree = compile("\n".join(wrapped), path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
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


def relint(path: str, request: LintRequest, before: Layout, findings: list[Finding], text: str
           ) -> Optional[Relinted]:
    """The findings of ``text``, re-analysing only the definitions that differ from ``before`` (whose findings
    were ``findings``); None when that cannot be done (see the module docstring): lint the whole text."""
    after = edited_layout(before, text, path) or layout(text, path)
    if after is None or not _same_frame(before, after):
        return None
    changed = [i for i, (old, new) in enumerate(zip(before.definitions, after.definitions)) if old.text != new.text]
    if not changed:
        return Relinted(list(findings), after, 0, 0)
    rules = request.rule_classes()
    if not all(rule.chunk_local for rule in rules):
        return None
    conditions = after.may_fire(rules, request.precision)
    if before.may_fire(rules, request.precision) != conditions:
        return None
    from . import screening
    from .engine import lint_sliced

    units: list[_Unit] = []
    stubbed: list[Definition] = []  # what libcst need not see, in the new text
    setters: list[Definition] = []  # unchanged methods of a changed class that set attributes
    for index, (old, new) in enumerate(zip(before.definitions, after.definitions)):
        if index not in changed:
            stubbed.append(new)
            continue
        methods = _changed_methods(old, new)
        if methods is None:  # the definition as a whole
            if _imports(old) != _imports(new):
                return None
            units.append(_Unit(old.first, old.last, new.first, new.last))
            continue
        for position, (was, now) in enumerate(zip(old.methods, new.methods)):
            if position in methods:
                if _imports(was) != _imports(now):
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
    def moved(line: int) -> int:  # where an old line outside the changed definitions is now
        return line + sum(u.delta for u in units if u.old_last < line)

    for finding in findings:
        if _inside(finding.line, old_tops) and not _inside(finding.line, stale):
            out.append(_moved(finding, moved(finding.line) - finding.line, moved))
    out.sort(key=Finding.sort_key)
    return Relinted(out, after, len(units), kept)


def _changed_methods(old: Definition, new: Definition) -> Optional[set[int]]:
    """The positions of the methods that differ when only methods of one class changed and none of them sets
    ``self.x`` (before or after); None when the definition must be re-analysed as a whole."""
    if not old.methods or old.frame != new.frame or [m.key for m in old.methods] != [m.key for m in new.methods]:
        return None
    changed = {i for i, (was, now) in enumerate(zip(old.methods, new.methods)) if was.text != now.text}
    from .screening import binds_attributes

    if any(binds_attributes(old.methods[i].node) or binds_attributes(new.methods[i].node) for i in changed):
        return None
    return changed

def _same_frame(before: Layout, after: Layout) -> bool:
    return (before.between == after.between and before.file_ignores == after.file_ignores
            and [d.key for d in before.definitions] == [d.key for d in after.definitions])


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
