"""Per-file state shared by the rules during the engine's single walk."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import libcst as cst

from .analysis.summary import ModuleSummary, summarize
from .fp16_text import FP16_EVIDENCE
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




class FileContext:
    def __init__(self, path: str, source: str, precision: Optional[tuple[str, ...]] = None,
                 options: Optional[dict[str, Any]] = None, tree: Optional[ast.Module] = None) -> None:
        self.path = path
        self.source = source
        self._tree = tree  # the stdlib tree of ``source``, if the caller parsed it (the second stage did)
        self.imports = ImportTable()
        self.facts = Facts(self.imports)
        self.facts.summary_source = lambda: self.summary
        self.options = options or {}
        self._declared_precision = precision
        self.module: Optional[cst.Module] = None
        self.scope: Scope = None  # type: ignore[assignment]  # set by the walker
        self.order = 0
        self.stack: list[cst.CSTNode] = []
        self.statements: list[cst.CSTNode] = []
        self.findings: list[RawFinding] = []
        self._matches: dict[int, tuple[cst.Call, int, Optional[TorchCall]]] = {}
        self._summary: Optional[ModuleSummary] = None
        self._function_sources: dict[int, tuple[cst.FunctionDef, str]] = {}
        # every read of each name in a function, with its ancestors (``analysis.uses``), built once per function
        self.reads_by_function: dict[int, tuple[cst.FunctionDef, dict[str, list[list[cst.CSTNode]]]]] = {}

    @property
    def summary(self) -> ModuleSummary:
        """Whole-module facts from the stdlib parser (grad mode of callers, classes, strings), built on demand."""
        if self._summary is None:
            self._summary = summarize(self.source, self._tree)
        return self._summary

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

    def enclosing_def(self) -> Optional[cst.FunctionDef]:
        """The innermost ``def`` the walk is in (a lambda does not count), or None at module level."""
        for node in reversed(self.stack):
            if isinstance(node, cst.FunctionDef):
                return node
        return None

    def function_source(self) -> str:
        """The code of :meth:`enclosing_def` ("" at module level), rendered once per definition: guards that
        sit on other lines of the function (a later ``isfinite`` repair, a ``p > 0`` test) are searched in it."""
        function = self.enclosing_def()
        if function is None or self.module is None:
            return ""
        cached = self._function_sources.get(id(function))
        if cached is None or cached[0] is not function:
            cached = (function, self.module.code_for_node(function))
            self._function_sources[id(function)] = cached
        return cached[1]

    def fp16_evidence(self) -> Optional[str]:
        """Why nanlint believes this file runs in float16, or None.

        ``precision`` in the config decides when given; otherwise the file's own
        text: ``torch.float16``, ``.half()``, a ``GradScaler``, a CUDA autocast
        without a dtype (which defaults to float16), Accelerate's
        ``mixed_precision="fp16"``, where it applies to the walk's current
        position (:mod:`nanlint.analysis.dtype`: code of the same class or
        function, not strings, dtype tests or another class). :mod:`nanlint.precision` tells these kinds
        of evidence apart (float16 tensors vs. autocast).
        """
        if self._declared_precision is not None:
            return "config: precision includes float16" if "float16" in self._declared_precision else None
        from .analysis.dtype import applies

        for match in FP16_EVIDENCE.finditer(self.source):
            if applies(self, match.start()):
                line = self.source.count("\n", 0, match.start()) + 1
                return f"`{match.group(0)}` on line {line}"
        return None

    def in_no_grad(self) -> bool:
        """No gradient flows at the walk's position (:func:`nanlint.analysis.gradient.grad_mode`: a
        ``no_grad``/``inference_mode`` block or decorator, a function only called with autograd off, a
        ``@once_differentiable`` backward, an optimizer class). The one policy every rule uses."""
        from .analysis.gradient import grad_mode

        return grad_mode(self) is not None

    def report(self, rule: "Rule", node: cst.CSTNode, message: str, extra: dict[str, Any]) -> None:
        statement = self.statements[-1] if self.statements else None
        top = self.stack[1] if len(self.stack) > 1 and isinstance(self.stack[0], cst.Module) else None
        self.findings.append(RawFinding(type(rule), node, message, statement, extra, top))
