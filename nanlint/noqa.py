"""``nanlint --add-noqa``: write ``# noqa: NANxxx`` on every current finding, so a big codebase starts clean.

Each finding gets its code on a line whose comment suppresses it (the finding's
line, or the first or last line of its statement: ``suppress.py``), the first of
those where a comment can go: a line that does not end inside a string or with a
backslash continuation. An existing ``# noqa: ...`` there gets the code added; any
other comment gets ``  # noqa: CODE`` after it; a line without a comment gets it at
its end. The file is written atomically, in its own encoding and line endings.
"""
from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass
from typing import Optional, Sequence

from .engine import FILE_ERROR_CODE, INTERNAL_ERROR_CODE, UNUSED_NOQA_CODE, decode_source, lint_source
from .finding import Finding, at_least
from .lines import split_lines
from .request import SettingsResolver
from .suppress import NOQA, comments

NOT_SUPPRESSIBLE = (FILE_ERROR_CODE, INTERNAL_ERROR_CODE, UNUSED_NOQA_CODE)


@dataclass
class NoqaResult:
    display: str
    added: int = 0
    error: Optional[str] = None


def comment_lines(source: str) -> set[int]:
    """Lines whose end is a place where Python allows a comment (tokenize ends them with NEWLINE, NL or COMMENT)."""
    found: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT):
                found.add(tok.start[0])
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return set()
    return found


def add_noqa(source: str, findings: Sequence[Finding]) -> tuple[str, int]:
    """``source`` with a ``# noqa`` for each finding (that carries ``extra["noqa_lines"]``); and how many codes
    were added."""
    allowed = comment_lines(source)
    wanted: dict[int, set[str]] = {}
    for finding in findings:
        lines = finding.extra.get("noqa_lines") or (finding.line,)
        line = next((n for n in lines if n in allowed), None)
        if line is not None:
            wanted.setdefault(line, set()).add(finding.code)
    if not wanted:
        return source, 0
    existing = {line: (column, text) for line, column, text in comments(source)}
    lines = split_lines(source)
    added = 0
    for number, codes in wanted.items():
        text = lines[number - 1]
        body = text.rstrip("\r\n")
        ending = text[len(body):]
        comment = existing.get(number)
        match = NOQA.search(comment[1]) if comment else None
        if comment is not None and match is not None:
            start = comment[0] - 1 + match.start()
            have = [c.strip().upper() for c in (match.group("codes") or "").replace(",", " ").split()]
            new = [c for c in sorted(codes) if c not in have]
            if match.group("codes") is None or not new:
                continue  # a bare noqa comment covers every code already
            body = body[:start] + "# noqa: " + ", ".join(have + new) + body[start + len(match.group(0)):]
            added += len(new)
        else:
            body = body.rstrip() + "  # noqa: " + ", ".join(sorted(codes))
            added += len(codes)
        lines[number - 1] = body + ending
    return "".join(lines), added


def add_noqa_file(path: str, display: str, resolver: SettingsResolver) -> NoqaResult:
    """Lint ``path`` and write the ``# noqa`` comments its findings need."""
    from .fixes import WriteRefused, encode, write_atomic

    result = NoqaResult(display)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        result.error = f"cannot read: {exc.strerror or exc}"
        return result
    source, encoding, error = decode_source(display, data)
    if error is not None or source is None:
        result.error = error.message if error is not None else "cannot decode"
        return result
    lowest = resolver.for_path(path).confidence
    linted = lint_source(display, source, resolver.request_for(path)).findings
    broken = next((f for f in linted if f.code in (FILE_ERROR_CODE, INTERNAL_ERROR_CODE)), None)
    if broken is not None:
        result.error = broken.message
        return result
    findings = [f for f in linted
                if f.code not in NOT_SUPPRESSIBLE and not f.extra.get("suppressed") and at_least(f.confidence, lowest)]
    text, result.added = add_noqa(source, findings)
    if result.added:
        try:
            write_atomic(path, encode(text, encoding), data)
        except (WriteRefused, UnicodeEncodeError, OSError) as exc:
            result.error = f"not written: {exc}"
            result.added = 0
    return result
