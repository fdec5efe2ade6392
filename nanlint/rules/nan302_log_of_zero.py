import re
from typing import Optional

import libcst as cst

from ..facts import At, Probability, names_in
from ..analysis.gradient import gradient_at, metric_code
from ..analysis.ops import CASTS, DETACH, LOGS as _LOGS
from ..analysis.triggers import ABSENT_CATEGORY, ORDINARY, SATURATED_TANH, Trigger
from ..patterns import code
from ._screens import AS_FOREIGN, Screen, not_foreign
from .base import NEVER, Rule, Witness


# the entries a ``where`` condition sends to the other branch: they exist, or it would not be written
_MASKED_OUT = Trigger("the entries the condition masks out (a probability of exactly 0)", ORDINARY)
# method and function spellings of the comparisons ``_positive_test`` reads: x > c, x != c, x >= c
_METHOD_TESTS = frozenset({"gt", "greater", "ne", "not_equal", "ge", "greater_equal"})


class LogOfZero(Rule):
    """
    ## What it does
    Flags a logarithm of a value that is visibly able to be exactly 0, with no
    clamp or eps:

    * a parameter named like a probability (`p`, `probs`, `*_prob`; the name priors
      of docs/analysis.md), at medium confidence, unless the function compares it
      with 0 (a guard) -- but a `torch.where(p > 0, p * torch.log(p), 0)` around the
      log is no guard: the where selects values, not gradients, and at p == 0 the
      log's infinite derivative times 0 is NaN in backward (row 30; a gradient-only
      hazard, reported where training differentiates the code);
    * a probability derived from a softmax or sigmoid: an element picked by
      `gather` or indexing, the probability of the target `(probs * onehot).sum(-1)`,
      the focal-loss `pt = torch.where(y == 1, p, 1 - p)`, `1 - p` of a softmax,
      a value divided by its own sum (`counts / counts.sum()`), a clamp that
      leaves 0 reachable (`p.clamp(max=1)`);
    * `torch.log1p(-p)` and a hand-written logit `torch.log(p / (1 - p))` of such a
      probability, and `torch.logit(p)` with no `eps`;
    * `torch.xlogy(p, p)` / `torch.special.entr(p)` of such a probability where a
      gradient is taken: they fix the entropy's forward value only;
    * `torch.log(1 - a.pow(2))` of `a = torch.tanh(u)` (SAC's squashed-Gaussian
      log-probability): tanh rounds to exactly +-1 once |u| passes 9.02 in
      float32 (4.51 in float16, 3.47 in bfloat16; row 61), at medium confidence;
    * a value the function masks by its own positivity *after* taking the log:
      `(torch.log(pred) - torch.log(gt)) * (gt > 0).float()` on sparse depth, where
      every invalid pixel is 0, so -inf * 0 = NaN in every batch (row 66); taking the
      log of `gt[mask]`, or of a clamped value, is silent;
    * a ratio whose divisor is such a value, where a gradient flows outside a metric:
      a PSNR loss `-10 * torch.log10(max_val ** 2 / mse)` is -inf with a NaN gradient
      at a perfect reconstruction (row 68);
    * the frequency of a category in the batch, `F.one_hot(codes, K).float().mean(0)`
      (or a `zeros(N, K).scatter_(1, idx, 1)` one-hot): 0 for a category no sample
      falls in, which is ordinary (a VQ codebook's unused entries), so a perplexity
      `exp(-(f * log(f)).sum())` is NaN (row 63);
    * a norm, variance, standard deviation, MSE, squared difference or sum of
      squares (`torch.log(F.mse_loss(pred, target))`, `torch.log(x.norm())`),
      outside `torch.no_grad()` (a plain square `s * s` is not enough: `s` may be
      bounded away from 0).

    The log of a softmax or sigmoid itself is NAN301 (it has an exact rewrite).

    ## Why is this bad?
    `log(0)` is -inf and its gradient is NaN or Inf in every dtype (numerics.md
    row 17). Softmax and sigmoid outputs reach exactly 0 and 1 in ordinary
    training (row 16: hand-written BCE; row 18: entropy of a one-hot
    distribution; measured thresholds in docs/numerics-extra.md), and so
    `log(p)`, `log(1 - p)` and `logit(p)` (row 20) become infinite. `xlogy` and
    `entr` return 0 at p = 0, but their gradient there is NaN / +Inf (rows 18, 49).

    Not flagged: `F.kl_div`, `F.binary_cross_entropy` (clamped inside; but see
    NAN501 in float16), `log_softmax`, `logsumexp`, `F.cross_entropy`,
    `torch.logit(p, eps=...)`, logs of values clamped away from 0 (and from 1 for
    `log(1 - p)`), and logs of values whose origin nanlint cannot see.

    ## Example
    ```python
    probs = logits.softmax(-1)
    nll = -torch.log(probs.gather(1, target[:, None]))
    pt = torch.where(y == 1, p, 1 - p)
    focal = -(1 - pt) ** 2 * torch.log(pt)
    ```

    ## Use instead
    ```python
    nll = -F.log_softmax(logits, -1).gather(1, target[:, None])    # or F.cross_entropy
    focal = -(1 - pt) ** 2 * torch.log(pt.clamp_min(torch.finfo(pt.dtype).tiny))
    ```
    A clamp of 1e-8 or 1e-12 underflows to 0 in float16 (row 17): use
    `torch.finfo(p.dtype).tiny` (for `log(p)`) or `.eps` (for `logit`, `1 - p`).

    ## Fix safety
    No automatic fix: the right rewrite (log_softmax and gather, BCE with logits,
    a clamp) depends on the surrounding loss.
    """

    code = "NAN302"
    name = "log-of-zero"
    summary = "log of a probability or other value that can be exactly 0"
    rows = "16, 17, 18, 20, 30, 49, 61, 63, 66, 68"
    fix_availability = NEVER
    fix_applicability = ()
    # literal-first: 10x faster; ``math.log`` is not torch's
    screen = Screen(r"log(?<!\wlog)" + not_foreign("log") + r"(?:1p|2|10|_|it)?\s*\(|xlogy|entr(?<!\wentr)(?!\w)|"
                    + AS_FOREIGN)
    witnesses = (
        Witness(  # a PSNR loss at a perfect reconstruction: log10(1 / 0) (row 68)
            setup="x = leaf(torch.ones(4, dtype=dtype)); t = torch.ones(4, dtype=dtype)",
            hazard="mse = F.mse_loss(x, t); y = -10 * torch.log10(1.0 / mse)",
            fixed="mse = F.mse_loss(x, t); y = -10 * torch.log10(1.0 / mse.clamp_min(torch.finfo(mse.dtype).eps))",
        ),
        Witness(  # sparse depth: the log of every gt pixel, then the validity mask: 0 * -inf (row 66)
            setup="pred = leaf(torch.ones(4, dtype=dtype)); gt = torch.tensor([1.0, 2.0, 0.0, 0.0], dtype=dtype)",
            hazard="mask = (gt > 0).to(dtype); y = ((torch.log(pred) - torch.log(gt)) * mask).sum()",
            fixed="mask = gt > 0; y = (torch.log(pred[mask]) - torch.log(gt[mask])).sum()",
        ),
        Witness(  # a codebook's perplexity: codes 2 and 3 are unused, their frequency is 0 (row 63)
            setup="codes = torch.tensor([0, 0, 1])",
            hazard="f = F.one_hot(codes, 4).to(dtype).mean(0); y = torch.exp(-(f * torch.log(f)).sum())",
            fixed="f = F.one_hot(codes, 4).to(dtype).mean(0); "
                  "y = torch.exp(-(f * torch.log(f.clamp_min(torch.finfo(f.dtype).tiny))).sum())",
        ),
        Witness(  # SAC's squashed-Gaussian log-det: tanh(10) rounds to 1 in every dtype (row 61)
            setup="u = leaf(torch.full((4,), 10.0, dtype=dtype))",
            hazard="y = torch.log(1 - torch.tanh(u).pow(2))",
            fixed="y = 2 * (0.6931471805599453 - u - F.softplus(-2 * u))",
        ),
        Witness(
            setup="x = leaf(torch.tensor([[0.0, 200.0]], dtype=dtype)); t = torch.tensor([[0]])",
            hazard="probs = F.softmax(x, -1); y = -torch.log(probs.gather(-1, t))",
            fixed="y = -F.log_softmax(x, -1).gather(-1, t)",
        ),
        Witness(
            setup="z = leaf(torch.tensor([-200.0], dtype=dtype)); target = torch.ones(1)",
            hazard="p = torch.sigmoid(z); pt = torch.where(target == 1, p, 1 - p); "
                   "y = -(1 - pt) ** 2 * torch.log(pt)",
            fixed="p = torch.sigmoid(z); pt = torch.where(target == 1, p, 1 - p); "
                  "y = -(1 - pt) ** 2 * torch.log(pt.clamp_min(torch.finfo(pt.dtype).tiny))",
        ),
        Witness(
            setup="z = leaf(torch.tensor([20.0, -20.0], dtype=dtype))",
            hazard="p = torch.sigmoid(z); y = torch.logit(p)",
            fixed="p = torch.sigmoid(z); y = torch.logit(p, eps=torch.finfo(p.dtype).eps)",
        ),
        Witness(
            setup="x = leaf(torch.tensor([0.0, 200.0], dtype=dtype))",
            hazard="p = F.softmax(x, -1); y = -torch.special.xlogy(p, p).sum()",
            fixed="y = -(F.softmax(x, -1) * F.log_softmax(x, -1)).sum()",
        ),
        Witness(
            setup="p = leaf(torch.ones(3, dtype=dtype)); t = torch.ones(3, dtype=dtype)",
            hazard="y = torch.log(F.mse_loss(p, t))",
            fixed="y = torch.log(F.mse_loss(p, t).clamp_min(1e-4))",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        at = self.ctx.at()
        tc = self.ctx.match(node)
        if tc is None or tc.operand is None or not self.facts.is_tensor_method(tc):
            return
        key = tc.key
        if key in _LOGS:
            self._check_log(node, tc.operand, at)
        elif key in ("log1p", "special.log1p"):
            operand = tc.operand
            if isinstance(operand, cst.UnaryOperation) and isinstance(operand.operator, cst.Minus):
                found = self.facts.probability(operand.expression, at)
                if found is not None and found.one and not _nan301(found, complement=True):
                    self.report(node, f"`{code(self.ctx, node)}` is -inf when {_described(self, found)} reaches 1; "
                                      "clamp it below 1 first (`p.clamp_max(1 - torch.finfo(p.dtype).eps)`)",
                                target=operand)
        elif key in ("logit", "special.logit"):
            eps = tc.argument("eps", 0)
            if eps is not None and not (isinstance(eps, cst.Name) and eps.value == "None"):
                value = self.facts.literal(eps, at)
                if value is None or value > 0:
                    return  # an eps (a named one counts)
            found = self.facts.probability(tc.operand, at)
            if found is not None and (found.zero or found.one):
                self.report(node, f"`{code(self.ctx, node)}` without `eps` is infinite when {_described(self, found)} "
                                  "is exactly 0 or 1; pass `eps=torch.finfo(p.dtype).eps` (1e-6 rounds away in "
                                  "float16/bfloat16)", target=tc.operand)
        elif key in ("xlogy", "special.xlogy", "special.entr"):
            argument = tc.operand if key == "special.entr" else tc.argument("other", 0)
            if argument is None or self.ctx.in_no_grad() or not gradient_at(self.ctx, (argument,)).flows:
                return  # only the gradient is affected, and none flows here (a one-hot frequency, no_grad)
            found = self.facts.probability(argument, at)
            if found is not None and found.zero:
                name = "entr" if key == "special.entr" else "xlogy"
                self.report(node, f"`{code(self.ctx, node)}`: `{name}` is 0 at p = 0 but its gradient there is "
                                  f"{'+Inf' if name == 'entr' else 'NaN'}, and {_described(self, found)} can be "
                                  "exactly 0; clamp p with `torch.finfo(p.dtype).tiny` or use `p * log_softmax(...)`",
                            target=argument)

    def _where_trap(self, node: cst.Call, argument: cst.BaseExpression) -> None:
        """``torch.where(p > 0, p * torch.log(p), 0)``: the where selects values, not gradients. At p == 0 the
        log's derivative is inf, and the 0 the where gives that branch times inf is NaN in backward (docs/probe.md
        row 30). NAN401 reports the other ops of this trap; the log of a probability is this rule's."""
        if not isinstance(argument, cst.Name):
            return
        for ancestor, child in zip(reversed(self.ctx.stack[:-1]), reversed(self.ctx.stack[1:])):
            if isinstance(ancestor, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
                return
            tc = self.ctx.match(ancestor) if isinstance(ancestor, cst.Call) else None
            if tc is None or tc.key != "where" or tc.operand is None or len(ancestor.args) != 3:  # type: ignore
                continue
            if child is ancestor.args[0] or argument.value not in names_in(tc.operand):  # type: ignore
                return
            judged = self.judge(argument, gradient_only=True, trigger=_MASKED_OUT)
            if judged is None:
                return
            self.report(node, f"`{code(self.ctx, node)}` inside `torch.where({code(self.ctx, tc.operand, 30)}, ...)`: "
                              "the where selects values, not gradients; where the probability is exactly 0 (a "
                              "masked or saturated entry) the log's infinite derivative times the 0 the where gives "
                              "is NaN in backward; take the log of a safe value: `torch.log(torch.where(c, p, 1))`",
                        target=argument, **{**judged.extra(),
                                             "confidence": "low" if judged.confidence == "low" else "medium"})
            return

    def _check_reciprocal(self, node: cst.Call, divisor: cst.BaseExpression, at: At) -> None:
        """``10 * torch.log10(max_val ** 2 / mse)`` (a PSNR loss): the divisor is an MSE, a norm or a variance, 0 at
        a perfect reconstruction, so the log is +inf and its gradient NaN. A metric's +inf PSNR is its value."""
        source = self.facts.zero_source(divisor, at)
        if source is None or source.kind not in _ZERO_WHEN or self.facts.is_constant(divisor, at):
            return
        if metric_code(self.ctx):
            return  # a metric reports the infinite PSNR as it is
        judged = self.judge(divisor)
        if judged is None or not judged.gradient.flows:
            return
        self.report(node, f"`{code(self.ctx, node)}`: log of a ratio whose divisor `{code(self.ctx, divisor, 40)}` is "
                          f"{source.described} that is exactly 0 {_ZERO_WHEN[source.kind]}: +inf, and a NaN gradient "
                          "(a PSNR loss at a perfect reconstruction); clamp the divisor (`.clamp_min(eps)`)",
                    target=divisor, **judged.extra())

    def _masked_afterwards(self, node: cst.Call, argument: cst.BaseExpression, at: At
                           ) -> Optional[cst.BaseExpression]:
        """The mask the log's result is multiplied by (in the same expression, or through the names it is
        assigned to: ``d = log(pred) - log(gt)`` ... ``d = d * mask``, ``d.mul_(mask)``) when that mask tests the
        log's own argument, or the divisor of ``log(pred / gt)``, for being positive (sparse depth: the masked-out
        entries are the zeros, and 0 * -inf is NaN there)."""
        from ..analysis.uses import multiplied_by

        value = argument
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Divide):
            value = value.right  # ``log(pred / gt)``: +inf where ``gt`` is 0
        if not isinstance(value, cst.Name):
            return None
        factor = multiplied_by(self.ctx)
        if factor is not None and self._positive_test(factor, value.value, at):
            return factor
        return None

    def _positive_test(self, expr: cst.BaseExpression, name: str, at: At, depth: int = 0) -> bool:
        """``expr`` (through names and casts) is ``name > c`` / ``name != c`` / ``name >= c`` with c >= 0 (c > 0
        for ``>=``), alone or in a conjunction: true where ``name`` is positive, false where it is 0."""
        if depth > 6:
            return False
        value, where = self.facts.resolve(expr, at)
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.BitAnd, cst.Multiply)):
            return self._positive_test(value.left, name, where, depth + 1) or \
                self._positive_test(value.right, name, where, depth + 1)
        if isinstance(value, cst.Call):
            tc = self.ctx.match(value)
            if tc is not None and tc.operand is not None and (tc.key in CASTS or tc.key in DETACH):
                return self._positive_test(tc.operand, name, where, depth + 1)
            if tc is not None and tc.key in _METHOD_TESTS and isinstance(tc.operand, cst.Name) \
                    and tc.operand.value == name:  # ``gt.gt(0)``, ``torch.ne(gt, 0)``
                bound = self.facts.literal(tc.positional(0), where)
                return bound is not None and (bound > 0 if tc.key in ("ge", "greater_equal") else bound >= 0)
            return False
        if not isinstance(value, cst.Comparison) or len(value.comparisons) != 1:
            return False
        target = value.comparisons[0]
        left, right, operator = value.left, target.comparator, target.operator
        if isinstance(right, cst.Name) and right.value == name:  # ``0 < gt``
            left, right = right, left
            operator = {cst.LessThan: cst.GreaterThan(), cst.LessThanEqual: cst.GreaterThanEqual()}.get(
                type(operator), operator)
        if not (isinstance(left, cst.Name) and left.value == name):
            return False
        bound = self.facts.literal(right, where)
        if bound is None:
            return False
        if isinstance(operator, (cst.GreaterThan, cst.NotEqual)):
            return bound >= 0
        return isinstance(operator, cst.GreaterThanEqual) and bound > 0

    def _logged_with_complement(self, argument: cst.BaseExpression, at: At) -> bool:
        """``log(x)`` and ``log(1 - x)`` (or ``log1p(-x)``) of the same parameter ``x`` in one function: the
        code itself says ``x`` lies in [0, 1] (a logit transform of pixels, a hand-written binary entropy), whatever
        ``x`` is called. Only for a parameter, whose value nanlint cannot see."""
        name = argument
        if isinstance(argument, cst.BinaryOperation) and isinstance(argument.operator, cst.Subtract) \
                and self.facts.literal(argument.left, at) == 1.0:
            name = argument.right
        if not isinstance(name, cst.Name):
            return False
        b = self.facts.binding(name, at)
        if b is None or not b.is_parameter or self.facts.mutated_in_place(name.value, b, at):
            return False
        x = re.escape(name.value)
        source = self.ctx.function_source()
        plain = re.search(rf"\blog\w*\(\s*{x}\s*\)|\b{x}\s*\.\s*log(?:2|10)?\(\s*\)", source)
        complement = re.search(rf"\blog\w*\(\s*1(?:\.0*)?\s*-\s*{x}\s*\)|\blog1p\(\s*-\s*{x}\s*\)"
                               rf"|\(\s*1(?:\.0*)?\s*-\s*{x}\s*\)\s*\.\s*log(?:2|10)?\(|\(\s*-\s*{x}\s*\)\s*\.\s*log1p\(",
                               source)
        return plain is not None and complement is not None

    def _compared_to_zero(self, argument: cst.BaseExpression) -> bool:
        """The enclosing function compares ``argument`` (a name) with 0 somewhere."""
        if not isinstance(argument, cst.Name):
            return False
        return _zero_test(argument.value).search(self.ctx.function_source()) is not None

    def _check_log(self, node: cst.Call, argument: cst.BaseExpression, at: At) -> None:
        if self.silenced(argument):
            return  # filtered to non-zero entries, repaired afterwards, or not a tensor
        mask = self._masked_afterwards(node, argument, at)
        if mask is not None:
            gradient = gradient_at(self.ctx, (argument,))
            effect = "in the loss, and in its gradient once the result is squared, rooted or normalised" \
                if gradient.flows else f"in the forward pass; {gradient.reason}"
            test, _ = self.facts.resolve(mask, at)
            shown = code(self.ctx, mask, 40) if test is mask else \
                f"{code(self.ctx, mask, 20)}` = `{code(self.ctx, test, 40)}"
            self.report(node, f"`{code(self.ctx, node)}` is -inf where `{code(self.ctx, argument)}` is 0, which the "
                              f"mask `{shown}` shows it can be (an invalid or missing entry); "
                              f"multiplying by the mask afterwards gives 0 * -inf = NaN {effect}; take the log of "
                              "the valid entries only (`x[mask]`) or clamp first "
                              "(`.clamp_min(torch.finfo(x.dtype).tiny)`)",
                        target=argument, confidence="high" if gradient.flows else "medium")
            return
        found = self.facts.probability(argument, at)
        if found is None and self._logged_with_complement(argument, at):
            gradient = gradient_at(self.ctx, (argument,))
            self.report(node, f"`{code(self.ctx, node)}`: the function takes the log of both `x` and `1 - x`, so `x` "
                              "is a value in [0, 1]; at exactly 0 or 1 (a black or white pixel, a saturated "
                              "probability) one of them is -inf, with a NaN gradient; squeeze it into (0, 1) first "
                              "(`alpha + (1 - 2 * alpha) * x`) or clamp (`x.clamp(eps, 1 - eps)`)", target=argument,
                        confidence="medium" if gradient.flows else "low")
            return
        if found is not None:
            if _nan301(found) or found.kind == "hand-written softmax" or not found.zero:
                return  # NAN301 / NAN303 report these, or it is clamped away from 0
            if found.kind.endswith("(by its name)") and self._compared_to_zero(argument):
                self._where_trap(node, argument)  # ``p > 0`` tested: a guard, unless it is a where around the log
                return
            value, _ = self.facts.resolve(argument, at)
            complement = isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Subtract)
            advice = "clamp `1 - p` first: `.clamp_min(torch.finfo(p.dtype).tiny)`" if complement else _advice(found)
            gradient = gradient_at(self.ctx, (argument,))
            metric = metric_code(self.ctx)
            if found.kind == "frequency" and self._compared_to_zero(argument):
                return  # ``where(f > 0, f * log(f), 0)``: the forward is guarded (the gradient trap is NAN401's)
            if found.kind == "frequency":
                # not an underflow: a category absent from the batch is the ordinary case (a codebook early in
                # training); its log is -inf and ``f * log(f)`` (entropy, perplexity) is 0 * -inf = NaN
                self.report(node, f"`{code(self.ctx, node)}`: {_described(self, found)} is exactly 0 for "
                                  f"{ABSENT_CATEGORY.text}, giving -inf (and NaN in `f * log(f)`: an entropy or "
                                  f"perplexity); {advice}", target=argument,
                            confidence="high" if gradient.flows and not metric else "medium")
                return
            if gradient.flows and not metric:
                # a probability known only by its parameter's name is a plausible edge case, not a certainty
                effect, level = "-inf and a NaN gradient", "medium" if found.kind.endswith("(by its name)") else "high"
            else:  # a metric or a decoding step: -inf in an output, no loss is trained through it
                effect, level = f"-inf (no gradient flows here: {gradient.reason or metric})", "low"
            self.report(node, f"`{code(self.ctx, node)}`: {_described(self, found)} can be exactly 0 "
                              f"(underflow or saturation), giving {effect}; {advice}", target=argument,
                        confidence=level)
            return
        value, where = self.facts.resolve(argument, at)
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Divide):
            top = self.facts.probability(value.left, where)
            bottom = self.facts.probability(value.right, where)
            if top is not None and top.zero or bottom is not None and bottom.zero:
                found = top if top is not None and top.zero else bottom
                assert found is not None
                self.report(node, f"`{code(self.ctx, node)}`: a hand-written logit of {_described(self, found)}, "
                                  "infinite when p is exactly 0 or 1; use `torch.logit(p, eps=torch.finfo(p.dtype).eps)`"
                                  " or keep the logits", target=argument)
                return
            self._check_reciprocal(node, value.right, where)
            return
        if self.ctx.in_no_grad():
            return  # statistics and metrics (``log2(rms).ceil()``): no loss is built here
        source = self.facts.zero_source(argument, at)
        if source is not None and source.kind == "one minus a squared tanh":
            judged = self.judge(argument, trigger=SATURATED_TANH)
            if judged is not None:
                self.report(node, f"`{code(self.ctx, node)}`: log of `{code(self.ctx, argument)}`, one minus a squared "
                                  f"tanh, is -inf {judged.reached_by}, where the tanh rounds to exactly +-1, and its "
                                  "gradient is NaN; use the stable form `2 * (math.log(2) - u - F.softplus(-2 * u))` "
                                  "of the pre-tanh value `u`", target=argument, **judged.extra())
            return
        if source is not None and source.kind in _ZERO_WHEN and not self.facts.is_constant(argument, at):
            when = _ZERO_WHEN.get(source.kind, "for a zero input")
            self.report(node, f"`{code(self.ctx, node)}`: log of `{code(self.ctx, argument)}`, {source.described} "
                              f"that is exactly 0 {when}: -inf and an infinite gradient; clamp it "
                              "(`.clamp_min(eps)`)", target=argument)


