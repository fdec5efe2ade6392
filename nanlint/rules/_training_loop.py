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
from ..facts import At
from ..fixspec import UNSAFE, Delete, FixSpec, InsertBefore, same_meaning, torch_reference
from ..names import dotted_name
from ._guards import Built
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
    # where the call sits, for fixes: the innermost statement, the block holding it, the nearest
    # enclosing loop inside the function (None: none), and the scope/order to resolve names at
    statement: Optional[cst.CSTNode] = None
    block: Optional[cst.CSTNode] = None
    loop: Optional[cst.CSTNode] = None
    at: Optional[At] = None


def classify(call: cst.Call, ctx: FileContext) -> Optional[Event]:
    event = _classify(call, ctx)
    if event is not None:
        event.statement = ctx.statements[-1] if ctx.statements else None
        event.at = ctx.at()
        for index in range(len(ctx.stack) - 1, -1, -1):
            node = ctx.stack[index]
            if event.block is None and node is event.statement and index > 0:
                event.block = ctx.stack[index - 1]
            if isinstance(node, (cst.For, cst.While)) and event.loop is None:
                event.loop = node
            if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                break
    return event


def _classify(call: cst.Call, ctx: FileContext) -> Optional[Event]:
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
        if isinstance(receiver, cst.Name):  # ``scaled = scaler.scale(loss); scaled.backward()``
            receiver, _ = ctx.facts.resolve(receiver, ctx.at())
        scaled = (
            isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute)
            and receiver.func.attr.value == "scale"
        )
        return Event("backward", call, ctx.order, scaled=scaled)
    helper = _backward_helper(attr, receiver, ctx)
    if helper == "clipped":
        return Event("clip", call, ctx.order, torch_clip=True)
    if helper is not None:
        return Event("backward", call, ctx.order, scaled=helper == "scaled")
    if attr == "step" and receiver is not None:
        receiver_name = dotted_name(receiver) or ""
        if "scaler" in receiver_name.lower() and call.args:
            return Event("step", call, ctx.order)
        if not call.args and _is_optimizer(receiver, ctx):
            return Event("step", call, ctx.order)
    return None


def _backward_helper(attr: str, receiver: Optional[cst.BaseExpression], ctx: FileContext) -> Optional[str]:
    """``self.ppo_step(batch)`` / ``train_step(model, batch)``: a call of a function of the module that runs
    ``backward()`` itself (a training step split across helpers) is a backward here -- or a clip, when the
    helper clips after its backward."""
    if receiver is not None and not (isinstance(receiver, cst.Name) and receiver.value in ("self", "cls")):
        return None
    how = ctx.summary.backward_helpers.get(attr)
    enclosing = ctx.enclosing_def()
    if how is None or enclosing is not None and enclosing.name.value == attr:
        return None
    return how


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


# -- fixes ---------------------------------------------------------------------------------
_FRAMEWORK_RECEIVER = re.compile(r"accelerator|fabric|engine|trainer|deepspeed|strategy|runner|^self$", re.IGNORECASE)
_REUSABLE_CALLS = frozenset({"filter", "list", "tuple", "itertools.chain", "chain", "chain.from_iterable",
                             "itertools.chain.from_iterable"})


def _code(ctx: FileContext, node: cst.CSTNode) -> str:
    assert ctx.module is not None
    return ctx.module.code_for_node(node).strip()


def _one_line(ctx: FileContext, node: cst.CSTNode) -> Optional[str]:
    """The node's code on one line, or None when it holds a comment or a string (no safe reflow)."""
    text = _code(ctx, node)
    if "\n" not in text and "\r" not in text:
        return text
    if "#" in text or "'" in text or '"' in text:
        return None
    return " ".join(text.split()).replace("( ", "(").replace("[ ", "[").replace(" )", ")").replace(" ]", "]")


def _framework_backward(event: Event) -> Optional[str]:
    func = event.node.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in ("backward", "manual_backward"):
        return None  # a helper of the module that runs ``loss.backward()`` itself
    receiver = dotted_name(func.value) or ""
    if func.attr.value == "manual_backward":
        return f"`{receiver}.manual_backward(...)` belongs to Lightning: set `gradient_clip_val` or call " \
               "`self.clip_gradients(...)`"
    positional = [a for a in event.node.args if a.keyword is None]
    if positional and receiver and _FRAMEWORK_RECEIVER.search(receiver.split(".")[-1]):
        return f"`{receiver}.backward(...)` belongs to a framework that may scale the gradients: clip with its " \
               f"own API (e.g. `{receiver}.clip_grad_norm_(...)`)"
    return None


