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
    top: Optional[cst.CSTNode] = None  # the top-level statement holding ``node`` (an item of the module body)


# Evidence that a file's tensors can be float16 (DESIGN.md §3 "Declared precision").
FP16_EVIDENCE = re.compile(  # literal-first alternatives (no optional leading group): 5x faster, same matches
    r"torch\.float16|torch\.half\b|\.half\(\)|dtype\s*=\s*['\"]?(?:float16|half)|GradScaler|"
    r"torch\.cuda\.amp\.autocast\(\s*\)|torch\.amp\.autocast\(\s*\)|cuda\.amp\.autocast\(\s*\)|amp\.autocast\(\s*\)|"
    r"autocast\(\s*(?:device_type\s*=\s*)?['\"]cuda['\"]\s*(?:,\s*enabled\s*=[^,()]*)?\)|"
    r"fp16\s*=\s*True|precision\s*=\s*['\"]?16|mixed_precision\s*=\s*['\"]fp16['\"]"
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
        self._matches: dict[int, tuple[cst.Call, int, Optional[TorchCall]]] = {}

    # -- for rules ------------------------------------------------------
    def at(self) -> At:
        return At(self.scope, self.order)

    def match(self, call: cst.Call) -> Optional[TorchCall]:
        """``match_call`` for the rules; every rule visiting a call asks for it, so it is computed once per
        call and import state."""
        cached = self._matches.get(id(call))
        if cached is not None and cached[0] is call and cached[1] == self.imports.version:
            return cached[2]
        found = match_call(call, self.imports)
        self._matches[id(call)] = (call, self.imports.version, found)
        return found

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
        without a dtype (which defaults to float16), Accelerate's
        ``mixed_precision="fp16"``. :mod:`nanlint.precision` tells these kinds
        of evidence apart (float16 tensors vs. autocast).
        """
        if self._declared_precision is not None:
            return "config: precision includes float16" if "float16" in self._declared_precision else None
        match = FP16_EVIDENCE.search(self.source)
        if match is None:
            return None
        line = self.source.count("\n", 0, match.start()) + 1
        return f"`{match.group(0)}` on line {line}"

    def in_no_grad(self) -> bool:
        """Inside ``with torch.no_grad():`` / ``inference_mode`` or a function decorated with them.

        Gradient-only hazards (an infinite derivative with a finite value) cannot
        happen there: no graph is recorded.
        """
        for node in reversed(self.stack):
            if isinstance(node, cst.With):
                if any(self._disables_grad(item.item) for item in node.items):
                    return True
            elif isinstance(node, cst.FunctionDef):
                if any(self._disables_grad(d.decorator) for d in node.decorators):
                    return True
                return False  # a nested function may run later, outside the caller's context
        return False

    def _disables_grad(self, expr: cst.BaseExpression) -> bool:
        call = expr if isinstance(expr, cst.Call) else None
        target = call.func if call is not None else expr
        qualified = self.imports.qualify(target) or ""
        name = qualified.rsplit(".", 1)[-1]
        if not qualified.startswith("torch.") or name not in ("no_grad", "inference_mode", "set_grad_enabled"):
            return False
        if name == "set_grad_enabled":
            return call is not None and len(call.args) >= 1 and isinstance(call.args[0].value, cst.Name) \
                and call.args[0].value.value == "False"
        if name == "inference_mode" and call is not None and call.args:
            mode = call.args[0].value
            return not (isinstance(mode, cst.Name) and mode.value == "False")
        return True

    def report(self, rule: "Rule", node: cst.CSTNode, message: str, extra: dict[str, Any]) -> None:
        statement = self.statements[-1] if self.statements else None
        top = self.stack[1] if len(self.stack) > 1 and isinstance(self.stack[0], cst.Module) else None
        self.findings.append(RawFinding(type(rule), node, message, statement, extra, top))