_ZERO_WHEN = {
    "norm": "for a zero vector",
    "hand-written norm": "for a zero vector",
    "MSE": "when the prediction fits the target exactly",
    "squared difference": "when the two sides are equal",
    "variance": "for a constant input",
    "sum of squares": "for a zero vector",
    "mean of squares": "for a zero vector",
    "standard deviation": "for a constant input",
    "square root of a variance": "for a constant input",
}


def _nan301(found: Probability, complement: bool = False) -> bool:
    """Reported by NAN301: ``log`` of a softmax/sigmoid itself, or of ``1 - sigmoid``."""
    if not found.direct or found.kind not in ("softmax", "sigmoid"):
        return False
    if complement:
        return found.kind == "sigmoid" and not found.complement
    return True


def _zero_test(name: str) -> "re.Pattern[str]":
    return re.compile(rf"\b{re.escape(name)}\s*(?:>|!=|==|>=)\s*0\b|\b0\s*(?:<|!=|==)\s*{re.escape(name)}\b")


def _described(rule: Rule, found: Probability) -> str:
    origin = code(rule.ctx, found.node, 40)
    if found.kind == "frequency":
        return f"the frequency of a category (`{origin}`)"
    if found.kind == "normalised":
        return f"a value normalised by its sum (`{origin}`)"
    return f"a probability derived from `{origin}`"


def _advice(found: Probability) -> Optional[str]:
    if found.kind == "softmax":
        return "take `log_softmax` of the logits first (then gather/index), or clamp with " \
               "`.clamp_min(torch.finfo(p.dtype).tiny)`"
    if found.kind == "sigmoid":
        return "use `F.logsigmoid` / `F.binary_cross_entropy_with_logits`, or clamp with " \
               "`.clamp_min(torch.finfo(p.dtype).tiny)`"
    return "clamp it first: `.clamp_min(torch.finfo(p.dtype).tiny)`"
