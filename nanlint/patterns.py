"""Shapes of hazardous operations that several rules share: divisions and roots."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from .analysis.ops import DIVIDE_OPS
from .context import FileContext


@dataclass(frozen=True)
class Division:
    node: cst.CSTNode
    numerator: Optional[cst.BaseExpression]
    divisor: cst.BaseExpression


def division(node: cst.CSTNode, ctx: FileContext) -> Optional[Division]:
    """``a / b``, ``a /= b``, ``torch.div(a, b)``, ``a.div(b)``, ``a.div_(b)``."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
        return Division(node, node.left, node.right)
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.DivideAssign):
        return Division(node, node.target, node.value)
    if isinstance(node, cst.Call):
        tc = ctx.match(node)
        if tc is not None and tc.key in DIVIDE_OPS:
            divisor = tc.argument("other", 0)
            if divisor is not None and tc.keyword("rounding_mode") is None:
                return Division(node, tc.operand, divisor)
    return None


@dataclass(frozen=True)
class Root:
    """A square root or reciprocal square root of ``operand``: ``form`` says how it was written."""

    node: cst.CSTNode
    operand: cst.BaseExpression
    reciprocal: bool
    form: str


def root(node: cst.CSTNode, ctx: FileContext) -> Optional[Root]:
    """``torch.sqrt(v)``, ``v.sqrt()``, ``v ** 0.5``, ``v.pow(0.5)``, ``torch.rsqrt(v)``, ``v ** -0.5``."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Power):
        exponent = ctx.facts.literal(node.right, ctx.at())
        if exponent == 0.5:
            return Root(node, node.left, False, "** 0.5")
        if exponent == -0.5:
            return Root(node, node.left, True, "** -0.5")
        return None
    if isinstance(node, cst.Call):
        tc = ctx.match(node)
        if tc is None or tc.operand is None:
            return None
        if tc.key in ("sqrt", "sqrt_"):
            return Root(node, tc.operand, False, "sqrt")
        if tc.key in ("rsqrt", "rsqrt_"):
            return Root(node, tc.operand, True, "rsqrt")
        if tc.key in ("pow", "pow_", "float_power"):
            exponent = ctx.facts.literal(tc.argument("exponent", 0), ctx.at())
            if exponent == 0.5:
                return Root(node, tc.operand, False, "pow(0.5)")
            if exponent == -0.5:
                return Root(node, tc.operand, True, "pow(-0.5)")
    return None


def code(ctx: FileContext, node: cst.CSTNode, limit: int = 60) -> str:
    """Source text of a node for messages, on one line and shortened."""
    assert ctx.module is not None
    text = " ".join(ctx.module.code_for_node(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
