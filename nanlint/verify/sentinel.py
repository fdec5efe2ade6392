"""The cheap per-step check, and the pre-step state a replay restores.

:class:`Sentinel` answers four questions per step (loss has NaN, loss has Inf,
a gradient has NaN, a gradient has Inf): the loss is the one passed to
``backward()`` (``scaler.scale(loss)`` is checked unscaled: a scaled loss may be
Inf while its gradients are finite, see docs/numerics-extra.md), the gradients
those of each optimizer about to step; one ``torch._foreach_norm`` per device
and dtype keeps the answers on the device, and :meth:`Sentinel.read` is the one
host sync of a step.

:class:`Snapshot` is the state at the start of a step: the parameters and state
of every optimizer seen so far, module buffers (BatchNorm statistics), the
GradScaler's scale, and the RNG states (torch CPU and CUDA, ``random``, numpy).
"""
from __future__ import annotations

import copy
import random
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch

INF = float("inf")


@dataclass(frozen=True)
class Flags:
    loss_nan: bool = False
    loss_inf: bool = False
    grad_nan: bool = False
    grad_inf: bool = False
    losses: int = 0  # how many losses went into backward() (0: nothing to judge a loss by)

    @property
    def loss_bad(self) -> bool:
        return self.loss_nan or self.loss_inf

    @property
    def grads_bad(self) -> bool:
        return self.grad_nan or self.grad_inf

    @property
    def bad(self) -> bool:
        return self.loss_bad or self.grads_bad

    def merge(self, other: "Flags") -> "Flags":
        return Flags(self.loss_nan or other.loss_nan, self.loss_inf or other.loss_inf,
                     self.grad_nan or other.grad_nan, self.grad_inf or other.grad_inf, self.losses + other.losses)


class Sentinel:
    """Finiteness of one step's losses and gradients, read once; see the module docstring.

    A loss is only remembered when it is passed to ``backward()``; at an
    optimizer's ``step()`` one ``torch._foreach_norm`` per device and dtype
    reduces the losses so far and that optimizer's gradients to their 2-norms
    (NaN and Inf propagate), which stay on the device until :meth:`read`
    transfers them all at once. The 2-norm is the fast one (the max-norm has no
    vectorised CPU kernel: 18x slower, docs/numerics-extra.md); a norm can
    overflow to Inf while every element is finite (a float16 norm above 65504,
    four elements of 40000; a float32 one from elements near 1e19), so an Inf
    norm is confirmed element-wise before it counts.
    """

    def __init__(self) -> None:
        self._pending: list[torch.Tensor] = []
        self._norms: list[tuple[int, torch.Tensor, list[torch.Tensor]]] = []  # (0 loss / 2 grads, norms, tensors)
        self._losses = 0

    def loss(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor) or not (tensor.is_floating_point() or tensor.is_complex()):
            return
        self._losses += 1
        self._pending.append(tensor.detach())

    def _reduce(self, slot: int, tensors: list[torch.Tensor]) -> None:
        groups: dict[tuple[Any, Any], list[torch.Tensor]] = {}
        for tensor in tensors:
            if tensor.numel():
                groups.setdefault((tensor.device, tensor.dtype), []).append(tensor)
        with torch.no_grad():
            for group in groups.values():
                self._norms.append((slot, torch.stack(torch._foreach_norm(group)), group))

    def _flush_losses(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._reduce(0, pending)

    def grads(self, optimizer: Any) -> None:
        self.tensors([p.grad for g in optimizer.param_groups for p in g["params"]])

    def tensors(self, grads: Iterable[Any]) -> None:
        """Gradients to check in this step (``None`` and sparse ones are skipped)."""
        self._flush_losses()
        self._reduce(2, [g for g in grads if isinstance(g, torch.Tensor) and not g.is_sparse
                         and (g.is_floating_point() or g.is_complex())])

    def read(self, reduce: Optional[Any] = None) -> Flags:
        """The step's flags: one transfer per device (``reduce`` combines them across ranks)."""
        self._flush_losses()
        entries, self._norms = self._norms, []
        losses, self._losses = self._losses, 0
        values = [False, False, False, False]
        by_device: dict[Any, list[tuple[int, torch.Tensor, list[torch.Tensor]]]] = {}
        for slot, norms, tensors in entries:
            by_device.setdefault(norms.device, []).append((slot, norms.float(), tensors))
        with torch.no_grad():
            for items in by_device.values():
                flat = torch.cat([norms for _, norms, _ in items]).tolist()  # the one sync of the step
                position = 0
                for slot, norms, tensors in items:
                    chunk = flat[position:position + norms.numel()]
                    position += norms.numel()
                    values[slot] = values[slot] or any(v != v for v in chunk)
                    if not values[slot + 1] and any(v == INF for v in chunk):
                        suspects = [t for t, v in zip(tensors, chunk) if v == INF]
                        values[slot + 1] = any(bool(torch.isinf(t).any()) for t in suspects)
        if reduce is not None:
            values = list(reduce(values))
        return Flags(*values, losses=losses)


def params_finite(optimizers: Iterable[Any]) -> bool:
    """Are all parameters finite (one sync; used by replays only)."""
    checks = []
    with torch.no_grad():
        for optimizer in optimizers:
            by_key: dict[tuple[Any, Any], list[torch.Tensor]] = {}
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if param.is_floating_point() and not param.is_sparse:
                        by_key.setdefault((param.device, param.dtype), []).append(param.detach())
            for params in by_key.values():
                norms = torch.stack(torch._foreach_norm(params, INF))
                checks.append(bool(torch.isfinite(norms).all()))
    return all(checks)


# -- RNG ---------------------------------------------------------------------------------

@dataclass
class RngState:
    cpu: torch.Tensor
    cuda: Optional[list[torch.Tensor]]
    python: Any
    numpy: Any

    @classmethod
    def capture(cls) -> "RngState":
        cuda = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = torch.cuda.get_rng_state_all()
        numpy_state = None
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy_state = numpy.random.get_state()
        return cls(torch.get_rng_state(), cuda, random.getstate(), numpy_state)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.cuda)
        random.setstate(self.python)
        numpy = sys.modules.get("numpy")
        if numpy is not None and self.numpy is not None:
            numpy.random.set_state(self.numpy)


