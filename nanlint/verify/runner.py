"""Run the user's script, replay steps, and turn what was seen into a :class:`~.report.Report`.

The script runs as ``__main__`` with its arguments (``sys.argv``, ``sys.path[0]``
set as ``python script.py`` would), compiled by nanlint from its source; local
modules it imports (files below the script's directory or the working
directory, not in site-packages, not excluded by the configuration) load through
an import hook that compiles them the same way. That is what lets a replay
import nanlint's *fixed* text of a module in place of the file, and lets the
first run place a reach probe (a call of ``__nanlint_probe__``) before each
statement holding a finding; positions are untouched, so tracebacks and
``co_positions()`` are those of the file.

A replay runs the script again from the start in the same process: the RNG
states of the first run's start are restored, the steps before the target one
run untraced, and at the target step's start the first run's snapshot (weights,
optimizer state, buffers, scaler, RNG) is put back, so the replayed step sees
exactly the state it failed with (docs/probe.md §3 recommendation).
"""
from __future__ import annotations

import builtins
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import linecache
import os
import sys
import time
import traceback
import types
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from ..finding import Finding
from . import VerifyError
from .controller import HOOKS, Controller, Failure, ReplayRun, SentinelRun, StopRun, Window
from .distributed import Dist, GroupKeeper, flag_reducer
from .fixing import Fixer, nanlint_fix
from .injection import FIX_NOT_JUDGED, GradInjection, Injection, injection_for, remap
from .report import CONFIRMED, GUARDED, INCONCLUSIVE, NOT_REACHED, Evidence, FindingResult, Origin, Report
from .sentinel import RngState
from .source import PROBE_NAME, SourceFile, Span, display_path, instrument, load_source, norm_path, verify_settings
from .tracer import RawOrigin

_NANLINT_DIR = norm_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_VERIFY_DIR = norm_path(os.path.dirname(os.path.abspath(__file__)))
EXTRA_REPLAY_STEPS = 3
#: Backward passes without an optimizer are independent: this many failing ones are traced, each for its origin.
MAX_TRACED_FAILURES = 8


@dataclass
class Entry:
    """One static finding the verifier follows."""

    id: int
    source: SourceFile
    finding: Finding
    span: Span
    target: Optional[Span]

    def key(self) -> tuple:
        return (self.source.path, self.finding.line, self.finding.column, self.finding.code)


@dataclass
class RunOutcome:
    status: str  # "completed" | "stopped" | "error"
    error: Optional[BaseException] = None
    internal: bool = False


class _LocalLoader(importlib.machinery.SourceFileLoader):
    def __init__(self, fullname: str, path: str, runner: "ScriptRunner") -> None:
        super().__init__(fullname, path)
        self.runner = runner

    def get_code(self, fullname: str) -> types.CodeType:
        return self.runner.module_code(self.path)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__[PROBE_NAME] = self.runner.probe
        super().exec_module(module)


class _LocalFinder(importlib.abc.MetaPathFinder):
    def __init__(self, runner: "ScriptRunner") -> None:
        self.runner = runner

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.has_location or not spec.origin or not spec.origin.endswith(".py"):
            return None
        if not self.runner.is_local(spec.origin) or not self.runner.ensure_source(spec.origin):
            return None
        loader = _LocalLoader(fullname, os.path.abspath(spec.origin), self.runner)
        return importlib.util.spec_from_file_location(
            fullname, os.path.abspath(spec.origin), loader=loader,
            submodule_search_locations=spec.submodule_search_locations)


