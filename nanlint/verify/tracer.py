"""The precise tracer: which op, at which user line and column span, made the first NaN/Inf.

Forward: a ``TorchFunctionMode`` sees each torch call made from Python (the call a
user wrote: ``Tensor.div``, ``F.mse_loss``, ``torch.sqrt``). For each one it finds
the user frame (the first frame outside torch and outside nanlint) and the
column span of the calling instruction from ``co_positions()``, so two calls on
one line are told apart. The first op that makes a NaN from inputs without NaN,
or an Inf from finite inputs (not a deliberate ``-inf`` fill: an op given an
infinite Python number, like ``masked_fill(m, float('-inf'))``), is the forward
origin (docs/probe.md §3, §5.5).

Backward: the same mode stamps the op into ``grad_fn.metadata['nanlint']`` of
every node the op created, and hooks each node (``Node.register_hook``); the
first node that turns finite incoming gradients into non-finite ones (NaN *or*
Inf) is the backward origin. That blames ``sqrt`` for an RMSE loss, where
``detect_anomaly`` blames ``mse_loss``.

Checks are device-side: each op leaves two 0-d flags (has NaN, has Inf) on its
device; :meth:`Tracer.resolve` reads them all with one transfer per device, so a
traced step on a GPU costs no per-op host sync.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import weakref
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any, Callable, Iterator, Optional

import torch
from torch.overrides import TorchFunctionMode

from .source import Span, norm_path

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_VERIFY_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_SKIP = {os.path.abspath(contextlib.__file__)}
_HAS_POSITIONS = sys.version_info >= (3, 11)

# (code object, its file name) -> normalised path of user code, or "" for torch/nanlint/stdlib glue
_CODE_PATH: dict[tuple[CodeType, str], str] = {}
_CODE_POSITIONS: dict[CodeType, list] = {}

# Calls that read metadata, convert to Python, or cannot make a value: never checked.
_SKIP_NAMES = frozenset({
    "__get__", "__set__", "__repr__", "__format__", "__str__", "__hash__", "__len__", "__bool__", "__index__",
    "__int__", "__float__", "__complex__", "__iter__", "__reduce_ex__", "__deepcopy__", "__setstate__",
    "__array__", "__contains__", "__dir__", "item", "tolist", "numpy", "size", "dim", "numel", "ndimension",
    "nelement", "stride", "data_ptr", "element_size", "is_floating_point", "is_complex", "is_contiguous",
    "requires_grad_", "register_hook", "register_post_accumulate_grad_hook", "backward", "retain_grad",
    "storage", "untyped_storage", "_typed_storage", "storage_offset", "get_device", "is_pinned", "is_shared",
    "share_memory_", "type", "has_names", "_is_view", "is_set_to", "is_nonzero", "equal", "allclose",
    "isfinite", "isnan", "isinf", "isneginf", "isposinf",
})
# Uninitialised memory by design: never an origin.
_UNINITIALISED = frozenset({"empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided"})
_INPLACE_DUNDERS = frozenset({
    "__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__idiv__", "__ipow__", "__ifloordiv__",
    "__imatmul__", "__imod__",
})


@dataclass(frozen=True)
class Site:
    """Where a torch call was made from: the user frame and the span of the calling instruction."""

    span: Span
    frame: Optional[FrameType]


@dataclass
class RawOrigin:
    phase: str  # "forward" | "backward"
    kind: str  # "nan" | "inf"
    op: str
    span: Optional[Span]
    dtype: str
    node: Optional[str] = None  # autograd node name, backward only
    via: Optional[Span] = None  # where the Inf that this NaN came from was made (e.g. a -inf fill)
    via_op: Optional[str] = None
    input_origin: bool = False  # the non-finite value entered as an input (data, parameter), not made here


@dataclass
class LossSite:
    """A ``backward()`` (or ``scaler.scale``) call that received a non-finite loss."""

    span: Span
    kind: str
    dtype: str


@dataclass
class WindowResult:
    forward: Optional[RawOrigin]
    backward: Optional[RawOrigin]
    ops: int
    sites: set
    losses: list = None  # type: ignore[assignment]  # LossSite of each non-finite loss


def _code_path(code: CodeType) -> str:
    # keyed with the file name: code objects compare equal across files (CPython's code equality ignores
    # co_filename), so two files holding the same function would share one entry
    key = (code, code.co_filename)
    path = _CODE_PATH.get(key)
    if path is None:
        filename = code.co_filename
        absolute = os.path.abspath(filename) if not filename.startswith("<") else filename
        if (absolute.startswith(_TORCH_DIR) or absolute.startswith(_VERIFY_DIR) or absolute in _STDLIB_SKIP
                or filename.startswith("<frozen")):
            path = ""
        else:
            path = norm_path(filename) if not filename.startswith("<") else filename
        _CODE_PATH[key] = path
    return path


def user_site(frame: Optional[FrameType]) -> Optional[Site]:
    """The first frame outside torch and nanlint, with the span of the instruction running in it."""
    while frame is not None:
        code = frame.f_code
        path = _code_path(code)
        if path:
            if _HAS_POSITIONS:
                positions = _CODE_POSITIONS.get(code)
                if positions is None:
                    positions = list(code.co_positions())
                    _CODE_POSITIONS[code] = positions
                index = frame.f_lasti // 2
                if 0 <= index < len(positions):
                    line, end_line, col, end_col = positions[index]
                    if line is not None and col is not None:
                        return Site(Span(path, line, col, end_line or line, end_col if end_col is not None else col),
                                    frame)
            line = frame.f_lineno
            return Site(Span(path, line, -1, line, -1), frame)
        frame = frame.f_back
    return None


def op_name(func: Callable[..., Any]) -> str:
    """The name a user wrote: ``torch.sqrt``, ``Tensor.div``, ``F.mse_loss``, ``torch.linalg.vector_norm``."""
    qual = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", None) or ""
    head, _, tail = qual.partition(".")
    if head in ("TensorBase", "Tensor", "_TensorBase") and tail:
        return "Tensor." + tail
    if head == "_VariableFunctionsClass" and tail:
        return "torch." + tail
    if module in ("torch.nn.functional", "torch._C._nn"):
        return "F." + qual
    if module == "torch._C._linalg":
        return "torch.linalg." + qual.replace("linalg_", "", 1)
    if module == "torch._C._special":
        return "torch.special." + qual.replace("special_", "", 1)
    if module in ("torch", "torch.functional"):
        return "torch." + qual
    if module.startswith("torch."):
        return module + "." + qual
    return qual


def _float_tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and value.layout == torch.strided \
                and value.device.type != "meta":
            yield value
    elif isinstance(value, (list, tuple)) and depth < 2:
        for item in value:
            yield from _float_tensors(item, depth + 1)


def _has_inf_number(value: Any, depth: int = 0) -> bool:
    if isinstance(value, float):
        return math.isinf(value)
    if isinstance(value, (list, tuple)) and depth < 3:
        return any(_has_inf_number(item, depth + 1) for item in value)
    return False


class _FuncInfo:
    __slots__ = ("name", "short", "skip", "inplace", "uninitialised")

    def __init__(self, func: Callable[..., Any]) -> None:
        short = getattr(func, "__name__", "") or ""
        self.short = short
        self.name = op_name(func)
        self.skip = short in _SKIP_NAMES
        self.inplace = short in _INPLACE_DUNDERS or (short.endswith("_") and not short.startswith("__")
                                                      and not short.startswith("_"))
        self.uninitialised = short in _UNINITIALISED


class Tracer(TorchFunctionMode):
    """Records each torch call of the user's code; see the module docstring.

    ``enabled`` switches recording on and off without leaving the mode (the mode
    stays on the stack for a whole replay, so a user's own modes nest normally).
    ``injector`` (see :mod:`.injection`) may rewrite a call's arguments or result.

    Each tensor checked leaves one 0-d value on its device, ``|t|.max()``: NaN
    when ``t`` has a NaN, +Inf when it has an Inf (and no NaN), finite otherwise.
    """

    def __init__(self) -> None:
        super().__init__()
        self.enabled = False
        self.injector: Any = None
        self.problems: list[str] = []  # the tracer's own failures (the first few), for the report's notes
        self.problem_count = 0
        self._window = 0
        self._info: dict[Any, _FuncInfo] = {}
        self._reset()

    # -- window ---------------------------------------------------------------
    def _reset(self) -> None:
        self._mags: list[torch.Tensor] = []
        self._ops: list[tuple] = []  # (name, span, dtypes, inputs [(mag, producer)], outputs [mag], deliberate)
        self._grads: list[tuple] = []  # (op index, node name, produced [mag], incoming [mag], dtype)
        self._producers: dict[int, tuple[Any, int, int]] = {}  # id -> (weakref, mag, producing op or -1)
        self._sites: set = set()
        self._losses: list[tuple[Span, int, str]] = []

    def begin(self) -> None:
        """Start a window (one step): forget what the previous one recorded."""
        self._window += 1
        self._reset()
        self.enabled = True

    def end(self) -> WindowResult:
        self.enabled = False
        result = self.resolve()
        self._reset()
        return result

    # -- recording --------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if not self.enabled:
            return func(*args, **kwargs)
        info = self._info.get(func)
        if info is None:
            info = self._info[func] = _FuncInfo(func)
        if info.skip:
            return func(*args, **kwargs)
        try:
            site = user_site(sys._getframe(1))
        except Exception as exc:  # noqa: BLE001  # the tracer's failure is never the script's
            self._problem("locating the caller", info, exc)
            site = None
        if site is None:
            return func(*args, **kwargs)
        injector = self.injector
        if injector is not None and injector.armed:
            try:
                args, kwargs = injector.before(info, args, kwargs, site)
            except Exception as exc:  # noqa: BLE001
                self._problem("injecting", info, exc)
        grad_mode = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            inputs = self._inputs(info, args, kwargs)  # before the call: an in-place op changes its input
        except Exception as exc:  # noqa: BLE001
            self._problem("reading the inputs of", info, exc)
            inputs = None
        finally:
            torch._C._set_grad_enabled(grad_mode)
        out = func(*args, **kwargs)
        if injector is not None and injector.armed:
            try:
                out = injector.after(info, out, site)
            except Exception as exc:  # noqa: BLE001
                self._problem("injecting", info, exc)
        if inputs is None:
            return out
        after_mode = torch.is_grad_enabled()  # again: the call may have been `torch._C._set_grad_enabled` itself
        torch._C._set_grad_enabled(False)
        try:
            # an op run under no_grad creates no autograd node: nothing to stamp (and reading ``grad_fn`` of a
            # view made under no_grad can raise, as ``nn.Embedding(padding_idx=...)`` does at construction)
            self._record(info, args, kwargs, out, site, inputs, grad_mode and after_mode)
        except Exception as exc:  # noqa: BLE001
            self._problem("recording", info, exc)
        finally:
            torch._C._set_grad_enabled(after_mode)
        return out

    def _problem(self, doing: str, info: _FuncInfo, exc: BaseException) -> None:
        """The tracer's own failure: counted and reported as a verifier note, never raised into the script."""
        self.problem_count += 1
        if len(self.problems) < 3:
            text = f"{doing} `{info.name}`: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if text not in self.problems:
                self.problems.append(text)

    def _mag(self, tensor: torch.Tensor) -> int:
        """Index of ``|tensor|.max()`` in the window's values; -1 for an empty tensor (nothing non-finite)."""
        if tensor.numel() == 0:
            return -1
        self._mags.append(tensor.abs().amax())
        return len(self._mags) - 1

    def record_loss(self, tensor: torch.Tensor) -> None:
        """Called (torch functions disabled) when a loss goes into ``backward()``: where, and is it finite."""
        if not (tensor.is_floating_point() or tensor.is_complex()):
            return
        site = user_site(sys._getframe(1))
        if site is None:
            return
        with torch.no_grad():
            self._losses.append((site.span, self._mag(tensor), str(tensor.dtype).replace("torch.", "")))

    def _input_entry(self, tensor: torch.Tensor) -> tuple[int, int]:
        known = self._producers.get(id(tensor))
        if known is not None and known[0]() is tensor:
            return known[1], known[2]
        mag = self._mag(tensor)
        self._producers[id(tensor)] = (weakref.ref(tensor), mag, -1)
        return mag, -1

    def _inputs(self, info: _FuncInfo, args: tuple, kwargs: dict) -> list[tuple[int, int]]:
        inputs: list[tuple[int, int]] = []
        if info.uninitialised:
            return inputs
        for tensor in _float_tensors(args):
            inputs.append(self._input_entry(tensor))
        for value in kwargs.values():
            for tensor in _float_tensors(value):
                inputs.append(self._input_entry(tensor))
        return inputs

    def _record(self, info: _FuncInfo, args: tuple, kwargs: dict, out: Any, site: Site,
                inputs: list[tuple[int, int]], graph: bool = True) -> None:
        outputs = list(_float_tensors(out))
        if info.inplace and args:
            outputs.extend(t for t in _float_tensors(args[0]) if not any(o is t for o in outputs))
        out_kw = kwargs.get("out")
        if out_kw is not None:
            outputs.extend(t for t in _float_tensors(out_kw) if not any(o is t for o in outputs))
        self._sites.add(site.span)
        if not outputs:
            return
        index = len(self._ops)
        out_mags: list[int] = []
        dtypes: list[str] = []
        for tensor in outputs:
            if info.uninitialised:
                continue
            mag = self._mag(tensor)
            out_mags.append(mag)
            dtypes.append(str(tensor.dtype).replace("torch.", ""))
            self._producers[id(tensor)] = (weakref.ref(tensor), mag, index)
        deliberate = _has_inf_number(args) or _has_inf_number(list(kwargs.values()))
        self._ops.append((info.name, site.span, dtypes, inputs, out_mags, deliberate))
        if not graph:
            return
        for tensor in outputs:
            try:
                node = tensor.grad_fn
            except RuntimeError:  # a view whose autograd history torch refuses to rebuild: not an origin of ours
                continue
            if node is not None:
                self._tag(node, index, (info.name, site.span))

    def _tag(self, node: Any, index: int, stamp: tuple[str, Span]) -> None:
        """Stamp ``(op, span)`` into the metadata of the nodes this op created, and hook each of them."""
        stack = [node]
        window = self._window
        while stack:
            current = stack.pop()
            if current is None:
                continue
            metadata = current.metadata
            if "nanlint" in metadata:
                continue
            name = current.name()
            if name.endswith("AccumulateGrad"):
                continue
            metadata["nanlint"] = stamp
            current.register_hook(self._node_hook(index, name, window))
            stack.extend(child for child, _ in current.next_functions)

    def _node_hook(self, index: int, name: str, window: int) -> Callable[..., None]:
        def hook(grad_inputs: tuple, grad_outputs: tuple) -> None:
            if window != self._window or not self.enabled:
                return
            try:
                record(grad_inputs, grad_outputs)
            except Exception as exc:  # noqa: BLE001  # never break the user's backward pass
                self.problem_count += 1
                if len(self.problems) < 3:
                    self.problems.append(f"hooking the backward of {name}: {type(exc).__name__}: {exc}")

        def record(grad_inputs: tuple, grad_outputs: tuple) -> None:
            with torch._C.DisableTorchFunction(), torch.no_grad():
                produced = [self._mag(g) for g in grad_inputs
                            if isinstance(g, torch.Tensor) and (g.is_floating_point() or g.is_complex())]
                if not produced:
                    return
                incoming = [self._mag(g) for g in grad_outputs
                            if isinstance(g, torch.Tensor) and (g.is_floating_point() or g.is_complex())]
                dtype = next(str(g.dtype).replace("torch.", "") for g in grad_inputs if isinstance(g, torch.Tensor))
                self._grads.append((index, name, produced, incoming, dtype))
        return hook

    # -- resolution ---------------------------------------------------------------
    def _values(self) -> list[float]:
        mags = self._mags
        if not mags:
            return []
        groups: dict[tuple[Any, Any], list[int]] = {}
        for i, mag in enumerate(mags):
            groups.setdefault((mag.device, mag.dtype), []).append(i)
        values: list[float] = [0.0] * len(mags)
        with torch._C.DisableTorchFunction(), torch.no_grad():
            for indices in groups.values():
                read = torch.stack([mags[i] for i in indices]).float().cpu().tolist()  # one transfer per group
                for i, value in zip(indices, read):
                    values[i] = value
        return values

    def resolve(self) -> WindowResult:
        values = self._values()
        nan = [v != v for v in values]
        inf = [v == math.inf for v in values]
        nan.append(False)  # index -1: an empty tensor
        inf.append(False)
        forward = self._forward_origin(nan, inf)
        backward = self._backward_origin(nan, inf)
        if forward is None and backward is None:
            forward = self._input_origin(nan, inf)
        losses = [LossSite(span, "nan" if nan[m] else "inf", dtype)
                  for span, m, dtype in self._losses if nan[m] or inf[m]]
        return WindowResult(forward, backward, len(self._ops), set(self._sites), losses)

    def _forward_origin(self, nan: list[bool], inf: list[bool]) -> Optional[RawOrigin]:
        for name, span, dtypes, inputs, outputs, deliberate in self._ops:
            if not outputs:
                continue
            in_nan = any(nan[m] for m, _ in inputs)
            in_inf = any(inf[m] for m, _ in inputs)
            for position, m in enumerate(outputs):
                if nan[m] and not in_nan:
                    via, via_op = self._inf_source(inputs, inf) if in_inf else (None, None)
                    return RawOrigin("forward", "nan", name, span, dtypes[position], via=via, via_op=via_op)
            if not in_nan and not in_inf and not deliberate:
                for position, m in enumerate(outputs):
                    if inf[m]:
                        return RawOrigin("forward", "inf", name, span, dtypes[position])
        return None

    def _input_origin(self, nan: list[bool], inf: list[bool]) -> Optional[RawOrigin]:
        """No op made a non-finite value: did one come in from outside (data, weights)?"""
        for name, span, dtypes, inputs, outputs, deliberate in self._ops:
            for m, producer in inputs:
                if producer == -1 and (nan[m] or inf[m]):
                    return RawOrigin("forward", "nan" if nan[m] else "inf", name, span,
                                     dtypes[0] if dtypes else "", input_origin=True)
        return None

    def _inf_source(self, inputs: list, inf: list[bool]) -> tuple[Optional[Span], Optional[str]]:
        """Follow Inf inputs back to the op that made the Inf (a deliberate fill, an overflow)."""
        seen: set[int] = set()
        frontier = [producer for m, producer in inputs if inf[m] and producer >= 0]
        while frontier:
            index = frontier.pop(0)
            if index in seen:
                continue
            seen.add(index)
            name, span, _, op_inputs, _, _ = self._ops[index]
            if not any(inf[m] for m, _ in op_inputs):
                return span, name
            frontier.extend(producer for m, producer in op_inputs if inf[m] and producer >= 0)
        return None, None

    def _backward_origin(self, nan: list[bool], inf: list[bool]) -> Optional[RawOrigin]:
        for index, node, produced, incoming, dtype in self._grads:
            made_nan = any(nan[m] for m in produced)
            if (made_nan or any(inf[m] for m in produced)) and not any(nan[m] or inf[m] for m in incoming):
                name, span = self._ops[index][0], self._ops[index][1]
                return RawOrigin("backward", "nan" if made_nan else "inf", name, span, dtype, node=node)
        return None
