"""Shared test helpers: lint a string, read fixture markers."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

from nanlint.engine import LintRequest, lint_source
from nanlint.finding import Finding
from nanlint.rules import ALL_RULES, Rule

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MARKER = re.compile(r"#.*?\b(?P<level>error|low):\s*(?P<codes>NAN\d{3}(?:\s*,\s*NAN\d{3})*)")
PRECISION = re.compile(r"#\s*nanlint-fixture:\s*precision\s*=\s*(?P<dtypes>[\w,]+)")


def lint(source: str, rules: Optional[Sequence[type[Rule]]] = None, path: str = "snippet.py",
         precision: Optional[tuple[str, ...]] = None) -> list[Finding]:
    result = lint_source(path, source, LintRequest(tuple(rules or ALL_RULES), precision))
    return sorted(result.findings, key=Finding.sort_key)


def expected_markers(source: str) -> set[tuple[int, str]]:
    """(line, code) of every ``# error: NAN101`` (shown by default) and ``# low: NAN101`` (low confidence)."""
    return set(expected_levels(source))


def expected_levels(source: str) -> dict[tuple[int, str], str]:
    """``error`` or ``low`` for each marked (line, code)."""
    expected: dict[tuple[int, str], str] = {}
    for number, line in enumerate(source.splitlines(), 1):
        match = MARKER.search(line)
        if match:
            for code in re.split(r"\s*,\s*", match.group("codes")):
                expected[(number, code)] = match.group("level")
    return expected


def fixture_precision(source: str) -> Optional[tuple[str, ...]]:
    match = PRECISION.search(source)
    return tuple(match.group("dtypes").split(",")) if match else None


def rule_fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("NAN*/**/*.py"))
