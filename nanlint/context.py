"""Per-file state shared by the rules during the engine's single walk."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import libcst as cst

from .facts import At, Facts
from .names import ImportTable, TorchCall, match_call
from .scope import Scope

if TYPE_CHECKING:
    from .rules.base import Rule


@dataclass
class RawFinding:
    rule: "type[Rule]"
    node: cst.CSTNode
    message: str
    statement: Optional[cst.CSTNode]
    extra: dict[str, Any]


# Evidence that a file's tensors can be float16 (DESIGN.md §3 "Declared precision").
_FP16_EVIDENCE = re.compile(
    r"torch\.float16|torch\.half\b|\.half\(\)|dtype\s*=\s*['\"]?(?:float16|half)|GradScaler|"
    r"(?:torch\.)?(?:cuda\.)?amp\.autocast\(\s*\)|autocast\(\s*(?:device_type\s*=\s*)?['\"]cuda['\"]\s*\)|"
    r"fp16\s*=\s*True|precision\s*=\s*['\"]?16"
)


class FileContext:
    def __init__(self, path: str, source: str, precision: Optional[tuple[str, ...]] = None,
                 options: Optional[dict[str, Any]] = None) -> None:
        self.path = path
        self.source = source
        self.imports = ImportTable()
        self.facts = Facts(self.imports)
        self.options = options or {}
        self._declared_precision = precision
        self.module: Optional[cst.Module] = None
        self.scope: Scope = None  # type: ignore[assignment]  # set by the walker
        self.order = 0
        self.stack: list[cst.CSTNode] = []
        self.statements: list[cst.CSTNode] = []
        self.findings: list[RawFinding] = []

    # -- for rules ------------------------------------------------------
    def at(self) -> At:
        return At(self.scope, self.order)

    def match(self, call: cst.Call) -> Optional[TorchCall]:
        return match_call(call, self.imports)

    def parent(self, depth: int = 1) -> Optional[cst.CSTNode]:
        """The node ``depth`` levels above the one being visited."""
        index = len(self.stack) - 1 - depth
        return self.stack[index] if index >= 0 else None

    def function(self) -> Optional[cst.CSTNode]:
        scope: Optional[Scope] = self.scope
        while scope is not None and scope.kind != "function":
            scope = scope.parent
        return scope.node if scope is not None else None

    def fp16_evidence(self) -> Optional[str]:
        """Why nanlint believes this file runs in float16, or None.

        ``precision`` in the config decides when given; otherwise the file's own
        text: ``torch.float16``, ``.half()``, a ``GradScaler``, a CUDA autocast
        without a dtype (which defaults to float16).
        """
        if self._declared_precision is not None:
            return "config: precision includes float16" if "float16" in self._declared_precision else None
        match = _FP16_EVIDENCE.search(self.source)
        if match is None:
            return None
        line = self.source.count("\n", 0, match.start()) + 1
        return f"`{match.group(0)}` on line {line}"

    def report(self, rule: "Rule", node: cst.CSTNode, message: str, extra: dict[str, Any]) -> None:
        statement = self.statements[-1] if self.statements else None
        self.findings.append(RawFinding(type(rule), node, message, statement, extra))
