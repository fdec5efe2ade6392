"""Whether a gradient can flow through an expression: the one policy every rule uses.

No gradient flows

* under ``with torch.no_grad():`` / ``torch.inference_mode()`` /
  ``torch.set_grad_enabled(False)``, or in a function decorated with one
  (``torch.enable_grad()`` inside switches it back on);
* in a function whose only callers in the module run with autograd off (a
  pipeline's helper called from its ``@torch.no_grad()`` ``__call__``);
* in a ``@once_differentiable`` backward, and in the methods of an optimizer or
  scheduler class (they work on ``.grad`` tensors outside autograd);
* through values that cannot carry one: Python numbers and numpy (``math``,
  ``x.shape``), integer and boolean tensors, ``.detach()`` / ``.item()``, and
  tensors built only from constants (``arange``, ``linspace``...).

A gradient-only hazard (an infinite derivative at a finite value: ``sqrt`` at 0,
the ``where`` trap) is not reported where no gradient flows; a forward hazard
(``0 / 0``) still is, and its message then claims no gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional

import libcst as cst

from . import kinds
from .summary import GRAD_OFF, GRAD_ON, OPTIMIZER_BASES

if TYPE_CHECKING:
    from ..context import FileContext
    from ..facts import At


@dataclass(frozen=True)
class Gradient:
    flows: bool
    reason: str = ""  # why no gradient flows, for messages


FLOWS = Gradient(True)


def gradient_at(ctx: "FileContext", values: Iterable[cst.BaseExpression] = ()) -> Gradient:
    """Whether a gradient can flow at the walk's current position through ``values``."""
    mode = grad_mode(ctx)
    if mode is not None:
        return Gradient(False, mode)
    detached = detached_result(ctx)
    if detached is not None:
        return Gradient(False, f"its result is detached at once (`.{detached}()`)")
    at = ctx.at()
    values = list(values)
    if values and all(not carries_gradient(ctx, value, at) for value in values):
        return Gradient(False, "its operand carries no gradient (constants, integers, numpy or detached values)")
    return FLOWS


# base-class suffixes of data preprocessing (Hugging Face feature extractors, image processors, tokenizers)
_PREPROCESSING = ("FeatureExtractor", "ImageProcessor", "ImageProcessorFast", "Processor", "ProcessorMixin",
                  "Tokenizer", "TokenizerFast", "FeatureExtractionMixin", "ImageProcessingMixin")
_DETACHING = frozenset({"detach", "item", "tolist", "numpy", "detach_"})


def detached_result(ctx: "FileContext") -> Optional[str]:
    """``torch.sqrt(x).detach()`` / ``torch.sqrt(m).item()``: the node being visited is the receiver of a
    method that cuts the graph (through shape-only methods), so no gradient reaches it."""
    stack = ctx.stack
    index = len(stack) - 1
    while index >= 2:
        node, attribute, call = stack[index], stack[index - 1], stack[index - 2]
        if not (isinstance(attribute, cst.Attribute) and attribute.value is node and isinstance(call, cst.Call)
                and call.func is attribute):
            return None
        if attribute.attr.value in _DETACHING:
            return attribute.attr.value
        if attribute.attr.value not in ("cpu", "float", "view", "reshape", "squeeze", "flatten", "mean", "sum"):
            return None
        index -= 2
    return None


def grad_mode(ctx: "FileContext") -> Optional[str]:
    """Why autograd is off at the walk's current position, or None when it may be on."""
    for node in reversed(ctx.stack):
        if isinstance(node, cst.With):
            for item in node.items:
                mode = _mode_of(ctx, item.item)
                if mode is not None:
                    return None if mode == "on" else mode
        elif isinstance(node, (cst.FunctionDef, cst.Lambda)):
            if isinstance(node, cst.FunctionDef):
                for decorator in node.decorators:
                    mode = _mode_of(ctx, decorator.decorator)
                    if mode is not None:
                        return None if mode == "on" else mode
                reason = ctx.summary.no_grad_only(node.name.value)
                if reason is not None:
                    return reason
            break  # a function runs when it is called, not where it is defined
    for node in ctx.stack:
        if isinstance(node, cst.ClassDef):
            bases = {_last(arg.value) for arg in node.bases}
            if bases & OPTIMIZER_BASES or any(b.endswith("Scheduler") for b in bases):
                return "in an optimizer or scheduler class, which works on `.grad` tensors outside autograd"
            if any(b.endswith(_PREPROCESSING) for b in bases):
                return "in a preprocessing class (feature extractor, image processor, tokenizer): no model is " \
                       "trained through it"
            break
    if any(region.kind == "class" and {"Optimizer", "LRScheduler"} & set(region.bases)
           for region in ctx.summary.regions):
        return "in a file that defines an optimizer (its helpers work on `.grad` tensors outside autograd)"
    return None


def _last(expr: cst.BaseExpression) -> str:
    if isinstance(expr, cst.Call):
        expr = expr.func
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    if isinstance(expr, cst.Name):
        return expr.value
    return ""


def _mode_of(ctx: "FileContext", expr: cst.BaseExpression) -> Optional[str]:
    """``"on"``, a reason autograd is off, or None, for a decorator or a ``with`` item."""
    name = _last(expr)
    call = expr if isinstance(expr, cst.Call) else None
    if name in GRAD_OFF:
        if name == "inference_mode" and call is not None and call.args:
            mode = call.args[0].value
            if isinstance(mode, cst.Name) and mode.value == "False":
                return None
        return f"under `torch.{name}()`"
    if name == "set_grad_enabled" and call is not None and call.args:
        mode = call.args[0].value
        if isinstance(mode, cst.Name):
            return "under `torch.set_grad_enabled(False)`" if mode.value == "False" else (
                "on" if mode.value == "True" else None)
        return None
    if name in GRAD_ON:
        return "on"
    if name == "once_differentiable":
        return "in a `@once_differentiable` backward"
    return None


def carries_gradient(ctx: "FileContext", expr: cst.BaseExpression, at: "At") -> bool:
    """False when ``expr`` visibly cannot carry a gradient (its kind, or constants and detached values)."""
    from ..singular import no_grad_value

    if kinds.kind(ctx.facts, expr, at) in kinds.GRADIENT_FREE:
        return False
    return not no_grad_value(expr, ctx, at)
