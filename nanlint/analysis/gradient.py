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

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional

import libcst as cst

from ..names import last_name
from . import kinds
from .ops import GRAPH_CUTS as _DETACHING
from .summary import GRAD_OFF, GRAD_ON, OPTIMIZER_BASES

if TYPE_CHECKING:
    from ..context import FileContext
    from ..facts import At


@dataclass(frozen=True)
class Gradient:
    flows: bool
    reason: str = ""  # why no gradient flows, for messages
    # where one may flow: why this is code that training differentiates ("" when nothing shows it)
    evidence: str = ""
    # the value reaches no output either: only comparisons and ranking indices use it (:mod:`.uses`)
    inert: bool = False
    # no gradient, but the code is an optimizer's: a forward NaN here is written into the weights
    updates_weights: bool = False


FLOWS = Gradient(True, evidence="assumed")


def gradient_at(ctx: "FileContext", values: Iterable[cst.BaseExpression] = ()) -> Gradient:
    """Whether a gradient can flow at the walk's current position through ``values``, and whether the value
    computed there reaches anything but comparisons (:func:`nanlint.analysis.uses.only_compared`)."""
    from .uses import only_compared

    found = _gradient_at(ctx, values)
    if only_compared(ctx):
        return Gradient(False, "its value reaches only comparisons and ranking indices in this function",
                        found.evidence, inert=True)
    return found


def _gradient_at(ctx: "FileContext", values: Iterable[cst.BaseExpression]) -> Gradient:
    mode = grad_mode(ctx)
    if mode is not None:
        return Gradient(False, mode, updates_weights=optimizer_code(ctx))
    detached = detached_result(ctx)
    if detached is not None:
        return Gradient(False, f"its result is detached at once (`.{detached}()`)")
    converted = converted_result(ctx)
    if converted is not None:
        return Gradient(False, f"its result becomes a Python or numpy number (`{converted}(...)`)")
    at = ctx.at()
    values = list(values)
    if values and all(not carries_gradient(ctx, value, at) for value in values):
        return Gradient(False, "its operand carries no gradient (constants, integers, numpy or detached values)")
    return Gradient(True, evidence=evidence(ctx, values, at) or "")


# parameters that by name hold what a model computes (a gradient reaches them in training)
# (not ``pred_cond`` / ``noise_pred``: a diffusion model's prediction is mostly combined at inference, and a
# training loss on it calls a loss function, which is evidence of its own)
_MODEL_OUTPUT = re.compile(r"^(pred|prediction|predictions|y_pred|y_hat|yhat|logits?|outputs?|out|"
                           r"\w*_logits|embeddings?|\w*_embeddings?|recon\w*|x_hat|hidden_states?)$")
# code that by name computes a metric (``_ergas_compute``, ``accuracy``, ``class MeanIoU(Metric)``, a
# ``metrics/`` package): its NaN is a reported number, not a weight, and no training differentiates it
_METRIC = re.compile(r"(?i)metric|accuracy|precision|recall|f1|fbeta|iou|jaccard|dice|auroc|auc|_score$|^score|"
                     r"_compute$|_update$|psnr|ssim|evaluat")
_METRIC_PATH = re.compile(r"(?i)(^|/)[^/]*(metric|accuracy|evaluat)[^/]*(/|\.py$)")


def metric_code(ctx: "FileContext") -> str:
    """Why the walk's current position computes a metric, or "": autograd is off, an enclosing function or
    class is named like a metric (or derives from one), or the module lives in a metrics package."""
    mode = grad_mode(ctx)
    if mode is not None:
        return mode
    for ancestor in reversed(ctx.stack):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)) and "loss" in ancestor.name.value.lower():
            return ""  # ``dice_loss``, ``GIoULoss``: a loss, trained through
        if isinstance(ancestor, cst.ClassDef) and any(last_name(b.value) == "Module" for b in ancestor.bases):
            if any(_METRIC.search(last_name(b.value)) for b in ancestor.bases):
                return f"`{ancestor.name.value}` is a metric class"
            return ""  # ``class SoftDice(nn.Module)``: a layer or a loss, trained through whatever it is called
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)) and _METRIC.search(ancestor.name.value):
            return f"`{ancestor.name.value}` computes a metric"
        if isinstance(ancestor, cst.ClassDef) and any(_METRIC.search(last_name(b.value)) for b in ancestor.bases):
            return f"`{ancestor.name.value}` is a metric class"
    if ctx.path and _METRIC_PATH.search(ctx.path.replace("\\", "/")):
        return f"`{ctx.path}` is a metrics module"
    return ""
_LOSS_CALL = re.compile(r"(?i)loss|criterion")


def evidence(ctx: "FileContext", values: Iterable[cst.BaseExpression] = (), at: "Optional[At]" = None
             ) -> Optional[str]:
    """Why the walk's current position is differentiable code that training reaches, or None (a metric, a
    solver, a detector's post-processing). Evidence is either the code's place (a model's or a loss's
    method, a function they call, a training script: :meth:`ModuleSummary.gradient_evidence`) or what
    ``values`` are made of (a loss's output, a parameter named like a model's output). A gradient-only
    hazard without evidence is reported at low confidence."""
    trains = ctx.summary.training_line()
    if trains is not None:
        return f"the module runs `backward()` (line {trains})"
    if metric_code(ctx):
        return None
    placed = _placed(ctx, ctx.enclosing_def())
    if placed is not None:
        return placed
    if at is not None:
        for value in values:
            made_of = _made_of(ctx, value, at)
            if made_of is not None:
                return made_of
    return None


