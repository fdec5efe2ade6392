"""Suppression comments.

* ``# noqa`` (every code) and ``# noqa: NAN101, NAN201`` on the finding's line;
* ``# nanlint: ignore[NAN101] optional reason`` (``# nanlint: ignore`` for every code);
* ``# nanlint: file-ignore[NAN101]`` anywhere in the file (``# nanlint: file-ignore`` for all).

A finding inside a statement that spans several lines is also suppressed by a
comment on the statement's first or last line, so a long call can carry its
``# noqa`` where a formatter leaves it. Only real comments count: the text is
tokenized, so ``"# noqa"`` inside a string does nothing.

:class:`Suppressions` remembers which line comments suppressed something, so the
engine can report the others (NAN001 ``unused-noqa``) and ``--add-noqa`` can add
codes to an existing comment.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Optional

ALL = "*"
_CODE = r"[A-Z]+[0-9]+"
NOQA = re.compile(rf"#\s*noqa(?::\s*(?P<codes>{_CODE}(?:\s*[,\s]\s*{_CODE})*))?", re.IGNORECASE)
_IGNORE = re.compile(r"#\s*nanlint:\s*ignore(?:\[(?P<codes>[^\]]*)\])?")
_FILE_IGNORE = re.compile(r"#\s*nanlint:\s*file-ignore(?:\[(?P<codes>[^\]]*)\])?")


def _codes(text: Optional[str]) -> frozenset[str]:
    if not text:
        return frozenset({ALL})
    return frozenset(c.upper() for c in re.findall(_CODE, text, re.IGNORECASE))


@dataclass(frozen=True)
class LineComment:
    """A line-level suppression comment: where it is, the codes it names (ALL for a bare one), and its kind."""

    line: int
    column: int  # 1-based, in characters
    codes: frozenset[str]
    kind: str  # "noqa" | "nanlint: ignore"


@dataclass
class Suppressions:
    by_line: dict[int, frozenset[str]] = field(default_factory=dict)
    file_codes: frozenset[str] = frozenset()
    comments: list[LineComment] = field(default_factory=list)
    used: set[tuple[int, str]] = field(default_factory=set)  # (line, code or ALL) that suppressed a finding

    def covers(self, code: str, lines: tuple[int, ...]) -> bool:
        if ALL in self.file_codes or code in self.file_codes:
            return True
        for line in lines:
            codes = self.by_line.get(line)
            if codes and (ALL in codes or code in codes):
                self.used.add((line, code if code in codes else ALL))
                return True
        return False

    def unused(self, enabled: frozenset[str]) -> list[tuple[LineComment, tuple[str, ...]]]:
        """Comments (and their codes) that suppressed nothing. Only codes of ``enabled`` rules count, and a bare
        ``# noqa`` never does (other linters read it too); a bare ``# nanlint: ignore`` does."""
        found: list[tuple[LineComment, tuple[str, ...]]] = []
        for comment in self.comments:
            if ALL in comment.codes:
                if comment.kind != "noqa" and not any(line == comment.line for line, _ in self.used):
                    found.append((comment, ()))
                continue
            codes = tuple(sorted(c for c in comment.codes if c in enabled and (comment.line, c) not in self.used))
            if codes:
                found.append((comment, codes))
        return found


def comments(source: str) -> list[tuple[int, int, str]]:
    """(line, 1-based column, text) of every comment; falls back to a line scan if tokenizing fails."""
    found: list[tuple[int, int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                found.append((tok.start[0], tok.start[1] + 1, tok.string))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        for number, line in enumerate(source.splitlines(), 1):
            if "#" in line:
                found.append((number, line.index("#") + 1, line[line.index("#"):]))
    return found


def parse_suppressions(source: str) -> Suppressions:
    result = Suppressions()
    file_codes: set[str] = set()
    if "noqa" not in source and "nanlint:" not in source:
        return result
    for line, column, text in comments(source):
        match = _FILE_IGNORE.search(text)
        if match:
            file_codes |= _codes(match.group("codes"))
            continue
        codes: set[str] = set()
        for kind, pattern in (("noqa", NOQA), ("nanlint: ignore", _IGNORE)):
            match = pattern.search(text)
            if match:
                named = _codes(match.group("codes"))
                codes |= named
                result.comments.append(LineComment(line, column + match.start(), named, kind))
        if codes:
            result.by_line[line] = result.by_line.get(line, frozenset()) | frozenset(codes)
    result.file_codes = frozenset(file_codes)
    return result
