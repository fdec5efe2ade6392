"""Source-level helpers of the verifier (no torch): spans, static findings, reach probes, fixed-source mapping.

Spans are kept the way CPython's ``co_positions()`` reports them: 1-based lines
and 0-based UTF-8 *byte* columns, end exclusive. Findings use 1-based character
columns; :class:`SourceFile` converts between the two, so an op seen at runtime
is matched to a finding exactly, even on lines with non-ASCII text.
"""
from __future__ import annotations

import ast
import difflib
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from ..config import ConfigError, Settings
from ..engine import lint_path, read_source
from ..finding import Finding, at_least
from . import VerifyError

#: Findings that are about the file, not about code that runs.
NON_RUNTIME_CODES = frozenset({"NAN000", "NAN999"})
PROBE_NAME = "__nanlint_probe__"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(?:\s*\.\s*[A-Za-z_][A-Za-z_0-9]*)*")


def norm_path(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(path)))


@dataclass(frozen=True, order=True)
class Span:
    """``path`` (normalised absolute), 1-based lines, 0-based UTF-8 byte columns, end exclusive."""

    path: str
    line: int
    col: int
    end_line: int
    end_col: int

    def contains(self, other: "Span") -> bool:
        return (self.path == other.path and (self.line, self.col) <= (other.line, other.col)
                and (other.end_line, other.end_col) <= (self.end_line, self.end_col))

    def size(self) -> tuple[int, int]:
        return (self.end_line - self.line, self.end_col - self.col if self.end_line == self.line else 10 ** 6)


def split_lines(text: str) -> list[str]:
    """Lines without their endings, split where Python splits (\\n, \\r\\n, \\r)."""
    return re.split(r"\r\n|\r|\n", text)


@dataclass
class SourceFile:
    """One Python file as the verifier runs it: its text, where it is shown, its findings."""

    path: str  # normalised absolute path
    display: str  # as shown to the user
    text: str
    findings: list[Finding] = field(default_factory=list)
    hidden: list[Finding] = field(default_factory=list)  # below the reported confidence: named by origins only

    def __post_init__(self) -> None:
        self.lines = split_lines(self.text)

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 1 <= line <= len(self.lines) else ""

    def byte_col(self, line: int, char_col0: int) -> int:
        text = self.line_text(line)
        return len(text[:char_col0].encode("utf-8"))

    def char_col(self, line: int, byte_col0: int) -> int:
        raw = self.line_text(line).encode("utf-8")
        return len(raw[:byte_col0].decode("utf-8", errors="ignore"))

    def span(self, line: int, column: int, end_line: int, end_column: int) -> Span:
        """A span from 1-based character columns (a finding's), parentheses around it stripped."""
        span = Span(self.path, line, self.byte_col(line, column - 1), end_line, self.byte_col(end_line, end_column - 1))
        return self.strip_parens(span)

    def finding_span(self, finding: Finding) -> Span:
        return self.span(finding.line, finding.column, finding.end_line, finding.end_column)

    def target_span(self, finding: Finding) -> Optional[Span]:
        target = finding.extra.get("target_span") if finding.extra else None
        if not target or len(target) != 4:
            return None
        return self.span(*target)

    def text_of(self, span: Span) -> str:
        if span.line == span.end_line:
            return self.line_text(span.line).encode("utf-8")[span.col:span.end_col].decode("utf-8", "replace")
        parts = [self.line_text(span.line).encode("utf-8")[span.col:].decode("utf-8", "replace")]
        parts += [self.line_text(n) for n in range(span.line + 1, span.end_line)]
        parts.append(self.line_text(span.end_line).encode("utf-8")[:span.end_col].decode("utf-8", "replace"))
        return "\n".join(parts)

    def strip_parens(self, span: Span) -> Span:
        """CPython positions exclude an expression's own parentheses; drop matching outer ones."""
        for _ in range(8):
            text = self.text_of(span)
            stripped = text.strip()
            if not (stripped.startswith("(") and stripped.endswith(")") and _outer_parens_match(stripped)):
                return span
            lead = len(text[: len(text) - len(text.lstrip())].encode("utf-8")) + 1
            trail = len(text[len(text.rstrip()):].encode("utf-8")) + 1
            start_line, start_col = self._advance(span.line, span.col, lead)
            end_line, end_col = self._retreat(span.end_line, span.end_col, trail)
            span = Span(span.path, start_line, start_col, end_line, end_col)
        return span

    def _advance(self, line: int, col: int, count: int) -> tuple[int, int]:
        while count > 0:
            width = len(self.line_text(line).encode("utf-8"))
            if col + count <= width:
                return line, col + count
            count -= width - col + 1  # the newline counts as one
            line, col = line + 1, 0
        return line, col

    def _retreat(self, line: int, col: int, count: int) -> tuple[int, int]:
        while count > 0:
            if col - count >= 0:
                return line, col - count
            count -= col + 1
            line -= 1
            col = len(self.line_text(line).encode("utf-8"))
        return line, col

    def is_dotted_name(self, span: Span) -> bool:
        """A plain name or attribute chain (``n``, ``self.eps``): a value read, not an op."""
        return bool(_DOTTED.fullmatch(self.text_of(span).strip()))


def _outer_parens_match(text: str) -> bool:
    depth = 0
    quote: Optional[str] = None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
            continue
        if char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0 and index != len(text) - 1:
                return False
    return depth == 0


# -- static findings -----------------------------------------------------------

