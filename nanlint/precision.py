"""Which floating-point dtypes a file's tensors can have, and what a literal becomes in each.

Two questions the precision rules (NAN403, NAN404, NAN501) ask:

* *What does this literal round to?* :func:`round_to` reproduces the IEEE
  round-to-nearest-even conversion of a Python float to float16 (via
  ``struct``'s ``'e'`` format), bfloat16 (the upper 16 bits of the float32
  pattern) and float32, without importing torch. ``1e-8`` becomes 0 in float16,
  ``1 - 1e-7`` becomes 1 in float16 and bfloat16, ``-1e9`` becomes -inf in float16
  (docs/probe.md §5.2 lists the measured values these functions agree with).
* *Can this file run in float16, and why do we think so?* :func:`fp16_evidence`
  returns an :class:`Evidence` (the config's ``precision``, or a line of the
  file) or None. Evidence comes in kinds, because they do not mean the same:

  - ``tensor``: float16 tensors exist (``.half()``, ``torch.float16``,
    ``torch_dtype=torch.float16``). Every op runs in half precision.
  - ``autocast``: CUDA autocast / ``GradScaler`` / ``fp16=True``. Under CUDA
    autocast, matmuls run in float16 but PyTorch runs ``normalize``,
    ``cosine_similarity``, ``norm``, ``log``, ``rsqrt``, ``acos``, ``softmax``
    ... in float32 (the "CUDA ops that can autocast to float32" list of the AMP
    docs), so hazards inside those ops need ``tensor`` evidence.
  - ``config``: ``precision`` in ``[tool.nanlint]`` includes ``float16``.

  :func:`fp16_param_evidence` answers a narrower question for optimizers: are
  the *parameters* float16 (``model.half()``), rather than float32 master
  weights under AMP?

The default precision set, when nothing declares one, is float32 and bfloat16
(docs/architecture.md §3), plus float16 when the file shows evidence of it.
"""
from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from .analysis.dtype import applies
from .analysis.ops import AUTOCAST_DTYPE_KEEPING as _DTYPE_PRESERVING, AUTOCAST_F32_OPS, DEFAULT_DTYPE_FACTORIES, \
    UPCASTS as _UPCAST_METHODS
from .fp16_text import AMP_SCALER as _AMP_SCALER, AUTOCAST_LINE as _AUTOCAST_LINE, BF16_EVIDENCE as _BF16_EVIDENCE, \
    DEFAULT_DTYPE as _DEFAULT_DTYPE, PARAM_EVIDENCE as _PARAM_EVIDENCE, \
    TENSOR_EVIDENCE as _TENSOR_EVIDENCE

if TYPE_CHECKING:
    from .context import FileContext
    from .facts import At

FP16_MAX = 65504.0
DTYPES = ("float32", "bfloat16", "float16")
SHORT = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


# -- rounding ------------------------------------------------------------
def round_to(value: float, dtype: str) -> float:
    """``value`` converted to ``dtype`` with round-to-nearest-even; overflow gives +-inf."""
    if math.isnan(value) or math.isinf(value):
        return value
    if dtype == "float16":
        try:
            return struct.unpack("<e", struct.pack("<e", value))[0]
        except OverflowError:
            return math.copysign(math.inf, value)
    try:
        as_f32 = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
    if dtype == "float32":
        return as_f32
    if dtype == "bfloat16":
        bits = struct.unpack("<I", struct.pack("<f", as_f32))[0]
        bits += 0x7FFF + ((bits >> 16) & 1)  # round to nearest, ties to even
        return struct.unpack("<f", struct.pack("<I", (bits >> 16 << 16) & 0xFFFFFFFF))[0]
    raise ValueError(f"unknown dtype {dtype!r}")


def underflows(value: float, dtype: str) -> bool:
    """A non-zero value that becomes exactly 0 in ``dtype`` (1e-8 in float16)."""
    return value != 0 and round_to(value, dtype) == 0


def overflows(value: float, dtype: str) -> bool:
    """A finite value that becomes +-inf in ``dtype`` (-1e9 in float16)."""
    return math.isfinite(value) and math.isinf(round_to(value, dtype))


def rounds_to_unit(value: float, dtype: str) -> bool:
    """A value strictly inside (-1, 1) that becomes exactly +-1 in ``dtype`` (1 - 1e-7 in bfloat16)."""
    return abs(value) < 1 and abs(round_to(value, dtype)) == 1


def fmt(value: float) -> str:
    """A literal as a reader would write it: ``1e-08`` -> ``1e-8``."""
    text = f"{value:g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)


def spelled(text: str, value: float) -> str:
    """The source text in backticks, followed by ``(= value)`` when the text does not spell the value
    (a name such as ``EPS`` or ``self.eps``)."""
    normal = text.replace("+", "").replace("_", "").lower()
    if normal.lstrip("-") in (fmt(abs(value)), repr(abs(value)), f"{abs(value):g}"):
        return f"`{text}`"
    return f"`{text}` (= {fmt(value)})"


