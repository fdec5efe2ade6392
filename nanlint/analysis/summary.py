"""Whole-module facts read with the stdlib parser: grad mode by line, callers, classes, strings.

The engine's second stage may hand libcst only the definitions that can hold a
finding, but some questions need the whole module: *is this function only ever
called under ``torch.no_grad()``?*, *which class owns this line?*, *is this text
inside a string?* They are answered here from ``ctx.source`` (always the whole
file) with ``ast``, about a tenth of libcst's cost, once per file and only when a
rule asks (a file without a candidate finding never builds it).
"""
from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass, field
from typing import Optional

# Decorators and context managers that switch autograd off (last name of the dotted call).
# Decorators and context managers that switch autograd off or back on (last name of the dotted call);
# gradient.py reads the same names on libcst nodes.
GRAD_OFF = frozenset({"no_grad", "inference_mode"})
GRAD_ON = frozenset({"enable_grad"})
# Methods that PyTorch or Python call for the module (never "only called under no_grad" by their callers).
_IMPLICIT = frozenset({"forward", "__call__", "__init__", "backward", "step", "training_step", "main", "run"})
OPTIMIZER_BASES = frozenset({"Optimizer", "LRScheduler", "_LRScheduler", "SchedulerMixin", "Sampler"})


@dataclass(frozen=True)
class Function:
    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Region:
    """A top-level statement that defines something: ``def`` or ``class``."""

    name: str
    kind: str  # "class" | "def"
    start: int
    end: int
    bases: tuple[str, ...] = ()


@dataclass
class ModuleSummary:
    regions: list[Region] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    # grad-mode intervals: (start, end, "off: why" | "on" | "inherit"), innermost wins
    modes: list[tuple[int, int, str]] = field(default_factory=list)
    # callee name -> lines of the calls (or of other references) to it
    calls: dict[str, list[int]] = field(default_factory=dict)
    # callee name -> (the call, the function that makes it) for argument provenance (triggers.py)
    call_sites: dict[str, list[tuple[ast.Call, Optional[ast.AST]]]] = field(default_factory=dict)
    references: dict[str, list[int]] = field(default_factory=dict)
    # spans of string literals and comparisons: ((line, col), (end_line, end_col)), 1-based lines, 0-based cols
    strings: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    comparisons: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    _region_starts: list[int] = field(default_factory=list)
    _no_grad_only: dict[str, Optional[str]] = field(default_factory=dict)

    # -- queries ----------------------------------------------------------
    def region_at(self, line: int) -> Optional[Region]:
        index = bisect.bisect_right(self._region_starts, line) - 1
        if index >= 0 and self.regions[index].start <= line <= self.regions[index].end:
            return self.regions[index]
        return None

    def function_at(self, line: int) -> Optional[Function]:
        """The innermost function whose body holds ``line``."""
        best: Optional[Function] = None
        for function in self.functions:
            if function.start <= line <= function.end and (best is None or function.start >= best.start):
                best = function
        return best

    def no_grad_only(self, name: str, _seen: Optional[set[str]] = None) -> Optional[str]:
        """Why ``name`` runs without autograd when every reference to it in the module is a call made with
        autograd off (directly or from functions in the same situation); None otherwise."""
        if name in self._no_grad_only:
            return self._no_grad_only[name]
        seen = _seen if _seen is not None else set()
        if name in seen or name in _IMPLICIT or name.startswith("__") or name.startswith("test"):
            return None
        seen.add(name)
        sites = self.calls.get(name, [])
        result: Optional[str] = None
        if sites and not self.references.get(name):
            for line in sites:
                reason = self._site_off(line, name, seen)
                if reason is None:
                    break
            else:
                result = f"`{name}` is only called with autograd off (line {sites[0]})"
        if _seen is None:
            self._no_grad_only[name] = result
        return result

    def _site_off(self, line: int, callee: str, seen: set[str]) -> Optional[str]:
        """Why a call of ``callee`` on ``line`` runs with autograd off: the innermost ``with`` or decorator
        around it, else its caller's own callers."""
        best: Optional[tuple[int, int, str]] = None
        for interval in self.modes:
            start, end, _ = interval
            if start <= line <= end and (best is None or (start, -end) >= (best[0], -best[1])):
                best = interval
        if best is not None and best[2].startswith("off"):
            return best[2]
        if best is not None and best[2] == "on":
            return None
        caller = self.function_at(line)
        if caller is None or caller.name == callee:
            return None
        return self.no_grad_only(caller.name, seen)

    def in_string(self, line: int, col: int) -> bool:
        return _inside(self.strings, line, col)

    def in_comparison(self, line: int, col: int) -> bool:
        return _inside(self.comparisons, line, col)