def verify_settings(script: str, select: Optional[Sequence[str]] = None,
                    confidence: Optional[str] = None) -> Settings:
    """The settings ``nanlint check`` gives ``script``: the same configuration file, rules, confidence, ``fix-eps``
    and ``max-grad-norm``; ``select`` and ``confidence`` act as ``check --select`` / ``--confidence`` do."""
    from ..request import Overrides, SettingsResolver

    overrides = Overrides(select=tuple(select) if select is not None else None, confidence=confidence)
    try:
        return SettingsResolver(overrides).for_path(script)
    except ConfigError as exc:
        raise VerifyError(str(exc)) from None


def load_source(path: str, display: str, settings: Settings) -> Optional[SourceFile]:
    """Read and lint one file; None when it cannot be read or decoded (Python will then report it)."""
    text, _, error = read_source(path)
    if error is not None or text is None:
        return None
    from ..request import build_request

    result = lint_path(path, build_request(settings, path), display)
    runtime = [f for f in result.findings if f.code not in NON_RUNTIME_CODES]
    shown = [f for f in runtime if at_least(f.confidence, settings.confidence)]
    return SourceFile(norm_path(path), display, text, shown, [f for f in runtime if f not in shown])


def display_path(path: str) -> str:
    """Relative to the working directory when below it, else absolute."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:
        return absolute
    return absolute if relative.startswith("..") else relative


# -- reach probes --------------------------------------------------------------

def instrument(text: str, filename: str, probes: Iterable[tuple[int, Span]]) -> ast.Module:
    """Parse ``text`` and insert ``__nanlint_probe__((ids,))`` before the innermost statement holding each span.

    Positions of the original nodes are untouched, so tracebacks and
    ``co_positions()`` are the same as for the plain file.
    """
    tree = ast.parse(text, filename)
    wanted = list(probes)
    if not wanted:
        return tree
    places: dict[tuple[int, str, int], list[int]] = {}
    parents: dict[int, tuple[ast.AST, str, int]] = {}
    statements: list[ast.stmt] = []
    for node in ast.walk(tree):
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, ast.stmt):
                        parents[id(item)] = (node, name, index)
                        statements.append(item)
    for probe_id, span in wanted:
        best: Optional[ast.stmt] = None
        for stmt in statements:
            end = (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
            if (stmt.lineno, stmt.col_offset) <= (span.line, span.col) and (span.line, span.col) < end:
                if best is None or (stmt.lineno, stmt.col_offset) >= (best.lineno, best.col_offset):
                    best = stmt
        if best is None:
            continue
        parent, name, index = parents[id(best)]
        places.setdefault((id(parent), name, index), []).append(probe_id)
    owners = {id(parent): parent for parent, _, _ in parents.values()}
    for (owner_id, name, index), ids in sorted(places.items(), key=lambda item: -item[0][2]):
        body = getattr(owners[owner_id], name)
        target = body[index]
        call = ast.Expr(ast.Call(ast.Name(PROBE_NAME, ast.Load()),
                                 [ast.Tuple([ast.Constant(i) for i in sorted(ids)], ast.Load())], []))
        ast.copy_location(call, target)
        body.insert(index, call)
    ast.fix_missing_locations(tree)
    return tree


# -- fixed sources ---------------------------------------------------------------

def _call_end(text: str, position: int) -> Optional[int]:
    """The offset just after the ``)`` that closes the call whose arguments continue at ``position``."""
    depth = 1
    for index in range(position, min(len(text), position + 2000)):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def map_span(old: SourceFile, new: SourceFile, span: Span) -> Optional[Span]:
    """Where the code of ``span`` in ``old`` is in ``new`` (a fixed version), or None when the fix removed it."""
    needle = old.text_of(span)
    if not needle.strip():
        return None
    matcher = difflib.SequenceMatcher(a=old.lines, b=new.lines, autojunk=False)
    expected = span.line
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if a0 <= span.line - 1 < a1:
            expected = b0 + 1 + min(span.line - 1 - a0, max(b1 - b0 - 1, 0))
            break
    starts: list[tuple[int, int]] = []  # (start, end) of each occurrence
    position = new.text.find(needle)
    while position != -1:
        starts.append((position, position + len(needle)))
        position = new.text.find(needle, position + 1)
    if not starts and needle.endswith(")"):
        # a fix may add a keyword argument to the call the site names (`x.std(dim=0)` -> `x.std(dim=0,
        # correction=0)`): the same call, found by its text up to the closing parenthesis
        head = needle[:-1].rstrip()
        position = new.text.find(head)
        while position != -1:
            end = _call_end(new.text, position + len(head))
            if end is not None and new.text[position + len(head):end - 1].lstrip().startswith(","):
                starts.append((position, end))
            position = new.text.find(head, position + 1)
    best: Optional[tuple[int, int, Span]] = None
    for start, end in starts:
        line = new.text.count("\n", 0, start) + 1
        line_start = new.text.rfind("\n", 0, start) + 1
        col = len(new.text[line_start:start].encode("utf-8"))
        end_line = new.text.count("\n", 0, end) + 1
        end_line_start = new.text.rfind("\n", 0, end) + 1
        end_col = len(new.text[end_line_start:end].encode("utf-8"))
        distance = abs(line - expected)
        if distance > 8:
            continue
        key = (distance, abs(col - span.col))
        if best is None or key < best[:2]:
            best = (key[0], key[1], Span(new.path, line, col, end_line, end_col))
    return best[2] if best else None
