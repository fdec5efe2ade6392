"""Step boundaries of the user's training code, and what the verifier does at each.

:class:`Hooks` installs, once per process, the global optimizer step hooks
(``torch.optim.optimizer.register_optimizer_step_pre_hook`` / ``_post_hook``), a
wrapper of ``torch.autograd.backward`` (the loss, and a place to scale
gradients), wrappers of ``GradScaler.scale`` / ``GradScaler.step`` (a step the
scaler skips calls no optimizer hook) and a buffer registration hook (which
buffers a snapshot must save). Events go to the active :class:`Controller`.

A *step* is the work between two ``step()`` calls of the first optimizer that
steps (the primary one; other optimizers step inside its steps). The
*observation end* of a step is the first optimizer ``step()`` (or
``scaler.step``) in it: the gradients are ready and not yet applied.

A script with no optimizer (a unit test, a notebook cell, a gradient check)
still has checkpoints: while no optimizer has been constructed or stepped, each
``backward()`` and ``torch.autograd.grad`` call is a step of its own, closed
when the call returns. Its gradients are the ones that pass made: the gradient
each leaf receives (a pre-hook on its ``AccumulateGrad`` node, so a NaN left in
``.grad`` by an earlier pass is not counted again), or what ``autograd.grad``
returns.

Controllers: :class:`SentinelRun` (the first, cheap run), :class:`ReplayRun`
(one step again under the tracer, optionally with an injection) and
:class:`WatchController` (``nanlint.watch()`` and the pytest plugin).
"""
from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from .injection import GradInjection, Injection
from .sentinel import Flags, Sentinel, Snapshot, params_finite
from .tracer import Tracer, WindowResult


def distributed_active() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class StopRun(BaseException):
    """Raised from a hook to end the user's script once the verifier has what it needs.

    A ``BaseException`` so that ``except Exception`` in user code lets it pass.
    """


