import math
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from ..eps import DtypeRef
from ..facts import At, names_in
from ..fixspec import UNSAFE, FixSpec, Replace
from ..analysis import confidence
from ..analysis.gradient import gradient_at
from ..analysis.uses import multiplied_by
from ..analysis.ops import FILL_FACTORIES, ONE_FACTORIES
from ..analysis.triggers import ORDINARY, Trigger
from ..masking import CAUSAL_AND_PADDING_BIASES, PASS_THROUGH, Fill, as_fill, causal_mask, constant, finfo_bound, \
    log_softmax_operand, mask_trigger, never_fully_masked, softmax_operand
from ..names import dotted_name
from ..patterns import code
from ..scope import lookup
from ..singular import torch_alias
from ._guards import Built, float_receiver
from ._literal_evidence import neg_inf_evidence
from ._screens import Screen
from .base import Rule, SOMETIMES, Witness

_ONES = ONE_FACTORIES | FILL_FACTORIES  # never 0: a fill of ones or of a constant


_MASKED_SLOT_PRODUCT = "a masked slot where the factor is 0 (every batch with a masked slot)"


@dataclass
class _Candidate:
    fill: Fill
    softmax: cst.Call
    result_name: Optional[str]
    additive: bool
    level: str = "high"
    trigger: str = ""
    factor: Optional[cst.BaseExpression] = None  # log_softmax's result times this: 0 * -inf at a masked slot


@dataclass
class _FunctionState:
    candidates: list[_Candidate] = field(default_factory=list)
    cleaned: set[str] = field(default_factory=set)  # names passed through nan_to_num / masked_fill after softmax
    repaired: set[str] = field(default_factory=set)  # names passed through nan_to_num
    assignments: list[cst.Assign] = field(default_factory=list)  # read only when a candidate needs them

    def repairs(self, name: str) -> bool:
        """A value computed from ``name`` later in the function goes through ``nan_to_num``
        (``attn = softmax(s); out = attn @ v; out = out.nan_to_num()``): the NaN row is replaced."""
        if not self.repaired:
            return False
        derived: dict[str, set[str]] = {}  # name -> names it is assigned from
        for assign in self.assignments:
            sources = set(names_in(assign.value))
            for target in assign.targets:
                for assigned in names_in(target.target):
                    derived.setdefault(assigned, set()).update(sources)
        frontier, seen = [name], {name}
        while frontier:
            current = frontier.pop()
            if current in self.repaired:
                return True
            for target, sources in derived.items():
                if current in sources and target not in seen:
                    seen.add(target)
                    frontier.append(target)
        return False