# -- evidence -----------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    kind: str  # "config" | "tensor" | "autocast" | "params" | "bf16"
    text: str  # the matched source text, or the config statement
    line: int = 0

    def describe(self) -> str:
        if self.kind == "config":
            return self.text
        return f"`{self.text}` on line {self.line}"


def _line(source: str, index: int) -> int:
    return source.count("\n", 0, index) + 1


def _declared(ctx: "FileContext") -> Optional[tuple[str, ...]]:
    return ctx._declared_precision  # noqa: SLF001 - the config's precision, None when not declared




def fp16_evidence(ctx: "FileContext") -> Optional[Evidence]:
    """Any reason to believe the file runs in float16 (``tensor`` evidence first), or None."""
    declared = _declared(ctx)
    if declared is not None:
        return Evidence("config", "config: precision includes float16") if "float16" in declared else None
    tensor = fp16_tensor_evidence(ctx)
    if tensor is not None:
        return tensor
    text = ctx.fp16_evidence()
    if text is None:
        return None
    match = re.fullmatch(r"`(.*)` on line (\d+)", text, re.S)
    if match is None:
        return Evidence("autocast", text)
    return Evidence("autocast", match.group(1), int(match.group(2)))


def fp16_tensor_evidence(ctx: "FileContext") -> Optional[Evidence]:
    """Evidence that float16 *tensors* exist (not only CUDA autocast), or None."""
    declared = _declared(ctx)
    if declared is not None:
        return Evidence("config", "config: precision includes float16") if "float16" in declared else None
    source = ctx.source
    for match in _TENSOR_EVIDENCE.finditer(source):
        start = source.rfind("\n", 0, match.start()) + 1
        if _AUTOCAST_LINE.search(source, start, match.start()) or not applies(ctx, match.start()):
            continue
        return Evidence("tensor", match.group(0), _line(source, match.start()))
    return None


def fp16_param_evidence(ctx: "FileContext") -> Optional[Evidence]:
    """Evidence that *parameters* are float16 (``model.half()``); None under a GradScaler (AMP keeps f32 weights)."""
    source = ctx.source
    if _AMP_SCALER.search(source):
        return None
    for match in _PARAM_EVIDENCE.finditer(source):
        if applies(ctx, match.start()):
            return Evidence("params", match.group(0), _line(source, match.start()))
    return None


def half_precisions(ctx: "FileContext") -> list[tuple[str, Optional[Evidence]]]:
    """The half dtypes the code being analysed may run in, each with the evidence on its own dataflow
    (:mod:`nanlint.analysis.dtype`); bfloat16 too is assumed only where the code shows it.

    With ``precision`` declared in the config, exactly the declared half dtypes.
    """
    declared = _declared(ctx)
    if declared is not None:
        return [(d, Evidence("config", f"config: precision includes {d}")) for d in ("bfloat16", "float16")
                if d in declared]
    out: list[tuple[str, Optional[Evidence]]] = []
    for match in _BF16_EVIDENCE.finditer(ctx.source):
        if applies(ctx, match.start()):
            out.append(("bfloat16", Evidence("bf16", match.group(0), _line(ctx.source, match.start()))))
            break
    fp16 = fp16_evidence(ctx)
    if fp16 is not None:
        out.append(("float16", fp16))
    return out


# -- explicit float32 computation ----------------------------------------
_F32_DTYPES = frozenset({"float32", "float", "float64", "double"})


def _is_f32_dtype(expr: Optional[cst.BaseExpression], ctx: "FileContext") -> bool:
    if expr is None:
        return False
    qualified = ctx.imports.qualify(expr) if isinstance(expr, (cst.Name, cst.Attribute)) else None
    if qualified is not None and qualified.startswith("torch.") and qualified[6:] in _F32_DTYPES:
        return True
    return isinstance(expr, cst.SimpleString) and expr.evaluated_value in ("float32", "float64")


def follow(expr: cst.BaseExpression, ctx: "FileContext", at: "At") -> tuple[cst.BaseExpression, "At"]:
    from .singular import follow as _follow

    return _follow(expr, ctx, at)


def default_float32(expr: cst.BaseExpression, ctx: "FileContext") -> bool:
    """``expr`` is (a name for) a float factory call with no dtype (``torch.randn(16, 8)``): float32, the default
    dtype, unless the file changes it (``torch.set_default_dtype``). A ``.half()`` elsewhere in the file is
    evidence about another value."""
    if _DEFAULT_DTYPE.search(ctx.source):
        return False
    value, at = expr, ctx.at()
    for _ in range(4):
        if isinstance(value, cst.Call):
            tc = ctx.match(value)
            return tc is not None and not tc.is_method and tc.key in DEFAULT_DTYPE_FACTORIES \
                and tc.keyword("dtype") is None
        if not isinstance(value, cst.Name):
            return False
        followed, at = follow(value, ctx, at)
        if followed is value:
            return False
        value = followed
    return False