def _made_of(ctx: "FileContext", value: cst.BaseExpression, at: "At") -> Optional[str]:
    """A loss call or a model-output parameter that ``value`` is computed from (a few assignments back)."""
    from ..singular import follow

    stack: list[tuple[cst.CSTNode, "At", int]] = [(value, at, 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, cst.Call):
            called = last_name(node)
            if _LOSS_CALL.search(called):
                return f"it is computed from a loss (`{called}(...)`)"
        if isinstance(node, cst.Name):
            binding = ctx.facts.binding(node, where)
            if binding is not None and binding.is_parameter:
                if _MODEL_OUTPUT.match(node.value):
                    return f"`{node.value}` is named like a model's output"
                continue
            if depth < 4:
                followed, there = follow(node, ctx, where)
                if followed is not node:
                    stack.append((followed, there, depth + 1))
                elif binding is not None and binding.index is not None and binding.value is not None:
                    # ``nearest, _ = d2.min(dim=1)``: made of what it unpacks
                    stack.append((binding.value, type(where)(binding.scope, binding.order), depth + 1))
            continue
        if isinstance(node, cst.Attribute):
            stack.append((node.value, where, depth))
            continue
        if isinstance(node, cst.Arg):
            stack.append((node.value, where, depth))
            continue
        stack.extend((child, where, depth) for child in node.children)
    return None


def _placed(ctx: "FileContext", function: Optional[cst.FunctionDef]) -> Optional[str]:
    if function is None:
        return ctx.summary.gradient_evidence(None)
    return ctx.summary.gradient_evidence(function.name.value, method_owner(ctx, function))


def method_owner(ctx: "FileContext", function: cst.FunctionDef) -> Optional[str]:
    """The class whose body defines ``function`` (on the walk's stack), None for a plain or nested def."""
    index = max(i for i, node in enumerate(ctx.stack) if node is function)
    for node in reversed(ctx.stack[:index]):
        if isinstance(node, (cst.ClassDef, cst.FunctionDef)):
            return node.name.value if isinstance(node, cst.ClassDef) else None
    return None


# base-class suffixes of data preprocessing (Hugging Face feature extractors, image processors, tokenizers)
_PREPROCESSING = ("FeatureExtractor", "ImageProcessor", "ImageProcessorFast", "Processor", "ProcessorMixin",
                  "Tokenizer", "TokenizerFast", "FeatureExtractionMixin", "ImageProcessingMixin")


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


def converted_result(ctx: "FileContext") -> Optional[str]:
    """``math.acos(torch.dot(a, b) / torch.norm(a))``, ``float(...)``, ``np.sqrt(...)``: the expression being
    visited is (inside) an argument of a call that turns it into a Python or numpy number, which no gradient
    crosses."""
    for node in reversed(ctx.stack[:-1]):
        if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.Lambda)):
            return None
        if not isinstance(node, cst.Call) or not isinstance(node.func, (cst.Name, cst.Attribute)):
            continue
        if isinstance(node.func, cst.Name) and node.func.value in ("float", "int") \
                and ctx.facts.binding(node.func, ctx.at()) is None:
            return node.func.value
        qualified = ctx.imports.qualify(node.func)
        if qualified is not None and qualified.split(".")[0] in ("math", "numpy"):
            return qualified
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
            bases = {last_name(arg.value) for arg in node.bases}
            if bases & OPTIMIZER_BASES or any(b.endswith("Scheduler") for b in bases):
                return "in an optimizer or scheduler class, which works on `.grad` tensors outside autograd"
            if any(b.endswith("GenerationMixin") for b in bases) or last_name(node.name).endswith("GenerationMixin"):
                return "in generation code (`GenerationMixin.generate` runs under `torch.no_grad()`)"
            if any(b.endswith(_PREPROCESSING) for b in bases):
                return "in a preprocessing class (feature extractor, image processor, tokenizer): no model is " \
                       "trained through it"
            break
    function = ctx.enclosing_def()
    if function is not None and ctx.summary.optimizer_helper(function.name.value):
        return f"`{function.name.value}` is only called from an optimizer's methods (on `.grad` tensors, without " \
               "autograd)"
    return None


def optimizer_code(ctx: "FileContext") -> bool:
    """The walk is in a class deriving from an optimizer (``class LARS(Optimizer)``), or in a function only its
    methods call: its ``step`` works without autograd, and what it computes becomes the weights."""
    function = ctx.enclosing_def()
    if function is not None and function.name.value == "step" and "param_groups" in ctx.function_source():
        return True  # a wrapper's ``step`` over ``param_groups`` (SimCLR's LARS): an optimizer in all but name
    for node in ctx.stack:
        if isinstance(node, cst.ClassDef):
            return ctx.summary.optimizer_class(node.name.value)
    return function is not None and ctx.summary.optimizer_helper(function.name.value)


def _mode_of(ctx: "FileContext", expr: cst.BaseExpression) -> Optional[str]:
    """``"on"``, a reason autograd is off, or None, for a decorator or a ``with`` item."""
    name = last_name(expr)
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