def _is_optimizer_class(call: cst.Call, ctx: FileContext) -> bool:
    qualified = ctx.imports.qualify(call.func) or ""
    if qualified.startswith("torch.optim."):
        return True
    name = dotted_name(call.func) or ""
    return name.split(".")[-1] in _OPTIMIZER_CLASSES


def _has_dict(expr: cst.CSTNode) -> bool:
    if isinstance(expr, (cst.Dict, cst.DictComp)):
        return True
    if isinstance(expr, (cst.List, cst.Tuple)):
        return any(_has_dict(e.value) for e in expr.elements)
    if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
        return _has_dict(expr.elt)
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "dict":
        return True
    return False


def _is_list_call(value: cst.BaseExpression) -> bool:
    """``list(...)`` / ``tuple(...)``, or a sum of them (``list(a.parameters()) + list(b.parameters())``)."""
    if isinstance(value, cst.Call):
        return dotted_name(value.func) in ("list", "tuple")
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
        return all(isinstance(side, (cst.List, cst.Tuple, cst.ListComp)) or _is_list_call(side)
                   for side in (value.left, value.right))
    return False


def _reusable_params(ctx: FileContext, expr: cst.BaseExpression, written: At, used: At,
                     depth: int = 0) -> Optional[cst.BaseExpression]:
    """An expression that yields the optimizer's parameters again at ``used``, or None.

    A generator the optimizer already consumed (``params = model.parameters()``)
    is replaced by the expression that made it; a list is reused by name; param
    groups (dicts) and anything unknown give None.
    """
    if depth > 6 or _has_dict(expr):
        return None
    if isinstance(expr, (cst.Name, cst.Attribute)) and dotted_name(expr) is not None:
        value, where = ctx.facts.resolve(expr, written)
        if value is expr:
            return None
        if isinstance(value, (cst.List, cst.Tuple, cst.ListComp)) or _is_list_call(value):
            if _has_dict(value):
                return None
            return expr if same_meaning(expr, written, used) else None
        return _reusable_params(ctx, value, where, used, depth + 1)  # a generator: rebuild it
    if isinstance(expr, cst.Call):
        func = expr.func
        if isinstance(func, cst.Attribute) and func.attr.value == "parameters":
            return expr if same_meaning(expr, written, used) else None
        if dotted_name(func) in _REUSABLE_CALLS and all(
                _reusable_params(ctx, a.value, written, used, depth + 1) is not None or isinstance(a.value, cst.Lambda)
                for a in expr.args):
            return expr if same_meaning(expr, written, used) else None
        return None
    if isinstance(expr, (cst.List, cst.Tuple, cst.ListComp, cst.GeneratorExp)):
        return expr if same_meaning(expr, written, used) else None
    return None


def optimizer_params(ctx: FileContext, optimizer: cst.BaseExpression, at: At) -> tuple[Optional[str], str]:
    """The text of the parameters ``optimizer`` updates, taken from its construction; else (None, why)."""
    name = _code(ctx, optimizer)
    value, written = ctx.facts.resolve(optimizer, at)
    if value is optimizer or not isinstance(value, cst.Call):
        return None, f"cannot see where `{name}` is constructed, so not which parameters it updates"
    if not _is_optimizer_class(value, ctx):
        return None, f"`{name}` comes from `{_code(ctx, value.func)}(...)`, not a known optimizer class"
    params: Optional[cst.BaseExpression] = None
    for arg in value.args:
        if arg.keyword is not None and arg.keyword.value == "params":
            params = arg.value
    if params is None:
        positional = [a for a in value.args if a.keyword is None and not a.star]
        params = positional[0].value if positional else None
    if params is None:
        return None, f"`{name}` is constructed without a visible parameter argument"
    reused = _reusable_params(ctx, params, written, at)
    text = _one_line(ctx, reused) if reused is not None else None
    if text is None:
        # param groups (a list of dicts is not valid input to clip_grad_norm_) or an expression that cannot be
        # re-evaluated here: read the parameters back from the optimizer itself
        text = f'[p for g in {name}.param_groups for p in g["params"]]'
    return text, ""


def _max_norm(ctx: FileContext) -> str:
    return repr(float(ctx.options.get("max-grad-norm", 1.0)))


