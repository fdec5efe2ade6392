import re

import libcst as cst

from ._training_loop import Event, LoopRule
from .base import NEVER, Witness

# Anything that looks at non-finite values, or a tool that does it for you.
_CHECKS = (
    r"isfinite|isnan|isinf|nan_to_num|GradScaler|detect_anomaly|error_if_nonfinite|terminate_on_nan|"
    r"check_finite|check_nan|skip_nan|nonfinite|non_finite|found_inf"
)
_CHECKED = re.compile(_CHECKS)
# Lightning and framework hooks own the loop (and offer their own NaN checks).
_FRAMEWORK_OWNERS = frozenset({"training_step", "configure_gradient_clipping", "on_before_optimizer_step",
                               "optimizer_step", "backward"})


class UncheckedNonfiniteLoss(LoopRule):
    """
    ## What it does
    Flags a hand-written training loop (a function, or a script's top level,
    that calls `backward()` and then an optimizer `step()`) in a file that
    never checks for non-finite values: no `torch.isfinite`/`isnan`/`isinf`,
    `math.isfinite`/`isnan`, `np.isnan`, no `GradScaler` (which skips
    non-finite steps), `detect_anomaly`, `clip_grad_norm_(error_if_nonfinite=True)`
    or Lightning's `terminate_on_nan`. Lightning `training_step` code is not
    flagged: the framework owns that loop.

    Preview: nanlint cannot see a check done elsewhere (a callback, a wrapper
    library), so the rule reports a missing safety net, not a proven bug.

    ## Why is this bad?
    One NaN or Inf loss (a bad batch, a zero-length sequence, an overflow) gives
    NaN gradients; `optimizer.step()` writes them into every weight and the run
    is dead from that step on, while the logs keep printing `nan` (numerics.md
    §5.3: one SGD step after an Inf gradient makes every parameter NaN;
    `clip_grad_norm_` does not help, it turns Inf into NaN). A check before the
    step skips the batch and names it.

    ## Example
    ```python
    for batch in loader:
        loss = criterion(model(batch.x), batch.y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    ```

    ## Use instead
    ```python
    for batch in loader:
        loss = criterion(model(batch.x), batch.y)
        if not torch.isfinite(loss):
            print(f"skipping batch: loss is {loss.item()}")
            optimizer.zero_grad()
            continue
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    ```

    ## Fix safety
    No automatic fix: what to do with a bad batch (skip, stop, lower the
    learning rate) is the author's decision.
    """

    code = "NAN603"
    name = "unchecked-nonfinite-loss"
    summary = "training loop that never checks the loss for NaN/Inf"
    rows = "§5.3"
    fix_availability = NEVER
    fix_applicability = ()
    preview = True
    screen = re.compile(r"backward")
    file_facts = _CHECKED  # a check anywhere in the file silences every loop
    _SETUP = ("torch.manual_seed(0); model = torch.nn.Linear(2, 1).to(dtype); "
              "opt = torch.optim.SGD(model.parameters(), lr=0.1); "
              "batches = [torch.ones(4, 2, dtype=dtype), torch.full((4, 2), float('nan'), dtype=dtype), "
              "torch.ones(4, 2, dtype=dtype)]")
    witnesses = (
        Witness(
            setup=_SETUP,
            hazard=(
                "for xb in batches:\n"
                "    opt.zero_grad()\n"
                "    loss = model(xb).pow(2).mean()\n"
                "    loss.backward()\n"
                "    opt.step()\n"
                "y = model(batches[0]).detach()\n"
            ),
            fixed=(
                "for xb in batches:\n"
                "    opt.zero_grad()\n"
                "    loss = model(xb).pow(2).mean()\n"
                "    if not torch.isfinite(loss):\n"
                "        continue\n"
                "    loss.backward()\n"
                "    opt.step()\n"
                "y = model(batches[0]).detach()\n"
            ),
        ),
    )

    def check(self, events: list[Event], owner: cst.CSTNode) -> None:
        if isinstance(owner, cst.FunctionDef) and owner.name.value in _FRAMEWORK_OWNERS:
            return
        if _CHECKED.search(self.ctx.source):
            return
        backward = None
        for event in events:
            if event.kind == "backward" and backward is None:
                backward = event
            elif event.kind == "step" and backward is not None:
                self.report(
                    backward.node,
                    "training loop with no check for a non-finite loss: one NaN/Inf batch writes NaN into every "
                    "weight at `step()`; skip it with `if not torch.isfinite(loss): continue` (or use a GradScaler)",
                )
                return
