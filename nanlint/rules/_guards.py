"""Fixes that add an eps guard, shared by NAN101, NAN102, NAN201 and NAN202.

Each builder returns a :class:`Built`: a :class:`~nanlint.fixspec.FixSpec`, or the
reason there is none (a rule passes it on as ``no_fix_reason``). The eps is
``torch.finfo(<tensor>.dtype).eps`` (``.tiny`` for a bare square root) read from
the tensor being guarded, or the project's ``fix-eps`` literal when it is
finite for the file's dtypes (see :mod:`nanlint.eps`).

Two rules that flag the same root (NAN101/NAN102 on ``x / torch.sqrt(v)``,
NAN201 on the ``sqrt``) build the *same* edit here, so that applying one fixes
both and the fixer never stacks two guards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from ..analysis import kinds
from ..analysis.ops import NUMPY_SHARED_METHODS as _SHARED_METHODS, PYTHON_NUMBER_METHODS as _PYTHON_NUMBER_METHODS
from ..analysis.ops import SPREADS as _SPREAD_OPS, TORCH_ONLY_METHODS as _TORCH_ONLY_METHODS
from ..context import FileContext
from ..eps import KINDS, DtypeRef, default_dtypes, default_growth_note, dtype_ref, eps_expression, literal_problem
from ..facts import At, ZeroSource
from ..fixspec import SAFE, UNSAFE, Change, FixSpec, Replace, append_to, add_term, same_meaning, torch_reference
from ..names import TorchCall, match_call
from ..patterns import Root, root


@dataclass(frozen=True)
class Receiver:
    """Where an eps reads its dtype (``torch.finfo(<receiver>.dtype)``), and why that is a floating tensor.

    ``kind`` is what the value analysis (:mod:`nanlint.analysis.kinds`) says of the receiver itself;
    ``guarded``: the receiver is the guarded expression; ``basis``: why it is floating (benchmarks/fix_audit.py
    reports all three for every edit)."""

    code: str
    guarded: bool
    kind: str
    basis: str

    def as_extra(self) -> dict[str, object]:
        return {"receiver": self.code, "guarded": self.guarded, "kind": self.kind, "basis": self.basis}


@dataclass(frozen=True)
class Built:
    spec: Optional[FixSpec] = None
    reason: Optional[str] = None
    receiver: Optional[Receiver] = None

    def extra(self) -> dict[str, object]:
        """Keyword arguments for ``Rule.report``: ``fix=`` (and ``dtype_receiver=``) or ``no_fix_reason=``."""
        if self.spec is not None:
            if self.receiver is not None:
                return {"fix": self.spec, "dtype_receiver": self.receiver.as_extra()}
            return {"fix": self.spec}
        return {"no_fix_reason": self.reason} if self.reason else {}


def file_dtypes(ctx: FileContext) -> tuple[str, ...]:
    declared = getattr(ctx, "_declared_precision", None)
    return default_dtypes(declared, declared is None and ctx.fp16_evidence() is not None)


_NOT_FLOATING = frozenset({kinds.INT_TENSOR, kinds.BOOL_TENSOR, kinds.NUMPY, kinds.SEQUENCE}) | kinds.NUMBERS


def float_receiver(ctx: FileContext, ref: DtypeRef, guarded: Optional[cst.BaseExpression],
                   at: At) -> tuple[Optional[Receiver], str]:
    """Is ``ref`` a tensor whose dtype ``torch.finfo`` accepts (a floating tensor)? (receiver, why not).

    Accepted: a cast (``.float()``, ``.to(torch.float16)``); a tensor the analysis knows is floating; the
    guarded expression itself, unless the analysis knows it is not floating; a tensor that reaches a guarded
    value the analysis knows is floating through dtype-keeping operations (``x`` of ``x.norm()``: ``dtype_ref``
    follows only such chains). Refused: an int or bool tensor (``torch.finfo`` raises), a Python number, a
    list (no ``.dtype``), numpy, and a tensor of unknown kind that is not the guarded value.
    """
    assert ctx.module is not None
    if ref.dtype is not None:
        return Receiver(f"torch.{ref.dtype}", False, kinds.FLOAT_TENSOR, f"a cast to {ref.dtype}"), ""
    assert ref.tensor is not None
    text = ctx.module.code_for_node(ref.tensor).strip()
    kind = ctx.facts.kind(ref.tensor, at)
    is_guarded = guarded is not None and (ref.tensor is guarded
                                          or text == ctx.module.code_for_node(guarded).strip())
    if text.split(".")[0] in ("self", "cls") and "." not in text:
        return None, f"`{text}` is an object, not a tensor (a module's method was followed)"
    if kind in _NOT_FLOATING:
        return None, f"`{text}` is a {kind} to the value analysis: it has no floating dtype for `torch.finfo`"
    if kind == kinds.FLOAT_TENSOR:
        return Receiver(text, is_guarded, kind, "the analysis knows it is a float tensor"), ""
    if is_guarded:
        return Receiver(text, True, kind, "the guarded value itself"), ""
    if guarded is not None:
        guarded_kind = ctx.facts.kind(guarded, at)
        if guarded_kind == kinds.FLOAT_TENSOR:
            return Receiver(text, False, kind, "flows, keeping its dtype, into the guarded float tensor"), ""
    return None, (f"no floating tensor to read the dtype from: `{text}` is of unknown kind to the value analysis "
                  "(an int tensor or a list would make `torch.finfo` raise); set `fix-eps` to use a literal")


def eps_for(ctx: FileContext, kind: str, ref: Optional[DtypeRef], guarded: Optional[cst.BaseExpression] = None,
            at: Optional[At] = None) -> tuple[Optional[str], tuple[Change, ...], str]:
    """(eps text, changes it needs such as ``import torch``, why there is none); see :func:`eps_receiver`."""
    eps, changes, reason, _ = eps_receiver(ctx, kind, ref, guarded, at)
    return eps, changes, reason


def eps_receiver(ctx: FileContext, kind: str, ref: Optional[DtypeRef], guarded: Optional[cst.BaseExpression] = None,
                 at: Optional[At] = None) -> tuple[Optional[str], tuple[Change, ...], str, Optional[Receiver]]:
    """(eps text, changes it needs such as ``import torch``, why there is none, where its dtype comes from)."""
    assert ctx.module is not None
    literal = ctx.options.get("fix-eps")
    if literal is not None:
        for dtype in file_dtypes(ctx):
            problem = literal_problem(float(literal), dtype, kind)
            if problem is not None:
                return None, (), f"the configured `fix-eps` cannot guard this in {dtype}: {problem}", None
        return eps_expression(kind, None, ctx.module, "torch", float(literal)), (), "", None
    if ref is None:
        return None, (), ("no tensor to read the dtype from (the eps would be `torch.finfo(<tensor>.dtype)"
                          f".{KINDS[kind][0]}`); set `fix-eps` to use a literal"), None
    receiver, why = float_receiver(ctx, ref, guarded, at or ctx.at())
    if receiver is None:
        return None, (), why, None
    finfo, imports = torch_reference(ctx.module, "finfo")
    if finfo is None:
        return None, (), "no place to add `import torch`", None
    changes: tuple[Change, ...] = imports
    if ref.dtype is not None:
        argument, more = torch_reference(ctx.module, ref.dtype)
        if argument is None:
            return None, (), "no place to add `import torch`", None
        changes += more
    else:
        assert ref.tensor is not None
        argument = f"{ctx.module.code_for_node(ref.tensor).strip()}.dtype"
    return f"{finfo}({argument}).{KINDS[kind][0]}", changes, "", receiver


def _note(ctx: FileContext, kind: str) -> str:
    if ctx.options.get("fix-eps") is not None:
        return f"with the configured `fix-eps`, finite in {', '.join(file_dtypes(ctx))}"
    return default_growth_note(kind)


def python_number(expr: cst.BaseExpression, ctx: FileContext, at: At, depth: int = 0) -> bool:
    """True when ``expr`` is (or is assigned) ``t.item()`` / ``t.tolist()``: no tensor methods on it."""
    if depth > 8:
        return False
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        if expr.func.attr.value in _PYTHON_NUMBER_METHODS:
            return True
        return python_number(expr.func.value, ctx, at, depth + 1) if expr.func.attr.value in (
            "sqrt", "clamp", "clamp_min", "abs") else False
    if isinstance(expr, (cst.Name, cst.Attribute)):
        value, where = ctx.facts.resolve(expr, at)
        if value is not expr:
            return python_number(value, ctx, where, depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        return python_number(expr.left, ctx, at, depth + 1) or python_number(expr.right, ctx, at, depth + 1)
    return False


# Keywords of torch's spelling of the methods numpy shares (numpy says ``axis=`` / ``keepdims=``). The methods
# themselves (tensor-only, and shared with numpy) are families of analysis/ops.py.
_TORCH_KEYWORDS = frozenset({"dim", "keepdim", "unbiased"})


def tensor_evidence(expr: cst.BaseExpression, ctx: FileContext, at: At, depth: int = 0) -> bool:
    """Is there evidence that ``expr`` is a torch tensor (not a Python number or a numpy array)?

    A torch function call, a tensor-only method (``.pow``, ``.norm``, ``.clamp``...), a method numpy shares
    (``.mean``, ``.sum``...) in a file that does not import numpy, or a name assigned one of these.
    ``(target_area / aspect_ratio) ** 0.5`` has none: it is most likely plain Python arithmetic, and
    ``.clamp_min`` there would raise.
    """
    if depth > 10:
        return False
    if isinstance(expr, cst.Call):
        tc = ctx.match(expr)
        if tc is None:
            return False
        if not tc.is_method:
            return True  # torch.xxx / F.xxx
        if tc.key in _TORCH_ONLY_METHODS:
            return True
        if tc.key in _SHARED_METHODS:
            # numpy spells these ``axis=`` / ``keepdims=``: ``dim=`` / ``keepdim=`` / ``unbiased=`` are torch's
            if any(a.keyword is not None and a.keyword.value in _TORCH_KEYWORDS for a in tc.args):
                return True
            return not _imports_numpy(ctx) or (tc.operand is not None
                                               and tensor_evidence(tc.operand, ctx, at, depth + 1))
        return False
    if isinstance(expr, (cst.Name, cst.Attribute)):
        binding = ctx.facts.binding(expr, at)  # also ``std, mean = torch.std_mean(x)``: the call is the evidence
        if binding is None or binding.value is None or binding.operator is not None or binding.is_parameter:
            return False
        value = binding.value
        if binding.index is not None and isinstance(value, (cst.Tuple, cst.List)):
            elements = value.elements  # ``nx, ny = x.norm(), y.norm()``
            if binding.index >= len(elements) or isinstance(elements[binding.index], cst.StarredElement):
                return False
            value = elements[binding.index].value
        return tensor_evidence(value, ctx, At(binding.scope, binding.order), depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        return tensor_evidence(expr.left, ctx, at, depth + 1) or tensor_evidence(expr.right, ctx, at, depth + 1)
    if isinstance(expr, cst.UnaryOperation):
        return tensor_evidence(expr.expression, ctx, at, depth + 1)
    if isinstance(expr, cst.Subscript):
        return tensor_evidence(expr.value, ctx, at, depth + 1)
    return False


def _imports_numpy(ctx: FileContext) -> bool:
    return any(full.split(".")[0] == "numpy" for full in ctx.imports.aliases.values())


def _needs_evidence(found: Root, ctx: FileContext) -> Optional[str]:
    """A reason to withhold a fix of ``v ** 0.5`` (or ``v.std()``-like numpy-shared forms) when ``v`` may not be
    a tensor; ``torch.sqrt(v)``, ``v.sqrt()`` and ``v.pow(0.5)`` only exist for tensors."""
    if found.form.startswith("**") and not tensor_evidence(found.operand, ctx, ctx.at()):
        return (f"nothing shows that the base of `{found.form}` is a tensor (it may be a Python number, which has "
                "no `.clamp_min`)")
    return None


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    stack = [tree]
    while stack:
        current = stack.pop()
        if current is node:
            return True
        stack.extend(current.children)
    return False


def clamp_divisor(ctx: FileContext, divisor: cst.BaseExpression, source: ZeroSource, at: At,
                  what: str) -> Built:
    """``x / d`` -> ``x / d.clamp_min(eps)`` for a norm or a standard deviation (their backward is masked
    at 0, so a clamp after them is enough; docs/probe.md rows 2 and 6)."""
    if python_number(divisor, ctx, at):
        return Built(reason="the divisor is a Python number (`.item()`), not a tensor")
    if not (tensor_evidence(divisor, ctx, at) or tensor_evidence(source.node, ctx, at)):
        return Built(reason=f"nothing shows that `{ctx.module.code_for_node(divisor).strip()}` is a tensor "  # type: ignore[union-attr]
                            "(a numpy array or a Python number has no `.clamp_min`)")
    ref: Optional[DtypeRef] = None
    tc = match_call(source.node, ctx.imports) if isinstance(source.node, cst.Call) else None
    if tc is not None and tc.operand is not None:
        resolved, written = ctx.facts.resolve(divisor, at)
        if _contains(resolved, source.node) and same_meaning(tc.operand, written, at):
            ref = dtype_ref(tc.operand, ctx.imports)  # the normed tensor: under autocast it keeps the narrow dtype
    if ref is None:
        ref = dtype_ref(divisor, ctx.imports)
    eps, changes, reason, receiver = eps_receiver(ctx, "divide", ref, divisor, at)
    if eps is None:
        return Built(reason=reason)
    note = _note(ctx, "divide")
    spread = biased = None
    if what == "standard deviation":
        spread = spread_call(ctx, divisor, at)
        biased = biased_call(ctx, spread) if spread is not None else None
    if biased is not None:
        assert spread is not None
        # the unbiased std of one element is NaN and clamp_min(NaN) is NaN: `correction=0` makes it 0, then clamped
        changes = (Replace(spread, biased),) + changes
        note += "; `correction=0` because the unbiased std of a single element is NaN, which no clamp removes"
    if what == "standard deviation":
        note += ("; in float16 the mean's gradient is (sum of upstream gradients) / eps, so a loss that sums 64 or "
                 "more standardised values of a constant input still overflows: standardise in float32 for that")
    return Built(FixSpec(
        UNSAFE,
        f"Clamp the {what}: {'`correction=0` and ' if biased is not None else ''}`.clamp_min({eps})` ({note})",
        append_to(divisor, f".clamp_min({eps})") + changes,
    ), receiver=receiver)


def clamp_inside_root(ctx: FileContext, found: Root, kind: str, what: str) -> Built:
    """``sqrt(v)`` -> ``sqrt(v.clamp_min(eps))`` (any spelling of the root): the clamp must come *before*
    the root, whose own gradient is infinite at 0 (docs/probe.md rows 3, 4, 10)."""
    operand = found.operand
    if python_number(operand, ctx, ctx.at()):
        return Built(reason="the value is a Python number (`.item()`), not a tensor")
    doubt = _needs_evidence(found, ctx)
    if doubt:
        return Built(reason=doubt)
    eps, changes, reason, receiver = eps_receiver(ctx, kind, _operand_dtype(ctx, operand), operand)
    if eps is None:
        return Built(reason=reason)
    spread = spread_call(ctx, operand, ctx.at())
    biased = biased_call(ctx, spread) if spread is not None else None
    note = _note(ctx, kind)
    if biased is not None:
        assert spread is not None
        changes = (Replace(spread, biased),) + changes
        note += "; `correction=0` because the unbiased variance of a single element is NaN, which no clamp removes"
    return Built(FixSpec(
        UNSAFE,
        f"Clamp the {what} before the root: {'`correction=0` and ' if biased is not None else ''}"
        f"`.clamp_min({eps})` ({note})",
        append_to(operand, f".clamp_min({eps})") + changes,
    ), receiver=receiver)


def _operand_dtype(ctx: FileContext, operand: cst.BaseExpression) -> Optional[DtypeRef]:
    """``dtype_ref``, plus a loss criterion's call (``self.mse(pred, target)`` with ``self.mse = nn.MSELoss()``):
    its inputs have the loss's dtype."""
    ref = dtype_ref(operand, ctx.imports)
    if ref is None and isinstance(operand, cst.Call):
        source = ctx.facts.zero_source(operand, ctx.at())
        if source is not None and source.kind == "MSE" and source.node is operand:
            for arg in operand.args[:2]:
                if arg.keyword is None and not arg.star:
                    ref = dtype_ref(arg.value, ctx.imports)
                    if ref is not None:
                        break
    return ref