def clip_fix(ctx: FileContext, backward: Event, step: Event, unscaled: bool) -> Built:
    """NAN601: insert ``clip_grad_norm_`` (after ``scaler.unscale_`` under a GradScaler) right before the step."""
    assert ctx.module is not None and step.at is not None
    if not isinstance(step.statement, cst.SimpleStatementLine):
        return Built(reason="the step is not a statement of its own (e.g. `if ...: opt.step()` on one line)")
    if step.statement is backward.statement:
        return Built(reason="`backward()` and the step share one line")
    framework = _framework_backward(backward)
    if framework:
        return Built(reason=framework)
    func = step.node.func
    assert isinstance(func, cst.Attribute)
    scaler: Optional[str] = None
    if step.node.args:
        scaler = _code(ctx, func.value)
        optimizer = step.node.args[0].value
    else:
        optimizer = func.value
    if backward.scaled and scaler is None:
        return Built(reason="the loss is scaled (`scaler.scale(loss).backward()`) but the optimizer steps "
                              "directly; step through the scaler (`scaler.step(optimizer)`) first")
    if scaler is not None and not backward.scaled:
        return Built(reason="`scaler.step(...)` without `scaler.scale(loss).backward()`: cannot tell whether the "
                              "gradients are scaled")
    params, reason = optimizer_params(ctx, optimizer, step.at)
    if params is None:
        return Built(reason=reason)
    clip, changes = torch_reference(ctx.module, "nn.utils.clip_grad_norm_")
    if clip is None:
        return Built(reason="no place to add `import torch`")
    lines = []
    if scaler is not None and not unscaled:
        lines.append(f"{scaler}.unscale_({_code(ctx, optimizer)})")
    lines.append(f"{clip}({params}, max_norm={_max_norm(ctx)})")
    first = " then ".join(f"`{line}`" for line in lines)
    return Built(FixSpec(
        UNSAFE,
        f"Clip the gradients before the step: insert {first}",
        (InsertBefore(step.statement, "\n".join(lines)),) + changes,
    ))


def unscale_fix(ctx: FileContext, backward: Event, clip: Event, later: list[Event]) -> Built:
    """NAN602: insert ``scaler.unscale_(optimizer)`` before the clip (moving a later one up)."""
    assert ctx.module is not None and clip.at is not None and backward.at is not None
    if not isinstance(clip.statement, cst.SimpleStatementLine) or clip.statement is backward.statement:
        return Built(reason="the clip is not a statement of its own")
    scale_call = backward.node.func.value  # type: ignore[attr-defined]
    scaler_expr = scale_call.func.value if isinstance(scale_call, cst.Call) and isinstance(
        scale_call.func, cst.Attribute) else None
    if scaler_expr is None or not same_meaning(scaler_expr, backward.at, clip.at):
        return Built(reason="cannot name the GradScaler at the clip")
    step = None
    late: list[Event] = []
    for event in later:
        if event.kind == "backward":
            break
        if event.kind == "unscale":
            late.append(event)
        if event.kind == "step":
            step = event
            break
    if step is None or step.at is None:
        return Built(reason="no optimizer step follows the clip in this function, so the optimizer to unscale "
                              "is unknown")
    func = step.node.func
    assert isinstance(func, cst.Attribute)
    optimizer = step.node.args[0].value if step.node.args else func.value
    if not same_meaning(optimizer, step.at, clip.at):
        return Built(reason="the optimizer of the step cannot be named at the clip")
    if clip.loop is not step.loop:
        return Built(reason="the clip and the step sit in different loops; `unscale_` must run once per step")
    scaler = _code(ctx, scaler_expr)
    name = _code(ctx, optimizer)
    changes: list = [InsertBefore(clip.statement, f"{scaler}.unscale_({name})")]
    for event in late:
        target = event.node.args[0].value if event.node.args else None
        if target is None or _code(ctx, target) != name:
            continue
        statement = event.statement
        block = event.block
        siblings = block.body if isinstance(block, (cst.IndentedBlock, cst.Module)) else ()
        if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
                and isinstance(statement.body[0], cst.Expr) and statement.body[0].value is event.node
                and len(siblings) > 1):
            return Built(reason=f"move `{_code(ctx, event.node)}` above the clip (it cannot be removed "
                                  "automatically from where it is)")
        changes.append(Delete(statement))
    moved = " (and remove the later one)" if len(changes) > 1 else ""
    return Built(FixSpec(
        UNSAFE,
        f"Unscale before clipping: insert `{scaler}.unscale_({name})` above the clip{moved}",
        tuple(changes),
    ))
