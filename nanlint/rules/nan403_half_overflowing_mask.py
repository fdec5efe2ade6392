import math
import re
from typing import Optional

import libcst as cst

from ..analysis.ops import CONSTANT_FILLS as _FULL
from ..eps import DtypeRef
from ..fixspec import UNSAFE, FixSpec, Replace
from ..masking import Fill, as_fill, constant, finfo_bound, mask_text
from ..patterns import code
from ..precision import FP16_MAX, Evidence, autocast_float32, float16_excluded, fmt, fp16_evidence, \
    spelled, upcast
from ..fp16_text import may_have_fp16_evidence
from ..singular import torch_alias
from ._guards import Built, float_receiver
from ._screens import Screen
from .base import Rule, SOMETIMES, Witness

_MASKISH = re.compile(r"mask|pad|bias|attn|attention", re.I)


class HalfOverflowingMask(Rule):
    """
    ## What it does
    In code that can run in float16, flags a mask value beyond float16's range
    (|v| > 65504: `-1e9`, `-1e10`, `1e9`, `-1e5`, `float(-1e30)`,
    `torch.finfo(torch.float32).min`, also through a constant or a default argument): as a `masked_fill` / `masked_fill_` value, in
    `torch.where(m, -1e9, s)`, in `s[m] = -1e9`, in `torch.full_like(s, -1e9)` /
    `s.new_full(..., -1e9)` / `s.fill_(-1e9)`, or as an additive bias
    `s + (1 - mask) * -1e9`. The message names the evidence that the file runs
    in float16 (`.half()`, `torch.float16`, a CUDA `autocast()`, a `GradScaler`,
    `fp16=True`, or `precision` in the config); without evidence the rule is
    silent, and it is silent when the scores are visibly upcast first
    (`scores.float().masked_fill(m, -1e9)`), or when the only evidence is CUDA
    autocast and the scores come from an op autocast runs in float32
    (`F.log_softmax(logits, -1).masked_fill(pad, -1e9)`: the AMP docs' float32 list).

    ## Why is this bad?
    float16 cannot hold -1e9. `masked_fill(m, -1e9)`, `fill_`, `full_like` and
    `new_full` on a float16 tensor raise `RuntimeError: value cannot be
    converted to type c10::Half without overflow` (docs/probe.md row 25); the
    arithmetic forms are silent: `m.half() * -1e9`, `torch.where(m, -1e9, s)`
    and `s[m] = -1e9` give `-inf`, and a fully masked row becomes NaN after
    softmax (row 26; docs/numerics-extra.md "float16 mask values"). bfloat16
    holds -1e9 (it rounds to -9.98e8), so only float16 is affected by `-1e9`; but
    `torch.finfo(torch.float32).min` (-3.40e38) is beyond bfloat16's range too (-3.39e38):
    `torch.where(m, torch.finfo(torch.float32).min, s)` is -inf in both half types, and
    `masked_fill` raises in both (row 56). A float32 bias cast afterwards,
    `(s.float() + m * -1e9).half()`, is -inf as well.

    ## Example
    ```python
    scores = scores.masked_fill(mask == 0, -1e9)
    ```

    ## Use instead
    ```python
    scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
    ```
    For an additive bias use `-1e4` (finite in all three dtypes, row 25), or
    `torch.finfo(dtype).min` when it is never summed with another bias (row 27).

    ## Fix safety
    Replaces the value with `torch.finfo(<scores>.dtype).min` (`.max` for a
    positive value) for `masked_fill`, `where` and index fills on a named
    tensor. In float32 the masked slots get -3.4e38 instead of -1e9, which
    changes nothing after softmax but does change the raw scores: unsafe.
    """

    code = "NAN403"
    name = "half-overflowing-mask"
    summary = "mask value beyond float16's range (-1e9) in code that runs in float16"
    rows = "25, 26, 56"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    # a literal beyond 65504, or ``finfo(torch.float32)`` (its min is -3.4e38)
    screen = Screen(r"\d(?:[eE]\+?0*(?:[5-9]|[1-9]\d)\b|(?<=\b[1-9])\d{5,}|(?<=\b[6-9])\d{4}\b)|"
                        r"finfo\s*\(\s*(?:\w+\s*\.\s*)?(?:float(?:32|64)?|double)\s*\)")
    file_condition = staticmethod(may_have_fp16_evidence)  # every finding needs float16 evidence
    witnesses = (
        Witness(
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); m = torch.tensor([[True, True, True], [False, True, True]]); "
                  "half = torch.float16",
            hazard="y = torch.softmax(s + m.to(dtype) * -1e9, dim=-1)",
            fixed="y = torch.softmax(s.masked_fill(m, torch.finfo(s.dtype).min), dim=-1)",
            hazard_dtypes=("float16",),
        ),
        Witness(
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); m = torch.tensor([[True, True, True], [False, True, True]]); "
                  "half = torch.float16",
            hazard="y = torch.softmax(torch.where(m, -1e9, s), dim=-1)",
            fixed="y = torch.softmax(torch.where(m, torch.finfo(s.dtype).min, s), dim=-1)",
            hazard_dtypes=("float16",),
        ),
        Witness(  # float32's min is beyond bfloat16's range too (3.40e38 > 3.39e38)
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); m = torch.tensor([[True, True, True], [False, True, True]]); "
                  "half = torch.float16",
            hazard="y = torch.softmax(torch.where(m, torch.finfo(torch.float32).min, s), dim=-1)",
            fixed="y = torch.softmax(torch.where(m, torch.finfo(s.dtype).min, s), dim=-1)",
            hazard_dtypes=("float16", "bfloat16"),
        ),
        Witness(  # a float32 bias cast to half afterwards
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); m = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]); "
                  "half = torch.float16",
            hazard="y = torch.softmax((s.float() + m * -1e9).half(), dim=-1)",
            fixed="y = torch.softmax((s.float() + m * -1e4).half(), dim=-1)",
        ),
    )

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._evidence: Optional[Evidence] = None
        self._checked = False

    def _fp16(self) -> Optional[Evidence]:
        """The file's float16 evidence, or None; also None in a branch that runs only for non-float16
        tensors (``if x.dtype == torch.float16: ... else: <here>``)."""
        if not self._checked:
            self._evidence, self._checked = fp16_evidence(self.ctx), True
        if self._evidence is None or float16_excluded(self.ctx):
            return None
        return self._evidence

    def visit_Call(self, node: cst.Call) -> None:
        at = self.ctx.at()
        fill = as_fill(node, self.ctx, at)
        if fill is None:
            tc = self.ctx.match(node)
            if tc is not None and tc.key in ("mul", "multiply") and tc.operand is not None \
                    and tc.positional(0) is not None:  # ``mask.logical_not().to(dtype).mul(-1e10)``
                self._check_product(node, tc.positional(0), tc.operand, in_sum=False)  # type: ignore[arg-type]
                return
            if tc is None or tc.key not in _FULL:
                return
            if tc.key == "full":
                dtype = tc.keyword("dtype")
                if tc.is_method or dtype is None or _f32(dtype, self.ctx):
                    return  # torch.full(..., -1e9) is float32 unless told otherwise
                value = tc.argument("fill_value", 0)
            elif tc.key == "full_like":
                value = tc.argument("fill_value", 0)
            else:
                value = tc.argument("fill_value" if tc.key == "new_full" else "value", 1 if tc.key == "new_full" else 0)
            number = constant(value, self.ctx, at)
            if value is None or number is None:
                return
            fill = Fill(node, value, number, tc.operand, None, tc.key)
        self._check_fill(fill)

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1:
            return
        target = node.targets[0].target
        if not isinstance(target, cst.Subscript):
            return
        number = constant(node.value, self.ctx, self.ctx.at())
        if number is not None:
            self._check_fill(Fill(node, node.value, number, target.value, None, "index"))

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, cst.Multiply):
            return
        parent = self.ctx.parent()
        in_sum = isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, (cst.Add, cst.Subtract))
        in_sum = in_sum or isinstance(parent, cst.AugAssign)
        for big, other in ((node.right, node.left), (node.left, node.right)):
            if self._check_product(node, big, other, in_sum):
                return

    def _check_product(self, node: cst.CSTNode, big: cst.BaseExpression, other: cst.BaseExpression,
                       in_sum: bool) -> bool:
        """``other * big`` (or ``other.mul(big)``) with ``big`` beyond float16: an additive mask bias when it is
        added to scores or ``other`` is a mask (by its code or what its names were assigned). True when
        ``big`` was the constant (whether or not it was reported)."""
        at = self.ctx.at()
        number = constant(big, self.ctx, at)
        if number is None or not _too_big(number):
            return False
        if constant(other, self.ctx, at) is not None:
            return True
        if not in_sum and not _MASKISH.search(mask_text(other, self.ctx, at, blank=False)):
            return True
        if upcast(other, self.ctx):
            return True
        evidence = self._fp16()
        if evidence is None or self._float32_under_autocast(evidence, other):
            return True
        self.report(
            node,
            f"additive mask bias `{code(self.ctx, node)}`: {fmt(number)} is beyond float16's range and "
            f"becomes {'-' if number < 0 else ''}inf there, so a fully masked row is NaN after softmax "
            f"(float16 evidence: {evidence.describe()}); use -1e4 or `torch.finfo(dtype).min`",
            target=big,
        )
        return True

    def _check_fill(self, fill: Fill) -> None:
        if not _too_big(fill.number):
            return
        if fill.receiver is not None and upcast(fill.receiver, self.ctx):
            return
        evidence = self._fp16()
        if evidence is None or fill.receiver is not None and self._float32_under_autocast(evidence, fill.receiver):
            return
        raises = fill.form in ("masked_fill", "full_like", "new_full", "fill_", "full")
        effect = ("raises `RuntimeError: value cannot be converted to type c10::Half without overflow`" if raises
                  else f"becomes {'-' if fill.number < 0 else ''}inf, so a fully masked row is NaN after softmax")
        self.report(
            fill.node,
            f"mask value {spelled(code(self.ctx, fill.value), fill.number)} is beyond float16's range (65504): on a "
            f"float16 tensor it {effect} (float16 evidence: {evidence.describe()}); "
            "use `torch.finfo(scores.dtype).min`",
            target=fill.value,
            **self._fix(fill).extra(),
        )

    def _float32_under_autocast(self, evidence: Evidence, scores: cst.BaseExpression) -> bool:
        """The only float16 evidence is CUDA autocast, and ``scores`` come from an op autocast runs in float32
        (``softmax``, ``log_softmax``, ``sum``...): a float32 tensor holds the value."""
        return evidence.kind == "autocast" and autocast_float32(scores, self.ctx)

    def _fix(self, fill: Fill) -> Built:
        if fill.form not in ("masked_fill", "where", "index") or fill.receiver is None \
                or fill.blank_receiver(self.ctx):
            return Built()
        torch = torch_alias(self.ctx)
        if torch is None:
            return Built()
        receiver, why = float_receiver(self.ctx, DtypeRef(tensor=fill.receiver), fill.receiver, self.ctx.at())
        if receiver is None:
            return Built(reason=why)
        bound = finfo_bound(self.ctx, torch, fill.receiver, negative=fill.number < 0)
        if bound is None:
            return Built()
        return Built(FixSpec(UNSAFE, f"Use `{bound}`", (Replace(fill.value, bound),)), receiver=receiver)


def _too_big(number: float) -> bool:
    return math.isfinite(number) and abs(number) > FP16_MAX


def _f32(dtype: cst.BaseExpression, ctx) -> bool:
    qualified = ctx.imports.qualify(dtype) if isinstance(dtype, (cst.Name, cst.Attribute)) else None
    return qualified in ("torch.float32", "torch.float", "torch.float64", "torch.double")

