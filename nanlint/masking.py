"""Attention-mask shapes shared by NAN402 (-inf masks) and NAN403 (masks that overflow float16).

A *fill* writes a constant into the masked slots of a score tensor:
``s.masked_fill(m, v)``, ``s.masked_fill_(m, v)``, ``torch.masked_fill(s, m, v)``,
``torch.where(m, v, s)`` / ``torch.where(m, s, v)``, ``s[m] = v``. A *bias* adds
it: ``s + m * v``. :func:`as_fill` recognises the first kind; the rules follow
values through local assignments to see whether a fill reaches ``softmax``.

:func:`causal_only` recognises masks that can never mask a whole row (a causal
``tril``/``triu`` mask keeps the diagonal), which is what makes an ``-inf`` fill
harmless.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from .analysis.triggers import Trigger
from .analysis.ops import CONSTANT_FACTORIES, DATA_FACTORIES, LOG_SOFTMAX_OPS, SOFTMAX_OPS
from .analysis.ops import SCORE_PASS_THROUGH as PASS_THROUGH
from .analysis.vocabulary import FLOAT_MAX

from .names import dotted_name

from .facts import At

if TYPE_CHECKING:
    from .context import FileContext


# a fresh tensor a fill writes into
_BLANK = CONSTANT_FACTORIES | DATA_FACTORIES
_INF_NAMES = {"numpy.Inf": math.inf, "numpy.Infinity": math.inf, "numpy.PINF": math.inf, "numpy.infty": math.inf,
              "numpy.NINF": -math.inf}


def constant(expr: Optional[cst.BaseExpression], ctx: "FileContext", at: "At") -> Optional[float]:
    """The numeric value of ``expr`` (``float('-inf')``, ``-math.inf``, ``-1e9``, a constant), or None."""
    if expr is None:
        return None
    value = ctx.facts.literal(expr, at)
    if value is not None:
        return value
    negate = False
    while isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
        negate ^= isinstance(expr.operator, cst.Minus)
        expr = expr.expression
    if isinstance(expr, cst.Attribute):
        found = _INF_NAMES.get(ctx.imports.qualify(expr) or "")
        if found is None:
            found = _finfo_limit(expr, ctx)
        if found is not None:
            return -found if negate else found
    if isinstance(expr, cst.Call) and not negate:
        # ``torch.tensor(float('-inf'))``, ``scores.new_tensor(-1e9)``: a one-value tensor of that constant
        tc = ctx.match(expr)
        positional = [a.value for a in expr.args if a.keyword is None and not a.star]
        if tc is not None and tc.key in ("tensor", "as_tensor", "new_tensor", "scalar_tensor") \
                and len(positional) == 1:
            return constant(positional[0], ctx, at)
    return None


def _finfo_limit(expr: cst.Attribute, ctx: "FileContext") -> Optional[float]:
    """``torch.finfo(torch.float32).min`` / ``.max`` of a dtype named in the code (not ``scores.dtype``)."""
    if expr.attr.value not in ("min", "max") or not isinstance(expr.value, cst.Call):
        return None
    call = expr.value
    if ctx.imports.qualify(call.func) != "torch.finfo" or len(call.args) != 1:
        return None
    dtype = ctx.imports.qualify(call.args[0].value) if isinstance(call.args[0].value, (cst.Name, cst.Attribute)) \
        else None
    limit = FLOAT_MAX.get(dtype[len("torch."):]) if dtype and dtype.startswith("torch.") else None
    if limit is None:
        return None
    return -limit if expr.attr.value == "min" else limit


@dataclass(frozen=True)
class Fill:
    node: cst.CSTNode  # the masked_fill / where call, or the index assignment
    value: cst.BaseExpression  # the filled value
    number: float
    receiver: Optional[cst.BaseExpression]  # the score tensor whose slots are replaced
    mask: Optional[cst.BaseExpression]
    form: str  # "masked_fill" | "where" | "index"

    def blank_receiver(self, ctx: "FileContext") -> bool:
        """The fill builds a bias from a blank tensor (``torch.zeros(...).masked_fill(m, -inf)``)."""
        node = self.receiver
        for _ in range(4):
            if not isinstance(node, cst.Call):
                return False
            tc = ctx.match(node)
            if tc is None:
                return False
            if tc.key in _BLANK:
                return True
            if tc.is_method and tc.key in PASS_THROUGH and tc.operand is not None:
                node = tc.operand
                continue
            return False
        return False


def as_fill(call: cst.Call, ctx: "FileContext", at: "At") -> Optional[Fill]:
    """``call`` as a fill with a numeric value, or None."""
    tc = ctx.match(call)
    if tc is None:
        return None
    if tc.key in ("masked_fill", "masked_fill_"):
        value = tc.argument("value", 1)
        number = constant(value, ctx, at)
        if value is None or number is None:
            return None
        return Fill(call, value, number, tc.operand, tc.argument("mask", 0), "masked_fill")
    if tc.key == "where" and not tc.is_method:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        if len(positional) != 3:
            return None
        mask, first, second = positional
        for value, receiver in ((first, second), (second, first)):
            number = constant(value, ctx, at)
            if number is not None and constant(receiver, ctx, at) is None:
                return Fill(call, value, number, receiver, mask, "where")
    return None


def log_softmax_operand(call: cst.Call, ctx: "FileContext") -> Optional[cst.BaseExpression]:
    """The scores of ``F.log_softmax(s)`` / ``s.log_softmax(-1)``: a fully masked row is NaN there too
    (``-inf - logsumexp(-inf...)`` = ``-inf - -inf``; docs/probe.md section 4.2)."""
    tc = ctx.match(call)
    if tc is None or tc.key not in LOG_SOFTMAX_OPS:
        return None
    return tc.operand


def softmax_operand(call: cst.Call, ctx: "FileContext") -> Optional[cst.BaseExpression]:
    """The scores of ``F.softmax(s)``, ``s.softmax(-1)``, ``torch.softmax(s, -1)``, or of a call of an
    ``nn.Softmax`` module (``self.softmax = nn.Softmax(dim=-1)`` ... ``self.softmax(s)``)."""
    if isinstance(call.func, (cst.Name, cst.Attribute)) and not ctx.imports.is_module(call.func) and call.args:
        value, _ = ctx.facts.resolve(call.func, ctx.at())
        if value is not call.func and isinstance(value, cst.Call):
            module = ctx.match(value)
            if module is not None and module.key in ("nn.Softmax", "nn.modules.activation.Softmax"):
                first = call.args[0]
                return first.value if first.keyword is None else None
    tc = ctx.match(call)
    if tc is None or tc.key not in SOFTMAX_OPS:
        return None
    if tc.is_method and isinstance(tc.operand, cst.Name) and tc.operand.value in ("self", "cls"):
        return None  # self.softmax(x): a module attribute, not Tensor.softmax
    return tc.operand


# -- causal masks ----------------------------------------------------------
_CAUSAL = re.compile(r"tril|triu|causal|subsequent|future|look_?ahead|autoregressive|upper_tri|lower_tri", re.I)
_PADDING = re.compile(r"pad|attention_mask|attn_mask|key_mask|length|lens\b|valid|\||&|logical_or|logical_and|"
                      r"\bany\b|\ball\b", re.I)


_KEEPS_MAX = re.compile(r"\.max\(|\bamax\(|\btopk\(|\bargmax\(|\bkthvalue\(|\bmax_ind")


def never_fully_masked(mask: Optional[cst.BaseExpression], ctx: "FileContext", at: "At") -> bool:
    """True when the mask visibly keeps a slot in every row: a causal (triangular) mask and nothing
    else keeps the diagonal; a mask defined against the row maximum (``scores.max(...)``, ``topk``)
    keeps the maximum."""
    if mask is None:
        return False
    text = mask_text(mask, ctx, at)
    if _KEEPS_MAX.search(text):
        return True
    return bool(_CAUSAL.search(text)) and not _PADDING.search(text)


_KEY_PADDING = re.compile(
    r"\[\s*:\s*,\s*None\s*,\s*None\s*,\s*:\s*\]|\[\s*:\s*,\s*None\s*,\s*:\s*\]|unsqueeze\(\s*1\s*\)\s*\.\s*"
    r"unsqueeze\(\s*2\s*\)|"
    # a (batch, keys) mask given its query dims in front: ``mask[:, None, None]``, ``mask[:, None]``, ``.unsqueeze(1)``
    r"\[\s*:\s*,\s*None\s*(?:,\s*None\s*)?\]|\bunsqueeze\(\s*1\s*\)(?!\s*\.\s*unsqueeze)|key_padding|src_key_padding|memory_key_padding|text_attention_mask|text_mask|"
    r"arange\([^)]*\)\s*\[\s*None\s*,\s*:\s*\]\s*<", re.I)  # a length mask: arange(T)[None, :] < lengths
_KEEPS_FIRST = r"\b{name}\s*\[\s*(?:\.\.\.|:)\s*,\s*0\s*\]\s*=\s*(?:0|False)\b"


def mask_trigger(mask: Optional[cst.BaseExpression], ctx: "FileContext", at: "At") -> Trigger:
    """What fully masks a row, and how ordinary it is (:mod:`nanlint.analysis.triggers`).

    * a causal mask combined with a padding mask: the first queries of a left-padded sample see only
      padding -- ordinary in batched decoding;
    * the outer product of a query mask and a key mask (``q_mask[:, :, None] * kv_mask[:, None, :]``): the
      row of every padded query masks every key -- ordinary whenever a batch is padded;
    * a mask that keeps slot 0 of every row (``remove[..., 0] = False`` in top-p sampling): never;
    * a key-padding mask broadcast over the queries (``mask[:, None, None, :]``), or a mask handed in by the
      caller and used as it is: a row is fully masked only for an empty sequence, which real inputs (with a
      CLS/BOS token, an image with pixels) never are -- degenerate;
    * any other mask built here (a graph's adjacency, a threshold): a row with no visible key is plausible.
    """
    from .analysis.triggers import DEGENERATE, IMPOSSIBLE, ORDINARY, PLAUSIBLE

    if mask is None:
        return Trigger("a row whose every slot is masked", PLAUSIBLE)
    text = mask_text(mask, ctx, at)
    function = ctx.function_source()
    for name in set(re.findall(r"[A-Za-z_]\w*", mask_text(mask, ctx, at, blank=False))):
        if re.search(_KEEPS_FIRST.format(name=re.escape(name)), function):
            return Trigger("nothing: the mask keeps slot 0 of every row", IMPOSSIBLE)
    if _CAUSAL.search(text) and _PADDING.search(text):
        return Trigger("a left-padded sample under a causal mask (its first queries see only padding)", ORDINARY)
    if _outer_product(mask, ctx, at):
        return Trigger("a padded query position (its row masks every key)", ORDINARY)
    if _KEY_PADDING.search(text) or _from_parameters(mask, ctx, at):
        return Trigger("an empty (all-padding) sequence", DEGENERATE)
    return Trigger("a row whose every slot is masked (an empty sequence, an isolated node)", PLAUSIBLE)


def causal_mask(mask: Optional[cst.BaseExpression], ctx: "FileContext", at: "At") -> bool:
    """The mask (through what its names were assigned) is a causal one: ``triu(1)``, ``tril``, ``causal``..."""
    return mask is not None and _CAUSAL.search(mask_text(mask, ctx, at)) is not None


# two additive -inf biases over the same scores, a causal one and a padding one: their union masks a whole row
CAUSAL_AND_PADDING_BIASES = "a left-padded sample under the causal bias added with it (its first queries see only padding)"


def _strip(expr: cst.BaseExpression) -> cst.BaseExpression:
    """The mask under ``~``, ``logical_not`` and parentheses."""
    while True:
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.BitInvert, cst.Not)):
            expr = expr.expression
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
                and expr.func.attr.value in ("logical_not", "bool") and not expr.args:
            expr = expr.func.value
        else:
            return expr


def _outer_product(mask: cst.BaseExpression, ctx: "FileContext", at: "At") -> bool:
    """``q_mask[:, :, None] * kv_mask[:, None, :]`` (or ``&``): two different masks broadcast against each
    other, so a query the first one drops has no key left."""
    expr = _strip(mask)
    if isinstance(expr, cst.Name):
        binding = ctx.facts.binding(expr, at)
        if binding is not None and binding.value is not None and not binding.is_parameter \
                and binding.index is None:
            expr = _strip(binding.value)
    if not (isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.BitAnd))):
        return False
    sides = []
    for side in (expr.left, expr.right):
        code = _code(ctx, side)
        if not re.search(r"\bNone\b|unsqueeze", code):
            return False
        names = [n for n in _names(side) if isinstance(n, cst.Name)]
        if not names:
            return False
        sides.append(names[0].value)
    return sides[0] != sides[1]


# parameters that by name are an attention or key-padding mask prepared by the caller (Hugging Face's
# ``attention_mask``, ``nn.MultiheadAttention``'s ``key_padding_mask``, DETR's ``pixel_mask``)
_ATTENTION_MASK_PARAMETER = re.compile(
    r"^(encoder_)?(attention_mask|attn_mask|\w*key_padding_mask|padding_mask|pixel_mask|text_mask|src_mask)$")


def _from_parameters(mask: cst.BaseExpression, ctx: "FileContext", at: "At") -> bool:
    """The mask is an attention mask the caller prepared (every name it is built from is a parameter named
    like one): it keeps a CLS/BOS token or real pixels, so only an empty input masks a whole row. A generic
    ``mask`` parameter (a masked softmax utility, a graph's adjacency) proves nothing."""
    leaves: list[bool] = []
    stack: list[tuple[cst.BaseExpression, "At", int]] = [(mask, at, 0)]
    while stack:
        node, where, depth = stack.pop()
        for name in _names(node):
            if ctx.imports.is_module(name) or isinstance(name, cst.Attribute) and ctx.imports.is_module(name.value):
                continue  # ``torch``, ``torch.inf``: not data
            if not isinstance(name, cst.Name):
                return False
            binding = ctx.facts.binding(name, where)
            if binding is None:
                return False
            if binding.is_parameter:
                if not _ATTENTION_MASK_PARAMETER.match(name.value):
                    return False
                leaves.append(True)
            elif binding.value is not None and depth < 3:
                stack.append((binding.value, At(binding.scope, binding.order), depth + 1))
            else:
                return False
    return bool(leaves)


def causal_only(mask: Optional[cst.BaseExpression], ctx: "FileContext", at: "At") -> bool:
    """True when the mask is visibly a causal (triangular) mask and nothing else: such a mask
    keeps the diagonal, so no row is fully masked."""
    if mask is None:
        return False
    text = mask_text(mask, ctx, at)
    return bool(_CAUSAL.search(text)) and not _PADDING.search(text)


def mask_text(mask: cst.BaseExpression, ctx: "FileContext", at: "At", blank: bool = True) -> str:
    """The mask's code and the code of what its names were assigned (a few steps), for the checks above."""
    # a name assigned here is what it was assigned (``attention_mask = ~ones(...).tril()`` is causal only,
    # whatever it is called); a parameter or an expression is read as written
    texts = [] if blank and _assigned_here(mask, ctx, at) else [_code(ctx, mask)]
    function = ctx.function_source()
    stack: list[tuple[cst.BaseExpression, "At", int]] = [(mask, at, 0)]
    while stack:
        node, where, depth = stack.pop()
        for name in _names(node):
            if depth >= 3:
                continue
            if isinstance(name, cst.Name) and re.search(rf"\b{re.escape(name.value)}\s*\.\s*(tril_|triu_)\(", function):
                texts.append(".tril_()")  # made triangular in place: ``m = ones(...); m.tril_()``
            binding = ctx.facts.binding(name, where)
            if binding is not None and binding.value is not None and not binding.is_parameter:
                # also ``a, b = scores.max(-1)`` and ``m = ...`` followed by ``m |= ...``
                texts.append(_without_local_names(binding.value, ctx, At(binding.scope, binding.order)) if blank
                             else _code(ctx, binding.value))
                stack.append((binding.value, At(binding.scope, binding.order), depth + 1))
            elif isinstance(name, cst.Attribute):
                buffer = _buffer(name, ctx)
                if buffer is not None:
                    texts.append(_code(ctx, buffer))
    return "\n".join(texts)


def _without_local_names(expr: cst.BaseExpression, ctx: "FileContext", at: "At") -> str:
    """``expr``'s code with the names assigned in the function blanked out: ``~attention_mask`` after
    ``attention_mask = ones(...).tril_()`` says nothing about padding; what the name holds is read from
    its own assignment."""
    text = _code(ctx, expr)
    for name in _names(expr):
        if isinstance(name, cst.Name) and _assigned_here(name, ctx, at):
            text = re.sub(rf"\b{re.escape(name.value)}\b", "_", text)
    return text


def _assigned_here(mask: cst.BaseExpression, ctx: "FileContext", at: "At") -> bool:
    if not isinstance(_strip(mask), cst.Name):
        return False
    binding = ctx.facts.binding(_strip(mask), at)
    return binding is not None and binding.value is not None and not binding.is_parameter


def _metadata_arg(arg: cst.Arg) -> bool:
    return arg.keyword is not None and arg.keyword.value in ("dtype", "device", "layout", "out")


def _names(expr: cst.CSTNode) -> list[cst.BaseExpression]:
    """The names and dotted attributes a mask expression reads (a method's receiver, not the method)."""
    out: list[cst.BaseExpression] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            stack.append(node.func.value)
            stack.extend(arg.value for arg in node.args if not _metadata_arg(arg))
            continue
        if isinstance(node, cst.Call):
            stack.append(node.func)
            stack.extend(arg.value for arg in node.args if not _metadata_arg(arg))
            continue
        if isinstance(node, cst.Attribute) and node.attr.value in ("dtype", "device", "shape", "ndim"):
            continue  # ``dtype=scores.dtype``: the mask's type, not its content
        if isinstance(node, cst.Name) and node.value in ("None", "True", "False"):
            continue
        if isinstance(node, cst.Name) or (isinstance(node, cst.Attribute) and dotted_name(node) is not None):
            out.append(node)  # type: ignore[arg-type]
            continue
        stack.extend(node.children)
    return out


def _code(ctx: "FileContext", node: cst.CSTNode) -> str:
    assert ctx.module is not None
    return ctx.module.code_for_node(node)


def _buffer(attribute: cst.Attribute, ctx: "FileContext") -> Optional[cst.BaseExpression]:
    """The value of ``self.register_buffer("name", value)`` for ``self.name`` in the enclosing class."""
    if not isinstance(attribute.value, cst.Name) or attribute.value.value != "self":
        return None
    scope = ctx.scope
    while scope is not None and scope.kind != "class":
        scope = scope.parent
    if scope is None:
        return None
    cache = ctx.__dict__.setdefault("_nanlint_buffers", {})
    buffers = cache.get(id(scope.node))
    if buffers is None:
        buffers = {}
        stack: list[cst.CSTNode] = [scope.node]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value == "register_buffer" and len(node.args) >= 2 \
                    and isinstance(node.args[0].value, cst.SimpleString):
                name = node.args[0].value.evaluated_value
                if isinstance(name, str):
                    buffers[name] = node.args[1].value
            stack.extend(node.children)
        cache[id(scope.node)] = buffers
    return buffers.get(attribute.attr.value)


def finfo_bound(ctx: "FileContext", torch: str, receiver: cst.BaseExpression, negative: bool) -> Optional[str]:
    """``torch.finfo(scores.dtype).min`` for a receiver that is a plain name or attribute chain."""
    name = dotted_name(receiver)
    if name is None:
        return None
    return f"{torch}.finfo({name}.dtype).{'min' if negative else 'max'}"
