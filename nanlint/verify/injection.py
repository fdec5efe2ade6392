"""Danger values: what nanlint substitutes at a flagged op to confirm a finding that ordinary data does not trigger.

Each rule names the value that makes its hazard real (docs/probe.md §1): a norm,
standard deviation, variance, MSE or count of exactly 0 (rows 1-5, 10, 39), a
log argument of 0 (rows 14-18), a cosine of exactly 1 (row 33), a mask row with
every slot masked (rows 24, 29), a reduction over one element (row 7) or over
none (row 40), an ``exp`` argument of 1000 (rows 21, 22), and for a training
loop without clipping a gradient spike of x1e6 (§5.3).

An :class:`OpInjection` finds its op by the column span CPython records for the
calling instruction (``co_positions()``): the finding's ``target_span`` (the
divisor, the sqrt argument...) when the rule gives one, else the finding's own
span. A target that is a plain name (``x / n`` with ``n = x.norm()`` earlier) is
a value read, not an op: the injection then replaces that value where the first
op that contains the name's span receives it (it evaluates the name in the user
frame and matches the argument by identity). Values keep their autograd path:
a zero is ``t - t.detach()``, so gradients flow exactly as they would from a
real zero.

:class:`GradInjection` scales the gradients of a step's backward passes (it
rewrites the ``grad_tensors`` of ``torch.autograd.backward``): the x1e6 spike a
bad batch makes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from .source import SourceFile, Span
from .tracer import Site, _FuncInfo

SPIKE = 1e6
BIG_EXP_ARGUMENT = 1000.0

DIVISIONS = frozenset({"div", "div_", "divide", "divide_", "true_divide", "true_divide_", "__truediv__",
                       "__itruediv__", "__div__", "__idiv__"})
REVERSE_DIVISIONS = frozenset({"__rtruediv__", "__rdiv__"})
ZERO_FIRST = frozenset({"sqrt", "sqrt_", "rsqrt", "rsqrt_", "log", "log_", "log2", "log10", "pow", "pow_",
                        "__pow__", "float_power", "reciprocal", "reciprocal_", "layer_norm", "group_norm",
                        "rms_norm", "hypot", "logit", "xlogy"})
ONE_FIRST = frozenset({"acos", "acos_", "arccos", "asin", "asin_", "arcsin"})
MASK_OPS = frozenset({"masked_fill", "masked_fill_", "softmax", "log_softmax", "_softmax", "where",
                      "multi_head_attention_forward", "__add__", "add", "__radd__"})
REDUCE_ONE = frozenset({"std", "var", "std_mean", "var_mean"})
REDUCE_EMPTY = frozenset({"mean", "nanmean"})
EXP_OPS = frozenset({"exp", "exp_", "expm1", "exp2"})

# rule -> how to make its hazard real
TARGET_ZERO = frozenset({"NAN101", "NAN102", "NAN103", "NAN201", "NAN202", "NAN203", "NAN301", "NAN302",
                         "NAN401"})
# the target is the inner op (sqrt, log, 1/x under torch.where): its argument gets the danger value
TARGET_INNER = frozenset({"NAN401"})
TARGET_ONE = frozenset({"NAN404"})
MASK_ROW = frozenset({"NAN402"})
NARROW = frozenset({"NAN204"})
EMPTY = frozenset({"NAN104"})
BIG_EXP = frozenset({"NAN303", "NAN304"})
ZERO_INPUT = frozenset({"NAN502"})
GRAD_SPIKE = frozenset({"NAN601", "NAN602"})
NAN_LOSS = frozenset({"NAN603"})
#: No danger value can be injected for these (float16-only, or not a value hazard).
NO_INJECTION = frozenset({"NAN403", "NAN501", "NAN604"})
#: Injected after any check the fix would add (at backward): a fix cannot be judged by it.
FIX_NOT_JUDGED = frozenset({"NAN603"})


@dataclass
class Fired:
    step: int
    op: str
    dtype: str
    what: str


def _first(t: torch.Tensor) -> torch.Tensor:
    """1 at the first element, 0 elsewhere: one zero norm in a batch, as real data makes it."""
    mask = torch.zeros(t.shape, dtype=t.dtype, device=t.device)
    if mask.numel():
        mask.view(-1)[0] = 1
    return mask


def _zero(t: torch.Tensor) -> torch.Tensor:
    """``t`` with its first element exactly 0 (the whole of a scalar); gradients pass unchanged."""
    if t.numel() <= 1:
        return t - t.detach()
    return t - t.detach() * _first(t)


def _one(t: torch.Tensor) -> torch.Tensor:
    """``t`` with its first element exactly 1."""
    if t.numel() <= 1:
        return t - t.detach() + 1
    first = _first(t)
    return t - (t.detach() - 1) * first


def _element(t: torch.Tensor) -> str:
    """How much of ``t`` the danger value replaced, for messages."""
    return "" if t.numel() <= 1 else "element 0 of "


def _dtype(t: Any) -> str:
    return str(t.dtype).replace("torch.", "") if isinstance(t, torch.Tensor) else type(t).__name__


class Injection:
    kind = "op"

    def __init__(self, code: str, describe: str) -> None:
        self.code = code
        self.describe = describe
        self.armed = False
        self.step = 0
        self.fired: Optional[Fired] = None
        self.seen_site = False  # an op ran at the injection site
        self.problem: Optional[str] = None  # why the op at the site could not take the value


class OpInjection(Injection):
    """Substitute a value at one op, the first time it runs once armed."""

    def __init__(self, code: str, mode: str, site: Span, describe: str, name_text: Optional[str] = None) -> None:
        super().__init__(code, describe)
        self.mode = mode
        self.site = site
        self.name_text = name_text

    # -- matching ---------------------------------------------------------------
    def _at(self, site: Site) -> bool:
        span = site.span
        if span.col < 0 or self.site.col < 0:
            return span.path == self.site.path and span.line == self.site.line
        return span == self.site

    def _within(self, site: Site) -> bool:
        span = site.span
        if span.col < 0 or self.site.col < 0:
            return span.path == self.site.path and span.line <= self.site.line <= span.end_line
        return span.contains(self.site)

    def _fire(self, info: _FuncInfo, value: Any, what: str) -> None:
        self.fired = Fired(self.step, info.name, _dtype(value), what)
        self.armed = False

    # -- hooks called by the tracer -----------------------------------------------------
    def before(self, info: _FuncInfo, args: tuple, kwargs: dict, site: Site) -> tuple[tuple, dict]:
        mode = self.mode
        if mode in ("zero-output", "one-output"):
            return args, kwargs
        if mode in ("zero-name", "one-name"):
            if not self._within(site) or site.frame is None:
                return args, kwargs
            try:
                value = eval(self.name_text, site.frame.f_globals, site.frame.f_locals)  # noqa: S307 - a name
            except Exception:
                return args, kwargs
            if not isinstance(value, torch.Tensor):
                return args, kwargs
            one = mode == "one-name"
            args, kwargs, replaced = _replace_identity(args, kwargs, value, _one(value) if one else _zero(value))
            if replaced:
                self.seen_site = True
                self._fire(info, value, f"{_element(value)}`{self.name_text}` read as {'exactly 1' if one else '0'} "
                                        f"by `{info.name}`")
            return args, kwargs
        if mode == "big-within":
            if self._within(site) and info.short in EXP_OPS and args and isinstance(args[0], torch.Tensor):
                self.seen_site = True
                value = args[0]
                self._fire(info, value, f"argument of `{info.name}` set to {BIG_EXP_ARGUMENT:g}")
                return (value - value.detach() + BIG_EXP_ARGUMENT, *args[1:]), kwargs
            return args, kwargs
        if not self._at(site):
            return args, kwargs
        self.seen_site = True
        if mode == "auto":
            mode = _auto_mode(info.short)
            if mode is None:
                self.problem = f"no danger value is known for `{info.name}`"
                return args, kwargs
        if mode == "zero-divisor":
            return self._zero_divisor(info, args, kwargs)
        if mode == "zero-first":
            return self._map_first(info, args, kwargs, _zero, "set to 0", all_args=info.short == "hypot")
        if mode == "one-first":
            return self._map_first(info, args, kwargs, _one, "set to exactly 1")
        if mode == "mask-row":
            return self._mask_row(info, args, kwargs)
        if mode == "narrow":
            return self._reduce_over(info, args, kwargs, 1)
        if mode == "empty":
            return self._reduce_over(info, args, kwargs, 0)
        return args, kwargs

    def after(self, info: _FuncInfo, out: Any, site: Site) -> Any:
        if self.mode not in ("zero-output", "one-output") or not self._at(site):
            return out
        self.seen_site = True
        transform = _zero if self.mode == "zero-output" else _one
        value = out[0] if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor) else out
        if not isinstance(value, torch.Tensor) or value.dtype == torch.bool:
            self.problem = f"`{info.name}` does not return a number tensor"
            return out
        new = transform(value)
        self._fire(info, value, f"{_element(value) + 'the ' if _element(value) else ''}result of `{info.name}` set to "
                                f"{'0' if self.mode == 'zero-output' else 'exactly 1'}")
        if value is out:
            return new
        return type(out)([new, *out[1:]]) if isinstance(out, list) else (new, *out[1:])

    # -- transforms ----------------------------------------------------------------------
    def _zero_divisor(self, info: _FuncInfo, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if info.short in REVERSE_DIVISIONS and args and isinstance(args[0], torch.Tensor):
            self._fire(info, args[0], f"divisor of `{info.name}` set to 0")
            return (_zero(args[0]), *args[1:]), kwargs
        if info.short in DIVISIONS:
            if len(args) > 1 and isinstance(args[1], torch.Tensor):
                self._fire(info, args[1], f"divisor of `{info.name}` set to 0")
                return (args[0], _zero(args[1]), *args[2:]), kwargs
            if isinstance(kwargs.get("other"), torch.Tensor):
                self._fire(info, kwargs["other"], f"divisor of `{info.name}` set to 0")
                return args, {**kwargs, "other": _zero(kwargs["other"])}
            if len(args) > 1 and isinstance(args[1], (int, float)) and isinstance(args[0], torch.Tensor):
                self._fire(info, args[0], f"divisor of `{info.name}` set to 0")
                return (args[0], 0.0, *args[2:]), kwargs
        self.problem = f"`{info.name}` is not a division nanlint can rewrite"
        return args, kwargs

    def _map_first(self, info: _FuncInfo, args: tuple, kwargs: dict, transform: Any, words: str,
                   all_args: bool = False) -> tuple[tuple, dict]:
        if not args or not isinstance(args[0], torch.Tensor):
            key = "input" if isinstance(kwargs.get("input"), torch.Tensor) else None
            if key is None:
                self.problem = f"`{info.name}` has no tensor argument"
                return args, kwargs
            self._fire(info, kwargs[key], f"argument of `{info.name}` {words}")
            return args, {**kwargs, key: transform(kwargs[key])}
        new = list(args)
        new[0] = transform(args[0])
        if all_args:
            new = [transform(a) if isinstance(a, torch.Tensor) else a for a in args]
        self._fire(info, args[0], f"argument{'s' if all_args else ''} of `{info.name}` {words}")
        return tuple(new), kwargs

    def _mask_row(self, info: _FuncInfo, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        values = list(args) + list(kwargs.values())
        keys: list[Any] = list(range(len(args))) + list(kwargs)
        for key, value in zip(keys, values):
            if isinstance(value, torch.Tensor) and value.dtype == torch.bool and value.dim() >= 1:
                mask = value.detach().clone(memory_format=torch.contiguous_format)
                mask.view(-1, mask.shape[-1])[0] = True
                self._fire(info, value, f"row 0 of the mask of `{info.name}` fully masked")
                return _put(args, kwargs, key, mask)
        if info.short in ("softmax", "log_softmax", "_softmax") and args and isinstance(args[0], torch.Tensor) \
                and args[0].dim() >= 1:
            scores = args[0]
            row = torch.zeros_like(scores)
            row.view(-1, row.shape[-1])[0] = float("-inf")
            self._fire(info, scores, f"row 0 of the scores of `{info.name}` set to -inf (fully masked)")
            return (scores + row, *args[1:]), kwargs
        for key, value in zip(keys, values):
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() >= 1 \
                    and bool(torch.isneginf(value).any()):
                bias = value.detach().clone(memory_format=torch.contiguous_format)
                bias.view(-1, bias.shape[-1])[0] = float("-inf")
                self._fire(info, value, f"row 0 of the -inf bias of `{info.name}` fully masked")
                return _put(args, kwargs, key, bias)
        self.problem = f"`{info.name}` has no mask argument to fill"
        return args, kwargs

    def _reduce_over(self, info: _FuncInfo, args: tuple, kwargs: dict, keep: int) -> tuple[tuple, dict]:
        wanted = REDUCE_ONE if keep == 1 else REDUCE_EMPTY
        if info.short not in wanted or not args or not isinstance(args[0], torch.Tensor) or args[0].dim() == 0:
            self.problem = f"`{info.name}` is not a reduction nanlint can shrink"
            return args, kwargs
        x = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], (int, tuple, list)) else None)
        if dim is None:
            shrunk = x.reshape(-1)[:keep]
        else:
            shrunk = x
            for d in (dim if isinstance(dim, (tuple, list)) else (dim,)):
                shrunk = shrunk.narrow(int(d), 0, keep)
        words = "one element" if keep == 1 else "no element"
        self._fire(info, x, f"`{info.name}` reduced over {words}")
        return (shrunk, *args[1:]), kwargs


def _replace_identity(args: tuple, kwargs: dict, value: torch.Tensor, new: torch.Tensor) -> tuple[tuple, dict, bool]:
    for index, arg in enumerate(args):
        if arg is value:
            return (*args[:index], new, *args[index + 1:]), kwargs, True
    for key, arg in kwargs.items():
        if arg is value:
            return args, {**kwargs, key: new}, True
    return args, kwargs, False


def _put(args: tuple, kwargs: dict, key: Any, value: Any) -> tuple[tuple, dict]:
    if isinstance(key, int):
        return (*args[:key], value, *args[key + 1:]), kwargs
    return args, {**kwargs, key: value}


def _auto_mode(short: str) -> Optional[str]:
    if short in DIVISIONS or short in REVERSE_DIVISIONS:
        return "zero-divisor"
    if short in ZERO_FIRST:
        return "zero-first"
    if short in ONE_FIRST:
        return "one-first"
    if short in MASK_OPS:
        return "mask-row"
    if short in REDUCE_ONE:
        return "narrow"
    if short in REDUCE_EMPTY:
        return "empty"
    return None


class GradInjection(Injection):
    """Scale every backward pass of one step by ``factor`` (a gradient spike)."""

    kind = "grad"

    def __init__(self, code: str, factor: float, describe: str) -> None:
        super().__init__(code, describe)
        self.factor = factor

    def scale(self, tensors: Any, grad_tensors: Any) -> Any:
        outputs = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        if grad_tensors is None:
            grads: list[Any] = [None] * len(outputs)
        elif isinstance(grad_tensors, torch.Tensor):
            grads = [grad_tensors]
        else:
            grads = list(grad_tensors)
        scaled = []
        for out, grad in zip(outputs, grads):
            if not isinstance(out, torch.Tensor):
                scaled.append(grad)
                continue
            base = torch.ones_like(out) if grad is None else grad
            scaled.append(base * self.factor)
        self.seen_site = True
        dtype = _dtype(outputs[0]) if outputs else ""
        what = (f"gradients of step {self.step} multiplied by {self.factor:g}" if self.factor == self.factor
                else f"the loss of step {self.step} made NaN at `backward()`")
        self.fired = Fired(self.step, "Tensor.backward", dtype, what)
        return scaled[0] if isinstance(tensors, torch.Tensor) else scaled


def injection_for(code: str, source: SourceFile, finding_span: Span, target: Optional[Span]) -> Optional[Injection]:
    """The injection that makes ``code``'s hazard real at this finding, or None when there is none."""
    if code in NO_INJECTION:
        return None
    if code in GRAD_SPIKE:
        return GradInjection(code, SPIKE, f"gradient spike x{SPIKE:g} before `{source.text_of(finding_span)}`")
    if code in NAN_LOSS:
        return GradInjection(code, float("nan"), "a NaN loss passed to `backward()`")
    if target is not None and target == finding_span:
        target = None
    if code in TARGET_ZERO or code in TARGET_ONE:
        one = code in TARGET_ONE
        if target is not None:
            text = " ".join(source.text_of(target).split())
            value = "exactly 1" if one else "0"
            if source.is_dotted_name(target):
                return OpInjection(code, "one-name" if one else "zero-name", target, f"`{text}` set to {value}",
                                   name_text=text)
            if code in TARGET_INNER:
                return OpInjection(code, "auto", target, f"argument of `{text[:40]}` set to its danger value")
            return OpInjection(code, "one-output" if one else "zero-output", target, f"`{text}` set to {value}")
        return OpInjection(code, "one-first" if one else "auto", finding_span,
                           f"argument of `{' '.join(source.text_of(finding_span).split())[:40]}` set to "
                           f"{'exactly 1' if one else 'its danger value'}")
    if code in MASK_ROW:
        return OpInjection(code, "mask-row", finding_span, "one mask row fully masked")
    if code in NARROW:
        return OpInjection(code, "narrow", finding_span, "reduction over a single element")
    if code in EMPTY:
        return OpInjection(code, "empty", finding_span, "reduction over an empty selection")
    if code in BIG_EXP:
        return OpInjection(code, "big-within", finding_span, f"`exp` argument set to {BIG_EXP_ARGUMENT:g}")
    if code in ZERO_INPUT:
        return OpInjection(code, "zero-first", finding_span, "input of the normalisation set to 0 (constant)")
    return OpInjection(code, "auto", finding_span, "the flagged op's danger value")


def remap(injection: Injection, old: SourceFile, new: SourceFile) -> Optional[Injection]:
    """The same injection in a fixed version of the file, or None when the fix removed its site."""
    if isinstance(injection, GradInjection):
        return GradInjection(injection.code, injection.factor, injection.describe)
    assert isinstance(injection, OpInjection)
    from .source import map_span

    site = map_span(old, new, injection.site)
    if site is None:
        return None
    return OpInjection(injection.code, injection.mode, site, injection.describe, injection.name_text)
