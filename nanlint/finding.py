"""The one record every part of nanlint shares: a finding at a source span."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Edit:
    """Replace the text between two 1-based (line, column) positions; columns count characters."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "content": self.content,
        }


@dataclass(frozen=True)
class Fix:
    applicability: str  # "safe" | "unsafe"
    message: str
    edits: tuple[Edit, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "applicability": self.applicability,
            "message": self.message,
            "edits": [e.to_json() for e in self.edits],
        }


CONFIDENCES = ("high", "medium", "low")  # most to least certain
DEFAULT_CONFIDENCE = "medium"  # the lowest confidence shown unless `--confidence` / `confidence` says otherwise


def at_least(confidence: str, lowest: str) -> bool:
    """Is ``confidence`` at or above ``lowest`` (both among CONFIDENCES)?"""
    return CONFIDENCES.index(confidence) <= CONFIDENCES.index(lowest)


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    message: str
    path: str
    line: int  # 1-based
    column: int  # 1-based, in characters
    end_line: int
    end_column: int
    fix: Optional[Fix] = None
    # Not serialised: facts the verifier and fixer may use.
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # How ordinary the input that triggers the hazard is (nanlint.analysis): "high" (an ordinary trigger
    # where a gradient flows), "medium" (a plausible edge case), "low" (only a degenerate trigger).
    confidence: str = "high"

    @property
    def cell(self) -> Optional[int]:
        """The 1-based code cell of a notebook finding (its line and column are inside that cell), else None."""
        cell = self.extra.get("cell")
        return cell if isinstance(cell, int) else None

    def location(self) -> str:
        """``path:line:col``, or ``nb.ipynb:cell 3:12:5`` in a notebook."""
        cell = f"cell {self.cell}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.line}:{self.column}"

    def sort_key(self) -> tuple[str, int, int, int, str]:
        return (self.path, self.cell or 0, self.line, self.column, self.code)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "fix": self.fix.to_json() if self.fix else None,
            "confidence": self.confidence,
            "cell": self.cell,
        }
