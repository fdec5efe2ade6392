from typing import Optional

import libcst as cst

from ..fixspec import UNSAFE
from ._training_loop import Event, LoopRule, unscale_fix
from ._screens import Screen, may_scale_loss
from .base import SOMETIMES, Witness


class ClipBeforeUnscale(LoopRule):
    """
    ## What it does
    Flags gradient clipping with `torch.nn.utils.clip_grad_norm_` /
    `clip_grad_value_` in a mixed-precision loop that calls
    `scaler.scale(loss).backward()` when no `scaler.unscale_(optimizer)` comes
    between the backward and the clip.

    ## Why is this bad?
    Under a `GradScaler` the gradients are multiplied by the loss scale (65536
    by default, docs/probe.md §3/§5.3). Clipping them before unscaling compares
    the *scaled* norm with `max_norm`: every step is clipped to
    `max_norm / scale`, a update thousands of times too small, and a real spike
    is no longer bounded in the units you chose. The PyTorch AMP recipe unscales
    first.

    ## Example
    ```python
    scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    ```

    ## Use instead
    ```python
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    ```

    ## Fix
    Inserts `scaler.unscale_(optimizer)` on the line before the clip, with the
    scaler of the `scaler.scale(loss).backward()` call and the optimizer of the
    step that follows. An `unscale_` of that optimizer placed after the clip is
    removed (calling `unscale_` twice before a step raises). No fix when no step
    follows in the function or when the clip sits in a loop of its own (the
    inserted `unscale_` would run more than once per step).

    ## Fix safety
    Inserting `unscale_` changes which gradients are clipped; unsafe fix.
    """

    code = "NAN602"
    name = "clip-before-unscale"
    summary = "gradient clipping on scaled gradients (no scaler.unscale_ first)"
    rows = "§3, §5.3"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    # scaler.scale(loss), or a clip: the scaled backward may run in a helper the clip's definition calls
    screen = Screen(r"\.\s*scale\s*\(|clip\w*\s*\(")

    file_condition = staticmethod(may_scale_loss)
    _LOOP = (
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 16)\n"
        "loss = (model(x) ** 2).mean()\n"
        "scaler.scale(loss).backward()\n"
        "{unscale}"
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
        "{late_unscale}"
        "norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])\n"
        "scaler.step(opt)\n"
        "scaler.update()\n"
    )
    witnesses = (
        Witness(
            setup="torch.manual_seed(0); model = torch.nn.Linear(4, 4); x = torch.ones(8, 4)",
            hazard=_LOOP.format(unscale="", late_unscale="scaler.unscale_(opt)\n"),
            fixed=_LOOP.format(unscale="scaler.unscale_(opt)\n", late_unscale=""),
            # the clipped norm of the gradients the optimizer will apply must be max_norm
            check="bad = not (0.99 < float(norm) < 1.01)",
            hazard_dtypes=("float32",),
            fixed_dtypes=("float32",),
        ),
    )

    def check(self, events: list[Event], owner: cst.CSTNode) -> None:
        scaled_backward: Optional[Event] = None
        unscaled = False
        for index, event in enumerate(events):
            if event.kind == "backward":
                scaled_backward, unscaled = (event if event.scaled else None), False
            elif event.kind == "unscale":
                unscaled = True
            elif event.kind == "clip" and event.torch_clip and scaled_backward is not None and not unscaled:
                self.report(
                    event.node,
                    "gradient clipping after `scaler.scale(loss).backward()` without `scaler.unscale_(optimizer)` "
                    "clips the scaled gradients (by the loss scale, e.g. 65536x); unscale first",
                    **unscale_fix(self.ctx, scaled_backward, event, events[index + 1:]).extra(),
                )
            elif event.kind == "step":
                scaled_backward = None