# -- snapshots -------------------------------------------------------------------------------

def _copy_into(saved: Optional[list[torch.Tensor]], live: list[torch.Tensor]) -> list[torch.Tensor]:
    """``live`` copied into ``saved``'s tensors when they fit (one ``_foreach_copy_``), else cloned."""
    if saved is not None and len(saved) == len(live) and all(
            a.shape == b.shape and a.dtype == b.dtype and a.device == b.device for a, b in zip(saved, live)):
        if live:
            torch._foreach_copy_(saved, live)
        return saved
    return [t.detach().clone() for t in live]


def _state_layout(optimizer: Any) -> tuple[list[tuple[int, str]], list[torch.Tensor], dict]:
    """An optimizer's per-parameter state: (param index, key) of each tensor, the tensors, and the other values."""
    keys: list[tuple[int, str]] = []
    tensors: list[torch.Tensor] = []
    others: dict[tuple[int, str], Any] = {}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, param in enumerate(params):
        for key, value in optimizer.state.get(param, {}).items():
            if isinstance(value, torch.Tensor):
                keys.append((index, key))
                tensors.append(value.detach())
            else:
                others[(index, key)] = copy.deepcopy(value)
    return keys, tensors, others


@dataclass
class Snapshot:
    """The state at the start of a step, to put back before replaying that step.

    Taking one reuses the previous snapshot's tensors (``torch._foreach_copy_``)
    when the layout has not changed, so a step costs one copy per device of the
    parameters and optimizer state, no allocation and no host sync.
    """

    rng: RngState
    params: list[list[torch.Tensor]] = field(default_factory=list)
    state_keys: list[list[tuple[int, str]]] = field(default_factory=list)
    state_tensors: list[list[torch.Tensor]] = field(default_factory=list)
    state_others: list[dict] = field(default_factory=list)
    groups: list[list[dict]] = field(default_factory=list)
    buffers: list[Optional[torch.Tensor]] = field(default_factory=list)
    scalers: list[tuple[Optional[torch.Tensor], Optional[torch.Tensor]]] = field(default_factory=list)

    @classmethod
    def take(cls, optimizers: list, buffers: list, scalers: list, reuse: Optional["Snapshot"] = None) -> "Snapshot":
        snap = cls(RngState.capture())
        with torch.no_grad():
            for index, optimizer in enumerate(optimizers):
                old = reuse if reuse is not None and index < len(reuse.params) else None
                live = [p.detach() for g in optimizer.param_groups for p in g["params"]]
                snap.params.append(_copy_into(old.params[index] if old else None, live))
                keys, tensors, others = _state_layout(optimizer)
                same = old is not None and old.state_keys[index] == keys
                snap.state_keys.append(keys)
                snap.state_tensors.append(_copy_into(old.state_tensors[index] if same and old else None, tensors))
                snap.state_others.append(others)
                snap.groups.append([{k: (v.detach().clone() if isinstance(v, torch.Tensor) else copy.copy(v))
                                     for k, v in g.items() if k != "params"} for g in optimizer.param_groups])
            live_buffers: list[Optional[torch.Tensor]] = []
            for ref, name in buffers:
                module = ref()
                value = getattr(module, "_buffers", {}).get(name) if module is not None else None
                live_buffers.append(value.detach() if isinstance(value, torch.Tensor) else None)
            old_buffers = reuse.buffers if reuse is not None else []
            for index, value in enumerate(live_buffers):
                old_value = old_buffers[index] if index < len(old_buffers) else None
                if value is None:
                    snap.buffers.append(None)
                elif old_value is not None and old_value.shape == value.shape and old_value.dtype == value.dtype:
                    old_value.copy_(value)
                    snap.buffers.append(old_value)
                else:
                    snap.buffers.append(value.clone())
            for scaler in scalers:
                scale = getattr(scaler, "_scale", None)
                tracker = getattr(scaler, "_growth_tracker", None)
                snap.scalers.append((scale.clone() if isinstance(scale, torch.Tensor) else None,
                                     tracker.clone() if isinstance(tracker, torch.Tensor) else None))
        return snap

    def restore(self, optimizers: list, buffers: list, scalers: list) -> list[str]:
        """Put the state back into a replay's objects (paired by order of first use); returns what did not fit."""
        problems: list[str] = []
        with torch.no_grad():
            for index, saved in enumerate(self.params):
                if index >= len(optimizers):
                    problems.append(f"optimizer {index} not created yet")
                    continue
                optimizer = optimizers[index]
                live = [p for g in optimizer.param_groups for p in g["params"]]
                if len(live) != len(saved) or any(a.shape != b.shape for a, b in zip(live, saved)):
                    problems.append(f"optimizer {index}: parameters differ")
                    continue
                for param, value in zip(live, saved):
                    param.copy_(value)
                optimizer.state.clear()
                for (param_index, key), value in zip(self.state_keys[index], self.state_tensors[index]):
                    optimizer.state[live[param_index]][key] = value.clone()
                for (param_index, key), value in self.state_others[index].items():
                    optimizer.state[live[param_index]][key] = copy.deepcopy(value)
                for group, saved_group in zip(optimizer.param_groups, self.groups[index]):
                    for key, value in saved_group.items():
                        group[key] = value.clone() if isinstance(value, torch.Tensor) else copy.copy(value)
            for index, value in enumerate(self.buffers):
                if value is None or index >= len(buffers):
                    continue
                ref, name = buffers[index]
                module = ref()
                current = getattr(module, "_buffers", {}).get(name) if module is not None else None
                if isinstance(current, torch.Tensor) and current.shape == value.shape:
                    current.copy_(value)
                else:
                    problems.append(f"buffer {name} differs")
            for index, (scale, tracker) in enumerate(self.scalers):
                if index >= len(scalers):
                    continue
                scaler = scalers[index]
                if scale is not None and isinstance(getattr(scaler, "_scale", None), torch.Tensor):
                    scaler._scale.copy_(scale)
                if tracker is not None and isinstance(getattr(scaler, "_growth_tracker", None), torch.Tensor):
                    scaler._growth_tracker.copy_(tracker)
        self.rng.restore()
        return problems


