from typing import Optional

import libcst as cst

from ..analysis.gradient import gradient_at
from ..fixspec import UNSAFE, FixSpec, InsertAt, Replace
from ..patterns import code
from ._screens import Screen
from .base import Rule, SOMETIMES, Witness

# op key -> positional index of ``zero_infinity`` after the first argument (``F.ctc_loss(log_probs, targets, input_lengths,
# target_lengths, blank, reduction, zero_infinity)``; ``nn.CTCLoss(blank, reduction, zero_infinity)``)
_CTC: dict[str, int] = {"F.ctc_loss": 5, "ctc_loss": 5, "nn.CTCLoss": 1}


class CtcLossInfinity(Rule):
    """
    ## What it does
    Flags `nn.CTCLoss(...)` and `F.ctc_loss(...)` (also `torch.nn.functional.ctc_loss`)
    with PyTorch's default `zero_infinity=False`: the argument left out, or written
    `False`. A `zero_infinity` passed from a name, a parameter or a config (the
    caller chooses) is not flagged.

    ## Why is this bad?
    CTC sums over the alignments of a target to the input frames. A sample whose
    target needs more frames than it has (a transcript longer than the encoder
    output after subsampling, or repeated labels that need a blank between them)
    has no alignment at all: its loss is +inf and, with `zero_infinity=False`, the
    gradient of the whole batch is NaN (docs/probe.md row 65). That input is
    ordinary in speech and OCR training: noisy transcripts, fast speech, a long label
    on a short crop. With `zero_infinity=True` PyTorch sets such a loss and its
    gradient to 0, and the other samples train normally.

    ## Example
    ```python
    self.ctc = nn.CTCLoss(blank=0)
    loss = F.ctc_loss(log_probs, targets, input_lengths, target_lengths)
    ```

    ## Use instead
    ```python
    self.ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    loss = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, zero_infinity=True)
    ```
    Filtering such samples out of the dataset works too; then nanlint cannot see
    it, and `# noqa: NAN305` says so.

    ## Fix safety
    The fix passes `zero_infinity=True`. It changes the loss only where it is
    infinite (to 0, with a zero gradient), but that hides a sample, so it is unsafe.
    """

    code = "NAN305"
    name = "ctc-loss-infinity"
    summary = "CTC loss with zero_infinity=False: inf loss, NaN gradient for a target longer than its input"
    rows = "65"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    # the whole name (``F.ctc_loss``, ``nn.CTCLoss``, an import of either), not ``ctc_loss_reduction = {...}``
    screen = Screen(r"ctc_loss(?<!\wctc_loss)\b|CTCLoss(?<!\wCTCLoss)\b")
    attribute_flow = False  # reports at the call its screen matches
    witnesses = (
        Witness(  # the second target needs 5 frames (no repeat) but has 4: no alignment, inf (row 65)
            setup="x = leaf(torch.randn(4, 2, 5, dtype=dtype)); "
                  "targets = torch.tensor([[1, 2, 3, 4, 1], [1, 2, 1, 2, 1]]); "
                  "frames = torch.tensor([4, 4]); lengths = torch.tensor([3, 5])",
            hazard="y = F.ctc_loss(x.log_softmax(-1), targets, frames, lengths)",
            fixed="y = F.ctc_loss(x.log_softmax(-1), targets, frames, lengths, zero_infinity=True)",
            hazard_dtypes=("float32",),  # CTC has no float16 / bfloat16 kernel on CPU
            fixed_dtypes=("float32",),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.is_method or tc.key not in _CTC:
            return
        if any(arg.star for arg in node.args):
            return  # ``nn.CTCLoss(**kwargs)``: the caller decides
        given = tc.argument("zero_infinity", _CTC[tc.key])
        if given is not None and not (isinstance(given, cst.Name) and given.value == "False"):
            return  # True, or a name / parameter / config value the caller chooses
        gradient = gradient_at(self.ctx)
        effect = "and the gradient of the whole batch is NaN" if gradient.flows else \
            f"(no gradient flows here: {gradient.reason})"
        self.report(
            node,
            f"`{code(self.ctx, node.func)}` with `zero_infinity=False`: a sample whose target is longer than its "
            f"input frames (after subsampling) has no alignment, so its loss is inf {effect}; pass "
            "`zero_infinity=True`",
            fix=self._fix(node, given),
            target=given if given is not None else node,
            confidence="medium" if gradient.flows else "low",
        )

    def _fix(self, node: cst.Call, given: Optional[cst.BaseExpression]) -> FixSpec:
        message = "Pass `zero_infinity=True` (an infinite loss becomes 0 with a zero gradient)"
        if given is not None:
            return FixSpec(UNSAFE, message, (Replace(given, "True"),))
        if node.args:
            return FixSpec(UNSAFE, message, (InsertAt(node.args[-1].value, ", zero_infinity=True"),))
        assert self.ctx.module is not None
        func = self.ctx.module.code_for_node(node.func)
        return FixSpec(UNSAFE, message, (Replace(node, f"{func}(zero_infinity=True)"),))
