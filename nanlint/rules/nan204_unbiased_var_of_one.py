
import libcst as cst

from ..analysis import shapes
from ..fixspec import UNSAFE, FixSpec, Replace
from ..names import TorchCall
from ..patterns import code
from ._guards import biased_call
from ._screens import Screen
from .base import SOMETIMES, Rule, Witness


class UnbiasedVarOfOne(Rule):
    """
    ## What it does
    Flags an unbiased `std` / `var` (the default `correction=1`) over explicit
    dimensions that can hold a single element, and says which input makes them
    do so (the value analysis' shapes, docs/analysis.md):

    * a 1x1 feature map: `feat.view(N, C, -1).var(dim=2)` (AdaIN's
      `calc_mean_std`), `x.var(dim=(2, 3))`, `x.std(dim=[-2, -1])`,
      `x.flatten(2).std(-1)`;
    * a group of one element: `x.view(B, G, -1).var(-1)`,
      `x.view(B, G, C // G).var(-1)` (groups == channels);
    * a slice with a data-dependent length: `h[i, :length].std(dim=0)`;
    * a batch of one sample: `x.std(dim=0)` in a model's, a loss's or a
      training script's code;
    * statistics pooling over time: the result goes into `torch.cat` /
      `torch.stack` beside a mean, or the code sits in a function or class
      named for pooling or statistics (`StatsPool`, `stat_pooling`);
    * a dimension of size 1 by construction (`x.view(B, C, 1).var(-1)`): always.

    ## Why is this bad?
    The unbiased estimator divides by `n - 1`. When the reduced dimensions
    hold a single element (a small image whose deepest feature map is 1x1, a
    group size of 1 from the configuration, the last batch of an epoch with
    one sample, an utterance of one frame) that is `0 / 0`: NaN in the forward
    pass with only a UserWarning, in every dtype (docs/probe.md row 7). An eps
    added afterwards does not help: the variance is NaN, not 0.

    Silent where the size is fixed by construction: a literal or a module
    constant of at least 2 in a `view`/`reshape` (`x.view(B, -1, 4).var(-1)`), a
    literal slice, module state (`self.weight.std(dim=(1, 2, 3))`: weight
    standardisation), a tensor built from constants; after a size test
    (`if x.size(1) > 1`, `... if n > 1 else ...`); and with `correction=0`,
    `unbiased=False`, a positional `False` or a computed correction
    (`correction=min(1, n - 1)`).

    ## Confidence
    A dimension that is 1 by construction is high. A 1x1 map, a group of one, a
    slice of length one, a batch of one or one frame is a plausible edge case:
    medium where a gradient flows, low where none does (a forward NaN in one
    inference output or a metric). Other dims (nothing shows their size, or
    several dims that must all be 1 at once, `dim=(1, 2, 3)`) are low.

    ## Why preview?
    Whether a dimension can have size one depends on the data, which a static
    linter cannot see. On transformers, diffusers, timm, Lightning and three
    libraries, 2 of the 16 default findings are real (a batch variance in a
    trained loss); the others are statistic pooling that needs a clip of
    0.2-0.3 s (benchmarks/README.md). Enable it with `preview = true` or
    `--select NAN204`.

    ## Example
    ```python
    feat_var = feat.view(N, C, -1).var(dim=2) + eps
    pooled = torch.cat([x.mean(dim=1), x.std(dim=1)], dim=-1)
    ```

    ## Use instead
    ```python
    feat_var = feat.view(N, C, -1).var(dim=2, correction=0) + eps
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
    screen = Screen(r"std(?<!\wstd)\b|var(?<!\wvar)\b")  # literal-first
    witnesses = (
        Witness(
            setup="x = leaf(torch.randn(2, 1, 4).to(dtype))",
            hazard="y = torch.cat([x.mean(dim=1), x.std(dim=1)], dim=-1)",
            fixed="y = torch.cat([x.mean(dim=1), x.std(dim=1, correction=0)], dim=-1)",
        ),
        Witness(  # a 1x1 feature map reduced over its spatial dims
            setup="x = leaf(torch.randn(2, 3, 1, 1).to(dtype))",
            hazard="y = x.var(dim=(2, 3))",
            fixed="y = x.var(dim=(2, 3), correction=0)",
        ),
        Witness(  # AdaIN's calc_mean_std: the eps is added to a NaN, not to a 0
            setup="x = leaf(torch.randn(2, 3, 1, 1).to(dtype))",
            hazard="y = (x.view(2, 3, -1).var(dim=2) + 1e-5).sqrt()",
            fixed="y = (x.view(2, 3, -1).var(dim=2, correction=0) + 1e-5).sqrt()",
        ),
        Witness(  # groups == channels: a group of one channel on a 1x1 map
            setup="x = leaf(torch.randn(2, 4, 1, 1).to(dtype))",
            hazard="y = x.view(2, 4, 4 // 4).var(-1)",
            fixed="y = x.view(2, 4, 4 // 4).var(-1, correction=0)",
        ),
        Witness(  # a batch of one sample
            setup="x = leaf(torch.randn(1, 8).to(dtype))",
            hazard="y = x.std(dim=0)",
            fixed="y = x.std(dim=0, correction=0)",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.key not in ("std", "var") or tc.operand is None or not self._unbiased(tc):
            return
        trigger = shapes.size_one(self.ctx, tc)
        judged = self.judge(tc.operand, trigger=trigger)
        if judged is None or shapes.size_tested(self.ctx, tc.operand):
            return
        biased = biased_call(self.ctx, node)
        fix = FixSpec(UNSAFE, "Use the biased estimator: `correction=0` (0 for a single element, not NaN)",
                      (Replace(node, biased),)) if biased is not None else None
        self.report(node, f"unbiased `{tc.key}` over {self._dims(tc)} is 0/0 {judged.reached_by} "
                          f"({judged.forward()}); pass `correction=0` or guarantee at least two elements", fix=fix,
                    **judged.extra(),
                    **({} if fix else {"no_fix_reason": "the call's arguments leave no place for `correction=0`"}))

    def _unbiased(self, tc: TorchCall) -> bool:
        """The call reduces over explicit dims with the default (or an explicit) correction of 1."""
        dim = shapes.dim_argument(tc)
        if dim is None or isinstance(dim, cst.Name) and dim.value in ("None", "True", "False"):
            return False  # a whole-tensor reduction (NAN102's), or the old positional ``unbiased`` flag
        if tc.keyword("ddof") is not None:
            return False  # numpy's ``x.var(0, ddof=1)``: not a torch call (and ``correction=`` is no fix for it)
        correction = tc.keyword("correction")
        unbiased = tc.keyword("unbiased")
        if correction is not None and self.facts.literal(correction, self.ctx.at()) != 1:
            return False  # ``correction=0``, ``correction=min(1, n - 1)``
        if unbiased is not None and not (isinstance(unbiased, cst.Name) and unbiased.value == "True"):
            return False
        positional = tc.positional(1)
        if correction is None and unbiased is None and positional is not None:
            return isinstance(positional, cst.Name) and positional.value == "True"  # ``x.std(dim, False)``
        return True

    def _dims(self, tc: TorchCall) -> str:
        dim = shapes.dim_argument(tc)
        return f"dim `{code(self.ctx, dim)}`" if dim is not None else "its dims"