def root_of(node: cst.CSTNode, ctx: FileContext) -> Optional[Root]:
    found = root(node, ctx)
    return found if found is not None and not found.reciprocal else None


def divisor_root(ctx: FileContext, source: ZeroSource) -> Optional[Root]:
    """The square root that makes a divisor zero (``x / torch.sqrt(var)``), for the inner clamp."""
    if source.kind not in ("hand-written norm", "square root of a variance"):
        return None
    return root_of(source.node, ctx)


def is_method_root(node: cst.CSTNode, ctx: FileContext) -> bool:
    if isinstance(node, cst.Call):
        tc = ctx.match(node)
        return tc is not None and tc.is_method
    return False


def add_eps(ctx: FileContext, found: Root, what: str) -> Built:
    """``rsqrt(v)`` -> ``rsqrt(v + eps)`` (NAN202)."""
    operand = found.operand
    if python_number(operand, ctx, ctx.at()):
        return Built(reason="the value is a Python number (`.item()`), not a tensor")
    doubt = _needs_evidence(found, ctx)
    if doubt:
        return Built(reason=doubt)
    eps, changes, reason, receiver = eps_receiver(ctx, "rsqrt", dtype_ref(operand, ctx.imports), operand)
    if eps is None:
        return Built(reason=reason)
    standalone = isinstance(found.node, cst.Call) and not is_method_root(found.node, ctx)
    note = _note(ctx, "rsqrt")
    if ctx.options.get("fix-eps") is None:
        note += "; in float16 the gradient at 0 is 2**15, half the float16 maximum: compute the statistics " \
                "in float32 for headroom"
    return Built(FixSpec(
        UNSAFE,
        f"Add eps to the {what}: `+ {eps}` ({note})",
        add_term(operand, eps, standalone) + changes,
    ), receiver=receiver)


