"""Is a value a probability (by provenance: softmax, sigmoid, a value over its sum; or by name), and
can it be exactly 0 or 1?"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from ..names import TorchCall, match_call
from .vocabulary import At, PROBABILITY_NAME, Probability, SIGMOID_OPS, SOFTMAX_OPS, TRANSPARENT_OPS, _MAX_DEPTH, _MODULE_CASTS, _PROBABILITY_MODULES, _same_code


class Probabilities:
    """Is a value a probability (by provenance: softmax, sigmoid, a value over its sum; or by name), and"""
    # -- probabilities, counts, selections, bounds (NAN103/104/203/301-304) ------------
    # A probability is "probability-like" only when its origin is visible: a softmax or
    # sigmoid (function, method or ``nn.Softmax``/``nn.Sigmoid`` module), a value divided
    # by its own sum, or an element, product, power or complement of one of those.
    def probability(self, expr: cst.BaseExpression, at: At, depth: int = 0) -> Optional["Probability"]:
        """Where ``expr`` is known to be a probability, and whether it can be exactly 0 or 1."""
        if depth > _MAX_DEPTH:
            return None
        d = depth + 1
        if isinstance(expr, (cst.Name, cst.Attribute)):
            b = self.binding(expr, at)
            if b is not None and b.is_parameter and isinstance(expr, cst.Name) and PROBABILITY_NAME.search(expr.value):
                if self.mutated_in_place(expr.value, b, at):
                    return None
                # a parameter named like a probability (``probs``, ``p``): its callers are unseen, the name is
                # the documented prior (docs/analysis.md)
                return Probability("probability (by its name)", expr, at, direct=False)
            if b is None or b.value is None or b.is_parameter or b.index is not None or b.operator is not None:
                return None
            if isinstance(expr, cst.Name) and self.mutated_in_place(expr.value, b, at):
                return None  # ``p.clamp_(min=eps)`` between the assignment and this read
            return self.probability(b.value, At(b.scope, b.order), d)
        if isinstance(expr, cst.Subscript):
            inner = self.probability(expr.value, at, d)
            return inner.derived() if inner is not None else None
        if isinstance(expr, cst.Call):
            return self._call_probability(expr, at, d)
        if isinstance(expr, cst.BinaryOperation):
            return self._binary_probability(expr, at, d)
        return None

    def _call_probability(self, call: cst.Call, at: At, depth: int) -> Optional["Probability"]:
        module = self.module_kind(call, at)
        if module in _PROBABILITY_MODULES:
            return Probability(_PROBABILITY_MODULES[module], call, at, direct=True, module=True)
        tc = match_call(call, self.imports)
        if tc is None or tc.operand is None or not self.is_tensor_method(tc):
            return None
        key = tc.key
        if key in SOFTMAX_OPS:
            return Probability("softmax", call, at, direct=True)
        if key in SIGMOID_OPS:
            if tc.is_method and tc.args:
                return None  # ``obj.sigmoid(x)``: not Tensor.sigmoid, which takes no argument
            return Probability("sigmoid", call, at, direct=True)
        if key == "F.gumbel_softmax":
            return Probability("softmax", call, at, direct=False)
        if key in ("clamp", "clip", "clamp_min", "clamp_max", "clamp_", "clip_", "maximum", "fmax", "minimum",
                   "fmin"):
            inner = self.probability(tc.operand, at, depth)
            if inner is None:
                return None
            low = high = None
            if key in ("clamp", "clip", "clamp_", "clip_"):
                low, high = tc.argument("min", 0), tc.argument("max", 1)
            elif key == "clamp_min" or key in ("maximum", "fmax"):
                low = tc.argument("min", 0) if key == "clamp_min" else tc.positional(0)
            else:
                high = tc.argument("max", 0) if key == "clamp_max" else tc.positional(0)
            zero = inner.zero and not (low is not None and self.is_positive(low, at))
            one = inner.one and not (high is not None and self._below_one(high, at))
            return inner.derived(zero=zero, one=one) if zero or one else None
        if key in TRANSPARENT_OPS:
            inner = self.probability(tc.operand, at, depth)
            return inner.derived() if inner is not None else None
        if key == "where":
            a, b = tc.positional(0), tc.positional(1)
            if a is None or b is None:
                return None
            pa, pb = self.probability(a, at, depth), self.probability(b, at, depth)
            if pa is None or pb is None:
                return None
            return pa.derived(zero=pa.zero or pb.zero, one=pa.one or pb.one)
        if key in ("mul", "multiply"):
            other = tc.positional(0)
            return self._product_probability(tc.operand, other, at, depth) if other is not None else None
        if key in ("mean", "nanmean") and self.category_reduction(tc, at, depth):
            # ``one_hot(codes, K).float().mean(0)``: how often each category occurs, 0 for one that never does
            return Probability("frequency", call, at, direct=False)
        if key in ("sum", "nansum"):
            # the probability of the target, ``(probs * onehot).sum(-1)``; a bare ``p.sum(-1)`` is 1
            inner, _ = self.resolve(tc.operand, at)
            if isinstance(inner, cst.BinaryOperation) and isinstance(inner.operator, cst.Multiply):
                product = self.probability(tc.operand, at, depth)
                return product.derived(zero=True, one=product.one) if product is not None else None
            return None
        return None

    def _binary_probability(self, expr: cst.BinaryOperation, at: At, depth: int) -> Optional["Probability"]:
        op = expr.operator
        if isinstance(op, cst.Subtract):
            if self.literal(expr.left, at) != 1.0:
                return None
            inner = self.probability(expr.right, at, depth)
            if inner is None:
                return None
            if inner.complement or not inner.direct or inner.kind != "sigmoid":
                return inner.derived(zero=inner.one, one=inner.zero)
            return Probability(inner.kind, inner.node, inner.at, direct=True, zero=inner.one, one=inner.zero,
                               module=inner.module, complement=True)
        if isinstance(op, cst.Multiply):
            return self._product_probability(expr.left, expr.right, at, depth)
        if isinstance(op, cst.Divide):
            counted = self.count(expr.left, at)
            if counted is not None and counted.kind in ("category count", "bin count"):
                # ``one_hot(c, K).sum(0) / n``, ``bincount(c, minlength=K) / counts.sum()``: a frequency, 0 for a
                # category no sample falls in
                return Probability("frequency", expr, at, direct=False)
            numerator, _ = self.resolve(expr.left, at)
            divisor, divisor_at = self.resolve(expr.right, at)
            if isinstance(divisor, cst.Call):
                tc = match_call(divisor, self.imports)
                if tc is not None and tc.key in ("sum", "nansum") and tc.operand is not None:
                    summed, _ = self.resolve(tc.operand, divisor_at)
                    if _same_code(summed, numerator) or _same_code(tc.operand, expr.left):
                        kind = "hand-written softmax" if self.exp_call(numerator, at) is not None else "normalised"
                        return Probability(kind, expr, at, direct=False)
            return None
        if isinstance(op, cst.Add):
            left = self.probability(expr.left, at, depth)
            right = self.probability(expr.right, at, depth)
            if left is not None and right is not None:  # ``p * y + (1 - p) * (1 - y)``
                return left.derived(zero=True, one=True)
            return None
        if isinstance(op, cst.Power):
            exponent = self.literal(expr.right, at)
            inner = self.probability(expr.left, at, depth)
            if inner is None or exponent is None or exponent <= 0:
                return None
            return inner.derived()
        return None

    def _product_probability(self, a: cst.BaseExpression, b: cst.BaseExpression, at: At,
                             depth: int) -> Optional["Probability"]:
        for p_expr, other in ((a, b), (b, a)):
            inner = self.probability(p_expr, at, depth)
            if inner is None:
                continue
            scale = self.literal(other, at)
            if scale is not None:
                return inner.derived(one=False) if scale > 0 and inner.zero else None
            return inner.derived(zero=True, one=inner.one)
        return None

    def _below_one(self, expr: cst.BaseExpression, at: At) -> bool:
        """An upper clamp that keeps ``1 - p`` away from 0: ``1 - eps``, ``0.999``, a named bound."""
        value = self.literal(expr, at)
        if value is not None:
            return value < 1
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Subtract):
            return self.literal(expr.left, at) == 1.0 and self.is_positive(expr.right, at)
        if isinstance(expr, cst.Name) and expr.value in ("None", "True", "False"):
            return False
        return True  # a named bound: prefer silence

    def module_kind(self, call: cst.Call, at: At) -> Optional[str]:
        """``self.softmax(x)`` where ``self.softmax = nn.Softmax(dim=-1)``: the module's op key."""
        func = call.func
        if isinstance(func, cst.Call):
            tc = match_call(func, self.imports)
            return tc.key if tc is not None and tc.key.startswith("nn.") else None
        if not isinstance(func, (cst.Name, cst.Attribute)) or self.imports.is_module(func):
            return None
        if isinstance(func, cst.Attribute) and self.imports.qualify(func) is not None:
            return None
        target, _ = self.resolve(func, at)
        if target is func:
            return None
        for _ in range(_MAX_DEPTH):
            if not isinstance(target, cst.Call):
                return None
            tc = match_call(target, self.imports)
            if tc is None:
                return None
            if tc.key.startswith("nn."):
                return tc.key
            if not (tc.is_method and tc.key in _MODULE_CASTS and tc.operand is not None):
                return None
            target = tc.operand  # ``nn.Linear(4, 1).to(device)``
        return None

    @staticmethod
    def is_tensor_method(tc: TorchCall) -> bool:
        """False for ``self.log(...)`` (LightningModule.log) and other calls on ``self``/``cls``."""
        return not (tc.is_method and isinstance(tc.operand, cst.Name) and tc.operand.value in ("self", "cls"))