def _inside(spans: list[tuple[tuple[int, int], tuple[int, int]]], line: int, col: int) -> bool:
    for start, end in spans:
        if start <= (line, col) < end:
            return True
    return False


def _last_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _mode_of(expr: ast.AST) -> Optional[str]:
    """``off: why`` / ``on`` for a grad-mode decorator or context manager, else None."""
    name = _last_name(expr)
    if name in GRAD_OFF:
        if name == "inference_mode" and isinstance(expr, ast.Call) and expr.args:
            arg = expr.args[0]
            if isinstance(arg, ast.Constant) and arg.value is False:
                return None
        return f"off: under `torch.{name}()`"
    if name == "set_grad_enabled" and isinstance(expr, ast.Call) and expr.args:
        arg = expr.args[0]
        if isinstance(arg, ast.Constant) and arg.value is False:
            return "off: under `torch.set_grad_enabled(False)`"
        if isinstance(arg, ast.Constant) and arg.value is True:
            return "on"
        return None
    if name in GRAD_ON:
        return "on"
    if name == "once_differentiable":
        return "off: in a `@once_differentiable` backward"
    return None


def summarize(source: str, tree: Optional[ast.Module] = None) -> ModuleSummary:
    summary = ModuleSummary()
    if tree is None:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return summary
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            bases = tuple(_last_name(b) for b in node.bases) if isinstance(node, ast.ClassDef) else ()
            region = Region(node.name, "class" if isinstance(node, ast.ClassDef) else "def", start,
                            node.end_lineno or node.lineno, bases)
            summary.regions.append(region)
    summary._region_starts = [r.start for r in summary.regions]
    _Visitor(summary).visit(tree)
    return summary


class _Visitor(ast.NodeVisitor):
    def __init__(self, summary: ModuleSummary) -> None:
        self.summary = summary
        self.function: Optional[ast.AST] = None  # the innermost function being visited

    def _function(self, node: "ast.FunctionDef | ast.AsyncFunctionDef") -> None:
        end = node.end_lineno or node.lineno
        mode = None
        for decorator in node.decorator_list:
            mode = _mode_of(decorator) or mode
        self.summary.functions.append(Function(node.name, node.lineno, end))
        # a function body inherits its caller's mode, not the mode around its definition
        self.summary.modes.append((node.lineno, end, mode or "inherit"))
        outer, self.function = self.function, node
        self.generic_visit(node)
        self.function = outer

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.summary.modes.append((node.lineno, node.end_lineno or node.lineno, "inherit"))
        self.generic_visit(node)

    def _with(self, node: "ast.With | ast.AsyncWith") -> None:
        for item in node.items:
            mode = _mode_of(item.context_expr)
            if mode is not None and node.body:
                self.summary.modes.append((node.body[0].lineno, node.end_lineno or node.lineno, mode))
        self.generic_visit(node)

    visit_With = _with
    visit_AsyncWith = _with

    def visit_Call(self, node: ast.Call) -> None:
        name = _last_name(node.func)
        if name:
            self.summary.calls.setdefault(name, []).append(node.lineno)
            self.summary.call_sites.setdefault(name, []).append((node, self.function))
        for child in ast.iter_child_nodes(node):
            if child is node.func and isinstance(child, (ast.Name, ast.Attribute)):
                if isinstance(child, ast.Attribute):
                    self.visit(child.value)
                continue
            self.visit(child)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.summary.references.setdefault(node.id, []).append(node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            self.summary.references.setdefault(node.attr, []).append(node.lineno)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.end_lineno is not None and node.end_col_offset is not None:
            self.summary.strings.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if node.end_lineno is not None and node.end_col_offset is not None:
            self.summary.strings.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))

    def visit_Compare(self, node: ast.Compare) -> None:
        if node.end_lineno is not None and node.end_col_offset is not None:
            self.summary.comparisons.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))
        self.generic_visit(node)