def biased_call(ctx: FileContext, call: cst.BaseExpression) -> Optional[cst.Call]:
    """``x.std(dim)`` -> ``x.std(dim, correction=0)`` (also ``var``, ``std_mean``, ``var_mean``), or None when
    ``call`` is not an unbiased spread whose correction can be set here (``correction=``/``unbiased=`` given, or a
    positional ``unbiased`` flag). The unbiased estimator of one element is 0/0 = NaN (docs/probe.md row 7), and
    ``clamp_min`` of NaN is NaN: only ``correction=0`` removes that trigger."""
    if not isinstance(call, cst.Call):
        return None
    tc = match_call(call, ctx.imports)
    if tc is None or tc.key not in _SPREAD_OPS or tc.operand is None:
        return None
    if any(a.star for a in call.args) or tc.keyword("correction") is not None or tc.keyword("unbiased") is not None:
        return None
    if tc.positional(1) is not None and not isinstance(tc.positional(1), (cst.Tuple, cst.List)):
        return None  # ``x.std(dim, False)`` or ``torch.std(x, dim, ...)``: a positional flag may follow
    if tc.positional(0) is not None and isinstance(tc.positional(0), cst.Name) and \
            tc.positional(0).value in ("True", "False"):  # type: ignore[union-attr]
        return None  # ``x.std(False)``: the old positional ``unbiased``
    args = list(call.args)
    if args and args[-1].comma == cst.MaybeSentinel.DEFAULT:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    args.append(cst.Arg(keyword=cst.Name("correction"), value=cst.Integer("0"),
                        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                              whitespace_after=cst.SimpleWhitespace(""))))
    return call.with_changes(args=args)


