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
import re
from dataclasses import dataclass, field
from typing import Optional

from .ops import GRADIENT_FREE_RESULTS as _INDEX_OPS, KEEPS_GRADIENT_FREE as _KEEPS_GRADIENT_FREE

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
    owner: Optional[str] = None  # the class whose body defines it (a method), else None
    node: Optional[ast.AST] = field(default=None, compare=False, hash=False, repr=False)


# What makes code differentiable: a class deriving from a model, layer or loss (the base's last name), a
# function named like a loss or a forward pass, and a module that runs backward (a training script).
_DIFFERENTIABLE_BASE = re.compile(
    r"Module|Loss|Function|Model|Net|Layer|Block|Criterion|Head|Encoder|Decoder|Attention|Embedding|"
    r"Sequential|Conv|Norm|Transformer|Backbone|MLP|Lightning|Network|Policy|Critic|Actor|Flow|VAE|GAN")
_DIFFERENTIABLE_NAME = re.compile(
    r"loss|criterion|objective|penalt|regulari|training_step|train_step|^_?train|likelihood|elbo|"
    r"kl_div|divergence", re.I)
_TRAINING_CALLS = ("backward", "manual_backward", "zero_grad")


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
    # callee name -> (the call, the function that makes it) for argument provenance (triggers.py); calls in an
    # ``if __name__ == "__main__":`` block are left out: a demo's or a test's inputs (``torch.randn(4, 8)``,
    # constants without ``requires_grad``) say nothing of what training passes
    call_sites: dict[str, list[tuple[ast.Call, Optional[ast.AST]]]] = field(default_factory=dict)
    references: dict[str, list[int]] = field(default_factory=dict)
    # spans of string literals and comparisons: ((line, col), (end_line, end_col)), 1-based lines, 0-based cols
    strings: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    comparisons: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    # class name -> its bases' last names (every class, nested ones too)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # function name -> how it runs backward itself: "plain" / "scaled" (``scaler.scale(loss).backward()``) /
    # "clipped" (it also clips): a training step split across helper methods (a PPO ``ppo_step``)
    backward_helpers: dict[str, str] = field(default_factory=dict)
    # class name -> its class-level numeric defaults (``eps: float = 0.0`` in a dataclass config)
    class_fields: dict[str, dict[str, float]] = field(default_factory=dict)
    # attribute names and string keys written anywhere outside ``self`` (``cfg["eps"] = 1e-5``,
    # ``config.eps = 1e-5``): a config literal that is written later is not the value read
    stored_keys: set[str] = field(default_factory=set)
    _region_starts: list[int] = field(default_factory=list)
    _no_grad_only: dict[str, Optional[str]] = field(default_factory=dict)
    _evidence: dict[str, Optional[str]] = field(default_factory=dict)
    _gradient_free_answers: dict[tuple[str, Optional[str], str], bool] = field(default_factory=dict)

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

    def optimizer_class(self, name: Optional[str]) -> bool:
        """``name`` is a class deriving from ``Optimizer`` (directly or through a class of this module)."""
        seen: set[str] = set()
        while name is not None and name not in seen:
            seen.add(name)
            bases = self.classes.get(name, ())
            if "Optimizer" in bases:
                return True
            name = next((b for b in bases if b in self.classes), None)
        return False

    def optimizer_helper(self, name: str, _seen: Optional[set[str]] = None) -> bool:
        """``name`` is a function every call of which, in this module, is made from an optimizer's methods (or
        from another such helper): a trust ratio or an update rule, run on ``.grad`` tensors without autograd."""
        seen = _seen if _seen is not None else set()
        if name in seen:
            return False
        seen.add(name)
        sites = self.calls.get(name, [])
        if not sites or self.references.get(name):
            return False
        for line in sites:
            caller = self.function_at(line)
            if caller is None or caller.name == name:
                return False
            if not (self.optimizer_class(caller.owner) or caller.owner is None and self.optimizer_helper(
                    caller.name, seen)):
                return False
        return True

    def gradient_evidence(self, function: Optional[str], owner: Optional[str] = None) -> Optional[str]:
        """Why code in ``function`` (a method of class ``owner``; None: module level) is differentiable code
        that training reaches, or None when nothing shows it.

        Evidence: the module runs ``backward()`` (a training script or notebook); the function is named like a
        loss or a training step; it is a method of a model, layer or loss class; or a function of the module
        that is so calls it. A metric, a geometry solver, a detector's post-processing or a ``forward`` of a
        class that is no module (a diffusers guider) shows none.
        """
        trains = self.training_line()
        if trains is not None:
            return f"the module runs `backward()` (line {trains})"
        if function is None:
            return None
        for candidate in self.functions:
            if candidate.name == function and candidate.owner == owner:
                return self._function_evidence(candidate, set(), root=True)
        return self._function_evidence(Function(function, 0, 0, owner), set(), root=True)

    def training_line(self) -> Optional[int]:
        for name in _TRAINING_CALLS:
            if self.calls.get(name):
                return self.calls[name][0]
        return None

    def _function_evidence(self, function: Function, seen: set[str], root: bool = False) -> Optional[str]:
        key = f"{function.owner}.{function.name}"
        if key in self._evidence:
            return self._evidence[key]
        if key in seen:
            return None
        seen.add(key)
        result: Optional[str] = None
        if _DIFFERENTIABLE_NAME.search(function.name):
            result = f"`{function.name}` is named like a loss or a training step"
        elif function.owner is not None and self.differentiable_class(function.owner):
            result = f"`{function.name}` is a method of `{function.owner}`, a model, layer or loss class"
        else:
            for call_line in self.calls.get(function.name, []):
                caller = self.function_at(call_line)
                if caller is None or caller == function:
                    continue
                reason = self._function_evidence(caller, seen)
                if reason is not None:
                    result = f"`{function.name}` is called from `{caller.name}` (line {call_line})"
                    break
        # evidence is final; its absence only when the search started here (a cycle may have cut it short)
        if result is not None or root:
            self._evidence[key] = result
        return result

    def differentiable_class(self, name: str, _seen: Optional[set[str]] = None) -> bool:
        """A class deriving (directly or through classes of this module) from a model, layer or loss."""
        seen = _seen if _seen is not None else set()
        if name in seen:
            return False
        seen.add(name)
        for base in self.classes.get(name, ()):
            if base in self.classes:
                if self.differentiable_class(base, seen):
                    return True
            elif _DIFFERENTIABLE_BASE.search(base):
                return True
        return False

    def gradient_free_parameter(self, function: str, owner: Optional[str], name: str,
                                _seen: Optional[set[tuple[str, str]]] = None) -> bool:
        """Every call of ``function`` in the module passes, as parameter ``name``, a value no gradient can
        reach: indices (``torch.where(m)``, ``nonzero``, ``argmax``), constructors (``arange``, ``zeros``),
        integers and shapes, detached values, or what another function of the module returns only such
        values for (``junctions = prob_to_junctions(prob)``) -- followed through callers' parameters."""
        key = (function, owner, name)
        if key in self._gradient_free_answers:
            return self._gradient_free_answers[key]
        if _seen is None:  # a root question: its answer is final (a nested one may be cut short by a cycle)
            self._gradient_free_answers[key] = result = self.gradient_free_parameter(function, owner, name, set())
            return result
        seen = _seen
        if (function, name) in seen:
            return False
        seen.add((function, name))
        definition = next((f for f in self.functions if f.name == function and f.owner == owner), None)
        if definition is None or not isinstance(definition.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return False
        arguments = definition.node.args
        passed = self.arguments_passed(function, [a.arg for a in (*arguments.posonlyargs, *arguments.args)],
                                       {a.arg for a in arguments.kwonlyargs}, name)
        if not passed:
            return False
        return all(argument is not None and self._gradient_free(argument, caller, call.lineno, 0, seen)
                   for argument, caller, call in passed)

    def arguments_passed(self, function: str, params: list[str], keyword_only: set[str], name: str
                         ) -> Optional[list[tuple[Optional[ast.AST], Optional[ast.AST], ast.Call]]]:
        """What each call of ``function`` in the module passes as its parameter ``name`` (``params``: the
        positional ones, ``self`` first for a method), with the function making the call; the argument is None
        where a call does not pass it visibly (a default, ``*args``). None when ``name`` is no parameter."""
        if name not in params and name not in keyword_only:
            return None
        bound = bool(params) and params[0] in ("self", "cls")
        return [(_argument_of(call, params, name, bound and isinstance(call.func, ast.Attribute)), caller, call)
                for call, caller in self.call_sites.get(function, ())]

    def _gradient_free(self, node: ast.AST, caller: Optional[ast.AST], line: int, depth: int,
                       seen: set[tuple[str, str]]) -> bool:
        if depth > 16:
            return False
        d = depth + 1
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Compare):
            return True
        if isinstance(node, ast.Name):
            value = last_assignment(caller, node.id, line)
            if value is not None:
                return self._gradient_free(value, caller, getattr(value, "lineno", line), d, seen)
            if isinstance(caller, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.id in {
                    a.arg for a in (*caller.args.posonlyargs, *caller.args.args, *caller.args.kwonlyargs)}:
                owner = next((f.owner for f in self.functions if f.node is caller), None)
                return self.gradient_free_parameter(caller.name, owner, node.id, seen)
            return False
        if isinstance(node, ast.Attribute):
            return node.attr in ("shape", "ndim", "device", "dtype")
        if isinstance(node, ast.Subscript):
            return self._gradient_free(node.value, caller, line, d, seen)
        if isinstance(node, ast.UnaryOp):
            return self._gradient_free(node.operand, caller, line, d, seen)
        if isinstance(node, ast.BinOp):
            return self._gradient_free(node.left, caller, line, d, seen) and self._gradient_free(
                node.right, caller, line, d, seen)
        if isinstance(node, (ast.Tuple, ast.List)):
            return bool(node.elts) and all(self._gradient_free(e, caller, line, d, seen) for e in node.elts)
        if isinstance(node, ast.Call):
            if any(k.arg == "requires_grad" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                   for k in node.keywords):
                return False  # ``torch.zeros(3, requires_grad=True)``: a leaf autograd differentiates
            func = node.func
            last = _last_name(func)
            if last in _INDEX_OPS or last == "where" and len(node.args) == 1:
                return True
            if isinstance(func, ast.Attribute) and last in _KEEPS_GRADIENT_FREE:
                receiver_free = self._gradient_free(func.value, caller, line, d, seen)
                if not (isinstance(func.value, ast.Name) and func.value.id == "torch"):
                    return receiver_free
                return bool(node.args) and all(self._gradient_free(a, caller, line, d, seen) for a in node.args)
            if isinstance(func, ast.Name):
                for function in self.functions:
                    if function.name == func.id and function.owner is None and function.node is not None:
                        returns = [r.value for r in ast.walk(function.node)
                                   if isinstance(r, ast.Return) and r.value is not None]
                        return bool(returns) and all(
                            self._gradient_free(r, function.node, r.lineno, d, seen) for r in returns)
            return False
        return False

    def in_string(self, line: int, col: int) -> bool:
        return _inside(self.strings, line, col)

    def in_comparison(self, line: int, col: int) -> bool:
        return _inside(self.comparisons, line, col)


def _number(node: Optional[ast.AST]) -> Optional[float]:
    """A numeric literal (``0.0``, ``-1e-5``), not a bool."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if inner is not None else None
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _argument_of(call: ast.Call, params: list[str], name: str, bound: bool) -> Optional[ast.AST]:
    """What ``call`` passes as parameter ``name`` of a function with positional ``params`` (``bound``: a
    method called through an attribute, ``self`` not passed), or None."""
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    if any(isinstance(a, ast.Starred) for a in call.args) or name not in params:
        return None
    index = params.index(name) - (1 if bound else 0)
    return call.args[index] if 0 <= index < len(call.args) else None


def last_assignment(function: Optional[ast.AST], name: str, line: int, unpack: bool = True) -> Optional[ast.AST]:
    """The value last assigned to ``name`` in ``function`` before ``line``: plain assignments, and with
    ``unpack`` tuple ones too (a tuple target gives the matching element of a tuple value, else the whole
    value)."""
    if function is None:
        return None
    best: Optional[tuple[int, ast.AST]] = None
    for node in ast.walk(function):
        if not isinstance(node, ast.Assign) or node.lineno >= line:
            continue
        for target in node.targets:
            value: Optional[ast.AST] = None
            if isinstance(target, ast.Name) and target.id == name:
                value = node.value
            elif unpack and isinstance(target, ast.Tuple):
                for index, element in enumerate(target.elts):
                    if isinstance(element, ast.Name) and element.id == name:
                        value = node.value.elts[index] if isinstance(node.value, ast.Tuple) and len(
                            node.value.elts) == len(target.elts) else node.value
            if value is not None and (best is None or node.lineno > best[0]):
                best = (node.lineno, value)
    return best[1] if best is not None else None


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


def _main_test(test: ast.AST) -> bool:
    """``__name__ == "__main__"`` (either side)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = (test.left, test.comparators[0])
    return any(isinstance(a, ast.Name) and a.id == "__name__" for a in sides) and any(
        isinstance(b, ast.Constant) and b.value == "__main__" for b in sides)


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
        self.owner: Optional[str] = None  # the class whose body is being visited
        self.in_main = False  # inside a module-level ``if __name__ == "__main__":``

    def visit_If(self, node: ast.If) -> None:
        if self.function is None and self.owner is None and _main_test(node.test):
            self.in_main = True
            for statement in node.body:
                self.visit(statement)
            self.in_main = False
            for statement in node.orelse:
                self.visit(statement)
            self.visit(node.test)
            return
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.summary.classes.setdefault(node.name, tuple(_last_name(b) for b in node.bases))
        fields = self.summary.class_fields.setdefault(node.name, {})
        for statement in node.body:
            target = statement.target if isinstance(statement, ast.AnnAssign) else \
                statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None
            value = _number(statement.value) if isinstance(statement, (ast.AnnAssign, ast.Assign)) else None
            if isinstance(target, ast.Name) and value is not None:
                fields[target.id] = value
        outer, self.owner = self.owner, node.name
        self.generic_visit(node)
        self.owner = outer

    def _function(self, node: "ast.FunctionDef | ast.AsyncFunctionDef") -> None:
        end = node.end_lineno or node.lineno
        mode = None
        for decorator in node.decorator_list:
            mode = _mode_of(decorator) or mode
        self.summary.functions.append(Function(node.name, node.lineno, end, self.owner, node))
        # a function body inherits its caller's mode, not the mode around its definition
        self.summary.modes.append((node.lineno, end, mode or "inherit"))
        outer, self.function = self.function, node
        owner, self.owner = self.owner, None  # a nested def is no method
        self.generic_visit(node)
        self.function, self.owner = outer, owner

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
        if isinstance(self.function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            helper = self.function.name
            if name in ("backward", "manual_backward") and self.summary.backward_helpers.get(helper) != "clipped":
                receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
                scaled = isinstance(receiver, ast.Call) and _last_name(receiver.func) == "scale"
                self.summary.backward_helpers[helper] = "scaled" if scaled else "plain"
            elif "clip" in name.lower() and helper in self.summary.backward_helpers:
                self.summary.backward_helpers[helper] = "clipped"
        if name:
            self.summary.calls.setdefault(name, []).append(node.lineno)
            if not self.in_main:
                self.summary.call_sites.setdefault(name, []).append((node, self.function))
        for child in ast.iter_child_nodes(node):
            if child is node.func and isinstance(child, (ast.Name, ast.Attribute)):
                if isinstance(child, ast.Attribute):
                    self.visit(child.value)
                continue
            self.visit(child)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Store) and isinstance(node.slice, ast.Constant) and isinstance(
                node.slice.value, str):
            self.summary.stored_keys.add(node.slice.value)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.summary.references.setdefault(node.id, []).append(node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Store) and not (isinstance(node.value, ast.Name) and node.value.id in (
                "self", "cls")):
            self.summary.stored_keys.add(node.attr)
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
