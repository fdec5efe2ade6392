import re

import libcst as cst

from ..facts import NORM_KINDS, ZeroSource
from ..analysis.guards import branch_guarded, capped_reciprocal
from ..patterns import code, division
from ._guards import Built, clamp_divisor, clamp_inside_root, divisor_root
from ._screens import DIVISION, DIVISION_RENAMED, ROOT, Screen, WithFileCondition, plus_and_square
from ..fixspec import UNSAFE
from .base import Rule, SOMETIMES, Witness

class DivideByNorm(Rule):
    """
    ## What it does
    Flags a division by a vector norm that has no eps: `x / x.norm()`,
    `x / torch.linalg.norm(x, dim=-1, keepdim=True)`, `x / torch.linalg.vector_norm(x)`,
    a hand-written norm `x / torch.sqrt((x ** 2).sum())`, also when the norm was
    stored in a variable first (`n = x.norm(dim=1, keepdim=True)` ... `x / n`),
    and a product of two norms, the denominator of a hand-written cosine
    (`(a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))`: 0 when either vector is).

    Also a division by a sum whose every term vanishes with the same input and
    that holds a square or norm of it and no positive constant:
    `g2 / (2 * g2 + (a * g3).sum())` with `g2 = (g * g).sum()`, `g3 = g ** 3`
    and `g = p.grad` (0 for a zero gradient: a frozen or unused parameter), or
    `x.sum(-1) / (x.pow(2).sum(-1) + (w * x).sum(-1))`. A positive constant
    (`eps + ...`, `1 + x ** 2`), an `exp` term, a clamp at a positive floor, or
    terms built from different inputs (`a ** 2 + b ** 2`) make it silent. Such a
    sum can be negative, so there is no automatic fix: add an eps by hand.

    Where a non-zero number is divided by the norm and a cap takes the result
    (`torch.minimum(ones, c / n)`, `torch.min(0.5 / d)`, `(c / n).clamp(max=1)`),
    `c / 0` is +inf, not NaN, and the cap returns the other side: the forward is
    finite, but the gradient is still NaN (0 * -inf through the cap; measured in
    docs/probe.md section 4). It is then a gradient-only hazard: silent where no
    gradient flows, low without gradient evidence.

    ## Why is this bad?
    A norm is exactly 0 for a zero vector: an all-padding embedding, a dead
    feature row, a zero gradient. `0 / 0` is NaN in the forward pass and the
    gradient is NaN as well, in float32, bfloat16 and float16 alike
    (docs/probe.md row 1; row 3 for the hand-written norm). The norm itself is
    safe: PyTorch masks its gradient at 0 (row 2), so `x.norm()` alone is never
    flagged; only dividing by it is.

    ## Example
    ```python
    direction = x / x.norm(dim=-1, keepdim=True)
    ```

    ## Use instead
    ```python
    direction = x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).eps)
    direction = F.normalize(x, dim=-1)                          # float32 / bfloat16 only
    ```
    `F.normalize`'s default eps (1e-12) underflows in float16 (row 1), and so
    does any literal below about 1.5e-5 (1/eps must stay below 65504): in half
    precision code clamp with at least 1e-4, or with `torch.finfo(x.dtype).eps`
    (2**-10 in float16, 2**-7 in bfloat16, 2**-23 in float32), which is what the fix
    writes.

    ## Fix
    The norm is clamped: `x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).eps)`,
    with the eps read from the normed tensor (under autocast the norm is
    float32 while `x` stays float16; `x`'s eps keeps the gradient finite in
    float16). At a zero vector the result is 0 and the gradient is 1/eps:
    8.4e6, 128 and 1024 in float32, bfloat16 and float16 (docs/numerics-extra.md).
    A hand-written norm gets the clamp inside the root instead,
    `torch.sqrt((x ** 2).sum().clamp_min(torch.finfo(x.dtype).eps))`: a clamp
    after the root would still multiply the root's infinite gradient by 0.
    The project's `fix-eps` replaces the dtype-aware eps by a literal, which
    nanlint refuses where it would not be finite (below 1.53e-5 in float16).
    No fix when no tensor names the dtype (`x / model(x).norm()`: the module's
    output dtype is unknown under autocast) or the divisor is a Python number.

    ## Fix safety
    Adding a clamp changes the result only for vectors whose norm is below eps;
    it is an unsafe fix because it changes numerics.
    The eps is read from a floating tensor (`torch.finfo(x.dtype)`): the
    guarded value itself, a tensor the value analysis knows is floating, or one
    that flows into a guarded float tensor; for an operand of unknown kind (an
    int tensor or a list would make `torch.finfo` raise) there is no fix, and
    `--show-fixes` says why (`fix-eps` sets a literal instead).
    """

    code = "NAN101"
    name = "divide-by-norm"
    summary = "division by a norm that can be zero"
    rows = "1, 3, 39"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    screen = WithFileCondition(Screen(r"""
          norm(?<!\wnorm)\s*[(] | norm(?<!\wnorm)\s+as\b | vector_norm | matrix_norm  # x.norm(), linalg norms
        | dist(?<!\wdist)\s*[(] | dist(?<!\wdist)\s+as\b  # torch.dist
        # or a square root (a hand-written norm):
        | """ + ROOT, re.VERBOSE), plus_and_square)  # or a sum that vanishes with its inputs
    site = DIVISION
    site_anywhere = DIVISION_RENAMED
    root_evidence = True  # ``torch.sqrt(v)`` is a norm or a std only when ``v`` may be a square
    witnesses = (
        Witness(
            setup="x = leaf(torch.zeros(2, 4, dtype=dtype))",
            hazard="y = x / x.norm(dim=-1, keepdim=True)",
            fixed="y = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-4)",
        ),
        Witness(  # a hand-written cosine: the product of two norms is 0 when either vector is (row 1)
            setup="a = leaf(torch.zeros(2, 4, dtype=dtype)); b = leaf(torch.ones(2, 4, dtype=dtype))",
            hazard="y = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))",
            fixed="y = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-3)",
        ),
        Witness(
            setup="x = leaf(torch.zeros(2, 4, dtype=dtype))",
            hazard="y = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)",
            fixed="y = F.normalize(x, dim=-1)",
            fixed_dtypes=("float32", "bfloat16"),
        ),
        Witness(
            setup="x = leaf(torch.zeros(4, dtype=dtype))",
            hazard="y = x / torch.sqrt((x ** 2).sum())",
            fixed="y = x / x.norm().clamp_min(1e-4)",
        ),
        Witness(  # a capped reciprocal: forward 1, gradient NaN (docs/probe.md section 4.1)
            setup="x = leaf(torch.zeros(4, dtype=dtype))",
            hazard="y = torch.minimum(torch.ones((), dtype=dtype), 1.0 / x.norm())",
            fixed="y = torch.minimum(torch.ones((), dtype=dtype), 1.0 / x.norm().clamp_min(1e-4))",
        ),
        Witness(  # the text the fix writes
            setup="x = leaf(torch.zeros(2, 4, dtype=dtype))",
            hazard="y = x / x.norm(dim=-1, keepdim=True)",
            fixed="y = x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).eps)",
        ),
        Witness(
            setup="x = leaf(torch.zeros(4, dtype=dtype))",
            hazard="y = x / torch.sqrt((x ** 2).sum())",
            fixed="y = x / torch.sqrt((x ** 2).sum().clamp_min(torch.finfo(x.dtype).eps))",
        ),
        Witness(  # a sum whose every term vanishes with a zero gradient g
            setup="g = leaf(torch.zeros(4, dtype=dtype)); a = torch.ones(4, dtype=dtype)",
            hazard="g2 = (g * g).sum(); y = g2 / (2 * g2 + (a * g ** 3).sum())",
            fixed="g2 = (g * g).sum(); y = g2 / (1e-4 + 2 * g2 + (a * g ** 3).sum())",
        ),
    )

    def _check(self, node: cst.CSTNode) -> None:
        found = division(node, self.ctx)
        if found is None:
            return
        at = self.ctx.at()
        source = self.facts.zero_source(found.divisor, at)
        if source is None or source.kind not in NORM_KINDS:
            vanishing = self.facts.vanishing_sum(found.divisor, at) if source is None else None
            if vanishing is not None:
                self._vanishing(node, found.divisor, vanishing)
            return
        # ``minimum(ones, c / n)``: the cap keeps the forward finite, the gradient is still NaN (docs/probe.md §4)
        capped = capped_reciprocal(self.ctx, found.numerator)
        judged = self.judge(source.node, gradient_only=capped)
        if judged is None or branch_guarded(self.ctx, found.divisor):
            return
        inner = divisor_root(self.ctx, source)
        if inner is not None:
            built = clamp_inside_root(self.ctx, inner, "divide-sqrt", "sum of squares")
        elif source.kind == "hand-written norm":
            built = Built(reason="the square root that makes the norm could not be located for the fix")
        else:
            built = clamp_divisor(self.ctx, found.divisor, source, at, "norm")
        self.report(
            node,
            f"division by `{code(self.ctx, found.divisor)}`, {source.described} that is 0 for a zero vector, "
            f"here {judged.trigger.text} ("
            + ("forward finite: the cap takes the other side, NaN gradient" if capped else judged.forward())
            + "); use `F.normalize` or `.clamp_min(eps)` on the norm",
            target=found.divisor,
            **judged.extra(),
            **built.extra(),
        )

    def _vanishing(self, node: cst.CSTNode, divisor: cst.BaseExpression, source: ZeroSource) -> None:
        """A sum whose every term vanishes with the same input (``2 * g2 + (a * g3).sum()``, ``g = p.grad``)."""
        assert isinstance(source.node, cst.BaseExpression)
        judged = self.judge(source.node)
        if judged is None or branch_guarded(self.ctx, divisor):
            return
        root = code(self.ctx, source.node)
        self.report(
            node,
            f"division by `{code(self.ctx, divisor)}`, a sum whose every term vanishes with `{root}` (a square "
            f"or norm of it, and no positive constant): 0 for {judged.trigger.text} ({judged.forward()}); add a "
            "positive eps to the sum",
            target=divisor,
            no_fix_reason="the sum can be negative: a clamp would change it; add an eps by hand",
            **judged.extra(),
        )

    visit_BinaryOperation = _check
    visit_AugAssign = _check
    visit_Call = _check
