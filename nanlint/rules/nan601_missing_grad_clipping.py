import libcst as cst

from ..fixspec import UNSAFE
from ..patterns import code
from ._training_loop import Event, LoopRule, clip_fix
from ._screens import Screen, may_hold_backward
from .base import SOMETIMES, Witness


class MissingGradClipping(LoopRule):
    """
    ## What it does
    Flags an optimizer `step()` in a hand-written training loop when the
    `backward()` before it is not followed by gradient clipping:
    `torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`,
    `accelerator.clip_grad_norm_`, `fabric.clip_gradients`, or any helper whose
    name says it clips. Recognises `loss.backward()`,
    `scaler.scale(loss).backward()`, `accelerator.backward(loss)`, and
    `optimizer.step()` / `scaler.step(optimizer)`. A training step split across
    methods counts: a call of a function of the module that runs `backward()`
    itself (a PPO trainer's `self.ppo_step(batch)`) is the backward before the
    step, and one that also clips is a clip.

    Silent where a framework owns the loop and clips for you: Lightning
    `training_step` code (`Trainer(gradient_clip_val=...)`), Hugging Face
    `Trainer` (`max_grad_norm`), DeepSpeed engines (`engine.backward(loss)`;
    `engine.step()`, clipping set in the DeepSpeed config).

    Low confidence (not shown by default) where the optimizer is built over a
    literal list of tensors (`torch.optim.SGD([x_in], lr=...)`): it updates an
    input or a latent being optimised at inference (pix2pix-zero's guidance
    step, an adversarial example), not a model's weights.

    ## Why is this bad?
    One bad batch makes a gradient spike; without clipping, a single SGD/Adam
    step moves the weights by that spike, the next forward pass overflows and
    the loss is Inf, then NaN (docs/probe.md §5.3: a deep stack's loss goes from
    1.8e19 to inf). Clipping bounds the step. It does not repair gradients that
    are already non-finite — `clip_grad_norm_` turns Inf into NaN — so it belongs
    with a finite-loss check, but it is the standard guard against the spike
    that causes them.

    ## Example
    ```python
    loss.backward()
    optimizer.step()
    ```

    ## Use instead
    ```python
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    ```
    With a `GradScaler`, call `scaler.unscale_(optimizer)` before clipping
    (see NAN602).

    ## Fix
    Inserts `torch.nn.utils.clip_grad_norm_(<params>, max_norm=1.0)` on the line
    before the step (so that with gradient accumulation it clips the summed
    gradient once, right before it is applied); `max_norm` comes from the
    `max-grad-norm` option. `<params>` is read from the optimizer's
    construction: `torch.optim.AdamW(model.parameters(), ...)` gives
    `model.parameters()` (a generator the optimizer consumed is rebuilt, a list
    is reused by name); param groups (a list of dicts, which `clip_grad_norm_`
    does not accept) give `[p for g in optimizer.param_groups for p in g["params"]]`.
    Under a `GradScaler` (`scaler.scale(loss).backward()` ... `scaler.step(opt)`),
    `scaler.unscale_(opt)` is inserted first so that the clip sees real
    gradients. No fix when the optimizer's construction is not visible in the
    file or is not a known optimizer class, or when a framework owns the
    backward (`accelerator.backward(loss)`: use its own clipping): the finding
    says why. `import torch` is added only when no import names torch.

    ## Fix safety
    Clipping changes the update of every step whose gradient norm exceeds
    `max_norm`; unsafe fix.
    """

    code = "NAN601"
    name = "missing-grad-clipping"
    summary = "optimizer step after backward() with no gradient clipping"
    rows = "§5.3"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    # a call of backward / manual_backward, or an optimizer step: backward() may run in a helper the step's
    # definition calls (a PPO ``self.ppo_step(batch)``), which the module summary (whole file) knows
    screen = Screen(r"backward(?<!def backward)\s*\(|\.\s*step\s*\(")

    file_condition = staticmethod(may_hold_backward)
    _LOOP = (
        "opt = torch.optim.SGD(model.parameters(), lr=1.0)\n"
        "for step in range(4):\n"
        "    opt.zero_grad()\n"
        "    loss = (model(x) ** 2).mean() * (spike if step == 0 else 1.0)\n"
        "    loss.backward()\n"
        "{clip}"
        "    opt.step()\n"
        "y = (model(x) ** 2).mean()\n"
    )
    witnesses = (
        Witness(
            setup="torch.manual_seed(0); model = torch.nn.Linear(4, 4).to(dtype); "
                  "x = torch.ones(8, 4, dtype=dtype); spike = torch.finfo(dtype).max ** 0.5",
            hazard=_LOOP.format(clip=""),
            fixed=_LOOP.format(clip="    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"),
            hazard_dtypes=("float32", "bfloat16", "float16"),
        ),
    )

    def check(self, events: list[Event], owner: cst.CSTNode) -> None:
        if isinstance(owner, cst.FunctionDef) and owner.name.value in ("training_step", "configure_gradient_clipping"):
            return
        last_backward = None
        clipped = False
        unscaled = False
        for event in events:
            if event.kind == "backward":
                last_backward, clipped, unscaled = event, False, False
            elif event.kind == "clip":
                clipped = True
            elif event.kind == "unscale":
                unscaled = True
            elif event.kind == "step" and last_backward is not None:
                if not clipped:
                    tensors = self._optimized_tensors(event)
                    self.report(
                        event.node,
                        "optimizer step after `backward()` with no gradient clipping in between; a gradient "
                        "spike becomes an Inf/NaN weight: call `torch.nn.utils.clip_grad_norm_(...)` first"
                        + (f" (the optimizer updates {tensors}, an input or a latent, not a model's weights)"
                           if tensors else ""),
                        confidence="low" if tensors else "high",
                        **clip_fix(self.ctx, last_backward, event, unscaled).extra(),
                    )
                last_backward = None

    def _optimized_tensors(self, step: Event) -> str:
        """``opt = torch.optim.SGD([x_in], lr=...)``: an optimizer built over a literal list of tensors (a
        latent, an input image being optimised at inference), not over ``model.parameters()`` -- ``"`[x_in]`"``
        for the message, "" otherwise."""
        call = step.node
        if step.at is None or not (isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name)):
            return ""
        binding = self.facts.binding(call.func.value, step.at)
        built = binding.value if binding is not None and not binding.is_parameter else None
        if not isinstance(built, cst.Call) or not built.args:
            return ""
        first = built.args[0].value
        if isinstance(first, (cst.List, cst.Tuple)) and first.elements and all(
                isinstance(e.value, cst.Name) for e in first.elements):
            return f"`{code(self.ctx, first)}`"
        return ""