def spread_call(ctx: FileContext, expr: cst.BaseExpression, at: At) -> Optional[cst.Call]:
    """The ``std``/``var`` call ``expr`` is or is assigned (``s = x.std()`` ... ``/ s``;
    ``std, mean = torch.std_mean(x)``), looking through ``.sqrt()`` of a variance."""
    for _ in range(4):
        if isinstance(expr, (cst.Name, cst.Attribute)):
            binding = ctx.facts.binding(expr, at)
            if binding is None or binding.value is None or binding.operator is not None or binding.is_parameter:
                return None
            expr, at = binding.value, At(binding.scope, binding.order)
            continue
        if isinstance(expr, cst.Call):
            tc = match_call(expr, ctx.imports)
            if tc is not None and tc.key in _SPREAD_OPS:
                return expr
            if tc is not None and tc.key in ("sqrt",) and tc.operand is not None:
                expr = tc.operand
                continue
        return None
    return None


def relu_for_clamp(ctx: FileContext, tc: TorchCall) -> Optional[FixSpec]:
    """``x.clamp(min=0)`` -> ``x.relu()``, ``torch.clamp(x, min=0)`` -> ``torch.relu(x)``: the same values, and a
    zero gradient at 0 where a fractional power of the clamp has an infinite one (docs/probe.md rows 31, 32).
    None for a clamp with an upper bound or other arguments."""
    if tc.key not in ("clamp", "clip", "clamp_min") or tc.operand is None:
        return None
    if tc.key != "clamp_min" and (tc.argument("max", 1) is not None or len(tc.args) != 1):
        return None
    if tc.key == "clamp_min" and len(tc.args) != 1:
        return None
    assert ctx.module is not None
    operand = ctx.module.code_for_node(tc.operand).strip()
    if tc.is_method:
        receiver = operand if _atomic(tc.operand) else f"({operand})"
        return FixSpec(SAFE, "use `relu`", (Replace(tc.node, f"{receiver}.relu()"),))
    callee = ctx.facts.spell("relu", tc.node.func)
    if callee is None:
        return None
    return FixSpec(SAFE, "use `torch.relu`", (Replace(tc.node, f"{callee}({operand})"),))


def _atomic(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or bool(getattr(expr, "lpar", ()))
