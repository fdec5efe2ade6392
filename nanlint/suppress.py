"""Suppression comments.

* ``# noqa`` (every code) and ``# noqa: NAN101, NAN201`` on the finding's line;
* ``# nanlint: ignore[NAN101] optional reason`` (``# nanlint: ignore`` for every code);
* ``# nanlint: file-ignore[NAN101]`` anywhere in the file (``# nanlint: file-ignore`` for all).

A finding inside a statement that spans several lines is also suppressed by a
comment on the statement's first or last line, so a long call can carry its
``# noqa`` where a formatter leaves it. Only real comments count: the text is
tokenized, so ``"# noqa"`` inside a string does nothing.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Optional

ALL = "*"
_CODE = r"[A-Z]+[0-9]+"
_NOQA = re.compile(rf"#\s*noqa(?::\s*(?P<codes>{_CODE}(?:\s*[,\s]\s*{_CODE})*))?", re.IGNORECASE)
_IGNORE = re.compile(rf"#\s*nanlint:\s*ignore(?:\[(?P<codes>[^\]]*)\])?")
_FILE_IGNORE = re.compile(rf"#\s*nanlint:\s*file-ignore(?:\[(?P<codes>[^\]]*)\])?")


def _codes(text: Optional[str]) -> frozenset[str]:
    if not text:
        return frozenset({ALL})
    return frozenset(c.upper() for c in re.findall(_CODE, text, re.IGNORECASE))


@dataclass
class Suppressions:
    by_line: dict[int, frozenset[str]] = field(default_factory=dict)
    file_codes: frozenset[str] = frozenset()

    def covers(self, code: str, lines: tuple[int, ...]) -> bool:
        if ALL in self.file_codes or code in self.file_codes:
            return True
        for line in lines:
            codes = self.by_line.get(line)
            if codes and (ALL in codes or code in codes):
                return True
        return False


def comments(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment; falls back to a line scan if tokenizing fails."""
    found: list[tuple[int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                found.append((tok.start[0], tok.string))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        for number, line in enumerate(source.splitlines(), 1):
            if "#" in line:
                found.append((number, line[line.index("#"):]))
    return found


def parse_suppressions(source: str) -> Suppressions:
    result = Suppressions()
    file_codes: set[str] = set()
    if "noqa" not in source and "nanlint:" not in source:
        return result
    for line, text in comments(source):
        match = _FILE_IGNORE.search(text)
        if match:
            file_codes |= _codes(match.group("codes"))
            continue
        codes: set[str] = set()
        for pattern in (_NOQA, _IGNORE):
            match = pattern.search(text)
            if match:
                codes |= _codes(match.group("codes"))
        if codes:
            result.by_line[line] = result.by_line.get(line, frozenset()) | frozenset(codes)
    result.file_codes = frozenset(file_codes)
    return result