def upcast(expr: cst.BaseExpression, ctx: "FileContext") -> bool:
    """True when ``expr`` is visibly computed in float32/float64: it contains ``.float()``,
    ``.double()``, ``.to(torch.float32)``, ``.type(torch.float32)`` or ``dtype=torch.float32``,
    directly or in what a name in it was assigned (followed a few steps)."""
    stack: list[tuple[cst.CSTNode, "At", int]] = [(expr, ctx.at(), 0)]
    seen = 0
    while stack and seen < 300:
        node, at, depth = stack.pop()
        seen += 1
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute):
                name = func.attr.value
                if name in _UPCAST_METHODS and not node.args:
                    return True
                if name in ("to", "type") and any(_is_f32_dtype(a.value, ctx) for a in node.args
                                                   if a.keyword is None or a.keyword.value == "dtype"):
                    return True
            if any(a.keyword is not None and a.keyword.value == "dtype" and _is_f32_dtype(a.value, ctx)
                   for a in node.args):
                return True
            if isinstance(func, cst.Attribute):
                stack.append((func.value, at, depth))
            stack.extend((a.value, at, depth) for a in node.args)
        elif isinstance(node, (cst.Name, cst.Attribute)):
            if isinstance(node, cst.Attribute):
                stack.append((node.value, at, depth))
            if depth < 6:
                value, where = follow(node, ctx, at)
                if value is not node:
                    stack.append((value, where, depth + 1))
        elif isinstance(node, cst.BinaryOperation):
            stack.extend(((node.left, at, depth), (node.right, at, depth)))
        elif isinstance(node, cst.UnaryOperation):
            stack.append((node.expression, at, depth))
        elif isinstance(node, cst.Subscript):
            stack.append((node.value, at, depth))
        elif isinstance(node, cst.IfExp):
            # ``x.float() if needs_fp32 else x``: the author chose the dtype explicitly
            stack.extend(((node.body, at, depth), (node.orelse, at, depth)))
    return False


_HALF_NAMES = frozenset({"torch.float16", "torch.half"})


def _mentions_fp16(test: cst.BaseExpression, ctx: "FileContext") -> Optional[bool]:
    """For a test like ``x.dtype == torch.float16`` / ``x.dtype in (torch.float16, ...)``: True when the
    test is true for float16 tensors, False when it is false for them (``!=``, ``not in``), None otherwise."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        inner = _mentions_fp16(test.expression, ctx)
        return None if inner is None else not inner
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    target = test.comparisons[0]
    operands = [test.left, target.comparator]
    names: list[cst.BaseExpression] = []
    for operand in operands:
        if isinstance(operand, (cst.Tuple, cst.List, cst.Set)):
            names.extend(e.value for e in operand.elements)
        else:
            names.append(operand)
    if not any(isinstance(n, (cst.Name, cst.Attribute)) and ctx.imports.qualify(n) in _HALF_NAMES for n in names):
        return None
    if isinstance(target.operator, (cst.Equal, cst.Is, cst.In)):
        return True
    if isinstance(target.operator, (cst.NotEqual, cst.IsNot, cst.NotIn)):
        return False
    return None


def float16_excluded(ctx: "FileContext") -> bool:
    """True inside the branch of ``if x.dtype == torch.float16: ... else: <here>`` (or ``!=`` / ``not in``
    and the body) that runs only when the tensor is *not* float16: the author special-cased float16."""
    stack = ctx.stack
    for index in range(len(stack) - 1, 0, -1):
        node, child = stack[index - 1], stack[index]
        if isinstance(node, cst.If) and child is not node.test:
            fp16 = _mentions_fp16(node.test, ctx)
            in_body = child is node.body
            if fp16 is not None and fp16 != in_body:
                return True
        elif isinstance(node, cst.IfExp) and child is not node.test:
            fp16 = _mentions_fp16(node.test, ctx)
            in_body = child is node.body
            if fp16 is not None and fp16 != in_body:
                return True
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return False
    return False


# -- CUDA autocast ------------------------------------------------------------
# (which ops autocast runs in float32, and which keep their input's dtype: analysis/ops.py)
def autocast_float32(expr: cst.BaseExpression, ctx: "FileContext") -> bool:
    """True when, under CUDA autocast, ``expr`` is visibly float32: produced by an op autocast runs in
    float32 (``softmax``, ``sum``, ``pow``, ``norm``...), possibly through dtype-preserving ops or in
    arithmetic with such a value (type promotion picks float32)."""
    stack: list[tuple[cst.BaseExpression, "At", int]] = [(expr, ctx.at(), 0)]
    while stack:
        node, at, depth = stack.pop()
        if depth > 8:
            continue
        if isinstance(node, cst.Call):
            tc = ctx.match(node)
            if tc is None:
                continue
            if tc.key in AUTOCAST_F32_OPS:
                return True
            if tc.key in _DTYPE_PRESERVING and tc.operand is not None:
                stack.append((tc.operand, at, depth + 1))
        elif isinstance(node, cst.BinaryOperation):
            if isinstance(node.operator, cst.Power):
                return True  # __pow__ / __rpow__ autocast to float32
            stack.append((node.left, at, depth + 1))
            stack.append((node.right, at, depth + 1))
        elif isinstance(node, (cst.Name, cst.Attribute)):
            value, where = follow(node, ctx, at)
            if value is not node:
                stack.append((value, where, depth + 1))
        elif isinstance(node, cst.Subscript):
            stack.append((node.value, at, depth + 1))
    return False
