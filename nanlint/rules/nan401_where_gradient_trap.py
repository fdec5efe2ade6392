import re
from typing import Optional

import libcst as cst

from ..analysis.ops import LOGS as _LOGS
from ..analysis.ops import META_ARGUMENT_METHODS as _META_ARGS
from ..fixspec import UNSAFE, FixSpec, Replace
from ..names import dotted_name
from ..patterns import code
from ..singular import Singular, guard, in_no_grad, iter_singular, no_grad_value, plain_code, read_names, \
    torch_alias
from ..analysis.triggers import ORDINARY, Trigger
from ._screens import Screen
from .base import Rule, SOMETIMES, Witness

# calls in a condition that make evaluating it twice (the double-where fix) change the result
_IMPURE = re.compile(r"rand|bernoulli|dropout|multinomial|normal_|uniform_|\bnext\b|\bpop\b|append|random")


# the condition of a ``where`` exists because some entries fail it: the singular op meets them in every call
MASKED_OUT = Trigger("the entries the condition masks out (they exist, or the `where` would not be written)", ORDINARY)


class WhereGradientTrap(Rule):
    """
    ## What it does
    Flags a `torch.where` (or `masked_fill`, or `y[mask] = ...`) that hides the
    singular point of an op on the side it does not select, when the condition
    tests the op's own argument:
    `torch.where(x > 0, torch.sqrt(x), 0.)`, `torch.where(d != 0, n / d, 0.)`,
    `torch.where(p > 0, p * torch.log(p), 0.)`, `(1 / x).masked_fill(x == 0, 0)`,
    `torch.where(c.abs() < 1, torch.acos(c), 0.)`, also when the op was computed
    into a variable first (`log_p = torch.log(p)` ... `torch.where(p > 0, log_p, 0)`)
    and when the condition is a named mask (`mask = x > 0`). The log of a
    probability written inside the `where` is NAN302's (a default rule). The ops are `sqrt`,
    `rsqrt`, fractional and negative powers, `log`/`log2`/`log10`/`log1p`,
    division, `reciprocal`, `acos`, `asin` and `atanh`.

    Silent when the argument is already kept regular (the double-where
    `torch.sqrt(torch.where(x > 0, x, 1.))`, `x.clamp_min(eps)`, `x + eps`), when
    the condition does not read the op's argument, and where no gradient can
    flow: inside `torch.no_grad()` / `inference_mode()`, in files that define an
    `Optimizer`, and when every input of the op is built from masks, constants
    (`arange`, `meshgrid`, literals) or `.detach()`.

    Preview: the hazard needs a gradient through the op. Its findings now follow
    the gradient-evidence policy (docs/analysis.md): shown only where training
    visibly differentiates the code. On the corpus plus three libraries that
    leaves 17 of 42 shown, but most of those are still in code no gradient
    reaches through values built in loops (anchor grids from `meshgrid`,
    log-bucket positions from `arange`), so the rule stays opt-in.

    ## Why is this bad?
    `torch.where` selects values, not derivatives: both sides are computed
    everywhere, and backward multiplies the unselected side's derivative by 0.
    At the excluded point that derivative is infinite (or NaN), and `0 * inf`
    is NaN: the forward is finite but every gradient that flows through `x` is
    NaN, in float32, bfloat16 and float16 (docs/probe.md row 30 for sqrt, 1/x,
    log and `masked_fill`; docs/numerics-extra.md "where trap" for rsqrt,
    powers, log1p, reciprocal, acos, asin and the `y[mask] = 0` form). `detect_anomaly`
    blames the sqrt, far from the `where` that was meant to protect it.

    ## Example
    ```python
    dist = torch.where(sq > 0, torch.sqrt(sq), torch.zeros_like(sq))
    ```

    ## Use instead
    ```python
    dist = torch.where(sq > 0, torch.sqrt(torch.where(sq > 0, sq, 1.0)), torch.zeros_like(sq))
    ```
    The inner `where` feeds the op a harmless value (1.0; 0.0 for acos, asin,
    atanh and log1p) where its result is discarded, so its derivative there is
    finite and the outer 0 really is 0.

    ## Fix safety
    The fix wraps the op's argument in the same condition (the double-where).
    Values and gradients on the selected side are unchanged, but the condition
    is evaluated twice and the argument may broadcast to the condition's shape,
    so the fix is marked unsafe. It is offered only when the op is written
    inside the `where` itself and the condition has no side effects.
    """

    code = "NAN401"
    name = "where-gradient-trap"
    summary = "torch.where / masked_fill hides an infinite derivative on the unselected side"
    rows = "30"
    fix_availability = SOMETIMES
    fix_applicability = (UNSAFE,)
    preview = True
    screen = Screen(r"where\b|masked_fill|\[[^\]\n]*(?:==|!=|<|>)[^\]\n]*\]\s*=[^=]")
    witnesses = (
        Witness(
            setup="x = leaf(torch.zeros(4, dtype=dtype))",
            hazard="y = torch.where(x > 0, torch.sqrt(x), 0.0)",
            fixed="y = torch.where(x > 0, torch.sqrt(torch.where(x > 0, x, 1.0)), 0.0)",
        ),
        Witness(
            setup="x = leaf(torch.zeros(4, dtype=dtype))",
            hazard="y = (1 / x).masked_fill(x == 0, 0)",
            fixed="y = (1 / torch.where(x == 0, 1.0, x)).masked_fill(x == 0, 0)",
        ),
        Witness(
            setup="p = leaf(torch.tensor([0.0, 0.5, 1.0], dtype=dtype))",
            hazard="mask = p > 0; plogp = p * torch.log(p); y = torch.where(mask, plogp, 0.0)",
            fixed="mask = p > 0; y = torch.where(mask, p * torch.log(torch.where(mask, p, 1.0)), 0.0)",
        ),
        Witness(
            setup="c = leaf(torch.tensor([1.0, 0.5], dtype=dtype))",
            hazard="y = torch.where(c.abs() < 1, torch.acos(c), 0.0)",
            fixed="y = torch.where(c.abs() < 1, torch.acos(torch.where(c.abs() < 1, c, 0.0)), 0.0)",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        tc = self.ctx.match(node)
        if tc is None:
            return
        if tc.key == "where":
            if not tc.is_method:
                positional = [a.value for a in node.args if a.keyword is None and not a.star]
                if len(positional) != 3:
                    return
                condition, branches = positional[0], ((positional[1], True), (positional[2], False))
            else:
                condition, other = tc.argument("condition", 0), tc.argument("other", 1)
                if condition is None or tc.operand is None:
                    return
                branches = ((tc.operand, True),) + (((other, False),) if other is not None else ())
            self._check(node, "torch.where", condition, branches)
        elif tc.key in ("masked_fill", "masked_fill_"):
            mask = tc.argument("mask", 0)
            if mask is None or tc.operand is None:
                return
            # masked_fill keeps the values where the mask is False
            self._check(node, "masked_fill", mask, ((tc.operand, False),))

    def visit_Assign(self, node: cst.Assign) -> None:
        """``y[x == 0] = 0`` after ``y = torch.log(x)``: the same trap, written as an index assignment."""
        if len(node.targets) != 1 or not isinstance(node.targets[0].target, cst.Subscript):
            return
        target = node.targets[0].target
        if not isinstance(target.value, cst.Name) or len(target.slice) != 1:
            return
        index = target.slice[0].slice
        if not isinstance(index, cst.Index) or not isinstance(index.value, cst.Comparison):
            return
        if self.facts.literal(node.value, self.ctx.at()) is None:
            return
        self._check(node, "an index assignment", index.value, ((target.value, False),), fixable=False)

    # ------------------------------------------------------------------
    def _check(self, node: cst.CSTNode, form: str, condition: cst.BaseExpression,
               branches: tuple[tuple[cst.BaseExpression, bool], ...], fixable: bool = True) -> None:
        if in_no_grad(self.ctx):
            return
        at = self.ctx.at()
        condition_names = read_names(condition, self.ctx, at, follow=1)
        if not condition_names:
            return
        traps: list[tuple[Singular, bool, bool]] = []  # (op, selected when condition is True, written inline)
        for branch, when_true in branches:
            for op, inline in self._singular_ops(branch):
                if guard(op.operand, self.ctx, at) is not None:
                    continue
                if inline and self._log_of_probability(op, at):
                    continue  # NAN302 reports the log of a probability written inside the where
                inputs = [op.operand] + ([op.numerator] if op.numerator is not None else [])
                if all(no_grad_value(i, self.ctx, at) for i in inputs):
                    continue  # built from masks, constants or detached values: no gradient to poison
                if read_names(op.operand, self.ctx, at, follow=0) & condition_names:
                    traps.append((op, when_true, inline))
        if not traps:
            return
        # name first the op whose own argument can carry a gradient (not a constant divisor)
        traps.sort(key=lambda t: no_grad_value(t[0].operand, self.ctx, at))
        op, when_true, _ = traps[0]
        what = "`torch.where`" if form == "torch.where" else f"`{form}`" if form == "masked_fill" else form
        message = (
            f"{what} does not stop the gradient of `{code(self.ctx, op.node)}`: it is computed everywhere, also "
            f"where `{code(self.ctx, condition)}` is {'false' if when_true else 'true'}, and its infinite "
            "derivative there times 0 is NaN in backward; feed it a safe value: "
            "`torch.where(c, f(torch.where(c, x, safe)), y)`"
        )
        # a gradient-only hazard: shown where something shows that training differentiates it
        judged = self.judge(op.operand, gradient_only=True, trigger=MASKED_OUT)
        if judged is None:
            return
        fix = self._fix(condition, traps) if fixable else None
        self.report(node, message, fix=fix, target=op.node, **judged.extra())

    def _log_of_probability(self, op: Singular, at) -> bool:
        tc = self.ctx.match(op.node) if isinstance(op.node, cst.Call) else None
        return tc is not None and tc.key in _LOGS and self.facts.probability(op.operand, at) is not None

    def _singular_ops(self, branch: cst.BaseExpression):
        """Singular ops written in the branch (inline) or in what a name in it was assigned."""
        for op in iter_singular(branch, self.ctx):
            yield op, True
        at = self.ctx.at()
        names = [n for n in _bare_names(branch)]
        for name in names:
            value, _ = self.facts.resolve(name, at)
            if value is name:
                continue
            for op in iter_singular(value, self.ctx):
                yield op, False

    def _fix(self, condition: cst.BaseExpression, traps: list[tuple[Singular, bool, bool]]) -> Optional[FixSpec]:
        torch = torch_alias(self.ctx)
        if torch is None or any(not inline for _, _, inline in traps):
            return None
        cond_code = " ".join(plain_code(self.ctx, condition).split())
        if _IMPURE.search(cond_code):
            return None
        changes = []
        operands = [op.operand for op, _, _ in traps]
        for op, when_true, _ in traps:
            if any(other is not op.operand and _contains(other, op.node) for other in operands):
                return None  # nested ops (sqrt(log(x))): a single wrap would not cover the inner one
            inner = plain_code(self.ctx, op.operand)
            if "\n" in inner:
                return None
            if when_true:
                new = f"{torch}.where({cond_code}, {inner}, {op.safe})"
            else:
                new = f"{torch}.where({cond_code}, {op.safe}, {inner})"
            changes.append(Replace(op.operand, new))
        return FixSpec(UNSAFE, "Feed the op a safe value where its result is discarded (double-where)",
                       tuple(changes))


def _bare_names(expr: cst.CSTNode):
    """Names read in ``expr`` outside calls' function position (``plogp`` in ``where(m, plogp, 0)``)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            yield node
        elif isinstance(node, cst.BinaryOperation):
            stack.extend((node.left, node.right))
        elif isinstance(node, cst.UnaryOperation):
            stack.append(node.expression)
        elif isinstance(node, cst.Call):
            if isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name) \
                    and dotted_name(node.func.value) not in ("torch", "F", "math", "np"):
                stack.append(node.func.value)
            if not (isinstance(node.func, cst.Attribute) and node.func.attr.value in _META_ARGS):
                stack.extend(a.value for a in node.args)


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    if tree is node:
        return True
    stack = [tree]
    while stack:
        current = stack.pop()
        if current is node:
            return True
        stack.extend(current.children)
    return False