class NegInfMask(Rule):
    """
    ## What it does
    Flags an attention mask filled with `-inf` (`float('-inf')`, `-float('inf')`,
    `-math.inf`, `-torch.inf`, `-np.inf`, or a constant holding one) that reaches
    `softmax` in the same function: `s.masked_fill(m, float('-inf'))`,
    `s.masked_fill_(m, ...)`, `torch.where(m, float('-inf'), s)`, `s[m] = -inf`,
    or an additive bias built that way (`bias = torch.zeros(...).masked_fill(m, -inf)`
    ... `softmax(s + bias)`), followed through variables, casts, scaling and
    `nn.Softmax` modules. Also flags `mask * float('-inf')`, which is NaN
    wherever the mask is 0 (`0 * inf`), whatever consumes it. Two additive
    biases added to the same scores, a causal one and a padding one, are judged
    together (a left-padded sample's first queries).

    Also flags `log_softmax` of `-inf`-filled scores whose result is multiplied
    element-wise (`pos * log_prob`, `(probs * log_probs).sum(-1)`, a soft target):
    the masked slots are -inf, and the factor is 0 there whenever it excludes
    those slots (SupCon's positives without the diagonal, the probabilities of
    the same masked scores), so 0 * -inf = NaN in every batch (row 67). Zeroing
    those slots of the log-probabilities first (`log_prob.masked_fill(mask, 0)`)
    is silent.

    Silent when the mask visibly keeps a slot in every row: a causal-only mask
    (built with `tril`/`triu`, or a `register_buffer` holding one) keeps the
    diagonal, and a mask defined against the row maximum (`scores.max(...)`,
    `topk`, as in MoE routers) keeps the maximum. Silent for masks passed to
    `F.scaled_dot_product_attention` (which returns 0 for fully masked rows,
    row 28), for fills with `torch.finfo(dtype).min`, for `log_softmax` (unless
    the mask fully masks rows in ordinary batches: a causal mask with padding,
    a query x key outer product; docs/probe.md section 4.2),
    `max`, `topk` and `exp` consumers, and when the softmax output goes
    through `nan_to_num` or a `masked_fill` afterwards.

    Confidence follows where the mask comes from: a causal mask combined with a
    padding mask, or the outer product of a query mask and a key mask
    (`q_mask[:, :, None] * kv_mask[:, None, :]`: every padded query's row is
    fully masked), is high; a key-padding mask broadcast over the queries, or an
    attention mask the caller prepared (a parameter named `attention_mask`,
    `attn_mask`, `key_padding_mask`, `pixel_mask`...) used as it is, is low:
    it keeps a CLS/BOS token or real pixels, so only an empty input masks a row.

    `nn.MultiheadAttention(key_padding_mask=...)` with an all-padded sample is
    also NaN (row 29), but whether a sample can be all padding depends on the
    data, not the code; nanlint does not flag it.

    ## Why is this bad?
    A row whose every slot is masked (a fully padded sample, left padding under
    a causal mask, an empty retrieval set) is all `-inf`; softmax computes
    `exp(-inf - (-inf)) = NaN` for the whole row, in float32, bfloat16 and
    float16 (docs/probe.md row 24), and `attn @ v` spreads it. `0 * -inf` is NaN
    in IEEE arithmetic (docs/numerics-extra.md "neg-inf").

    ## Example
    ```python
    scores = scores.masked_fill(~key_mask, float("-inf"))
    attn = F.softmax(scores, dim=-1)
    ```

    ## Use instead
    ```python
    scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    attn = F.softmax(scores, dim=-1)
    ```
    A fully masked row then becomes uniform instead of NaN (row 24). Do not add
    two `finfo.min` biases on the same slot: their sum is `-inf` again (row 27).
    Or use `F.scaled_dot_product_attention`.

    ## Fix safety
    Replaces the `-inf` with `torch.finfo(<scores>.dtype).min` when the fill is
    applied to the scores themselves (not for additive biases, where adding
    `finfo.min` to a negative score overflows to `-inf` in float16). Rows that
    are not fully masked get the same probabilities; fully masked rows become
    uniform instead of NaN, which changes numbers: unsafe.
    """

    code = "NAN402"
    name = "neg-inf-mask"
    summary = "-inf attention mask reaching softmax: a fully masked row is NaN"
    rows = "24, 29, 67"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    screen = Screen(r"inf(?:inity)?\b|Inf(?:inity)?\b|INF(?:inity)?\b")  # also NINF; no leading \b: 4x faster
    evidence_at = staticmethod(neg_inf_evidence)  # a -inf no softmax or product can read is no mask
    witnesses = (
        Witness(  # SupCon with the diagonal at -inf, times the positives (0 on the diagonal): NaN (row 67)
            setup="s = leaf(torch.zeros(3, 3, dtype=dtype)); eye = torch.eye(3, dtype=torch.bool); "
                  "pos = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)",
            hazard="y = (pos * F.log_softmax(s.masked_fill(eye, float('-inf')), dim=1)).sum(1)",
            fixed="y = (pos * F.log_softmax(s.masked_fill(eye, float('-inf')), dim=1).masked_fill(eye, 0)).sum(1)",
        ),
        Witness(
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); m = torch.tensor([[True, True, True], [False, True, True]])",
            hazard="y = torch.softmax(s.masked_fill(m, float('-inf')), dim=-1)",
            fixed="y = torch.softmax(s.masked_fill(m, torch.finfo(s.dtype).min), dim=-1)",
        ),
        Witness(
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); m = torch.tensor([[True, True, True], [False, True, True]])",
            hazard="bias = torch.zeros(2, 3, dtype=dtype).masked_fill(m, -float('inf')); scores = s + bias; "
                   "y = F.softmax(scores, dim=-1)",
            fixed="scores = s.masked_fill(m, torch.finfo(s.dtype).min); y = F.softmax(scores, dim=-1)",
        ),
        Witness(
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); keep = torch.tensor([[1, 1, 0], [1, 0, 0]]).to(dtype)",
            hazard="y = F.softmax(s + (1 - keep) * float('-inf'), dim=-1)",
            fixed="y = F.softmax(s.masked_fill(keep == 0, torch.finfo(s.dtype).min), dim=-1)",
        ),
        Witness(  # log_softmax of a padded query's row: -inf - logsumexp(-inf, ...) = NaN (docs/probe.md 4.2)
            setup="s = leaf(torch.randn(2, 3, dtype=dtype)); q_mask = torch.tensor([True, False]); "
                  "kv_mask = torch.tensor([True, True, False])",
            hazard="y = F.log_softmax(s.masked_fill(~(q_mask[:, None] & kv_mask[None, :]), float('-inf')), dim=-1)",
            fixed="y = F.log_softmax(s.masked_fill(~(q_mask[:, None] & kv_mask[None, :]), torch.finfo(s.dtype).min), "
                  "dim=-1)",
        ),
    )

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._states: dict[int, _FunctionState] = {}
        # in-place -inf fills: (id(scope), name) -> [(order, Fill)]
        self._inplace: dict[tuple[int, str], list[tuple[int, Fill]]] = {}

    # -- collection --------------------------------------------------------
    def _state(self) -> _FunctionState:
        owner = self.ctx.function() or self.ctx.module
        return self._states.setdefault(id(owner), _FunctionState())

    def visit_Call(self, node: cst.Call) -> None:
        at = self.ctx.at()
        tc = self.ctx.match(node)
        if tc is not None and tc.key == "masked_fill_" and isinstance(tc.operand, cst.Name):
            fill = as_fill(node, self.ctx, at)
            if fill is not None and fill.number == -math.inf:
                self._record_inplace(tc.operand.value, fill)
        if tc is not None and tc.key in ("nan_to_num", "nan_to_num_", "masked_fill", "masked_fill_") \
                and isinstance(tc.operand, cst.Name):
            fill = as_fill(node, self.ctx, at) if tc.key.startswith("masked_fill") else None
            if fill is None or fill.number > -1e3:
                # a clean-up (``attn.masked_fill(pad, 0.0)``), not the mask itself: nanoGPT writes
                # ``att = att.masked_fill(mask, float('-inf')); att = F.softmax(att, dim=-1)`` under one name
                self._state().cleaned.add(tc.operand.value)
            if tc.key.startswith("nan_to_num"):
                self._state().repaired.add(tc.operand.value)
        operand = softmax_operand(node, self.ctx)
        logarithmic = operand is None
        if logarithmic:
            # log_softmax of a fully masked row is NaN as well; a vocabulary or action mask rarely bans a whole
            # row, so only a mask that fully masks rows in ordinary batches is reported there
            operand = log_softmax_operand(node, self.ctx)
        if operand is None:
            return
        sources: list[tuple[Fill, bool]] = []
        self._sources(operand, at, 0, False, sources)
        cleaned = self._cleaned_inline()
        factor = multiplied_by(self.ctx) if logarithmic and not cleaned else None
        if factor is not None and not (self.facts.literal(factor, at) or 0) > 0:
            # a soft target or a positive-pair mask times log_softmax of -inf-filled scores: wherever the factor is
            # 0 at a masked slot (it always is for a mask that excludes those slots) the product is 0 * -inf = NaN
            level = confidence(Trigger(_MASKED_SLOT_PRODUCT, ORDINARY), gradient_at(self.ctx))
            for fill, additive in sources:
                if fill.number == -math.inf and level is not None:
                    self._state().candidates.append(_Candidate(fill, node, self._assigned_name(node), additive,
                                                               level, _MASKED_SLOT_PRODUCT, factor))
            return
        causal = [additive and causal_mask(fill.mask, self.ctx, at) for fill, additive in sources]
        for (fill, additive), is_causal in zip(sources, causal):
            if never_fully_masked(fill.mask, self.ctx, at) or (cleaned and not additive):
                continue
            trigger = mask_trigger(fill.mask, self.ctx, at)
            if additive and not is_causal and any(causal) and trigger.likelihood != ORDINARY:
                # ``scores + causal_bias + pad_bias[:, None, :]``: each bias alone keeps a slot per row, together
                # they mask every key of a left-padded sample's first queries
                trigger = Trigger(CAUSAL_AND_PADDING_BIASES, ORDINARY)
            if logarithmic and trigger.likelihood != ORDINARY:
                continue
            level = confidence(trigger, gradient_at(self.ctx))
            if level is None:
                continue
            self._state().candidates.append(
                _Candidate(fill, node, self._assigned_name(node), additive, level, trigger.text))

    def visit_Assign(self, node: cst.Assign) -> None:
        """``scores[mask] = float('-inf')``; and what each assigned name is computed from."""
        self._state().assignments.append(node)
        if len(node.targets) != 1:
            return
        target = node.targets[0].target
        if not isinstance(target, cst.Subscript) or not isinstance(target.value, cst.Name) or len(target.slice) != 1:
            return
        at = self.ctx.at()
        if constant(node.value, self.ctx, at) != -math.inf:
            return
        index = target.slice[0].slice
        mask = index.value if isinstance(index, cst.Index) else None
        self._record_inplace(target.value.value, Fill(node, node.value, -math.inf, target.value, mask, "index"))

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        """``mask * float('-inf')``: NaN wherever the mask is 0."""
        if not isinstance(node.operator, cst.Multiply):
            return
        at = self.ctx.at()
        for inf, other in ((node.right, node.left), (node.left, node.right)):
            value = constant(inf, self.ctx, at)
            if value is None or not math.isinf(value):
                continue
            if constant(other, self.ctx, at) is not None or self._never_zero(other):
                return
            self.report(
                node,
                f"`{code(self.ctx, other)}` times `{code(self.ctx, inf)}` is NaN wherever it is 0 (0 * inf = NaN), "
                "so every unmasked score becomes NaN; fill the masked slots instead: "
                "`scores.masked_fill(mask, torch.finfo(scores.dtype).min)`",
                target=inf,
            )
            return

    def _record_inplace(self, name: str, fill: Fill) -> None:
        self._inplace.setdefault((id(self.ctx.scope), name), []).append((self.ctx.order, fill))

    # -- reporting at the end of each function -------------------------------
    def _finish(self, node: cst.CSTNode) -> None:
        state = self._states.pop(id(node), None)
        if state is None:
            return
        seen: set[int] = set()
        # a product with log_softmax is NaN in every batch: it speaks for a fill that also reaches a softmax
        for candidate in sorted(state.candidates, key=lambda c: c.factor is None):
            if candidate.result_name is not None and candidate.result_name in state.cleaned \
                    and not candidate.additive:
                continue
            if candidate.result_name is not None and state.repairs(candidate.result_name):
                continue
            fill = candidate.fill
            if id(fill.node) in seen:
                continue
            seen.add(id(fill.node))
            softmax = code(self.ctx, candidate.softmax.func, 30)
            how = "an additive -inf bias" if candidate.additive else f"`{code(self.ctx, fill.value)}` fill"
            if candidate.factor is not None:
                # no automatic fix: a finfo.min fill still rounds to -inf after log_softmax in float16 once the
                # row's max passes ~16 (docs/probe.md row 67)
                self.report(fill.node, f"{how} reaches `{softmax}`, whose masked slots are then -inf, and the result "
                                       f"is multiplied by `{code(self.ctx, candidate.factor, 40)}`: 0 * -inf = NaN "
                                       "wherever that factor is 0 at a masked slot (a mask that excludes those "
                                       "slots, the probabilities of the same masked scores, a soft target), in every "
                                       "batch; zero those slots before the product (`log_prob.masked_fill(mask, 0)`)",
                            target=fill.value, confidence=candidate.level, trigger=candidate.trigger)
                continue
            message = (
                f"{how} reaches `{softmax}`: a row whose every slot is masked becomes NaN (exp(-inf - -inf)), "
                f"here {candidate.trigger}; fill with `torch.finfo(scores.dtype).min` instead, or use "
                "`F.scaled_dot_product_attention`"
            )
            self.report(fill.node, message, target=fill.value, confidence=candidate.level,
                        trigger=candidate.trigger, **self._fix(candidate).extra())

    leave_FunctionDef = _finish
    leave_Module = _finish

    def _fix(self, candidate: _Candidate) -> Built:
        fill = candidate.fill
        if candidate.additive or fill.receiver is None or fill.blank_receiver(self.ctx):
            return Built()
        torch = torch_alias(self.ctx)
        if torch is None:
            return Built()
        receiver, why = float_receiver(self.ctx, DtypeRef(tensor=fill.receiver), fill.receiver, self.ctx.at())
        if receiver is None:
            return Built(reason=why)
        bound = finfo_bound(self.ctx, torch, fill.receiver, negative=True)
        if bound is None:
            return Built()
        return Built(FixSpec(UNSAFE, f"Fill with `{bound}` instead of -inf", (Replace(fill.value, bound),)),
                     receiver=receiver)

    # -- data flow --------------------------------------------------------
    def _sources(self, expr: cst.BaseExpression, at: At, depth: int, additive: bool,
                 out: list[tuple[Fill, bool]]) -> None:
        """Collect the -inf fills that reach ``expr``, each with whether it arrives as an additive bias."""
        if depth > 12 or len(out) > 8:
            return
        ctx = self.ctx
        d = depth + 1
        if isinstance(expr, cst.Name):
            binding = lookup(at.scope, expr.value, at.order)
            for order, fill in reversed(self._inplace.get((id(at.scope), expr.value), [])):
                if order < at.order and (binding is None or order > binding.order):
                    out.append((fill, additive or fill.blank_receiver(ctx)))
                    break
            if binding is not None and binding.operator is not None and binding.value is not None:
                if isinstance(binding.operator, (cst.AddAssign, cst.SubtractAssign)):
                    self._sources(binding.value, At(binding.scope, binding.order), d, True, out)
                previous = binding.previous
                if previous is not None and previous.value is not None:
                    self._sources(previous.value, At(previous.scope, previous.order), d, additive, out)
                return
        if isinstance(expr, (cst.Name, cst.Attribute)):
            value, where = ctx.facts.resolve(expr, at)
            if value is not expr:
                self._sources(value, where, d, additive, out)
            return
        if isinstance(expr, cst.Call):
            fill = as_fill(expr, ctx, at)
            if fill is not None and fill.number == -math.inf:
                out.append((fill, additive or fill.blank_receiver(ctx)))
                return
            tc = ctx.match(expr)
            if tc is None or tc.operand is None or tc.key not in PASS_THROUGH or tc.key == "where":
                return
            self._sources(tc.operand, at, d, additive, out)
            if tc.key in ("add", "add_", "sub", "sub_"):
                other = tc.argument("other", 0)
                if other is not None:
                    self._sources(other, at, d, True, out)
            return
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, (cst.Add, cst.Subtract)):
                self._sources(expr.left, at, d, additive, out)
                self._sources(expr.right, at, d, True, out)
            elif isinstance(expr.operator, (cst.Multiply, cst.Divide)):
                self._sources(expr.left, at, d, additive, out)
                self._sources(expr.right, at, d, additive, out)
            return
        if isinstance(expr, cst.Subscript):
            self._sources(expr.value, at, d, additive, out)

    # -- helpers ------------------------------------------------------------
    def _cleaned_inline(self) -> bool:
        """The softmax being visited sits inside ``nan_to_num(...)`` / ``.nan_to_num()``."""
        for depth in (1, 2, 3):
            parent = self.ctx.parent(depth)
            if isinstance(parent, cst.Call):
                tc = self.ctx.match(parent)
                return tc is not None and tc.key in ("nan_to_num", "nan_to_num_", "masked_fill", "masked_fill_")
        return False

    def _assigned_name(self, call: cst.Call) -> Optional[str]:
        statement = self.ctx.statements[-1] if self.ctx.statements else None
        if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
            small = statement.body[0]
            if isinstance(small, cst.Assign) and len(small.targets) == 1 \
                    and isinstance(small.targets[0].target, cst.Name):
                return small.targets[0].target.value
        return None

    def _never_zero(self, expr: cst.BaseExpression) -> bool:
        """``torch.ones(...)`` / ``torch.full(...)``: a factor with no zeros."""
        if isinstance(expr, cst.Call):
            tc = self.ctx.match(expr)
            if tc is not None:
                return tc.key in _ONES
            name = dotted_name(expr.func) if isinstance(expr.func, (cst.Name, cst.Attribute)) else None
            return name is not None and name.split(".")[-1] in _ONES  # np.ones, np.full
        return False
