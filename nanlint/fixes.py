"""Apply the fixes of a file's findings, check them, and write the result safely.

:func:`fix_source` is pure (no file I/O): it takes a file's text and returns a
:class:`FixOutcome`. Each pass applies the fixes whose edits do not overlap (a
fix is all its edits or none; two findings with the *same* edits, such as
NAN101 and NAN201 on one root, share one application), then re-parses and
re-lints the result in memory. A fix whose result does not parse, crashes a
rule, or leaves its finding in place is dropped and reported, and the file is
rebuilt without it, so it is never left half-edited. Overlapping fixes wait for
the next pass, where they are recomputed on the new text (most disappear
because the first fix already removed their hazard); at most
:data:`MAX_PASSES` passes run.

:func:`write_atomic` replaces a file through a temporary file in the same
directory and ``os.replace``, keeping the file mode, and refuses when the file
changed on disk since it was read. Encoding, BOM and newlines are kept by
construction: edits touch only their spans, inserted lines use the file's own
newline, and the text is encoded back with the encoding it was decoded with.
"""
from __future__ import annotations

import bisect
import dataclasses
import difflib
import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from .engine import FILE_ERROR_CODE, INTERNAL_ERROR_CODE, FileResult, LintRequest, lint_source
from .finding import Edit, Finding, at_least
from .fixspec import SAFE, UNSAFE
from .lines import split_lines

MAX_PASSES = 10


@dataclass(frozen=True)
class FailedFix:
    finding: Finding
    reason: str


@dataclass
class FixOutcome:
    """What fixing one file's text did. Findings in ``original``, ``applied``, ``resolved`` and ``failed``
    are positioned in the input text; ``remaining`` in the fixed text."""

    path: str
    original_source: str
    source: str
    original: list[Finding]
    applied: list[Finding] = field(default_factory=list)  # their own fix was applied
    resolved: list[Finding] = field(default_factory=list)  # gone through another finding's fix
    remaining: list[Finding] = field(default_factory=list)
    failed: list[FailedFix] = field(default_factory=list)
    passes: int = 0
    unsafe: bool = True

    @property
    def changed(self) -> bool:
        return self.source != self.original_source

    @property
    def hidden_unsafe(self) -> int:
        """Remaining findings an ``--unsafe-fixes`` run would fix."""
        if self.unsafe:
            return 0
        return sum(1 for f in self.remaining if f.fix is not None and f.fix.applicability == UNSAFE)


