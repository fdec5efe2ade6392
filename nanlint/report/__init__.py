"""Formatters: findings in, text out. No analysis happens here."""
from __future__ import annotations

from typing import Callable, Sequence

from ..finding import Finding
from .github import format_github
from .json_format import format_json
from .text import format_text

Formatter = Callable[[Sequence[Finding], int], str]


def format_sarif(findings: Sequence[Finding], checked: int) -> str:
    """SARIF 2.1.0 (``report/sarif.py``, imported when asked for: it reads the rule documentation)."""
    from .sarif import format_sarif as sarif

    return sarif(findings, checked)


FORMATTERS: dict[str, Formatter] = {
    "text": format_text,
    "json": format_json,
    "sarif": format_sarif,
    "github": format_github,
}
