import math
from typing import Optional

import libcst as cst

from ..analysis.ops import LINEAR_LAYERS as _LAYERS, PRODUCTS as _PRODUCTS, SPLITS as _SPLITS
from ..analysis.triggers import is_log_scale, overflow_trigger
from ..facts import TRANSPARENT_OPS, At
from ..patterns import code
from ._screens import AS_FOREIGN, Screen, not_foreign
from .base import NEVER, Rule, Witness

# Largest argument whose exp is finite in float16 (max 65504).
_LIMITS = {
    "exp": math.log(65504.0),
    "exp_": math.log(65504.0),
    "expm1": math.log(65505.0),
    "special.expm1": math.log(65505.0),
    "exp2": math.log2(65504.0),
    "special.exp2": math.log2(65504.0),
}


class ExpOverflow(Rule):
    """
    ## What it does
    In code that runs in float16, flags `exp` (`torch.exp`, `x.exp()`, `expm1`,
    `exp2`) of a value that can grow past what float16 holds:

    * an argument clamped, but at a bound float16 cannot take:
      `torch.exp(logvar.clamp(-30, 20))` (exp(20) = 4.9e8);
    * an argument that comes straight from a learnable layer or a matrix
      product, with no clamp: `torch.exp(self.log_std(h))`,
      `mean, logvar = self.enc(x).chunk(2, -1)` ... `logvar.exp()`, `torch.exp(q @ k.T)`;
    * the reparameterisation trick on a value named like a predicted log-scale
      (`logvar`, `logstd`, `log_sigma`...: the name prior of docs/analysis.md) that
      nothing bounds: `std = torch.exp(0.5 * logvar)` in `reparameterize(mu, logvar)`,
      `logstd.exp()`, `mean, log_sigma = params.chunk(2, -1)` ... `log_sigma.exp()`.

    Its confidence comes from the value analysis (an overflow trigger: `logvar` above
    22.18 for `exp(0.5 * logvar)`): medium where a gradient flows, low in code that
    records none (a `@torch.no_grad()` sampler).

    A learnable log-scale parameter (`self.logit_scale.exp()`) is not reported:
    such parameters start near 0 and stay small in practice (all six findings of
    an earlier version on the corpus were of this kind, none plausible).

    It fires only when the file is believed to run in float16: `precision` in the
    config, or evidence in the file (`torch.float16`, `.half()`, a `GradScaler`,
    CUDA autocast without a dtype); the message names the evidence. Hand-written
    softmax, logsumexp and softplus are NAN303.

    ## Why is this bad?
    float16's largest value is 65504, so `exp(x)` is inf for x > 11.09
    (`exp2` for x > 16) and its gradient is inf too (docs/probe.md row 22; the
    bounds are measured in docs/numerics-extra.md). `mu + exp(0.5 * logvar) * eps` is
    inf in float16 for a log-variance of 23 (row 55). In pure float16 (`.half()`)
    the forward overflows. Under CUDA autocast `exp` runs in float32, but the
    gradient flowing back into the float16 layer output is exp(x) again and
    overflows when cast to float16 (row 22: upcasting fixes only the forward).

    ## Why preview?
    Whether a layer output ever exceeds 11 depends on training; nanlint cannot
    see it, so this rule is opt-in (`preview = true` or `--select NAN304`). On the
    precision corpus (5,558 files of transformers, diffusers, timm, lightning, kornia,
    pytorch-metric-learning and torchmetrics; `benchmarks/precision.py --select NAN304`)
    it finds nothing at any confidence: those libraries clamp their log-variances
    (`logvar.clamp(-30, 20)`) or run them in float32, so there is no evidence yet that
    its findings are real, and it stays in preview.

    ## Example
    ```python
    std = torch.exp(0.5 * self.fc_logvar(h))          # model.half()
    var = torch.exp(logvar.clamp(-30.0, 20.0))
    ```

    ## Use instead
    ```python
    std = torch.exp(0.5 * self.fc_logvar(h).clamp(max=20.0))   # 0.5 * 20 = 10 < 11.09
    var = torch.exp(logvar.clamp(-30.0, 11.0))                  # exp(11) = 59874 < 65504
    ```
    Computing it in float32 (`logvar.float().clamp(-30.0, 20.0).exp()`) is not
    enough: the forward is finite, but the gradient exp(x) overflows when it
    flows back into the float16 `logvar` (row 22).

    ## Fix safety
    No automatic fix: the right bound depends on the model.
    """

    code = "NAN304"
    name = "exp-overflow"
    summary = "exp of an unbounded value in float16 code (overflows above 11.09)"
    rows = "22, 55"
    fix_availability = NEVER
    fix_applicability = ()
    preview = True
    # literal-first (no leading \b): 20x faster; ``math.exp`` is not torch's
    screen = Screen(r"exp(?<!\wexp)" + not_foreign("exp") + r"(?:m1|2|_)?\s*\(|" + AS_FOREIGN)
    witnesses = (
        Witness(
            setup="half = torch.float16; fc = torch.nn.Linear(1, 1).to(dtype); "
                  "torch.nn.init.ones_(fc.weight); torch.nn.init.constant_(fc.bias, 11.0); "
                  "x = leaf(torch.ones(1, 1, dtype=dtype))",
            hazard="y = torch.exp(fc(x))",
            fixed="y = torch.exp(fc(x).clamp(max=11.0))",
            hazard_dtypes=("float16",),
        ),
        Witness(
            setup="half = torch.float16; logvar = leaf(torch.tensor([25.0], dtype=dtype))",
            hazard="y = torch.exp(logvar.clamp(-30.0, 20.0))",
            fixed="y = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))",
            hazard_dtypes=("float16",),
        ),
        Witness(  # an upcast fixes only the forward: the gradient exp(12) overflows back in float16 (row 22)
            setup="half = torch.float16; logvar = leaf(torch.tensor([12.0, 25.0], dtype=dtype))",
            hazard="y = torch.exp(logvar.float().clamp(-30.0, 20.0))",
            fixed="y = torch.exp(logvar.clamp(-30.0, 11.0))",
            hazard_dtypes=("float16",),
        ),
        Witness(  # the reparameterisation trick: std = exp(0.5 * logvar) is inf for a log-variance above 22.18
            setup="half = torch.float16; mu = leaf(torch.zeros(2, dtype=dtype)); "
                  "logvar = leaf(torch.tensor([0.0, 23.0], dtype=dtype)); noise = torch.ones(2, dtype=dtype)",
            hazard="y = mu + torch.exp(0.5 * logvar) * noise",
            fixed="y = mu + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * noise",
            hazard_dtypes=("float16",),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None or tc.key not in _LIMITS or tc.operand is None or not self.facts.is_tensor_method(tc):
            return
        evidence = self.ctx.fp16_evidence()
        if evidence is None or self._inside_hand_pattern(node):
            return
        at = self.ctx.at()
        limit = _LIMITS[tc.key]
        name = "exp2" if "exp2" in tc.key else "expm1" if "expm1" in tc.key else "exp"
        bound = self.facts.upper_bound(tc.operand, at)
        if bound is not None:
            if bound.shifted or bound.value <= limit:
                return
            why = f"its argument is bounded only by {bound.value:g}, and {name}({bound.value:g}) is beyond " \
                  "float16's 65504"
        else:
            origin = self._unbounded_origin(tc.operand, at)
            if origin is None:
                return
            why = f"its argument is {origin}, with no bound"
        judged = self.judge(tc.operand, trigger=overflow_trigger(self.facts, tc.operand, at, limit, "float16"))
        if judged is None:
            return
        self.report(node, f"`{code(self.ctx, node)}`: {why}; {name} overflows to inf, with an inf gradient, "
                          f"{judged.reached_by}; clamp the argument or compute it in float32. float16 evidence: "
                          f"{evidence}", target=tc.operand, **judged.extra())

    def _inside_hand_pattern(self, node: cst.Call) -> bool:
        """Part of a hand-written softmax / logsumexp / softplus in the same expression (NAN303's finding)."""
        for ancestor in reversed(self.ctx.stack[:-1]):
            if isinstance(ancestor, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return False
            if isinstance(ancestor, cst.Call):
                tc = self.ctx.match(ancestor)
                if tc is not None and tc.key in ("log", "log_", "log1p", "special.log1p"):
                    return True
            if isinstance(ancestor, cst.BinaryOperation) and isinstance(ancestor.operator, cst.Divide):
                here, other = (ancestor.right, ancestor.left) if _contains(ancestor.right, node) \
                    else (ancestor.left, ancestor.right)
                if _contains_equal(other, node):
                    return True  # exp(x) / exp(x).sum(): NAN303
        return False

    def _unbounded_origin(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional[str]:
        """``the output of `self.fc` (nn.Linear)``, ``a matrix product``, or None."""
        if depth > 12:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.facts.binding(expr, at)
            name = expr.value if isinstance(expr, cst.Name) else expr.attr.value
            # named like a predicted log-scale (``reparameterize(mu, logvar)``, ``mean, logvar =
            # params.chunk(2, dim=1)``, ``logvar = self.encode(h)``); module state (``self.log_std``, an
            # ``nn.Parameter`` that starts near 0) is not: :data:`nanlint.analysis.triggers.NAME_PRIORS`
            prior = is_log_scale(name) and not (isinstance(expr, cst.Attribute) and isinstance(
                expr.value, cst.Name) and expr.value.value == "self")
            by_name = f"`{name}`, a predicted log-scale by its name" if prior else None
            if b is None or b.value is None or b.is_parameter or b.operator is not None:
                return by_name if b is None or b.is_parameter else None
            return self._unbounded_origin(b.value, At(b.scope, b.order), d) or by_name
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
            return self._unbounded_origin(expr.expression, at, d)
        if isinstance(expr, cst.Subscript):
            return self._unbounded_origin(expr.value, at, d)
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, cst.MatrixMultiply):
                return "a matrix product"
            if isinstance(expr.operator, (cst.Multiply, cst.Divide, cst.Add, cst.Subtract)):
                left_literal = self.facts.literal(expr.left, at)
                right_literal = self.facts.literal(expr.right, at)
                if right_literal is not None and (right_literal > 0 or not isinstance(
                        expr.operator, (cst.Multiply, cst.Divide))):
                    return self._unbounded_origin(expr.left, at, d)
                if left_literal is not None and not isinstance(expr.operator, cst.Divide) and (
                        left_literal > 0 or not isinstance(expr.operator, cst.Multiply)):
                    return self._unbounded_origin(expr.right, at, d)
            return None
        if isinstance(expr, cst.Call):
            module = self.facts.module_kind(expr, at)
            if module in _LAYERS:
                return f"the output of `{code(self.ctx, expr.func)}` ({module})"
            tc = self.ctx.match(expr)
            if tc is None or tc.operand is None or not self.facts.is_tensor_method(tc):
                return None
            if tc.key in _PRODUCTS:
                return "a matrix product"
            if tc.key in TRANSPARENT_OPS or tc.key in _SPLITS:
                return self._unbounded_origin(tc.operand, at, d)
        return None


def _contains(tree: cst.CSTNode, target: cst.CSTNode) -> bool:
    stack = [tree]
    while stack:
        node = stack.pop()
        if node is target:
            return True
        stack.extend(node.children)
    return False


def _contains_equal(tree: cst.CSTNode, target: cst.CSTNode) -> bool:
    stack = [tree]
    while stack:
        node = stack.pop()
        if type(node) is type(target) and node.deep_equals(target):
            return True
        stack.extend(node.children)
    return False
