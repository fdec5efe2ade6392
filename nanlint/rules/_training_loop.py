"""Events of a hand-written training loop, collected per function during the walk.

Shared by NAN601 (missing clipping) and NAN602 (clipping before unscale): both
read the order of ``backward()``, clipping, ``unscale_`` and optimizer
``step()`` calls inside one function body (or the module body of a script).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from ..context import FileContext
from ..names import dotted_name
from .base import Rule

_OPTIMIZER_NAME = re.compile(r"opt|optim", re.IGNORECASE)
_NOT_OPTIMIZER = re.compile(r"sched|lr_|warmup|ema|swa", re.IGNORECASE)
_OPTIMIZER_CLASSES = frozenset({
    "SGD", "Adam", "AdamW", "Adamax", "Adagrad", "Adadelta", "RMSprop", "Rprop", "NAdam", "RAdam", "SparseAdam",
    "LBFGS", "ASGD", "Adafactor", "Lion", "Muon", "Lamb", "LAMB", "FusedAdam", "AdamW8bit", "Adam8bit",
})
TORCH_CLIPS = frozenset({"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_grads_with_norm_"})


@dataclass
class Event:
    kind: str  # "backward" | "step" | "clip" | "unscale"
    node: cst.Call
    order: int
    scaled: bool = False  # backward of ``scaler.scale(loss)``
    torch_clip: bool = False  # torch.nn.utils clipping (does not unscale by itself)


def classify(call: cst.Call, ctx: FileContext) -> Optional[Event]:
    func = call.func
    if isinstance(func, cst.Attribute):
        attr = func.attr.value
        receiver = func.value
    elif isinstance(func, cst.Name):
        attr = func.value
        receiver = None
    else:
        return None
    if "clip" in attr.lower():
        qualified = ctx.imports.qualify(func) or ""
        torch_clip = attr in TORCH_CLIPS and (
            qualified.startswith("torch.") or (receiver is not None and (dotted_name(receiver) or "").endswith("utils"))
        )
        return Event("clip", call, ctx.order, torch_clip=torch_clip)
    if attr == "unscale_":
        return Event("unscale", call, ctx.order)
    if attr in ("backward", "manual_backward"):
        if receiver is not None and _is_optimizer(receiver, ctx):
            return None
        scaled = (
            isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute)
            and receiver.func.attr.value == "scale"
        )
        return Event("backward", call, ctx.order, scaled=scaled)
    if attr == "step" and receiver is not None:
        receiver_name = dotted_name(receiver) or ""
        if "scaler" in receiver_name.lower() and call.args:
            return Event("step", call, ctx.order)
        if not call.args and _is_optimizer(receiver, ctx):
            return Event("step", call, ctx.order)
    return None


def _is_optimizer(receiver: cst.BaseExpression, ctx: FileContext) -> bool:
    name = dotted_name(receiver)
    if name is None:
        return False
    last = name.split(".")[-1]
    if _NOT_OPTIMIZER.search(last):
        return False
    value, _ = ctx.facts.resolve(receiver, ctx.at())
    if isinstance(value, cst.Call):
        constructor = dotted_name(value.func) or ""
        if constructor.split(".")[-1] in _OPTIMIZER_CLASSES or ".optim." in f".{ctx.imports.qualify(value.func) or ''}.":
            return True
    return bool(_OPTIMIZER_NAME.search(last))


class LoopRule(Rule):
    """Base of the training-loop rules: collects events per function, checks each function on leaving it."""

    def __init__(self, ctx: FileContext) -> None:
        super().__init__(ctx)
        self._events: dict[int, list[Event]] = {}

    def visit_Call(self, node: cst.Call) -> None:
        event = classify(node, self.ctx)
        if event is not None:
            owner = self.ctx.function() or self.ctx.module
            self._events.setdefault(id(owner), []).append(event)

    def _leave_owner(self, node: cst.CSTNode) -> None:
        events = self._events.pop(id(node), None)
        if events:
            self.check(events, node)

    leave_FunctionDef = _leave_owner
    leave_Module = _leave_owner

    def check(self, events: list[Event], owner: cst.CSTNode) -> None:
        raise NotImplementedError
