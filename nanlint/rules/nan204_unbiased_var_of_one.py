import re

import libcst as cst

from ..fixspec import UNSAFE, FixSpec, Replace
from ._guards import biased_call
from .base import SOMETIMES, Rule, Witness


class UnbiasedVarOfOne(Rule):
    """
    ## What it does
    Flags an unbiased `std` / `var` (the default `correction=1`) reduced over an
    explicit dimension in statistics pooling: the result goes into
    `torch.cat` / `torch.stack` beside a mean, or the code sits in a function or
    class whose name says pooling or statistics (`StatsPool`, `stat_pooling`).

    ## Why is this bad?
    The unbiased estimator divides by `n - 1`. When the pooled dimension has a
    single element (an utterance of one frame, a sequence of length one, a
    group with one member) that is `0 / 0`: NaN in the forward pass with only a
    UserWarning, in every dtype (docs/probe.md row 7).

    ## Why preview?
    Whether a dimension can have size one depends on the data, which a static
    linter cannot see; the pooling context is a heuristic. Enable it with
    `preview = true` or `--select NAN204`.

    ## Example
    ```python
    pooled = torch.cat([x.mean(dim=1), x.std(dim=1)], dim=-1)
    ```

    ## Use instead
    ```python
    pooled = torch.cat([x.mean(dim=1), x.std(dim=1, correction=0)], dim=-1)
    ```

    ## Fix safety
    `correction=0` changes the estimate by a factor sqrt((n-1)/n); unsafe fix.
    """

    code = "NAN204"
    name = "unbiased-var-of-one"
    summary = "unbiased std/var over a dimension that can have one element"
    rows = "7"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    preview = True
    screen = re.compile(r"\b(?:std|var)\b")
    witnesses = (
        Witness(
            setup="x = leaf(torch.randn(2, 1, 4).to(dtype))",
            hazard="y = torch.cat([x.mean(dim=1), x.std(dim=1)], dim=-1)",
            fixed="y = torch.cat([x.mean(dim=1), x.std(dim=1, correction=0)], dim=-1)",
        ),
    )

    _POOLING_NAME = re.compile(r"pool|stat", re.IGNORECASE)

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.key not in ("std", "var") or tc.operand is None:
            return
        dim = tc.argument("dim", 0)
        if dim is None or isinstance(dim, cst.Name) and dim.value == "None":
            return
        at = self.ctx.at()
        correction = tc.keyword("correction")
        unbiased = tc.keyword("unbiased")
        if correction is not None and self.facts.literal(correction, at) != 1:
            return
        if unbiased is not None and not (isinstance(unbiased, cst.Name) and unbiased.value == "True"):
            return
        if correction is None and unbiased is None and tc.positional(1) is not None:
            return  # x.std(dim, False): positional unbiased flag
        if not self._pooling_context():
            return
        biased = biased_call(self.ctx, node)
        fix = FixSpec(UNSAFE, "Use the biased estimator: `correction=0` (0 for a single element, not NaN)",
                      (Replace(node, biased),)) if biased is not None else None
        self.report(node, f"unbiased `{tc.key}` over a dimension that may hold one element is NaN (0/0); "
                          "pass `correction=0` or guarantee at least two elements", fix=fix,
                    **({} if fix else {"no_fix_reason": "the call's arguments leave no place for `correction=0`"}))

    def _pooling_context(self) -> bool:
        for ancestor in reversed(self.ctx.stack[:-1]):
            if isinstance(ancestor, cst.Call):
                tc = self.ctx.match(ancestor)
                if tc is not None and tc.key in ("cat", "stack", "concat", "concatenate", "hstack"):
                    return True
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)) and self._POOLING_NAME.search(
                ancestor.name.value
            ):
                return True
        return False
