import re
from typing import Optional

import libcst as cst

from ..analysis.ops import UNIT_CLAMPS as _CLAMPS
from ..analysis.triggers import BOUNDARY_ACTION, SATURATED_TANH, Trigger
from ..facts import At
from ..patterns import code
from ..precision import SHORT, fmt, half_precisions, rounds_to_unit
from .base import NEVER, Rule, Witness

_ATANH = frozenset({"atanh", "arctanh", "atanh_", "arctanh_"})
# a parameter that by its name holds actions of a bounded action space
_ACTION_NAME = re.compile(r"(?i)^(?:actions?|acts?|batch_actions?|dataset_actions?|\w+_actions?)$")


class AtanhAtUnit(Rule):
    """
    ## What it does
    Flags `torch.atanh(x)` (also `x.atanh()`, `torch.arctanh`) of a value that
    reaches exactly +-1:

    * a tanh output, `torch.atanh(torch.tanh(u))` or through names: tanh rounds to
      exactly +-1 once |u| passes 9.02 in float32 (4.51 in float16, 3.47 in
      bfloat16; docs/probe.md row 61), which a Gaussian policy's pre-tanh sample does;
    * a clamp to +-1 itself (`a.clamp(-1, 1)`), or to a bound that rounds to +-1
      in a half precision the code runs in (`1 - 1e-6` is 1 in float16 and
      bfloat16);
    * a parameter named like actions (`actions`, `act`, `*_actions`): the inverse
      of a squashed Gaussian applied to replayed or dataset actions, which offline
      datasets clip to exactly +-1.

    Silent when the value is clamped one unit inside +-1
    (`a.clamp(-1 + eps, 1 - eps)` with `eps = torch.finfo(a.dtype).eps`).

    ## Why is this bad?
    `atanh(+-1)` is +-inf and its derivative `1 / (1 - x**2)` is infinite there, in
    float32, float16 and bfloat16 (docs/probe.md row 70): the log-probability of a
    boundary action is NaN, and so is the loss that uses it.

    ## Example
    ```python
    def log_prob(normal, actions):
        pre_tanh = torch.atanh(actions)
        return normal.log_prob(pre_tanh) - torch.log(1 - actions.pow(2) + 1e-6)
    ```

    ## Use instead
    ```python
    def log_prob(normal, actions):
        eps = torch.finfo(actions.dtype).eps
        pre_tanh = torch.atanh(actions.clamp(-1 + eps, 1 - eps))
        return normal.log_prob(pre_tanh) - torch.log(1 - actions.pow(2) + 1e-6)
    ```
    A margin of 1e-6 rounds to 1 in float16 and bfloat16; `finfo(dtype).eps` is one
    unit below 1 in every dtype (row 70).

    ## Fix safety
    No automatic fix: the margin depends on the dtype and on how far the actions
    may be from the bound, and it changes the log-probability of every boundary action.
    """

    code = "NAN405"
    name = "atanh-at-unit"
    summary = "atanh of a tanh output, a clamp to +-1 or dataset actions: +-inf at exactly +-1"
    rows = "61, 70"
    fix_availability = NEVER
    fix_applicability = ()
    screen = re.compile(r"a(?:rc)?tanh")
    witnesses = (
        Witness(  # actions clamped onto the bound of the action space (row 70)
            setup="a = leaf(torch.tensor([1.0, -1.0, 0.5], dtype=dtype))",
            hazard="y = torch.atanh(a.clamp(-1.0, 1.0))",
            fixed="eps = torch.finfo(a.dtype).eps; y = torch.atanh(a.clamp(-1 + eps, 1 - eps))",
        ),
        Witness(  # a saturated tanh inverted (row 61)
            setup="u = leaf(torch.full((2,), 10.0, dtype=dtype))",
            hazard="y = torch.atanh(torch.tanh(u))",
            fixed="t = torch.tanh(u); eps = torch.finfo(t.dtype).eps; y = torch.atanh(t.clamp(-1 + eps, 1 - eps))",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.key not in _ATANH or tc.operand is None or not self.facts.is_tensor_method(tc):
            return
        at = self.ctx.at()
        value, where = self.facts.resolve(tc.operand, at)
        found = self._unit(value, where, tc.operand)
        if found is None:
            return
        what, trigger = found
        judged = self.judge(tc.operand, trigger=trigger)
        if judged is None:
            return
        self.report(node, f"`{code(self.ctx, node)}`: {what}; atanh is +-inf there and its derivative infinite "
                          "(NaN in the loss and its gradient); clamp one unit inside +-1: "
                          "`x.clamp(-1 + eps, 1 - eps)` with `eps = torch.finfo(x.dtype).eps`",
                    target=tc.operand, **judged.extra())

    def _unit(self, value: cst.BaseExpression, at: At, written: cst.BaseExpression
              ) -> Optional[tuple[str, Trigger]]:
        """What makes ``value`` exactly +-1 and its trigger, or None."""
        if isinstance(value, cst.Call):
            inner = self.ctx.match(value)
            if inner is None:
                return None
            if self.facts.tanh_of(value, at):
                return (f"`{code(self.ctx, written)}` is a tanh output, exactly +-1 for {SATURATED_TANH.text}",
                        SATURATED_TANH)
            if inner.key in _CLAMPS:
                return self._clamp_bounds(inner, at)
            return None
        if isinstance(value, cst.Name):
            b = self.facts.binding(value, at)
            if b is not None and b.is_parameter and _ACTION_NAME.match(value.value):
                return f"`{value.value}` holds actions, {BOUNDARY_ACTION.text}", BOUNDARY_ACTION
        return None

    def _clamp_bounds(self, clamp, at: At) -> Optional[tuple[str, Trigger]]:
        """A clamp whose bound is +-1, or rounds to +-1 in a half precision the code runs in."""
        bounds = [clamp.argument("min", 0), clamp.argument("max", 1)]
        if clamp.key in ("hardtanh", "F.hardtanh"):
            bounds = [clamp.argument("min_val", 0), clamp.argument("max_val", 1)]
        for bound in bounds:
            number = self.facts.literal(bound, at) if bound is not None else None
            if number is None:
                continue
            if abs(number) >= 1:
                return (f"the clamp bound `{code(self.ctx, bound)}` lets the value reach +-1",
                        Trigger("a value at the clamp's bound", SATURATED_TANH.likelihood))
            for dtype, _ in half_precisions(self.ctx):
                if rounds_to_unit(number, dtype):
                    return (f"the clamp bound `{fmt(number)}` rounds to +-1 in {SHORT[dtype]}",
                            Trigger(f"a value at the clamp's bound ({SHORT[dtype]})", SATURATED_TANH.likelihood))
        return None