# -- positions ----------------------------------------------------------------------------
class _Lines:
    """1-based (line, column) <-> character offset in one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        for line in split_lines(text):
            self.starts.append(self.starts[-1] + len(line))
        # ``starts[-1]`` is len(text): line ``len(lines) + 1`` column 1 is the end of the text

    def offset(self, line: int, column: int) -> int:
        if line - 1 >= len(self.starts):
            return len(self.text)
        return min(self.starts[line - 1] + column - 1, len(self.text))

    def position(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.starts, offset) - 1
        index = max(0, min(index, len(self.starts) - 1))
        if index == len(self.starts) - 1 and index > 0 and offset == self.starts[index] \
                and not self.text.endswith(("\n", "\r")):
            index -= 1
        return index + 1, offset - self.starts[index] + 1


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    content: Optional[str] = None  # an edit's replacement text; None for a finding's span

    def overlaps(self, other: "_Span") -> bool:
        if self.content is not None and self == other:
            return False  # the same edit twice: applied once
        if self.start == self.end or other.start == other.end:
            point, span = (self, other) if self.start == self.end else (other, self)
            return span.start <= point.start <= span.end
        return self.start < other.end and other.start < self.end


class _OffsetMap:
    """Maps offsets of an edited text back to the text before the edits."""

    def __init__(self, edits: Sequence[_Span]) -> None:
        self.rows: list[tuple[int, int, int, int]] = []  # new_start, new_end, old_start, old_end
        shift = 0
        for edit in sorted(edits, key=lambda e: (e.start, e.end)):
            assert edit.content is not None
            new_start = edit.start + shift
            new_end = new_start + len(edit.content)
            self.rows.append((new_start, new_end, edit.start, edit.end))
            shift += len(edit.content) - (edit.end - edit.start)
        self.new_starts = [row[0] for row in self.rows]

    def back(self, offset: int) -> int:
        index = bisect.bisect_right(self.new_starts, offset) - 1
        if index < 0:
            return offset
        new_start, new_end, old_start, old_end = self.rows[index]
        if offset < new_end:
            return old_start
        return offset - new_end + old_end


def _apply(text: str, edits: Iterable[_Span]) -> tuple[str, _OffsetMap]:
    ordered = sorted(set(edits), key=lambda e: (e.start, e.end))
    pieces: list[str] = []
    cursor = 0
    for edit in ordered:
        pieces.append(text[cursor:edit.start])
        pieces.append(edit.content or "")
        cursor = max(cursor, edit.end)
    pieces.append(text[cursor:])
    return "".join(pieces), _OffsetMap(ordered)


# -- one fix of one finding, located in the current text -----------------------------------------
@dataclass
class _Candidate:
    finding: Finding
    span: _Span
    edits: tuple[_Span, ...]
    signature: tuple

    @property
    def ranges(self) -> tuple[_Span, ...]:
        return (self.span,) + self.edits

    def conflicts(self, other: "_Candidate") -> bool:
        if set(self.edits) == set(other.edits):
            return False
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)


def _candidate(finding: Finding, lines: _Lines) -> Optional[_Candidate]:
    if finding.fix is None or not finding.fix.edits:
        return None
    start = lines.offset(finding.line, finding.column)
    end = lines.offset(finding.end_line, finding.end_column)
    edits = tuple(_edit_span(e, lines) for e in finding.fix.edits)
    if any(e.end < e.start for e in edits):
        return None
    signature = (
        finding.code,
        lines.text[start:end],
        tuple((e.content, e.start - start, e.end - start) for e in edits),
    )
    return _Candidate(finding, _Span(start, end), edits, signature)


def _edit_span(edit: Edit, lines: _Lines) -> _Span:
    return _Span(lines.offset(edit.line, edit.column), lines.offset(edit.end_line, edit.end_column), edit.content)


def _broken(result: FileResult) -> Optional[str]:
    for finding in result.findings:
        if finding.code == FILE_ERROR_CODE:
            return f"the fixed code does not parse ({finding.message})"
        if finding.code == INTERNAL_ERROR_CODE:
            return "the fixed code makes a rule crash"
    return None


def _counts(findings: Iterable[Finding], lines: _Lines, back: Optional[_OffsetMap] = None) -> dict[tuple, int]:
    counts: dict[tuple, int] = {}
    for finding in findings:
        start = lines.offset(finding.line, finding.column)
        if back is not None:
            start = back.back(start)
        key = (finding.code, start)
        counts[key] = counts.get(key, 0) + 1
    return counts


# -- the fixer ----------------------------------------------------------------------------------
def fix_source(path: str, source: str, request: LintRequest, unsafe: bool = True, lowest: str = "low") -> FixOutcome:
    """Apply the fixes of ``source``'s findings (safe ones, and unsafe ones when ``unsafe``) whose confidence is at
    least ``lowest`` (the findings a report shows); no file I/O."""
    first = lint_source(path, source, request)
    outcome = FixOutcome(path, source, source, sorted(first.findings, key=Finding.sort_key), unsafe=unsafe)
    if _broken(first) is not None:
        outcome.remaining = list(outcome.original)
        return outcome
    text = source
    texts = [source]  # the text each pass started from
    findings = first.findings
    maps: list[_OffsetMap] = []  # one per applied pass: offsets of pass k+1's text back to pass k's
    failed: dict[tuple, tuple[Finding, str, int]] = {}  # signature -> (finding, why, pass it was positioned in)
    applied: list[tuple[Finding, int]] = []
    for _ in range(MAX_PASSES):
        lines = _Lines(text)
        candidates = []
        for finding in sorted(findings, key=Finding.sort_key):
            if finding.fix is None or not (finding.fix.applicability == SAFE
                                           or (unsafe and finding.fix.applicability == UNSAFE)) \
                    or not at_least(finding.confidence, lowest):
                continue  # a display-only fix is shown, never applied
            candidate = _candidate(finding, lines)
            if candidate is not None and candidate.signature not in failed:
                candidates.append(candidate)
        chosen: list[_Candidate] = []
        for candidate in candidates:
            if not any(candidate.conflicts(other) for other in chosen):
                chosen.append(candidate)
        if not chosen:
            break
        kept, dropped, new_text, new_map, result = _apply_checked(path, text, lines, findings, chosen, request)
        for candidate, reason in dropped:
            failed[candidate.signature] = (candidate.finding, reason, len(maps))
        if not kept:
            continue  # every chosen fix failed; the next pass tries the others
        applied.extend((c.finding, len(maps)) for c in kept)
        maps.append(new_map)
        text, findings = new_text, result.findings
        texts.append(text)
        outcome.passes += 1
    outcome.source = text
    _report(outcome, texts, findings, applied, failed, maps)
    return outcome


def _apply_checked(path: str, text: str, lines: _Lines, findings: list[Finding], chosen: list[_Candidate],
                   request: LintRequest) -> tuple[list[_Candidate], list[tuple[_Candidate, str]], str, _OffsetMap,
                                                  FileResult]:
    """Apply ``chosen`` together. Returns the fixes kept, the fixes dropped with why (the result does not parse,
    a rule crashes on it, or the finding stays), and the new text, offset map and lint result."""
    dropped: list[tuple[_Candidate, str]] = []
    active = list(chosen)
    before = _counts(findings, lines)
    while active:
        new_text, new_map = _apply(text, (e for c in active for e in c.edits))
        result = lint_source(path, new_text, request)
        reason = _broken(result)
        if reason is not None:
            culprits = []
            for candidate in active if len(active) > 1 else ():
                alone = _broken(lint_source(path, _apply(text, candidate.edits)[0], request))
                if alone is not None:
                    culprits.append((candidate, alone))
            if len(active) == 1:
                culprits = [(active[0], reason)]
            if culprits:
                dropped.extend(culprits)
                active = [c for c in active if all(c is not d for d, _ in culprits)]
            else:
                active = active[:1]  # each is fine alone but not together: the others wait for the next pass
            continue
        after = _counts(result.findings, _Lines(new_text), new_map)
        stubborn = [c for c in active
                    if after.get((c.finding.code, c.span.start), 0) >= before.get((c.finding.code, c.span.start), 0)]
        if not stubborn:
            return active, dropped, new_text, new_map, result
        dropped.extend((c, "the fix did not remove the finding") for c in stubborn)
        active = [c for c in active if all(c is not d for d in stubborn)]
    return [], dropped, text, _OffsetMap(()), FileResult(path, findings)


def _back_to_input(offset: int, maps: Sequence[_OffsetMap]) -> int:
    for offset_map in reversed(maps):
        offset = offset_map.back(offset)
    return offset


def _relocate(finding: Finding, lines: _Lines, maps: Sequence[_OffsetMap], original: _Lines) -> Finding:
    """``finding`` (positioned in a later pass's text) moved to the input text's coordinates."""
    if not maps:
        return finding
    start = _back_to_input(lines.offset(finding.line, finding.column), maps)
    end = _back_to_input(lines.offset(finding.end_line, finding.end_column), maps)
    line, column = original.position(start)
    end_line, end_column = original.position(max(start, end))
    return dataclasses.replace(finding, line=line, column=column, end_line=end_line, end_column=end_column)


def _report(outcome: FixOutcome, texts: list[str], findings: list[Finding], applied: list[tuple[Finding, int]],
            failed: dict[tuple, tuple[Finding, str, int]], maps: list[_OffsetMap]) -> None:
    original_lines = _Lines(texts[0])
    final_lines = _Lines(texts[-1])
    applied_keys: set[tuple] = set()
    for finding, index in applied:
        moved = _relocate(finding, _Lines(texts[index]), maps[:index], original_lines)
        applied_keys.add((moved.code, moved.line, moved.column))
        outcome.applied.append(moved)
    failed_reasons = {}
    for signature, (finding, reason, index) in failed.items():
        moved = _relocate(finding, _Lines(texts[index]), maps[:index], original_lines)
        outcome.failed.append(FailedFix(moved, reason))
        failed_reasons[signature] = reason
    still = {(f.code, _back_to_input(final_lines.offset(f.line, f.column), maps)) for f in findings}
    for finding in outcome.original:
        if (finding.code, finding.line, finding.column) in applied_keys:
            continue
        if (finding.code, original_lines.offset(finding.line, finding.column)) not in still:
            outcome.resolved.append(finding)
    remaining = []
    for finding in sorted(findings, key=Finding.sort_key):
        candidate = _candidate(finding, final_lines)
        if candidate is not None and candidate.signature in failed_reasons:
            extra = dict(finding.extra)
            extra["no_fix_reason"] = f"the fix was not applied: {failed_reasons[candidate.signature]}"
            finding = dataclasses.replace(finding, fix=None, extra=extra)
        remaining.append(finding)
    outcome.remaining = remaining
    outcome.applied.sort(key=Finding.sort_key)
    outcome.failed.sort(key=lambda f: Finding.sort_key(f.finding))


def unified_diff(path: str, before: str, after: str) -> str:
    """A unified diff of one file (``--- path`` / ``+++ path``), empty when nothing changed."""
    if before == after:
        return ""
    diff = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=path, tofile=path,
    )
    out = []
    for line in diff:
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


# -- writing ------------------------------------------------------------------------------------
class WriteRefused(Exception):
    """The fixed text was not written: the message says why (the file is untouched)."""


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding)


def write_atomic(path: str, data: bytes, expected: bytes) -> None:
    """Replace ``path``'s content by ``data`` if it still holds ``expected``; raise :class:`WriteRefused`.

    Writes a temporary file next to the real file (symlinks are followed), gives
    it the original mode (and owner when permitted), flushes it to disk, checks
    the original once more and renames it over the original: a crash leaves
    either the old or the new file, never a truncated one.
    """
    real = os.path.realpath(path)
    try:
        before = os.stat(real)
        with open(real, "rb") as handle:
            current = handle.read()
    except OSError as exc:
        raise WriteRefused(f"cannot read it again before writing: {exc.strerror or exc}") from exc
    if current != expected:
        raise WriteRefused("it changed on disk since it was read; not overwritten (run nanlint again)")
    if not os.access(real, os.W_OK):
        raise WriteRefused("it is not writable")
    directory = os.path.dirname(real) or "."
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".nanlint-tmp", dir=directory)
    except OSError as exc:
        raise WriteRefused(f"cannot create a temporary file in {directory}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(temporary, before.st_mode & 0o7777)
            if hasattr(os, "chown"):
                try:
                    os.chown(temporary, before.st_uid, before.st_gid)
                except OSError:
                    pass  # only root may give a file away; the mode is what matters
        after = os.stat(real)
        if (after.st_mtime_ns, after.st_size, after.st_ino) != (before.st_mtime_ns, before.st_size, before.st_ino):
            raise WriteRefused("it changed on disk while it was being fixed; not overwritten (run nanlint again)")
        os.replace(temporary, real)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


@dataclass
class FileFix:
    """``--fix`` / ``--diff`` on one file: what was fixed and what is left, or why nothing was written."""

    display: str
    outcome: Optional[FixOutcome] = None
    findings: list[Finding] = field(default_factory=list)  # what the user sees now (remaining, or all when unwritten)
    fixed: list[Finding] = field(default_factory=list)  # fixed (or, for a dry run, that would be)
    error: Optional[str] = None  # the fixed text could not be written
    diff: str = ""
    internal_error: bool = False


def fix_file(path: str, display: str, request: LintRequest, unsafe: bool, write: bool, lowest: str = "low"
             ) -> FileFix:
    """Fix one file: read it, :func:`fix_source`, then write it atomically (``write``) or diff it."""
    from .engine import decode_source, file_error

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        return FileFix(display, findings=[file_error(display, "cannot read: is a directory")])
    except OSError as exc:
        return FileFix(display, findings=[file_error(display, f"cannot read: {exc.strerror or exc}")])
    text, encoding, error = decode_source(display, data)
    if error is not None or text is None:
        return FileFix(display, findings=[error] if error else [])
    return finish(fix_source(display, text, request, unsafe, lowest), path, data, encoding, write)


def finish(outcome: FixOutcome, path: Optional[str], data: Optional[bytes], encoding: str, write: bool) -> FileFix:
    """Write (or diff) an outcome. ``path`` None: the text came from stdin and is not written anywhere."""
    result = FileFix(outcome.path, outcome, list(outcome.remaining),
                     outcome.applied + outcome.resolved)
    result.internal_error = any(f.code == INTERNAL_ERROR_CODE for f in outcome.remaining)
    if not outcome.changed:
        return result
    if not write or path is None or data is None:
        result.diff = unified_diff(outcome.path, outcome.original_source, outcome.source)
        return result
    try:
        write_atomic(path, encode(outcome.source, encoding), data)
    except (WriteRefused, UnicodeEncodeError) as exc:
        reason = str(exc) if isinstance(exc, WriteRefused) else f"cannot encode the fixed text as {encoding}"
        result.error = reason
    except OSError as exc:
        result.error = f"cannot write: {exc.strerror or exc}"
    if result.error is not None:
        result.findings = list(outcome.original)
        result.fixed = []
    return result
