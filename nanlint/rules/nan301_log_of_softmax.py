from typing import Optional

import libcst as cst

from ..facts import SOFTMAX_OPS, At, Probability
from ..fixspec import SAFE, FixSpec, Replace
from ..analysis.gradient import gradient_at
from ..analysis.ops import LOGS as _LOGS
from ..patterns import code
from ..scope import lookup
from ._screens import AS_FOREIGN, Screen, not_foreign
from .base import Rule, SOMETIMES, Witness


class LogOfSoftmax(Rule):
    """
    ## What it does
    Flags the logarithm of a softmax or a sigmoid: `torch.log(F.softmax(x, dim=-1))`,
    `x.softmax(-1).log()`, `torch.log(torch.sigmoid(z))`, `torch.log(1 - z.sigmoid())`,
    `torch.log1p(-torch.sigmoid(z))`, also when the probability was stored in a
    variable first (`probs = F.softmax(logits, -1)` ... `torch.log(probs)`), and
    for `nn.Softmax` / `nn.Sigmoid` modules (`self.softmax = nn.Softmax(dim=1)`).

    ## Why is this bad?
    A softmax output underflows to exactly 0 once a logit trails the largest one
    by about 104 in float32, 93 in bfloat16 and 17.5 in float16; a sigmoid is
    exactly 0 below about -89 (float32/bfloat16) or -17.5 (float16), and exactly
    1 above 16.7 (float32), 8.4 (float16) or 6.3 (bfloat16), so `1 - sigmoid` is 0
    there. `log(0)` is -inf and the gradient is NaN, in every dtype (numerics.md
    rows 14 and 15; the thresholds and the `1 - sigmoid` form are measured in
    docs/numerics-extra.md). Confident classifiers reach such logits in training.
    `log_softmax` and `logsigmoid` compute the same function without forming
    the probability and stay finite.

    A probability that was only derived from a softmax or sigmoid (an element
    picked by `gather`, a product with the target, a clamp that leaves 0
    reachable) is reported by NAN302 instead; a clamped one is not reported.

    ## Example
    ```python
    log_probs = torch.log(F.softmax(logits, dim=-1))
    loss = -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z)))
    ```

    ## Use instead
    ```python
    log_probs = F.log_softmax(logits, dim=-1)
    loss = -(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z))   # or F.binary_cross_entropy_with_logits
    ```

    ## Fix safety
    Safe: `log_softmax(x, dim)` and `logsigmoid(x)` are the same functions as
    `log(softmax(x, dim))` and `log(sigmoid(x))` (and `logsigmoid(-x)` is
    `log(1 - sigmoid(x))`); where the original is finite they agree to rounding
    (measured: at most 1.9e-6 apart in float32), and where it is -inf they return
    the finite value. The fix keeps the user's spelling (`F.`, `torch.`, `th.`,
    method form), and is offered through a variable only when the softmax input
    is a plain name that still holds the same value at the `log`. With an
    `nn.Softmax(dim=d)` module (a literal `d`) it writes `torch.log_softmax(x,
    dim=d)`, with `nn.Sigmoid` `F.logsigmoid(x)`. A hand-written softmax inside
    the `log` is first rewritten to `torch.softmax` by NAN303, then to
    `log_softmax` by this rule (two fix passes).
    """

    code = "NAN301"
    name = "log-of-softmax"
    summary = "log of a softmax or sigmoid (-inf when it underflows); use log_softmax / logsigmoid"
    rows = "14, 15"
    fix_availability = SOMETIMES
    fix_applicability = (SAFE,)
    # literal-first (no leading \b): 25x faster; ``math.log`` is not torch's
    screen = Screen(r"log(?<!\wlog)" + not_foreign("log") + r"(?:1p|2|10)?\s*\(|" + AS_FOREIGN)
    witnesses = (
        Witness(
            setup="x = leaf(torch.tensor([0.0, 200.0], dtype=dtype))",
            hazard="y = torch.log(F.softmax(x, dim=-1))",
            fixed="y = F.log_softmax(x, dim=-1)",
        ),
        Witness(
            setup="x = leaf(torch.tensor([0.0, 200.0], dtype=dtype))",
            hazard="probs = x.softmax(-1); y = probs.log()",
            fixed="y = x.log_softmax(-1)",
        ),
        Witness(
            setup="z = leaf(torch.tensor([-200.0], dtype=dtype))",
            hazard="y = torch.log(torch.sigmoid(z))",
            fixed="y = F.logsigmoid(z)",
        ),
        Witness(
            setup="z = leaf(torch.tensor([20.0], dtype=dtype))",
            hazard="p = torch.sigmoid(z); y = torch.log(1 - p)",
            fixed="y = F.logsigmoid(-z)",
        ),
        Witness(  # an nn.Softmax module: the fix reads its dim
            setup="x = leaf(torch.tensor([[0.0, 200.0]], dtype=dtype))",
            hazard="softmax = torch.nn.Softmax(dim=-1); y = torch.log(softmax(x))",
            fixed="y = torch.log_softmax(x, dim=-1)",
        ),
        Witness(  # a softmax written by hand: NAN303 makes it torch.softmax, then this rule log_softmax
            setup="x = leaf(torch.tensor([[0.0, 200.0]], dtype=dtype))",
            hazard="p = torch.softmax(x, dim=-1); y = torch.log(p)",
            fixed="y = torch.log_softmax(x, dim=-1)",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        at = self.ctx.at()
        tc = self.ctx.match(node)
        if tc is None or tc.operand is None or not self.facts.is_tensor_method(tc):
            return
        if tc.key in _LOGS:
            argument = tc.operand
            found = self.facts.probability(argument, at)
        elif tc.key in ("log1p", "special.log1p") and _is_negation(tc.operand):
            argument = tc.operand
            inner = self.facts.probability(tc.operand.expression, at)  # type: ignore[attr-defined]
            found = _complement(inner) if inner is not None and inner.kind == "sigmoid" else None
        else:
            return
        if found is None or not found.direct or found.kind not in ("softmax", "sigmoid") or not found.zero:
            return
        extra_args = [a for a in tc.args if a.keyword is None or a.keyword.value != "input"]
        fix = self._fix(node, argument, found, at) if tc.key in ("log", "log1p", "special.log1p") \
            and not extra_args else None
        if found.kind == "softmax":
            advice = "use `log_softmax`"
            why = "log of a softmax is -inf wherever a probability underflows to 0 (a logit gap above ~104 " \
                  "in float32, ~17 in float16) and its gradient is NaN"
        elif found.complement:
            advice = "use `F.logsigmoid(-x)`"
            why = "log(1 - sigmoid(x)) is -inf once sigmoid(x) rounds to 1 (x above ~17 in float32, ~8 in " \
                  "float16, ~6 in bfloat16) and its gradient is NaN"
        else:
            advice = "use `F.logsigmoid(x)`"
            why = "log of a sigmoid is -inf once it underflows to 0 (x below ~-89 in float32, ~-17 in float16) " \
                  "and its gradient is NaN"
        gradient = gradient_at(self.ctx, (argument,))
        if not gradient.flows:  # decoding or scoring: -inf entries lose every comparison, no loss is built
            why = why.replace(" and its gradient is NaN", "") + f" (no gradient flows here: {gradient.reason})"
        self.report(node, f"`{code(self.ctx, node)}`: {why}; {advice}", fix=fix, target=argument,
                    confidence="high" if gradient.flows else "low")

    # -- fixes ------------------------------------------------------------
    def _fix(self, log_call: cst.Call, argument: cst.BaseExpression, found: Probability,
             at: At) -> Optional[FixSpec]:
        source = found.node
        if not isinstance(source, cst.Call):
            return None
        if found.module:
            return self._module_fix(log_call, argument, source, found, at)
        tc = self.ctx.match(source)
        if tc is None or tc.operand is None:
            return None
        if not _contains(argument, source):
            # through a variable: re-evaluating the softmax input must give the same value here
            inputs = [a.value for a in source.args] + ([tc.operand] if tc.is_method else [])
            if not all(self._same_value(value, found.at, at) for value in inputs):
                return None
        if found.kind == "softmax":
            if tc.key not in SOFTMAX_OPS:
                return None
            new_call = self._log_softmax_call(source, tc.key)
            if new_call is None:
                return None
            return FixSpec(SAFE, "use `log_softmax`", (Replace(log_call, new_call),))
        if tc.args:
            return None  # sigmoid(x, out=...) or a user method that happens to be called sigmoid
        callee = self.facts.spell("F.logsigmoid", log_call.func)
        if callee is None:
            return None
        operand = self.ctx.module.code_for_node(tc.operand).strip()  # type: ignore[union-attr]
        if found.complement:
            operand = "-" + (operand if _atomic(tc.operand) else f"({operand})")
            message = "use `F.logsigmoid(-x)`"
        else:
            message = "use `F.logsigmoid`"
        return FixSpec(SAFE, message, (Replace(log_call, f"{callee}({operand})"),))

    def _module_fix(self, log_call: cst.Call, argument: cst.BaseExpression, source: cst.Call, found: Probability,
                    at: At) -> Optional[FixSpec]:
        """``torch.log(self.softmax(x))`` with ``self.softmax = nn.Softmax(dim=-1)`` -> ``torch.log_softmax(x,
        dim=-1)``; ``nn.Sigmoid`` -> ``F.logsigmoid(x)``. Only for a module call with one positional input
        written in the ``log`` itself (or through a name whose input still holds the same value) and a literal
        ``dim``."""
        if not isinstance(source.func, (cst.Name, cst.Attribute)) or len(source.args) != 1 \
                or source.args[0].keyword is not None or source.args[0].star:
            return None
        operand = source.args[0].value
        if not _contains(argument, source) and not self._same_value(operand, found.at, at):
            return None
        constructed, _ = self.facts.resolve(source.func, found.at)
        tc = self.ctx.match(constructed) if isinstance(constructed, cst.Call) else None
        if tc is None:
            return None
        text = self.ctx.module.code_for_node(operand).strip()  # type: ignore[union-attr]
        if tc.key == "nn.Softmax":
            dim = tc.argument("dim", 0)
            value = self.facts.literal(dim, found.at) if dim is not None else None
            if value is None or value != int(value) or not isinstance(dim, (cst.Integer, cst.UnaryOperation)):
                return None  # no dim (the deprecated implicit one) or one that may differ here
            callee = self.facts.spell("log_softmax", log_call.func)
            if callee is None:
                return None
            return FixSpec(SAFE, "use `log_softmax` (the module's dim)",
                           (Replace(log_call, f"{callee}({text}, dim={int(value)})"),))
        if tc.key == "nn.Sigmoid" and not found.complement:
            callee = self.facts.spell("F.logsigmoid", log_call.func)
            if callee is None:
                return None
            return FixSpec(SAFE, "use `F.logsigmoid`", (Replace(log_call, f"{callee}({text})"),))
        return None

    def _log_softmax_call(self, source: cst.Call, key: str) -> Optional[cst.Call]:
        func = source.func
        if isinstance(func, cst.Attribute):
            return source.with_changes(func=func.with_changes(attr=cst.Name("log_softmax")))
        if isinstance(func, cst.Name):
            target = "F.log_softmax" if key == "F.softmax" else "special.log_softmax" \
                if key == "special.softmax" else "log_softmax"
            spelled = self.facts.spell(target, func) or self.facts.spell("F.log_softmax", func)
            if spelled is None:
                return None
            return source.with_changes(func=cst.parse_expression(spelled))
        return None

    def _same_value(self, expr: cst.BaseExpression, then: At, now: At) -> bool:
        """``expr`` evaluates to the same value at ``now`` as at ``then``: literals and names not rebound."""
        if isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)):
            return True
        if isinstance(expr, cst.Name):
            if expr.value in ("None", "True", "False"):
                return True
            before = lookup(then.scope, expr.value, then.order)
            if before is None or before is not lookup(now.scope, expr.value, now.order):
                return False
            return not self.facts.mutated_in_place(expr.value, before, now)
        if isinstance(expr, cst.UnaryOperation):
            return self._same_value(expr.expression, then, now)
        if isinstance(expr, cst.BinaryOperation):
            return self._same_value(expr.left, then, now) and self._same_value(expr.right, then, now)
        return False


def _complement(inner: Probability) -> Optional[Probability]:
    """``-sigmoid(x)`` inside ``log1p``: the same as ``log(1 - sigmoid(x))``."""
    if not inner.direct or inner.complement:
        return None
    return Probability(inner.kind, inner.node, inner.at, direct=True, zero=inner.one, one=inner.zero,
                       module=inner.module, complement=True)


def _is_negation(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus)


def _contains(expr: cst.CSTNode, target: cst.CSTNode) -> bool:
    stack = [expr]
    while stack:
        node = stack.pop()
        if node is target:
            return True
        stack.extend(node.children)
    return False


def _atomic(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float)) \
        or bool(getattr(expr, "lpar", ()))
