"""Formatters: findings in, text out. No analysis happens here."""
from __future__ import annotations

from typing import Callable, Sequence

from ..finding import Finding
from .github import format_github
from .json_format import format_json
from .sarif import format_sarif
from .text import format_text

Formatter = Callable[[Sequence[Finding], int], str]

FORMATTERS: dict[str, Formatter] = {
    "text": format_text,
    "json": format_json,
    "sarif": format_sarif,
    "github": format_github,
}
