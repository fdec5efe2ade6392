"""Dtype-aware eps for fixes, and the check of a project's ``fix-eps`` literal.

A fixed literal is wrong somewhere (docs/architecture.md §4): ``1e-8`` rounds to 0 in
float16, ``1e-6`` survives there but its reciprocal (the gradient of a clamped
denominator) overflows, and ``1e-3`` distorts float32. nanlint's fixes therefore
read the eps from the tensor they guard: ``torch.finfo(x.dtype).eps`` (or
``.tiny`` where the guard only has to keep a value off exact zero).

What each fix needs was measured with torch 2.13 (docs/numerics-extra.md,
"Fix eps"). The gradient at the trigger input grows like a power of eps:

=============== ===================================== ============ =========================
kind            fix                                   growth       float16 needs eps >=
=============== ===================================== ============ =========================
``divide``      ``x / d.clamp_min(eps)``              1 / eps      1.53e-5 (= 1 / 65504)
``divide-sqrt`` ``x / sqrt(v.clamp_min(eps))``        eps ** -0.5  2.98e-8 (not rounded to 0)
``sqrt``        ``sqrt(v.clamp_min(eps))``            0 (clamped)  2.98e-8 (not rounded to 0)
``rsqrt``       ``rsqrt(v + eps)``                    eps ** -1.5  6.15e-4 (= 65504 ** -2/3)
``log``         ``log(p.clamp_min(eps))``             1 / eps      1.53e-5
=============== ===================================== ============ =========================

``finfo(dtype).eps`` (2**-23, 2**-7, 2**-10 in float32, bfloat16, float16) meets
every row in every dtype; ``finfo(dtype).tiny`` (2**-126, 2**-126, 2**-14) meets
the ``sqrt`` and ``log`` rows and distorts the value far less, so those kinds use it.

Static mode never imports torch: the limits below are the IEEE constants of
each dtype, and rounding is emulated bit by bit (checked against torch in
tests/test_fix_numerics.py).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import libcst as cst

from .analysis.ops import BINARY_OPS as _BINARY_OPS, DTYPE_KEEPING_METHODS as TENSOR_METHODS
from .names import ImportTable


@dataclass(frozen=True)
class DtypeLimits:
    name: str
    eps: float  # finfo.eps
    tiny: float  # finfo.tiny: the smallest normal number
    max: float  # finfo.max
    min_subnormal: float  # the smallest positive number; half of it rounds to 0


LIMITS: dict[str, DtypeLimits] = {
    "float32": DtypeLimits("float32", 2.0 ** -23, 2.0 ** -126, 3.4028234663852886e38, 2.0 ** -149),
    "bfloat16": DtypeLimits("bfloat16", 2.0 ** -7, 2.0 ** -126, 3.3895313892515355e38, 2.0 ** -133),
    "float16": DtypeLimits("float16", 2.0 ** -10, 2.0 ** -14, 65504.0, 2.0 ** -24),
}

# kind -> (finfo attribute used by default, how the gradient at the trigger grows with eps)
KINDS: dict[str, tuple[str, str]] = {
    "divide": ("eps", "the gradient of a clamped denominator grows like 1/eps"),
    "divide-sqrt": ("eps", "the gradient of a clamped root in a denominator grows like eps**-0.5"),
    "sqrt": ("tiny", "eps only has to keep the root's argument off exact zero"),
    "rsqrt": ("eps", "the gradient of rsqrt(v + eps) grows like eps**-1.5"),
    "log": ("tiny", "the gradient of log(clamp(p, eps)) grows like 1/eps"),
}


def round_to(value: float, dtype: str) -> float:
    """``value`` rounded (to nearest even) to ``dtype``, as a Python float; overflow gives inf."""
    if dtype == "float32":
        try:
            return struct.unpack("<f", struct.pack("<f", value))[0]
        except OverflowError:
            return math.copysign(math.inf, value)
    if dtype == "float16":
        try:
            return struct.unpack("<e", struct.pack("<e", value))[0]
        except OverflowError:
            return math.copysign(math.inf, value)
    if dtype == "bfloat16":
        # Round the float32 bit pattern to its top 16 bits (nearest, ties to even).
        bits = struct.unpack("<I", struct.pack("<f", round_to(value, "float32")))[0]
        if (bits & 0x7F800000) == 0x7F800000:
            rounded = bits & 0xFFFF0000
        else:
            rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return struct.unpack("<f", struct.pack("<I", rounded & 0xFFFFFFFF))[0]
    raise ValueError(f"unknown dtype {dtype!r}")


def growth(kind: str, eps: float) -> float:
    """How large the gradient at the trigger input gets for this kind of fix (see the table above)."""
    if eps <= 0:
        return math.inf
    if kind in ("divide", "log"):
        return 1.0 / eps
    if kind == "divide-sqrt":
        return eps ** -0.5
    if kind == "sqrt":
        return 0.5 * eps ** -0.5
    if kind == "rsqrt":
        return eps ** -1.5
    raise ValueError(f"unknown fix kind {kind!r}")


def literal_problem(value: float, dtype: str, kind: Optional[str] = None) -> Optional[str]:
    """Why ``value`` cannot serve as eps in ``dtype`` (for a fix of ``kind``), or None when it can."""
    limits = LIMITS[dtype]
    stored = round_to(value, dtype)
    if stored == 0:
        return (f"{value:g} rounds to 0 in {dtype} (its smallest positive number is "
                f"{limits.min_subnormal:.3g})")
    if kind is not None:
        grown = growth(kind, stored)
        if not grown <= limits.max:
            return (f"with eps = {value:g} the gradient at the trigger input is about {grown:.3g}, "
                    f"above the {dtype} maximum {limits.max:.6g} ({KINDS[kind][1]})")
    return None


def check_fix_eps(value: float, precision: Optional[Sequence[str]]) -> Optional[str]:
    """The configuration check: a ``fix-eps`` literal must not round to 0 in a declared dtype."""
    for dtype in precision or ():
        problem = literal_problem(value, dtype)
        if problem is not None:
            return f"`fix-eps` = {value:g} is refused: {problem}; choose a larger value or leave `fix-eps` unset " \
                   "to use the dtype-aware default `torch.finfo(x.dtype).eps`"
    return None


def format_literal(value: float) -> str:
    """``1e-4`` rather than ``0.0001``: the spelling people write for eps."""
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        return f"{mantissa}e{int(exponent)}"
    if 0 < abs(value) < 1e-2:
        short = f"{value:.15e}"
        mantissa, exponent = short.split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        candidate = f"{mantissa}e{int(exponent)}"
        if float(candidate) == value:
            return candidate
    return text


# -- which tensor's dtype sets eps --------------------------------------------------------
_DTYPE_NAMES = {
    "torch.float16": "float16", "torch.half": "float16", "torch.bfloat16": "bfloat16",
    "torch.float32": "float32", "torch.float": "float32", "torch.float64": "float64",
    "torch.double": "float64",
}
_CAST_METHODS = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16"}


@dataclass(frozen=True)
class DtypeRef:
    """Where eps reads its dtype from: a tensor expression (``x`` -> ``x.dtype``) or a known dtype."""

    tensor: Optional[cst.BaseExpression] = None
    dtype: Optional[str] = None  # "float32"... when a cast fixed it

    def code(self, module: cst.Module, torch_name: str) -> str:
        if self.dtype is not None:
            return f"{torch_name}.{self.dtype}"
        assert self.tensor is not None
        return f"{module.code_for_node(self.tensor).strip()}.dtype"


def _is_plain(expr: cst.BaseExpression, imports: ImportTable) -> bool:
    """``x``, ``self.x``, ``batch.x``: a name or attribute chain that is not a module."""
    node = expr
    while isinstance(node, cst.Attribute):
        node = node.value
    if not isinstance(node, cst.Name) or node.value in ("None", "True", "False"):
        return False
    if expr.lpar or imports.is_module(expr):
        return False
    return True


def dtype_ref(expr: Optional[cst.BaseExpression], imports: ImportTable, depth: int = 0) -> Optional[DtypeRef]:
    """The tensor (inside ``expr``) whose dtype the guarded value has, or a dtype a cast fixes.

    Follows method chains to their receiver and torch functions to their first
    argument (``h.pow(2).mean(-1)`` -> ``h``; ``F.mse_loss(p, t)`` -> ``p``);
    ``.float()``/``.half()``/``.to(torch.float16)`` give that dtype. Anything that
    may change the dtype to an integer or to something unknown gives None.
    """
    if expr is None or depth > 12:
        return None
    if isinstance(expr, (cst.Name, cst.Attribute)):
        return DtypeRef(tensor=expr) if _is_plain(expr, imports) else None
    if isinstance(expr, cst.Subscript):
        return dtype_ref(expr.value, imports, depth + 1)
    if isinstance(expr, cst.UnaryOperation):
        return dtype_ref(expr.expression, imports, depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        if isinstance(expr.operator, (cst.LeftShift, cst.RightShift, cst.BitAnd, cst.BitOr, cst.BitXor,
                                      cst.FloorDivide, cst.Modulo)):
            return None  # integer-looking arithmetic: its dtype is not a float one we can name
        for side in (expr.left, expr.right):
            if isinstance(side, (cst.Integer, cst.Float, cst.Imaginary)):
                continue
            found = dtype_ref(side, imports, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(expr, (cst.List, cst.Tuple)) and expr.elements:
        return dtype_ref(expr.elements[0].value, imports, depth + 1)
    if isinstance(expr, cst.Call):
        func = expr.func
        if isinstance(func, cst.Attribute) and not imports.is_module(func.value):
            method = func.attr.value
            if method in _CAST_METHODS and not expr.args:
                return DtypeRef(dtype=_CAST_METHODS[method]) if _CAST_METHODS[method] != "float64" else None
            if method in ("to", "type"):
                return _cast_target(expr, imports, depth)
            if method == "type_as" and expr.args:
                return dtype_ref(expr.args[0].value, imports, depth + 1)
            if method not in TENSOR_METHODS:
                return None
            return dtype_ref(func.value, imports, depth + 1)
        qualified = imports.qualify(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if qualified is None or not qualified.startswith("torch."):
            return None
        positional = [a.value for a in expr.args if a.keyword is None and not a.star]
        key = qualified[len("torch."):].replace("nn.functional.", "F.")
        if key == "where":
            positional = positional[1:3]  # ``where(cond, a, b)``: the values, never the (bool) condition
        for value in positional[: 2 if key in _BINARY_OPS or key == "where" else 1]:
            found = dtype_ref(value, imports, depth + 1)
            if found is not None:
                return found
        return None
    return None


def _cast_target(call: cst.Call, imports: ImportTable, depth: int) -> Optional[DtypeRef]:
    """``x.to(torch.float16)`` / ``x.to(dtype=y.dtype)`` / ``x.to(device)``."""
    receiver = call.func.value  # type: ignore[attr-defined]
    target: Optional[cst.BaseExpression] = None
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "dtype":
            target = arg.value
    if target is None:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        for value in positional:
            qualified = imports.qualify(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
            if qualified in _DTYPE_NAMES:
                target = value
                break
        else:
            # .to(device) / .to("cuda") / .to(x.device) keep the dtype; anything else is unknown
            if all(_is_device(v) for v in positional) and positional:
                return dtype_ref(receiver, imports, depth + 1)
            return None
    qualified = imports.qualify(target) if isinstance(target, (cst.Name, cst.Attribute)) else None
    if qualified in _DTYPE_NAMES:
        name = _DTYPE_NAMES[qualified]
        return DtypeRef(dtype=name) if name != "float64" else None
    if isinstance(target, cst.Attribute) and target.attr.value == "dtype":
        return dtype_ref(target.value, imports, depth + 1)
    return None


def _is_device(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.SimpleString):
        return True
    if isinstance(expr, cst.Attribute) and expr.attr.value == "device":
        return True
    if isinstance(expr, cst.Name) and "device" in expr.value.lower():
        return True
    return False


def eps_expression(kind: str, ref: Optional[DtypeRef], module: cst.Module, torch_name: str,
                   literal: Optional[float] = None) -> Optional[str]:
    """The eps text of a fix: the configured literal, else ``torch.finfo(<ref>).eps`` / ``.tiny``."""
    if literal is not None:
        return format_literal(literal)
    if ref is None:
        return None
    attr = KINDS[kind][0]
    return f"{torch_name}.finfo({ref.code(module, torch_name)}).{attr}"


def default_dtypes(declared: Optional[Iterable[str]], fp16: bool) -> tuple[str, ...]:
    """The dtypes a fix must be finite in: the declared precision, else float32/bfloat16 (+ float16 on evidence)."""
    if declared is not None:
        return tuple(declared)
    return ("float32", "bfloat16", "float16") if fp16 else ("float32", "bfloat16")


def default_growth_note(kind: str) -> str:
    """``finite ...; the gradient of a clamped denominator is 1/eps: 8.39e+06 / 128 / 1.02e+03 in ...``."""
    attr = KINDS[kind][0]
    if kind == "sqrt":
        return ("finite forward and gradient at 0 in float32, bfloat16 and float16; the value moves by at most "
                "sqrt(finfo.tiny): 1.1e-19 / 1.1e-19 / 7.8e-3")
    values = [growth(kind, getattr(LIMITS[d], attr)) for d in ("float32", "bfloat16", "float16")]
    return (f"finite forward and gradient at 0 in float32, bfloat16 and float16; {KINDS[kind][1]}: "
            + " / ".join(f"{v:.3g}" for v in values) + " in float32 / bfloat16 / float16")
