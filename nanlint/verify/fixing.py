"""nanlint's own fix for one finding, applied in memory (no torch, nothing written).

The fix engine (``nanlint.fixes.fix_source``) is used when it exists: it applies
the rule's fixes, re-parses and re-lints, and refuses a fix that breaks the file.
Without it, the finding's own edits (``Finding.fix``, filled by the engine from
the rule's ``FixSpec``) are applied directly. No fix -> None (``fix_verified``
is then null).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..engine import LintRequest
from ..finding import Finding
from ..rules import BY_CODE
from .source import SourceFile

#: (source file, finding, the file's lint request) -> fixed text, or None
Fixer = Callable[[SourceFile, Finding, LintRequest], Optional[str]]


def _offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(text) for text in lines[: line - 1]) + column - 1


def apply_edits(text: str, finding: Finding) -> Optional[str]:
    if finding.fix is None or not finding.fix.edits:
        return None
    lines = text.splitlines(keepends=True) or [""]
    edits = sorted(finding.fix.edits, key=lambda e: (e.line, e.column), reverse=True)
    out = text
    for edit in edits:
        start = _offset(lines, edit.line, edit.column)
        end = _offset(lines, edit.end_line, edit.end_column)
        out = out[:start] + edit.content + out[end:]
    return out


def _same_finding(item: Any, finding: Finding) -> bool:
    code = getattr(item, "code", None)
    line = getattr(item, "line", None)
    if code is None and isinstance(item, (tuple, list)) and item:
        code = item[0]
        line = item[1] if len(item) > 1 else None
    if code is None and isinstance(item, str):
        code = item
    return code == finding.code and (line is None or line == finding.line)


def nanlint_fix(source: SourceFile, finding: Finding, request: LintRequest) -> Optional[str]:
    """The text of ``source`` with nanlint's fix for ``finding`` applied, or None when there is none.

    The fix is the one ``nanlint check --fix`` writes: the file's precision and rule options (``fix-eps``,
    ``max-grad-norm``) from ``request``, only the finding's rule enabled."""
    try:
        from ..fixes import fix_source  # type: ignore[attr-defined]
    except ImportError:
        fix_source = None
    if fix_source is not None and finding.code in BY_CODE:
        only = LintRequest((BY_CODE[finding.code],), request.precision, request.options)
        try:
            outcome = fix_source(source.display, source.text, only, unsafe=True)
        except Exception:  # the fix engine refusing a file must not stop verification
            outcome = None
        if outcome is not None:
            fixed = getattr(outcome, "source", None)
            applied = getattr(outcome, "applied", None)
            resolved = getattr(outcome, "resolved", None) or []
            if isinstance(fixed, str) and fixed != source.text:
                if applied is None or not isinstance(applied, (list, tuple, set)) \
                        or any(_same_finding(item, finding) for item in [*applied, *resolved]):
                    return fixed
            return None
    return apply_edits(source.text, finding)
