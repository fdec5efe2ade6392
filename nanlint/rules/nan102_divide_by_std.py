import re

import libcst as cst

from ..facts import STD_KINDS
from ..analysis.guards import branch_guarded
from ..patterns import code, division
from ._guards import Built, clamp_divisor, clamp_inside_root, divisor_root
from ._screens import DIVISION, DIVISION_RENAMED, ROOT, Screen
from ..fixspec import UNSAFE
from .base import Rule, SOMETIMES, Witness


class DivideByStd(Rule):
    """
    ## What it does
    Flags standardisation by a standard deviation with no eps:
    `(x - x.mean()) / x.std()`, `adv / adv.std(dim=0)`, `(x - mu) / torch.sqrt(var)`,
    `/ torch.std_mean(x)[0]`, through local variables too. Also min-max scaling by
    a range, the other spread that is 0 for a constant input:
    `(x - x.min()) / (x.max() - x.min())`, `(x - lo) / (hi - lo)` with
    `hi = x.amax(dim=(2, 3), keepdim=True)`, `x.max(1)[0] - x.min(1)[0]`.

    ## Why is this bad?
    The standard deviation is exactly 0 for a constant input: a batch of equal
    rewards (advantage normalisation in RL), a constant feature, a zero-padded
    frame. Then `(x - mean) / std` is `0 / 0`: NaN in the forward pass, in every
    dtype (docs/probe.md rows 4 and 6). A range is 0 for the same inputs (a blank
    image, a silent clip): min-max scaling is then `0 / 0` too (row 60). `x.std()` on its own is safe — PyTorch
    masks its gradient at 0 (row 6) — only the division is the hazard. Dividing
    by `torch.sqrt(var)` is worse still: the square root's gradient is infinite at
    0 (row 4), so the same line is also reported as NAN201.

    ## Example
    ```python
    advantages = (returns - returns.mean()) / returns.std()
    ```

    ## Use instead
    ```python
    advantages = (returns - returns.mean()) / returns.std().clamp_min(torch.finfo(returns.dtype).eps)
    x_hat = (x - mu) / torch.sqrt(var.clamp_min(torch.finfo(var.dtype).eps))
    ```
    A literal eps must survive the dtype: `+ 1e-8` is 0 in float16 and even
    `1e-5` leaves an infinite gradient there (1/eps > 65504).

    ## Fix
    A standard deviation is clamped after it is computed,
    `/ x.std().clamp_min(torch.finfo(x.dtype).eps)` (PyTorch masks the gradient
    of `std` at 0, row 6); a square root of a variance is clamped inside the
    root, `torch.sqrt(var.clamp_min(torch.finfo(var.dtype).eps))`, because a clamp
    after it would multiply the root's infinite gradient by 0 (row 4). Both are
    finite, forward and gradient, at a constant input in float32, bfloat16 and
    float16 (docs/numerics-extra.md). One limit remains in float16: the gradient
    with respect to the mean is the sum of the upstream gradients divided by eps,
    so a loss that *sums* 64 or more standardised values of a constant input
    still overflows (a mean-reduced loss does not). Standardise in float32 when
    that matters. `fix-eps` sets a literal instead (refused below 1.53e-5 in
    float16 for a clamped std). No fix when nothing shows the divisor is a
    tensor (a numpy array's `.std()` in a file that imports numpy, with no
    `dim=`/`keepdim=` to tell them apart) or when it is a Python number (`.item()`).

    ## Fix safety
    The fix clamps the deviation at `torch.finfo(x.dtype).eps`, read from a
    tensor the value analysis knows is floating (otherwise no fix, and
    `--show-fixes` says why). An unbiased `std`/`var` also gets `correction=0`:
    the unbiased estimate of a single element is NaN, and `clamp_min` of NaN is
    NaN. The clamp changes the result only where the deviation is below eps and
    `correction=0` scales it by sqrt((n-1)/n); it is an unsafe fix because it
    changes numerics.
    """

    code = "NAN102"
    name = "divide-by-std"
    summary = "standardisation by a standard deviation that can be zero"
    rows = "4, 6, 60"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    screen = Screen(r"""
          std(?<!\wstd)\s*[(] | std(?<!\wstd)\s+as\b | std_mean  # x.std(), torch.std_mean
        | \.min\s*[(] | amin\s*[(] | min(?<!\wmin)\s+as\b  # a range x.max() - x.min(), x.amax(d) - x.amin(d)
        # or a square root (of a variance):
        | """ + ROOT, re.VERBOSE)
    site = DIVISION
    site_anywhere = DIVISION_RENAMED
    root_evidence = True  # ``torch.sqrt(v)`` is a norm or a std only when ``v`` may be a square
    witnesses = (
        Witness(
            setup="x = leaf(torch.full((8,), 3.0, dtype=dtype))",
            hazard="y = (x - x.mean()) / x.std()",
            fixed="y = (x - x.mean()) / (x.std() + 1e-5)",
            fixed_dtypes=("float32", "bfloat16"),
        ),
        Witness(
            setup="x = leaf(torch.full((8,), 3.0, dtype=dtype))",
            hazard="y = (x - x.mean()) / x.std()",
            fixed="y = (x - x.mean()) / x.std().clamp_min(1e-3)",
        ),
        Witness(  # min-max scaling of a constant input (row 60)
            setup="x = leaf(torch.full((8,), 3.0, dtype=dtype))",
            hazard="y = (x - x.min()) / (x.max() - x.min())",
            fixed="y = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-3)",
        ),
        Witness(  # the text the fix writes, at both triggers: a constant input (std 0) and a single element
            setup="x = leaf(torch.full((8,), 3.0, dtype=dtype))",
            hazard="y = (x - x.mean()) / x.std()",
            fixed="y = (x - x.mean()) / x.std(correction=0).clamp_min(torch.finfo(x.dtype).eps)",
        ),
        Witness(
            setup="x = leaf(torch.full((1,), 3.0, dtype=dtype))",
            hazard="y = (x - x.mean()) / x.std()",
            fixed="y = (x - x.mean()) / x.std(correction=0).clamp_min(torch.finfo(x.dtype).eps)",
        ),
        Witness(
            setup="x = leaf(torch.full((2, 8), 3.0, dtype=dtype))",
            hazard="mu = x.mean(-1, keepdim=True); var = x.var(-1, keepdim=True, unbiased=False); "
                   "y = (x - mu) / torch.sqrt(var)",
            fixed="mu = x.mean(-1, keepdim=True); var = x.var(-1, keepdim=True, unbiased=False); "
                  "y = (x - mu) / torch.sqrt(var.clamp_min(torch.finfo(var.dtype).eps))",
        ),
        Witness(
            setup="x = leaf(torch.full((2, 8), 3.0, dtype=dtype))",
            hazard="mu = x.mean(-1, keepdim=True); var = x.var(-1, keepdim=True, unbiased=False); "
                   "y = (x - mu) / torch.sqrt(var)",
            fixed="mu = x.mean(-1, keepdim=True); var = x.var(-1, keepdim=True, unbiased=False); "
                  "y = (x - mu) / torch.sqrt(var + 1e-5)",
        ),
    )

    def _check(self, node: cst.CSTNode) -> None:
        found = division(node, self.ctx)
        if found is None:
            return
        at = self.ctx.at()
        source = self.facts.zero_source(found.divisor, at)
        if source is None or source.kind not in STD_KINDS:
            return
        judged = self.judge(source.node)
        if judged is None or branch_guarded(self.ctx, found.divisor):
            return
        inner = divisor_root(self.ctx, source)
        if inner is not None:
            built = clamp_inside_root(self.ctx, inner, "divide-sqrt", "variance")
        elif source.kind == "square root of a variance":
            built = Built(reason="the square root of the variance could not be located for the fix")
        else:
            built = clamp_divisor(self.ctx, found.divisor, source, at,
                                  "range" if source.kind == "range (max - min)" else "standard deviation")
        advice = "clamp it: `(hi - lo).clamp_min(eps)`" if source.kind == "range (max - min)" else \
            "add an eps: `/ (std + eps)` or `sqrt(var + eps)`"
        self.report(
            node,
            f"division by `{code(self.ctx, found.divisor)}`, {source.described} that is 0 for a constant input, "
            f"here {judged.trigger.text} (forward NaN); {advice}",
            target=found.divisor,
            **judged.extra(),
            **built.extra(),
        )

    visit_BinaryOperation = _check
    visit_AugAssign = _check
    visit_Call = _check
