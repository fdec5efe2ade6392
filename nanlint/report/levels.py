"""One severity per code, shared by the SARIF, GitHub and editor (LSP) outputs.

A default rule is an ``error``: it is on by default because its hazard is measured
and its pattern is specific. A preview rule is a ``warning``: opt-in, heuristic.
The engine's ``NAN000`` (file not linted) and ``NAN999`` (nanlint bug) are errors.
"""
from __future__ import annotations

from ..registry import BY_CODE

ERROR, WARNING = "error", "warning"


def level(code: str) -> str:
    rule = BY_CODE.get(code)
    return WARNING if rule is not None and rule.preview else ERROR