class ScriptRunner:
    """Runs one script (and its local modules) under a controller; see the module docstring."""

    def __init__(self, script: str, args: Sequence[str], settings: Any, device: str) -> None:
        if not os.path.isfile(script):
            raise VerifyError(f"{script}: no such file")
        self.script_display = script
        self.script_abs = os.path.abspath(script)
        self.script_path = norm_path(script)
        self.args = list(args)
        self.settings = settings
        self.device = device
        roots = {norm_path(os.path.dirname(self.script_abs)), norm_path(os.getcwd())}
        self.roots = sorted(roots, key=len, reverse=True)
        self.sources: dict[str, SourceFile] = {}
        self.entries: list[Entry] = []
        self.current: Optional[Controller] = None
        self.group = GroupKeeper()
        self._overrides: dict[str, str] = {}
        self._probes = False
        self._initial_rng: Optional[RngState] = None
        source = load_source(self.script_abs, script, settings)
        if source is None:
            raise VerifyError(f"{script}: cannot read or decode the script")
        self._add(source)

    # -- sources ------------------------------------------------------------------------
    def _add(self, source: SourceFile) -> None:
        self.sources[source.path] = source
        for finding in source.findings:
            self.entries.append(Entry(len(self.entries), source, finding, source.finding_span(finding),
                                      source.target_span(finding)))

    def is_local(self, filename: str) -> bool:
        path = norm_path(filename)
        parts = path.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts or path.startswith(_NANLINT_DIR + os.sep):
            return False
        for root in self.roots:
            if path.startswith(root + os.sep):
                current = root
                for part in os.path.relpath(path, root).split(os.sep):
                    current = os.path.join(current, part)
                    if self.settings.is_excluded(current):
                        return False
                return True
        return False

    def ensure_source(self, filename: str) -> bool:
        path = norm_path(filename)
        if path in self.sources:
            return True
        source = load_source(os.path.abspath(filename), display_path(filename), self.settings)
        if source is None:
            return False
        self._add(source)
        return True

    def _compile(self, path: str, filename: str) -> types.CodeType:
        source = self.sources[path]
        text = self._overrides.get(path, source.text)
        if self._probes and path not in self._overrides:
            probes = [(e.id, e.span) for e in self.entries if e.source is source]
            return compile(instrument(text, filename, probes), filename, "exec", dont_inherit=True)
        return compile(text, filename, "exec", dont_inherit=True)

    def module_code(self, filename: str) -> types.CodeType:
        return self._compile(norm_path(filename), os.path.abspath(filename))

    def probe(self, ids: tuple) -> None:
        controller = self.current
        if controller is not None and hasattr(controller, "probe"):
            controller.probe(ids)

    # -- running ----------------------------------------------------------------------------
    def run(self, controller: Controller, overrides: Optional[dict[str, str]] = None, probes: bool = False,
            quiet: bool = False, stdout: Any = None) -> RunOutcome:
        """Run the script once under ``controller``; never raises for the script's own errors."""
        if self._initial_rng is None:
            self._initial_rng = RngState.capture()
        else:
            self._initial_rng.restore()
        self._overrides = dict(overrides or {})
        self._probes = probes
        saved_argv, saved_path = sys.argv[:], sys.path[:]
        saved_main = sys.modules.get("__main__")
        before = set(sys.modules)
        finder = _LocalFinder(self)
        sys.meta_path.insert(0, finder)
        main = types.ModuleType("__main__")
        main.__dict__.update({"__file__": self.script_abs, "__builtins__": builtins, "__cached__": None,
                              "__package__": None, "__spec__": None, "__loader__": None, PROBE_NAME: self.probe})
        sys.modules["__main__"] = main
        sys.argv = [self.script_display, *self.args]
        sys.path.insert(0, os.path.dirname(self.script_abs))
        saved_env = os.environ.get("NANLINT_VERIFY_DEVICE")
        os.environ["NANLINT_VERIFY_DEVICE"] = self.device
        self.current = controller
        outcome = RunOutcome("completed")
        try:
            code = self._compile(self.script_path, self.script_abs)
            with contextlib.ExitStack() as stack:
                if quiet:
                    stack.enter_context(_quiet())
                elif stdout is not None:
                    stack.enter_context(contextlib.redirect_stdout(stdout))
                stack.enter_context(self.group.during_run())
                HOOKS.push(controller)
                stack.callback(HOOKS.pop, controller)
                if controller.tracer is not None:
                    stack.enter_context(controller.tracer)
                    stack.enter_context(_eager())
                controller.run_start()
                try:
                    try:
                        exec(code, main.__dict__)
                    except SystemExit as exc:
                        if exc.code not in (None, 0):
                            raise
                    controller.run_end()
                except StopRun:
                    outcome = RunOutcome("stopped")
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # the script's own failure
                    abort = getattr(controller, "abort", None)
                    if abort is not None:
                        abort()
                    outcome = RunOutcome("error", exc, internal=_raised_by_nanlint(exc))
        except SyntaxError as exc:
            outcome = RunOutcome("error", exc)
        finally:
            self.current = None
            sys.argv[:] = saved_argv
            sys.path[:] = saved_path
            if saved_main is not None:
                sys.modules["__main__"] = saved_main
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
            for name in set(sys.modules) - before:
                module = sys.modules.get(name)
                filename = getattr(module, "__file__", None)
                if filename and norm_path(filename) in self.sources:
                    del sys.modules[name]  # re-imported (maybe fixed) by the next run
            if saved_env is None:
                os.environ.pop("NANLINT_VERIFY_DEVICE", None)
            else:
                os.environ["NANLINT_VERIFY_DEVICE"] = saved_env
        return outcome

    def script_traceback(self, exc: BaseException) -> str:
        """The script's traceback, without nanlint's frames (the ones that ran it, and hooks in between)."""
        mine = set(self.sources)

        def clean(te: traceback.TracebackException) -> None:
            frames = list(te.stack)
            start = next((i for i, f in enumerate(frames) if norm_path(f.filename) in mine), 0)
            kept = [f for f in frames[start:] if not norm_path(f.filename).startswith(_VERIFY_DIR + os.sep)]
            te.stack = traceback.StackSummary.from_list(kept)
            for chained in (te.__cause__, te.__context__):
                if chained is not None:
                    clean(chained)

        te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        clean(te)
        return "".join(te.format())


def _original_line(original: str, fixed: str, line: int) -> Optional[int]:
    """The line of ``original`` that line ``line`` of ``fixed`` is an unchanged copy of; None for a changed line."""
    import difflib

    matcher = difflib.SequenceMatcher(None, original.splitlines(), fixed.splitlines(), autojunk=False)
    for tag, a0, _a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal" and b0 < line <= b1:
            return a0 + (line - b0)
    return None