class Hooks:
    """Process-wide hooks, installed while at least one controller is active."""

    def __init__(self) -> None:
        self.stack: list["Controller"] = []
        self._handles: list[Any] = []
        self._patched: list[tuple[Any, str, Any]] = []

    @property
    def controller(self) -> Optional["Controller"]:
        return self.stack[-1] if self.stack else None

    def push(self, controller: "Controller") -> None:
        if not self.stack:
            self._install()
        self.stack.append(controller)

    def pop(self, controller: "Controller") -> None:
        if controller in self.stack:
            self.stack.remove(controller)
        if not self.stack:
            self._uninstall()

    # -- installation ---------------------------------------------------------------
    def _install(self) -> None:
        from torch.optim import optimizer as optim_module

        self._handles = [
            optim_module.register_optimizer_step_pre_hook(self._pre),
            optim_module.register_optimizer_step_post_hook(self._post),
            torch.nn.modules.module.register_module_buffer_registration_hook(self._buffer),
        ]
        self._patch(torch.autograd, "backward", self._wrap_backward(torch.autograd.backward))
        self._patch(torch.autograd, "grad", self._wrap_grad(torch.autograd.grad))
        self._patch(torch.optim.Optimizer, "__init__", self._wrap_optimizer_init(torch.optim.Optimizer.__init__))
        scaler_class = torch.amp.GradScaler
        self._patch(scaler_class, "scale", self._wrap_scale(scaler_class.scale))
        self._patch(scaler_class, "step", self._wrap_step(scaler_class.step))

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._patched.append((owner, name, owner.__dict__[name] if name in owner.__dict__ else getattr(owner, name)))
        setattr(owner, name, value)

    def _uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched = []

    # -- events ------------------------------------------------------------------------
    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        controller = self.controller
        if controller is not None:
            with torch._C.DisableTorchFunction():
                controller.on_opt_pre(optimizer)

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        controller = self.controller
        if controller is not None:
            with torch._C.DisableTorchFunction():
                controller.on_opt_post(optimizer)

    def _buffer(self, module: Any, name: str, buffer: Any) -> None:
        controller = self.controller
        if controller is not None:
            controller.on_buffer(module, name)

    def _wrap_backward(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        def backward(tensors: Any, grad_tensors: Any = None, *args: Any, **kwargs: Any) -> Any:
            controller = hooks.controller
            if controller is None:
                return original(tensors, grad_tensors, *args, **kwargs)
            if "grad_tensors" in kwargs:
                grad_tensors = kwargs.pop("grad_tensors")
            with torch._C.DisableTorchFunction():
                grad_tensors = controller.on_backward(tensors, grad_tensors)
                catcher = _LeafGrads.attach(tensors, kwargs.get("inputs")) if controller.pass_steps() else None
            try:
                result = original(tensors, grad_tensors, *args, **kwargs)
            finally:
                if catcher is not None:
                    catcher.detach()
            with torch._C.DisableTorchFunction():
                controller.on_backward_end(catcher.grads if catcher is not None else [])
            return result

        return backward

    def _wrap_grad(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, *args: Any, **kwargs: Any) -> Any:
            controller = hooks.controller
            if controller is None:
                return original(outputs, inputs, grad_outputs, *args, **kwargs)
            if "grad_outputs" in kwargs:
                grad_outputs = kwargs.pop("grad_outputs")
            with torch._C.DisableTorchFunction():
                grad_outputs = controller.on_backward(outputs, grad_outputs)
            result = original(outputs, inputs, grad_outputs, *args, **kwargs)
            with torch._C.DisableTorchFunction():
                controller.on_backward_end([g for g in _tensors(result) if g is not None])
            return result

        return grad

    def _wrap_optimizer_init(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        def __init__(optimizer: Any, *args: Any, **kwargs: Any) -> None:
            original(optimizer, *args, **kwargs)
            controller = hooks.controller
            if controller is not None:
                controller.on_optimizer_created(optimizer)

        return __init__

    def _wrap_scale(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        def scale(scaler: Any, outputs: Any) -> Any:
            scaled = original(scaler, outputs)
            controller = hooks.controller
            if controller is not None:
                with torch._C.DisableTorchFunction():
                    controller.on_scale(scaler, outputs, scaled)
            return scaled

        return scale

    def _wrap_step(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            controller = hooks.controller
            if controller is None:
                return original(scaler, optimizer, *args, **kwargs)
            with torch._C.DisableTorchFunction():
                controller.on_scaler_step_begin(scaler, optimizer)
            before = controller.post_count
            result = original(scaler, optimizer, *args, **kwargs)
            with torch._C.DisableTorchFunction():
                controller.on_scaler_step_end(scaler, optimizer, controller.post_count == before)
            return result

        return step


HOOKS = Hooks()


class _LeafGrads:
    """The gradient each leaf receives in one ``backward()`` pass (pre-hooks on its ``AccumulateGrad`` node)."""

    def __init__(self) -> None:
        self.grads: list[torch.Tensor] = []
        self._handles: list[Any] = []

    @classmethod
    def attach(cls, tensors: Any, inputs: Any) -> "_LeafGrads":
        catcher = cls()
        seen: set = set()
        stack = [t.grad_fn for t in _tensors(tensors) if t.grad_fn is not None]
        if inputs is not None:  # backward(inputs=...) accumulates into these only: their gradients
            stack = []
            for tensor in _tensors(inputs):
                if tensor.requires_grad:
                    catcher._handles.append(tensor.register_hook(catcher._keep))
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            if node.name().endswith("AccumulateGrad"):
                catcher._handles.append(node.register_prehook(catcher._keep_all))
                continue
            stack.extend(child for child, _ in node.next_functions)
        return catcher

    def _keep(self, grad: Any) -> None:
        if isinstance(grad, torch.Tensor):
            self.grads.append(grad.detach())

    def _keep_all(self, grad_outputs: tuple) -> None:
        for grad in grad_outputs:
            self._keep(grad)

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _tensors(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


class Controller:
    """Counts steps and calls the template methods; subclasses decide what to check."""

    tracer: Optional[Tracer] = None

    def __init__(self) -> None:
        self.step = 0
        self.steps_done = 0
        self.optimizers: list[Any] = []
        self.scalers: list[Any] = []
        self.buffers: list[tuple[Any, str]] = []
        self.primary: Any = None
        self.post_count = 0
        self.scaler_skips: list[int] = []
        self._observed = False
        self._activity = False
        self._scaled: dict[int, Any] = {}
        self.created: list[Any] = []  # weak references to the optimizers the script constructed
        self.pass_steps_used = False  # a step was closed by a backward pass (the script has no optimizer)
        self._late_step = False

    # -- registration -------------------------------------------------------------------
    def _register_optimizer(self, optimizer: Any) -> None:
        if not any(o is optimizer for o in self.optimizers):
            self.optimizers.append(optimizer)
        if self.primary is None:
            self.primary = optimizer

    def _register_scaler(self, scaler: Any) -> None:
        if not any(s is scaler for s in self.scalers):
            self.scalers.append(scaler)

    def on_buffer(self, module: Any, name: str) -> None:
        self.buffers.append((weakref.ref(module), name))

    def on_optimizer_created(self, optimizer: Any) -> None:
        self.created.append(weakref.ref(optimizer))

    def pass_steps(self) -> bool:
        """No optimizer has been constructed or stepped: each backward pass is a step of its own."""
        return not self.optimizers and not any(ref() is not None for ref in self.created)

    # -- events ----------------------------------------------------------------------------
    def on_scale(self, scaler: Any, outputs: Any, scaled: Any) -> None:
        self._register_scaler(scaler)
        for tensor in _tensors(scaled):
            self._scaled[id(tensor)] = weakref.ref(tensor)
        tracer = self.tracer
        for tensor in _tensors(outputs):
            self.check_loss(tensor)
            if tracer is not None and tracer.enabled:
                tracer.record_loss(tensor)

    def on_backward(self, tensors: Any, grad_tensors: Any) -> Any:
        self._activity = True
        tracer = self.tracer
        for tensor in _tensors(tensors):
            ref = self._scaled.get(id(tensor))
            if ref is not None and ref() is tensor:
                continue  # checked unscaled in on_scale
            self.check_loss(tensor)
            if tracer is not None and tracer.enabled:
                tracer.record_loss(tensor)
        return self.modify_gradients(tensors, grad_tensors)

    def on_backward_end(self, grads: list) -> None:
        """A ``backward()`` or ``autograd.grad`` returned with ``grads`` (those of this pass, when collected)."""
        if grads:
            self.check_pass_grads(grads)
        if self.pass_steps():
            self.pass_steps_used = True
            self._close_step(skipped=False)

    def on_opt_pre(self, optimizer: Any) -> None:
        if self.pass_steps() and self.pass_steps_used and not self._activity:
            # an optimizer made before the controller started (``nanlint.watch()`` around a loop): this step()
            # belongs to the step its backward() already closed; from now on steps are optimizer steps
            self._register_optimizer(optimizer)
            self._late_step = True
            return
        self._register_optimizer(optimizer)
        if optimizer is self.primary and not self._observed:
            self._observed = True
            self.observation_end()
        self.check_grads(optimizer)

    def on_opt_post(self, optimizer: Any) -> None:
        self.post_count += 1
        if self._late_step:
            self._late_step = False
            return
        if optimizer is self.primary:
            self._close_step(skipped=False)

    def on_scaler_step_begin(self, scaler: Any, optimizer: Any) -> None:
        self._register_scaler(scaler)
        self._register_optimizer(optimizer)
        if optimizer is self.primary and not self._observed:
            self._observed = True
            self.observation_end()

    def on_scaler_step_end(self, scaler: Any, optimizer: Any, skipped: bool) -> None:
        if skipped and optimizer is self.primary:
            self.scaler_skips.append(self.step)
            self._close_step(skipped=True)

    def _close_step(self, skipped: bool) -> None:
        if not self._observed:
            self._observed = True
            self.observation_end()
        self.steps_done = self.step + 1
        self.step_end(skipped)
        self.step += 1
        self._observed = False
        self._activity = False
        self._scaled.clear()
        self.step_start()

    def run_start(self) -> None:
        self.step_start()

    def run_end(self) -> None:
        """The script ended (or was stopped): close a step that had work but no optimizer step."""
        if self._activity or (self.tracer is not None and self.tracer.enabled):
            if self._activity and not self._observed:
                # backward() ran, no optimizer stepped after it: its gradients are still checked
                stepped = self.optimizers or [ref() for ref in self.created if ref() is not None]
                for optimizer in stepped:
                    self.check_grads(optimizer)
            if not self._observed:
                self._observed = True
                self.observation_end()
            self.partial_end()

    # -- template methods -----------------------------------------------------------------
    def step_start(self) -> None: ...

    def observation_end(self) -> None: ...

    def step_end(self, skipped: bool) -> None: ...

    def partial_end(self) -> None: ...

    def check_loss(self, tensor: Any) -> None: ...

    def check_grads(self, optimizer: Any) -> None: ...

    def check_pass_grads(self, grads: list) -> None: ...

    def modify_gradients(self, tensors: Any, grad_tensors: Any) -> Any:
        return grad_tensors


@dataclass
class Failure:
    step: int
    flags: Flags


class SentinelRun(Controller):
    """The first run: sentinel every step, pre-step snapshots, reach probes, stop after ``max_steps``."""

    def __init__(self, max_steps: int, snapshots: bool = True, precise: bool = False,
                 reduce: Optional[Callable[[list], Any]] = None) -> None:
        super().__init__()
        self.max_steps = max_steps
        self.snapshots = snapshots
        self.precise = precise
        self.reduce = reduce
        self.sentinel = Sentinel()
        self.reached: dict[int, int] = {}
        self.failure: Optional[Failure] = None
        self.failure_snapshot: Optional[Snapshot] = None
        self.failure_window: Optional[WindowResult] = None
        self.failures: list[Failure] = []  # every step that went non-finite (the first is ``failure``)
        self.windows_of: dict[int, WindowResult] = {}  # precise: the traced window of each failing step
        self.expected_skips: list[int] = []
        self.skipped_steps: set[int] = set()
        self.on_step: Optional[Callable[[int, str, bool], None]] = None  # (step, unit, non-finite): progress
        self._snapshot: Optional[Snapshot] = None
        self._pending: Optional[WindowResult] = None
        if precise:
            self.tracer = Tracer()

    def probe(self, ids: tuple) -> None:
        reached = self.reached
        for probe_id in ids:
            if probe_id not in reached:
                reached[probe_id] = self.step

    def check_loss(self, tensor: Any) -> None:
        self.sentinel.loss(tensor)

    def check_grads(self, optimizer: Any) -> None:
        self.sentinel.grads(optimizer)

    def check_pass_grads(self, grads: list) -> None:
        self.sentinel.tensors(grads)

    def step_start(self) -> None:
        if self.failure is None and self.snapshots:
            self._snapshot = Snapshot.take(self.optimizers, self.buffers, self.scalers, reuse=self._snapshot)
        if self.tracer is not None and (self.failure is None or self.pass_steps_used):
            self.tracer.begin()  # backward passes without an optimizer do not share a failure: trace them all

    def observation_end(self) -> None:
        if self.tracer is not None and self.tracer.enabled:
            self._pending = self.tracer.end()

    def _judge(self, skipped: bool) -> None:
        flags = self.sentinel.read(self.reduce if self.reduce is not None and distributed_active() else None)
        if skipped:
            self.skipped_steps.add(self.step)
        if skipped and not flags.loss_bad:
            self.expected_skips.append(self.step)  # the GradScaler's own business (docs/probe.md §3)
        elif flags.bad:
            self.failures.append(Failure(self.step, flags))
            if self._pending is not None:
                self.windows_of[self.step] = self._pending
            if self.failure is None:
                self.failure = self.failures[0]
                self.failure_snapshot = self._snapshot
                self.failure_window = self._pending
        self._pending = None

    def step_end(self, skipped: bool) -> None:
        self._judge(skipped)
        if self.on_step is not None:
            self.on_step(self.step, "backward pass" if self.pass_steps_used else "step",
                         self.failures[-1].step == self.step if self.failures else False)
        if self.step + 1 >= self.max_steps:
            raise StopRun

    def partial_end(self) -> None:
        self._judge(False)


@dataclass
class Window:
    """What one traced step of a replay showed."""

    step: int
    result: WindowResult
    flags: Flags
    fired: bool = False
    skipped: bool = False
    params_bad: bool = False
    injected_grads: bool = False  # the gradients were scaled by the injection: judge the update, not them

    @property
    def bad(self) -> bool:
        if self.params_bad or self.flags.loss_bad:
            return True
        if self.skipped or self.injected_grads:
            return False  # a GradScaler skip, or gradients made non-finite on purpose
        if self.flags.grads_bad:
            return True
        # code without a backward() (evaluation, data preparation): judge the values it made
        return self.flags.losses == 0 and self.result.forward is not None and not self.result.forward.input_origin


class ReplayRun(Controller):
    """Run again up to ``start_step`` and trace from there: one step, or until an injection fired and was observed.

    With a gradient injection the spiked step is applied and up to ``extra``
    further steps are traced, because a spike shows up in the next forward pass.
    """

    def __init__(self, start_step: int, snapshot: Optional[Snapshot] = None,
                 injection: Optional[Injection] = None, extra: int = 2, max_steps: int = 10,
                 agree: Optional[Callable[[bool], bool]] = None) -> None:
        super().__init__()
        self.start_step = start_step
        self.snapshot = snapshot
        self.injection = injection
        self.extra = extra
        self.max_steps = max_steps
        self.agree = agree or (lambda value: value)
        self.tracer = Tracer()
        self.tracer.injector = injection if injection is not None and injection.kind == "op" else None
        self.sentinel = Sentinel()
        self.windows: list[Window] = []
        self.restore_problems: list[str] = []
        self.done = False
        self._current: Optional[Window] = None

    def step_start(self) -> None:
        if self.done:
            return
        if self.step == self.start_step and self.snapshot is not None:
            self.restore_problems = self.snapshot.restore(self.optimizers, self.buffers, self.scalers)
        if self.step >= self.start_step:
            injection = self.injection
            if injection is not None and injection.fired is None:
                injection.step = self.step
                injection.armed = injection.kind == "op"
            self.tracer.begin()

    def check_loss(self, tensor: Any) -> None:
        if self.tracer.enabled:
            self.sentinel.loss(tensor)

    def check_pass_grads(self, grads: list) -> None:
        if self.tracer.enabled:
            self.sentinel.tensors(grads)

    def modify_gradients(self, tensors: Any, grad_tensors: Any) -> Any:
        injection = self.injection
        if isinstance(injection, GradInjection) and self.tracer.enabled and self.step >= self.start_step \
                and (injection.fired is None or injection.fired.step == self.step):
            injection.step = self.step
            return injection.scale(tensors, grad_tensors)
        return grad_tensors

    def observation_end(self) -> None:
        if not self.tracer.enabled:
            return
        for optimizer in self.optimizers:
            self.sentinel.grads(optimizer)
        flags = self.sentinel.read()
        fired = self.injection is not None and self.injection.fired is not None \
            and self.injection.fired.step == self.step
        self._current = Window(self.step, self.tracer.end(), flags, fired=fired,
                               injected_grads=fired and isinstance(self.injection, GradInjection))
        self.windows.append(self._current)

    def _finished(self) -> bool:
        window = self._current
        injection = self.injection
        if self.step + 1 >= self.max_steps:
            return True
        if window is None:
            return False
        if window.bad:
            return True
        if injection is None:
            return True
        if injection.fired is None:
            return False  # the op did not run in this step: keep tracing the next one
        if injection.kind == "op":
            return True
        return self.step >= injection.fired.step + self.extra

    def step_end(self, skipped: bool) -> None:
        if self.done:
            return
        window = self._current
        if window is not None:
            window.skipped = skipped
            if isinstance(self.injection, GradInjection) and self.injection.fired is not None:
                window.params_bad = not params_finite(self.optimizers)
        finished = self.agree(self._finished())
        self._current = None
        if finished:
            self.done = True
            raise StopRun

    def partial_end(self) -> None:
        self._current = None
        self.done = True

    def abort(self) -> None:
        """The script raised: keep what the open window saw (the value it raised about, often)."""
        if self.tracer.enabled:
            self.observation_end()
        self._current = None
        self.done = True


class WatchController(Controller):
    """``nanlint.watch()``: trace every step (or only the sentinel), keep the first failing step's origins."""

    def __init__(self, precise: bool = True) -> None:
        super().__init__()
        self.sentinel = Sentinel()
        self.precise = precise
        if precise:
            self.tracer = Tracer()
        self.failure: Optional[Failure] = None
        self.window: Optional[WindowResult] = None
        self.expected_skips: list[int] = []
        self._pending: Optional[WindowResult] = None
        self.windows_seen = 0

    def step_start(self) -> None:
        if self.tracer is not None and self.failure is None:
            self.tracer.begin()

    def observation_end(self) -> None:
        if self.tracer is not None and self.tracer.enabled:
            self._pending = self.tracer.end()
            self.windows_seen += 1

    def check_loss(self, tensor: Any) -> None:
        self.sentinel.loss(tensor)

    def check_grads(self, optimizer: Any) -> None:
        self.sentinel.grads(optimizer)

    def check_pass_grads(self, grads: list) -> None:
        self.sentinel.tensors(grads)

    def _judge(self, skipped: bool) -> None:
        flags = self.sentinel.read()
        pending, self._pending = self._pending, None
        if skipped and not flags.loss_bad:
            self.expected_skips.append(self.step)
            return
        if self.failure is not None:
            return
        found = pending is not None and (pending.forward is not None or pending.backward is not None)
        if flags.bad or found:
            self.failure = Failure(self.step, flags)
            self.window = pending

    def step_end(self, skipped: bool) -> None:
        self._judge(skipped)

    def partial_end(self) -> None:
        self._judge(False)
