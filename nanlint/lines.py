"""Source lines as Python counts them (no libcst needed: the LSP, SARIF and the fixer share it)."""
from __future__ import annotations

import re

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")


def split_lines(source: str) -> list[str]:
    """Lines with their endings, split only where Python splits (\\n, \\r\\n, \\r), unlike ``str.splitlines``."""
    return _LINE.findall(source)