def _raised_by_nanlint(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and norm_path(last.tb_frame.f_code.co_filename).startswith(_VERIFY_DIR + os.sep)


def _no_compile(model: Any = None, **_options: Any) -> Any:
    """``torch.compile`` in a traced run: the function or module itself (also as ``@torch.compile(...)``)."""
    if model is None:
        return lambda fn: fn
    return model


@contextlib.contextmanager
def _eager() -> Iterator[None]:
    """Traced runs run ``torch.compile``d code eagerly: the tracer sees ops one by one, not a compiled graph.

    ``torch.compile`` called during the run returns its argument unchanged; code compiled before (dynamo
    already loaded) runs with dynamo disabled.
    """
    saved_compile = torch.compile
    torch.compile = _no_compile  # type: ignore[assignment]
    dynamo = sys.modules.get("torch._dynamo")
    config = getattr(dynamo, "config", None)
    saved = getattr(config, "disable", None)
    if saved is not None:
        config.disable = True  # type: ignore[union-attr]
    try:
        yield
    finally:
        torch.compile = saved_compile  # type: ignore[assignment]
        if saved is not None:
            config.disable = saved  # type: ignore[union-attr]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- verification -------------------------------------------------------------------------------

@dataclass
class _State:
    status: str = NOT_REACHED
    evidence: Optional[Evidence] = None
    reached_step: Optional[int] = None


class Verifier:
    def __init__(self, script: str, args: Sequence[str] = (), steps: int = 3, device: str = "cpu",
                 inject: bool = True, precise: bool = False, select: Optional[Sequence[str]] = None,
                 fixer: Optional[Fixer] = nanlint_fix, script_stdout: Any = None,
                 confidence: Optional[str] = None, progress: Optional[Callable[[str], None]] = None) -> None:
        self.progress = progress
        self._started = time.monotonic()
        self.steps = steps
        self.device = device
        self.inject = inject
        self.precise = precise
        self.fixer = fixer
        self.script_stdout = script_stdout
        self.settings = verify_settings(script, select, confidence)
        self.runner = ScriptRunner(script, args, self.settings, device)
        self.report = Report(script, steps_requested=steps, device=device, precise=precise)
        self.states: dict[int, _State] = {}
        self.replays = 0
        self._primary: Any = None
        self._first: Optional[SentinelRun] = None

    # -- helpers ------------------------------------------------------------------------------
    def _say(self, line: str) -> None:
        if self.progress is not None and Dist.current().rank == 0:
            self.progress(line)

    def _replay(self, controller: ReplayRun, why: str, overrides: Optional[dict[str, str]] = None) -> RunOutcome:
        self.replays += 1
        self._say(f"replay {self.replays}: {self._step_word(controller.start_step)} {why} "
                  f"({time.monotonic() - self._started:.1f} s)")
        outcome = self.runner.run(controller, overrides=overrides, quiet=True)
        self._tracer_notes(controller)
        if outcome.status == "error" and outcome.internal:
            raise outcome.error  # type: ignore[misc]  # a nanlint bug: do not hide it
        return outcome

    def _tracer_notes(self, controller: Controller) -> None:
        """The tracer's own failures (it never raises them into the script) become one note of the report."""
        tracer = controller.tracer
        if tracer is None or not tracer.problem_count:
            return
        note = (f"the tracer could not record {tracer.problem_count} call{'s' if tracer.problem_count > 1 else ''} "
                f"({'; '.join(tracer.problems)}); the script ran unchanged, but an origin there may be missed")
        if note not in self.report.notes:
            self.report.notes.append(note)

    def _source_for(self, span: Span) -> Optional[SourceFile]:
        return self.runner.sources.get(span.path)

    def _origin(self, raw: RawOrigin, step: int, rank: int) -> Origin:
        span = raw.span
        ranks = [rank] if Dist.current().active else []
        if span is None:
            return Origin(None, None, None, raw.op, raw.phase, raw.kind, raw.dtype, step, ranks=ranks)
        source = self._source_for(span)
        if source is not None:
            path = source.display
            line_text = source.line_text(span.line)
            column = source.char_col(span.line, span.col) + 1 if span.col >= 0 else None
            end_column = source.char_col(span.end_line, span.end_col) + 1 if span.col >= 0 else None
        else:
            path = display_path(span.path)
            line_text = linecache.getline(span.path, span.line).rstrip("\r\n")
            column = len(line_text.encode("utf-8")[: span.col].decode("utf-8", "ignore")) + 1 if span.col >= 0 else None
            end_column = None
        origin = Origin(path, span.line, column, raw.op, raw.phase, raw.kind, raw.dtype, step,
                        end_line=span.end_line, end_column=end_column, node=raw.node, source_line=line_text,
                        ranks=ranks)
        if raw.via is not None:
            via_source = self._source_for(raw.via)
            via_path = via_source.display if via_source else display_path(raw.via.path)
            via_col = via_source.char_col(raw.via.line, raw.via.col) + 1 if via_source and raw.via.col >= 0 else None
            origin.via = f"{via_path}:{raw.via.line}{f':{via_col}' if via_col else ''} `{raw.via_op}`"
        if raw.input_origin:
            origin.entered = True
            origin.detail = "the value was already non-finite when it reached this op (input data or weights)"
        return origin

    def _match(self, raw: RawOrigin) -> Optional[Entry]:
        for span in (raw.span, raw.via):
            if span is None:
                continue
            candidates = [e for e in self.runner.entries
                          if e.span.path == span.path and (e.span.contains(span) if span.col >= 0 and e.span.col >= 0
                                                           else e.span.line <= span.line <= e.span.end_line)]
            if candidates:
                return min(candidates, key=lambda e: e.span.size())
        return None

    # -- phases ---------------------------------------------------------------------------------
    def run(self) -> Report:
        runner = self.runner
        first = SentinelRun(self.steps, snapshots=True, precise=self.precise, reduce=flag_reducer())
        first.on_step = lambda step, unit, bad: self._say(
            f"{unit} {step + 1}/{self.steps} done ({time.monotonic() - self._started:.1f} s)"
            + ("; non-finite" if bad else ""))
        outcome = runner.run(first, probes=True, stdout=self.script_stdout)
        self._tracer_notes(first)
        if outcome.status == "error":
            if outcome.internal:
                raise outcome.error  # type: ignore[misc]
            self.report.script_error = runner.script_traceback(outcome.error)  # type: ignore[arg-type]
            self.report.steps_run = first.steps_done
            return self.report  # nothing was verified: no findings, no origins
        dist = Dist.current()
        self.report.world_size = dist.world
        self.report.rank = dist.rank
        self.report.steps_run = first.steps_done
        self.report.expected_skips = list(first.expected_skips)
        reached = self._merged_reached(first, dist)
        failure_step = first.failure.step if first.failure is not None else None
        self.report.failure_step = failure_step
        self.report.step_unit = "backward pass" if first.pass_steps_used else "step"
        self._first = first
        origins: list[Origin] = []
        if first.failure is not None:
            origins = self._natural(first, first.failure, dist)
            # backward passes without an optimizer are independent: each failing one gets its own origin
            for failure in (first.failures[1:MAX_TRACED_FAILURES] if first.pass_steps_used else []):
                known = {o.key() for o in origins}
                later = [o for o in self._natural(first, failure, dist) if o.key() not in known and not o.entered]
                origins.extend(later)
            if first.pass_steps_used and len(first.failures) > MAX_TRACED_FAILURES:
                self.report.notes.append(f"{len(first.failures)} backward passes went non-finite; the first "
                                         f"{MAX_TRACED_FAILURES} were traced")
        for entry_id, step in reached.items():
            state = self.states.setdefault(entry_id, _State())
            state.reached_step = step
        if self.inject:
            self._injections(first, reached, dist)
        else:
            for entry_id, state in self.states.items():
                if state.status == NOT_REACHED and state.reached_step is not None:
                    state.status = INCONCLUSIVE
                    state.evidence = Evidence("natural", step=state.reached_step,
                                              detail=f"reached at {self._step_word(state.reached_step)}, nothing injected "
                                                     "(--no-inject); the run itself stayed finite there")
        self.report.origins = origins
        self.report.replays = self.replays
        self._finish_findings()
        if dist.active:
            self._merge(dist)
        return self.report

    def _merged_reached(self, first: SentinelRun, dist: Dist) -> dict[int, int]:
        local = {self.runner.entries[i].key(): step for i, step in first.reached.items()}
        merged: dict[tuple, int] = {}
        for part in dist.all_gather(local):
            for key, step in part.items():
                merged[key] = min(step, merged.get(key, step))
        by_key = {e.key(): e.id for e in self.runner.entries}
        return {by_key[key]: step for key, step in merged.items() if key in by_key}

    def _spoiled(self, step: int) -> Optional[int]:
        """The run's own failing step that makes what step ``step`` shows meaningless for a finding, if any.

        With an optimizer, a NaN/Inf spoils every later step (the weights carry it); backward passes without
        one are independent, so only a pass that failed by itself is spoiled.
        """
        first = self._first
        if first is None or first.failure is None:
            return None
        if first.pass_steps_used:
            return step if any(f.step == step for f in first.failures) else None
        return first.failure.step if step >= first.failure.step else None

    def _natural(self, first: SentinelRun, failure: Failure, dist: Dist) -> list[Origin]:
        step = failure.step
        snapshot = first.failure_snapshot if failure is first.failure else None
        if step in first.windows_of:
            window_result = first.windows_of[step]
            windows = None
        else:
            replay = ReplayRun(step, snapshot=snapshot, max_steps=step + 1, agree=dist.any)
            self._replay(replay, "again under the tracer, to find where its NaN/Inf was made")
            windows = replay.windows
            if replay.restore_problems:
                self.report.notes.append("the replay could not restore all of the pre-step state: "
                                         + "; ".join(replay.restore_problems))
            window_result = windows[0].result if windows else None
        origins: list[Origin] = []
        raws: list[RawOrigin] = []
        if window_result is not None:
            if window_result.forward is not None:
                raws.append(window_result.forward)
            elif window_result.backward is not None:
                raws.append(window_result.backward)
        flags = failure.flags
        if not raws:
            if window_result is None or (windows is not None and not any(w.bad for w in windows)):
                self.report.notes.append(f"the non-finite values of {self._step_word(step)} did not come back when "
                                         "it was replayed (non-deterministic code or data?)")
            kind = "nan" if flags and (flags.loss_nan or flags.grad_nan) else "inf"
            phase = "forward" if flags and flags.loss_bad else "backward"
            origin = Origin(None, None, None, None, phase, kind, None, step, ranks=[dist.rank] if dist.active else [],
                            detail="the sentinel saw it, the tracer found no op that made it")
            return [origin]
        matched: list[Entry] = []
        for loss in (window_result.losses or []) if window_result is not None else []:
            for entry in self.runner.entries:
                if (entry.span == loss.span or (loss.span.col < 0 and entry.span.path == loss.span.path
                                                and entry.span.line == loss.span.line)) and not self._confirmed(entry):
                    self._confirm_loss(entry, loss, step)
                    matched.append(entry)
        for raw in raws:
            origin = self._origin(raw, step, dist.rank)
            entry = self._match(raw)
            if entry is not None:
                origin.finding = entry.finding.code
                if not self._confirmed(entry):  # an earlier failing pass confirmed it already
                    self._confirm_natural(entry, raw, step)
                    matched.append(entry)
            else:
                self._name_hidden(origin, raw)
            origins.append(origin)
        self._verify_natural_fixes(matched, step, snapshot, dist)
        return origins

    def _name_hidden(self, origin: Origin, raw: RawOrigin) -> None:
        """An origin no reported finding predicted, at a finding below the reported confidence: say which."""
        span = raw.span
        source = self._source_for(span) if span is not None else None
        if source is None or span is None:
            return
        hidden = [f for f in source.hidden if source.finding_span(f).contains(span)
                  or (span.col < 0 and f.line <= span.line <= f.end_line)]
        if hidden:
            f = min(hidden, key=lambda f: source.finding_span(f).size())
            note = (f"`nanlint check` reports {f.code} here at {f.confidence} confidence, below the "
                    f"`--confidence {self.settings.confidence}` verified")
            origin.detail = f"{origin.detail}; {note}" if origin.detail else note

    def _confirmed(self, entry: Entry) -> bool:
        state = self.states.get(entry.id)
        return state is not None and state.status == CONFIRMED

    def _confirm_natural(self, entry: Entry, raw: RawOrigin, step: int) -> None:
        state = self.states.setdefault(entry.id, _State())
        kind_word = "NaN" if raw.kind == "nan" else "Inf"
        detail = f"{raw.phase} {kind_word} at `{raw.op}` ({raw.dtype}) at {self._step_word(step)} of the run itself"
        if raw.node:
            detail += f" ({raw.node})"
        state.status = CONFIRMED
        state.evidence = Evidence("natural", raw.op, raw.phase, raw.kind, raw.dtype, step, detail=detail)
        state.reached_step = step if state.reached_step is None else min(state.reached_step, step)

    def _confirm_loss(self, entry: Entry, loss: Any, step: int) -> None:
        state = self.states.setdefault(entry.id, _State())
        kind_word = "NaN" if loss.kind == "nan" else "Inf"
        state.status = CONFIRMED
        state.evidence = Evidence("natural", "Tensor.backward", "forward", loss.kind, loss.dtype, step,
                                  detail=f"a {kind_word} loss reached `backward()` at {self._step_word(step)} of the run itself, "
                                         "unchecked")
        state.reached_step = step if state.reached_step is None else min(state.reached_step, step)

    def _verify_natural_fixes(self, matched: list[Entry], step: int, snapshot: Any, dist: Dist) -> None:
        """Replay the failing step with nanlint's fix of each confirmed finding (every rank, in the same order)."""
        keys: set[tuple] = set()
        for part in dist.all_gather([e.key() for e in matched]):
            keys.update(part)
        by_key = {e.key(): e for e in self.runner.entries}
        for key in sorted(keys):
            entry = by_key.get(key)
            if entry is None:
                continue
            fixed = self._fixed_text(entry)
            if fixed is None:
                continue
            replay = ReplayRun(step, snapshot=snapshot, max_steps=step + 1, agree=dist.any)
            outcome = self._replay(replay, f"with nanlint's fix of {self._entry_word(entry)}",
                                   overrides={entry.source.path: fixed})
            state = self.states.get(entry.id)
            if state is None or state.status != CONFIRMED or state.evidence is None:
                continue
            evidence = state.evidence
            if outcome.status == "error" and not replay.windows:
                evidence.fix_verified = False
                evidence.fix_detail = f"the fixed code raised {type(outcome.error).__name__}"
            elif not replay.windows:
                evidence.fix_detail = f"fix not checked: the fixed code did not reach {self._step_word(step)}"
            else:
                self._judge_fix(entry, fixed, evidence, next((w for w in replay.windows if w.bad), None))

    def _judge_fix(self, entry: Entry, fixed: str, evidence: Evidence, bad: Optional[Window]) -> None:
        """The fixed run stayed finite (verified), went non-finite at the fixed code (not verified), or went
        non-finite somewhere else first: then the fix was not checked, and the report says where."""
        if bad is None:
            evidence.fix_verified = True
            return
        raw = bad.result.forward or bad.result.backward
        elsewhere = self._elsewhere(entry, fixed, raw) if raw is not None else None
        if elsewhere is None:
            evidence.fix_verified = False
            return
        evidence.fix_detail = f"fix not checked: with it, the run's NaN/Inf at {elsewhere} comes first"

    def _elsewhere(self, entry: Entry, fixed: str, raw: RawOrigin) -> Optional[str]:
        """Where ``raw`` (seen in a run of the fixed text) is, when it is not at the fixed code; else None."""
        span = raw.span
        if span is None:
            return None
        line = span.line
        if span.path == entry.source.path:
            original = _original_line(entry.source.text, fixed, line)
            if original is None or entry.span.line <= original <= entry.span.end_line:
                return None  # a line the fix wrote, or the finding's own line: the fix did not keep it finite
            line = original
            display = entry.source.display
        else:
            source = self._source_for(span)
            display = source.display if source is not None else display_path(span.path)
        return f"{display}:{line} (`{raw.op}`)"

    def _fixed_text(self, entry: Entry) -> Optional[str]:
        if self.fixer is None:
            return None
        try:
            from ..request import build_request

            return self.fixer(entry.source, entry.finding, build_request(self.settings, entry.source.path))
        except Exception as exc:  # a fix engine failure must not stop the verification
            self.report.notes.append(f"{entry.finding.code} at {entry.source.display}:{entry.finding.line}: "
                                     f"the fix could not be built ({type(exc).__name__}: {exc})")
            return None

    def _injections(self, first: SentinelRun, reached: dict[int, int], dist: Dist) -> None:
        confirmed: set[tuple] = set()  # confirmed on any rank: no rank injects it (the ranks stay in lockstep)
        local = [e.key() for e in self.runner.entries if self.states.get(e.id, _State()).status == CONFIRMED]
        for part in dist.all_gather(local):
            confirmed.update(part)
        for entry in self.runner.entries:
            state = self.states.setdefault(entry.id, _State())
            if entry.key() in confirmed or entry.id not in reached:
                continue
            injection = injection_for(entry.finding.code, entry.source, entry.span, entry.target)
            step = reached[entry.id]
            if injection is None:
                state.status = INCONCLUSIVE
                state.evidence = Evidence("natural", step=step, detail=(
                    f"reached at {self._step_word(step)}; nanlint has no danger value to inject for "
                    f"{entry.finding.code}, and the run itself stayed finite there"))
                continue
            if isinstance(injection, GradInjection):
                step = self._unskipped_step(first, step)
            replay = ReplayRun(step, injection=injection, max_steps=self.steps + EXTRA_REPLAY_STEPS, agree=dist.any)
            outcome = self._replay(replay, f"injecting {injection.describe} ({self._entry_word(entry)})")
            self._judge_injection(entry, state, injection, replay, outcome, dist)
            confirmed_here = state.status == CONFIRMED
            if entry.finding.code in FIX_NOT_JUDGED:
                if confirmed_here and state.evidence is not None:
                    state.evidence.fix_detail = ("a fix that checks the loss cannot be judged by this injection, "
                                                 "which makes the gradients NaN after any check")
            elif dist.any(confirmed_here):
                self._verify_injected_fix(entry, state.evidence if confirmed_here else None, injection,
                                          replay.start_step, dist)

    @staticmethod
    def _entry_word(entry: Entry) -> str:
        return f"{entry.finding.code} at {entry.source.display}:{entry.finding.line}"

    def _step_word(self, step: Optional[int]) -> str:
        return f"{self.report.step_unit} {step}"

    @staticmethod
    def _unskipped_step(first: SentinelRun, step: int) -> int:
        """A spike in a step the GradScaler skipped anyway tells nothing: use the first step it applied."""
        for candidate in range(step, max(first.steps_done, step + 1)):
            if candidate not in first.skipped_steps:
                return candidate
        return step

    def _judge_injection(self, entry: Entry, state: _State, injection: Injection, replay: ReplayRun,
                         outcome: RunOutcome, dist: Dist) -> None:
        """confirmed: the injected value made NaN/Inf; guarded: it was observed and everything stayed finite;
        inconclusive: it could not be injected, or nothing after it could be judged (and why)."""
        fired = dist.any(injection.fired is not None)
        if injection.fired is None:
            if fired:
                # another rank injected: this rank's windows carry no information about it (the merge prefers it)
                state.status = INCONCLUSIVE
                state.evidence = Evidence("injected", detail="injected on another rank")
                return
            if injection.seen_site:
                state.status = INCONCLUSIVE
                state.evidence = Evidence("natural", step=state.reached_step, detail=(
                    f"reached at {self._step_word(state.reached_step)}; could not inject "
                    f"({injection.problem or 'no value'}); the run itself stayed finite there"))
            else:
                state.status = NOT_REACHED
                state.evidence = None
                self.report.notes.append(
                    f"{entry.source.display}:{entry.finding.line}: the statement ran "
                    f"({self._step_word(state.reached_step)}) but the flagged op did not run in a traced step")
            return
        fired_info = injection.fired
        self._primary = replay.primary
        aborted = outcome.status == "error"
        what = f"{fired_info.what} at {self._step_word(fired_info.step)}"
        bad, confounded = self._first_bad(replay, fired_info.step, entry, aborted)
        if bad is not None:
            state.status = CONFIRMED
            state.evidence = self._injected_evidence(injection, bad, aborted, outcome)
            return
        # what was observed clean: the injected step, or for a gradient spike the steps after the spiked update
        first_useful = fired_info.step + (1 if isinstance(injection, GradInjection) else 0)
        clean = [w.step for w in replay.windows if w.step >= first_useful and self._spoiled(w.step) is None]
        evidence = Evidence("injected", fired_info.op, None, None, fired_info.dtype, fired_info.step)
        state.evidence = evidence
        if clean and confounded is not None:
            state.status = GUARDED
            evidence.detail = (f"{what}: the loss and the gradients stayed finite through "
                               f"{self._step_word(max(clean))} (the run's own NaN/Inf at "
                               f"{self._step_word(confounded)} ends the observation)")
        elif clean:
            state.status = GUARDED
            evidence.detail = f"{what}: the loss and the gradients stayed finite"
        elif confounded is not None:
            state.status = INCONCLUSIVE
            evidence.detail = f"{what}: the run's own NaN/Inf at {self._step_word(confounded)} comes first"
        else:
            state.status = INCONCLUSIVE
            evidence.detail = (f"{what}: the script did not reach a checkpoint after it (no backward pass or "
                               "optimizer step to observe)")

    def _first_bad(self, replay: ReplayRun, fired_step: int, entry: Entry,
                   aborted: bool) -> tuple[Optional[Window], Optional[int]]:
        """The first window after the injection that went non-finite because of it; and the run's own failing
        step that got in the way (None when none did)."""
        windows = [w for w in replay.windows if w.step >= fired_step]
        aborted_bad: Optional[Window] = None  # the script raised on the value it was given: judge what it made
        if aborted and windows and not any(w.bad for w in windows):
            last = windows[-1]
            if last.result.forward is not None or last.result.backward is not None:
                aborted_bad = last
        spoiler: Optional[int] = None
        for window in windows:
            spoiled = self._spoiled(window.step)
            if not (window.bad or window is aborted_bad):
                continue
            if spoiled is not None:
                origin = window.result.forward or window.result.backward
                if origin is None or self._match(origin) is not entry:
                    spoiler = spoiled if spoiler is None else spoiler  # the run's own NaN/Inf, not the injected one
                    if self._first is not None and not self._first.pass_steps_used:
                        return None, spoiled
                    continue
            return window, spoiler
        if spoiler is None:
            spoiler = next((sp for sp in map(self._spoiled, (w.step for w in windows)) if sp is not None),
                           self._spoiled(fired_step))
        return None, spoiler

    def _injected_evidence(self, injection: Injection, window: Window, aborted: bool,
                           outcome: RunOutcome) -> Evidence:
        fired = injection.fired
        assert fired is not None
        origin = window.result.forward or window.result.backward
        if window.injected_grads:
            origin = None  # that step's gradients were made non-finite on purpose: what counts is the update
        flags = window.flags
        if origin is not None:
            where = ""
            if origin.span is not None:
                source = self._source_for(origin.span)
                where = f" ({source.display if source else display_path(origin.span.path)}:{origin.span.line})"
            kind_word = "NaN" if origin.kind == "nan" else "Inf"
            detail = (f"{fired.what} at {self._step_word(fired.step)}: {origin.phase} {kind_word} at "
                      f"`{origin.op}`{where}" + (f" at {self._step_word(window.step)}" if window.step != fired.step
                                                 else ""))
            evidence = Evidence("injected", origin.op, origin.phase, origin.kind, origin.dtype, window.step,
                                detail=detail)
        elif window.params_bad:
            optimizer = type(self._primary).__name__ if self._primary is not None else "optimizer"
            evidence = Evidence("injected", f"{optimizer}.step", "backward", "nan", fired.dtype, window.step,
                                detail=f"{fired.what}: the weights became non-finite in that step's "
                                       f"`{optimizer}.step()`")
        else:
            kind = "nan" if (flags.loss_nan or flags.grad_nan) else "inf"
            phase = "forward" if flags.loss_bad else "backward"
            evidence = Evidence("injected", fired.op, phase, kind, fired.dtype, window.step,
                                detail=f"{fired.what} at {self._step_word(fired.step)}: non-finite "
                                       f"{'loss' if flags.loss_bad else 'gradients'} at "
                                       f"{self._step_word(window.step)}")
        if aborted and outcome.error is not None:
            evidence.detail += f"; the script then raised {type(outcome.error).__name__}"
        return evidence

    def _verify_injected_fix(self, entry: Entry, evidence: Optional[Evidence], injection: Injection, step: int,
                             dist: Dist) -> None:
        fixed = self._fixed_text(entry)
        if fixed is None:
            return
        new_source = SourceFile(entry.source.path, entry.source.display, fixed)
        again = remap(injection, entry.source, new_source)
        if not dist.all_agree(again is not None):
            if evidence is not None:
                evidence.fix_detail = "nanlint's fix removes the expression the danger value was injected into"
            return
        assert again is not None
        replay = ReplayRun(step, injection=again, max_steps=self.steps + EXTRA_REPLAY_STEPS, agree=dist.any)
        outcome = self._replay(replay, f"injecting again into nanlint's fix of {self._entry_word(entry)}",
                               overrides={entry.source.path: fixed})
        if evidence is None:
            return
        if outcome.status == "error" and not replay.windows:
            evidence.fix_verified = False
            evidence.fix_detail = f"the fixed code raised {type(outcome.error).__name__}"
            return
        if again.fired is None:
            evidence.fix_detail = "the injected op did not run in the fixed code"
            return
        bad, confounded = self._first_bad(replay, again.fired.step, entry, outcome.status == "error")
        if bad is None and confounded is not None:
            evidence.fix_detail = (f"fix not checked: the run's own NaN/Inf at {self._step_word(confounded)} "
                                   "comes first")
            return
        self._judge_fix(entry, fixed, evidence, bad)

    def _finish_findings(self) -> None:
        results: list[FindingResult] = []
        for entry in self.runner.entries:
            state = self.states.get(entry.id, _State())
            f = entry.finding
            results.append(FindingResult(f.code, f.name, f.message, entry.source.display, f.line, f.column,
                                         f.end_line, f.end_column, state.status, state.evidence,
                                         entry.source.line_text(f.line)))
        self.report.findings = results
        self.report.sort()

    def _merge(self, dist: Dist) -> None:
        """Rank 0 merges every rank's report: a finding confirmed anywhere is confirmed; origins are united."""
        for origin in self.report.origins:
            origin.ranks = [dist.rank]
        for finding in self.report.findings:
            if finding.evidence is not None:
                finding.evidence.rank = dist.rank
        parts = dist.gather(self.report)
        if dist.rank != 0 or parts is None:
            return
        order = {CONFIRMED: 0, GUARDED: 1, INCONCLUSIVE: 2, NOT_REACHED: 3}
        merged: dict[tuple, FindingResult] = {}
        origins: dict[tuple, Origin] = {}
        notes: list[str] = []
        for part in parts:
            for finding in part.findings:
                best = merged.get(finding.key())
                if best is None or order[finding.status] < order[best.status] or (
                        finding.status == best.status == CONFIRMED and finding.evidence and best.evidence
                        and (finding.evidence.step or 0) < (best.evidence.step or 0)):
                    merged[finding.key()] = finding
            for origin in part.origins:
                known = origins.get(origin.key())
                if known is None:
                    origins[origin.key()] = origin
                else:
                    known.ranks = sorted(set(known.ranks) | set(origin.ranks))
                    known.step = min(known.step, origin.step)
            notes.extend(n for n in part.notes if n not in notes)
        # a rank that only received the NaN (through an all-reduce) adds nothing when another rank made it
        located_steps = {o.step for o in origins.values() if o.path is not None and not o.entered}
        self.report.findings = list(merged.values())
        self.report.origins = [o for o in origins.values()
                               if (o.path is not None and not o.entered) or o.step not in located_steps]
        self.report.notes = notes
        self.report.sort()

    def close(self) -> None:
        self.runner.group.close()


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when present; ``cuda`` must be present."""
    if device not in ("auto", "cpu", "cuda"):
        raise VerifyError(f"--device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return "cpu"
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise VerifyError("--device cuda: no CUDA device is available to this process")
    if available:
        torch.cuda.init()  # so that the first run's start captures the CUDA RNG state too
        local_rank = os.environ.get("LOCAL_RANK")
        if local_rank is not None and local_rank.isdigit() and int(local_rank) < torch.cuda.device_count():
            torch.cuda.set_device(int(local_rank))
        return "cuda"
    return "cpu"


def verify_script(script: str, args: Sequence[str] = (), steps: int = 3, device: str = "auto",
                  inject: bool = True, precise: bool = False, select: Optional[Sequence[str]] = None,
                  fixer: Optional[Fixer] = nanlint_fix, script_stdout: Any = None, keep_group: bool = False,
                  confidence: Optional[str] = None, progress: Optional[Callable[[str], None]] = None) -> Report:
    """Verify ``script`` (run as ``__main__`` with ``args``) and return the report; see ``nanlint verify --help``.

    Under ``torchrun`` the report of rank 0 is the merged one (``report.rank`` says which rank this is);
    ``keep_group`` leaves the script's process group alive for the caller to use and destroy.
    """
    if steps < 1:
        raise VerifyError("--steps must be at least 1")
    chosen = resolve_device(device)
    verifier = Verifier(script, args, steps, chosen, inject, precise, select, fixer, script_stdout, confidence,
                        progress)
    try:
        return verifier.run()
    finally:
        if not keep_group:
            verifier.close()
