"""Source lines as Python counts them (no libcst needed: the LSP, SARIF and the fixer share it)."""
from __future__ import annotations

import re
from typing import Sequence

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")


def split_lines(source: str) -> list[str]:
    """Lines with their endings, split only where Python splits (\\n, \\r\\n, \\r), unlike ``str.splitlines``."""
    return _LINE.findall(source)


def common_ends(before: Sequence[object], after: Sequence[object]) -> tuple[int, int]:
    """How many items ``before`` and ``after`` share at their start, and then at their end (not overlapping):
    what lies between is what an edit replaced (characters of a text, or its lines)."""
    limit = min(len(before), len(after))
    prefix = 0
    while prefix < limit and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and before[-1 - suffix] == after[-1 - suffix]:
        suffix += 1
    return prefix, suffix
