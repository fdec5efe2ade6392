"""Torch name resolution: which ``torch`` function or tensor method a call is.

A cheap alternative to libcst's ``QualifiedNameProvider``: an alias table built
from the module's own import statements (``import torch as th``,
``from torch import sqrt``, ``import torch.nn.functional as F``,
``from torch.nn import functional as F``), plus method forms on any receiver
(``x.sqrt()``). Measured in docs/architecture.md §2: scope + qualified-name metadata cost
~8x the parse; this table costs one pass over the import statements.

Every torch call is described by an *op key*: the qualified name with the
``torch.`` prefix dropped and ``nn.functional.`` shortened to ``F.``
(``torch.sqrt`` -> ``sqrt``, ``torch.linalg.vector_norm`` -> ``linalg.vector_norm``,
``torch.nn.functional.mse_loss`` -> ``F.mse_loss``). A method call ``x.sqrt()``
has the key ``sqrt`` with ``x`` as its operand, the same as ``torch.sqrt(x)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import libcst as cst

from .analysis.ops import FOREIGN_MODULE_ROOTS


def dotted_name(node: cst.BaseExpression) -> Optional[str]:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def last_name(expr: cst.BaseExpression) -> str:
    """The last name of a callee or a dotted name: ``F.softmax(x)`` / ``F.softmax`` -> ``softmax``, ``f(x)`` ->
    ``f``; "" for anything else (a subscript, a call of a call)."""
    if isinstance(expr, cst.Call):
        expr = expr.func
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    if isinstance(expr, cst.Name):
        return expr.value
    return ""


def _import_module_name(node: cst.BaseExpression) -> str:
    name = dotted_name(node)
    return name or ""


def op_key(qualified: str) -> Optional[str]:
    """``torch.nn.functional.mse_loss`` -> ``F.mse_loss``; non-torch -> None."""
    if qualified == "torch":
        return None
    if not qualified.startswith("torch."):
        return None
    key = qualified[len("torch."):]
    if key.startswith("nn.functional."):
        key = "F." + key[len("nn.functional."):]
    elif key.startswith("functional."):  # torch.functional.norm is torch.norm
        key = key[len("functional."):]
    return key


@dataclass
class ImportTable:
    """Local name -> fully qualified name, from a module's import statements."""

    aliases: dict[str, str] = field(default_factory=dict)
    version: int = 0  # bumped by every import statement read: what a cached resolution depends on

    def add_import(self, node: cst.Import) -> None:
        self.version += 1
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            full = _import_module_name(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.aliases[alias.asname.name.value] = full
            else:
                root = full.split(".")[0]
                self.aliases[root] = root

    def add_import_from(self, node: cst.ImportFrom) -> None:
        self.version += 1
        if node.relative or node.module is None:
            return
        module = _import_module_name(node.module)
        if isinstance(node.names, cst.ImportStar):
            if module.split(".")[0] == "torch":
                self.aliases.setdefault("*" + module, module)
            return
        for alias in node.names:
            name = _import_module_name(alias.name)
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.aliases[local] = f"{module}.{name}"

    def qualify(self, node: cst.BaseExpression) -> Optional[str]:
        """Fully qualified name of a Name/Attribute chain rooted at an import."""
        name = dotted_name(node)
        if name is None:
            return None
        root, _, rest = name.partition(".")
        full = self.aliases.get(root)
        if full is None:
            return None
        return f"{full}.{rest}" if rest else full

    def is_module(self, node: cst.BaseExpression) -> bool:
        """True when the expression names an imported module (torch, F, np, math...)."""
        qualified = self.qualify(node)
        if qualified is not None:
            return True
        name = dotted_name(node)
        return name is not None and name.split(".")[0] in FOREIGN_MODULE_ROOTS


@dataclass(frozen=True)
class TorchCall:
    """A call understood as a torch op: ``torch.sqrt(x)``, ``x.sqrt()``, ``F.mse_loss(p, t)``.

    ``operand`` is the tensor the op applies to: the receiver of a method call, or
    the first positional argument of a function call. ``args`` are the remaining
    arguments (positional ones first, then keywords), so ``x.clamp(min=0)`` and
    ``torch.clamp(x, min=0)`` look the same.
    """

    key: str
    operand: Optional[cst.BaseExpression]
    args: Sequence[cst.Arg]
    node: cst.Call
    is_method: bool

    def positional(self, index: int) -> Optional[cst.BaseExpression]:
        """The index-th positional argument after the operand."""
        positional = [a for a in self.args if a.keyword is None and not a.star]
        return positional[index].value if index < len(positional) else None

    def keyword(self, name: str) -> Optional[cst.BaseExpression]:
        for arg in self.args:
            if arg.keyword is not None and arg.keyword.value == name:
                return arg.value
        return None

    def argument(self, name: str, index: int) -> Optional[cst.BaseExpression]:
        """A parameter passed either by keyword or at a positional index (after the operand)."""
        value = self.keyword(name)
        return value if value is not None else self.positional(index)


def builtin_name(call: cst.Call, imports: ImportTable) -> Optional[str]:
    """``max`` for ``max(a, b)`` when ``max`` is not rebound by an import."""
    if isinstance(call.func, cst.Name) and call.func.value not in imports.aliases:
        return call.func.value
    return None


def match_call(call: cst.Call, imports: ImportTable) -> Optional[TorchCall]:
    """Describe ``call`` as a torch op, or None when it is not one (math, numpy, user code)."""
    func = call.func
    args = list(call.args)
    if isinstance(func, cst.Attribute):
        receiver = func.value
        if imports.is_module(receiver):
            qualified = imports.qualify(func)
            key = op_key(qualified) if qualified else None
            if key is None:
                return None
            return _function_form(key, args, call)
        # Method form on any receiver: x.sqrt(), self.fc(x).norm(dim=1).
        return TorchCall(func.attr.value, receiver, args, call, True)
    if isinstance(func, cst.Name):
        qualified = imports.qualify(func)
        if qualified is None:
            return None
        key = op_key(qualified)
        if key is None:
            return None
        return _function_form(key, args, call)
    return None


def _function_form(key: str, args: list[cst.Arg], call: cst.Call) -> TorchCall:
    operand = None
    rest = args
    for i, arg in enumerate(args):
        if arg.keyword is None and not arg.star:
            operand = arg.value
            rest = args[:i] + args[i + 1:]
            break
    else:
        for i, arg in enumerate(args):  # torch.sqrt(input=x)
            if arg.keyword is not None and arg.keyword.value in ("input", "self", "x"):
                operand = arg.value
                rest = args[:i] + args[i + 1:]
                break
    return TorchCall(key, operand, rest, call, False)
