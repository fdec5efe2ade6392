"""``nanlint.watch()``: the precise tracer around your own code, and a report of the NaN/Inf origins it saw.

::

    import nanlint

    with nanlint.watch() as w:
        train_one_epoch(model, loader)
    print(w.report().text())      # or .json(), .html(); w.origins for the raw list

Every step inside the block is traced (forward ops through a ``TorchFunctionMode``,
backward through node hooks): the first step whose loss or gradients turn
non-finite keeps its origins (the op and user line that made the first NaN, or
an Inf from finite inputs; a deliberate ``-inf`` fill is not an origin), and each
origin is matched against nanlint's static findings of its file. Steps a
``GradScaler`` skips for an overflow with a finite loss are expected and not
reported. ``precise=False`` keeps only the cheap sentinel: it says *which* step
went non-finite, not where.
"""
from __future__ import annotations

from typing import Any, Optional

from ._torch import require_torch
from .report import CONFIRMED, Evidence, FindingResult, Origin, Report


class Watch:
    def __init__(self, precise: bool = True) -> None:
        require_torch()
        from .controller import WatchController

        self.controller = WatchController(precise=precise)
        self._entered = False
        self._report: Optional[Report] = None

    def __enter__(self) -> "Watch":
        from .controller import HOOKS

        HOOKS.push(self.controller)
        if self.controller.tracer is not None:
            self.controller.tracer.__enter__()
        self._entered = True
        self.controller.run_start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from .controller import HOOKS

        controller = self.controller
        try:
            controller.run_end()
        finally:
            if controller.tracer is not None:
                controller.tracer.enabled = False
                controller.tracer.__exit__(None, None, None)
            HOOKS.pop(controller)
            self._entered = False

    # -- results -------------------------------------------------------------------------------
    @property
    def failed_step(self) -> Optional[int]:
        failure = self.controller.failure
        return failure.step if failure is not None else None

    @property
    def origins(self) -> list[Origin]:
        return self.report().origins

    def report(self) -> Report:
        if self._report is None:
            self._report = _build(self.controller)
        return self._report


def _build(controller: Any) -> Report:
    from .runner import Entry
    from .source import display_path, load_source, verify_settings

    report = Report("<watch>", device="", steps_run=controller.steps_done)
    report.expected_skips = list(controller.expected_skips)
    failure = controller.failure
    if failure is None:
        return report
    report.failure_step = failure.step
    window = controller.window
    raws = []
    if window is not None:
        if window.forward is not None:
            raws.append(window.forward)
        elif window.backward is not None:
            raws.append(window.backward)
    if not raws:
        flags = failure.flags
        kind = "nan" if (flags.loss_nan or flags.grad_nan) else "inf"
        report.origins.append(Origin(None, None, None, None, "forward" if flags.loss_bad else "backward", kind, None,
                                     failure.step, detail="the sentinel saw it; trace with precise=True to locate it"))
        return report
    sources: dict[str, Any] = {}
    for raw in raws:
        span = raw.span
        source = None
        if span is not None and not span.path.startswith("<"):
            if span.path not in sources:
                try:
                    sources[span.path] = load_source(span.path, display_path(span.path), verify_settings(span.path))
                except Exception:  # a bad config must not hide the origin
                    sources[span.path] = None
            source = sources[span.path]
        if source is None:
            line = span.line if span else None
            report.origins.append(Origin(display_path(span.path) if span else None, line,
                                         span.col + 1 if span and span.col >= 0 else None, raw.op, raw.phase,
                                         raw.kind, raw.dtype, failure.step, node=raw.node))
            continue
        column = source.char_col(span.line, span.col) + 1 if span.col >= 0 else None
        origin = Origin(source.display, span.line, column, raw.op, raw.phase, raw.kind, raw.dtype, failure.step,
                        end_line=span.end_line,
                        end_column=source.char_col(span.end_line, span.end_col) + 1 if span.col >= 0 else None,
                        node=raw.node, source_line=source.line_text(span.line))
        entries = [Entry(i, source, f, source.finding_span(f), source.target_span(f))
                   for i, f in enumerate(source.findings)]
        matches = [e for e in entries if e.span.contains(span) or (raw.via is not None and e.span.contains(raw.via))]
        if matches:
            entry = min(matches, key=lambda e: e.span.size())
            f = entry.finding
            origin.finding = f.code
            report.findings.append(FindingResult(
                f.code, f.name, f.message, source.display, f.line, f.column, f.end_line, f.end_column, CONFIRMED,
                Evidence("natural", raw.op, raw.phase, raw.kind, raw.dtype, failure.step),
                source.line_text(f.line)))
        report.origins.append(origin)
    report.sort()
    return report


def watch(precise: bool = True) -> Watch:
    """Trace the code in the ``with`` block; see the module docstring."""
    return Watch(precise=precise)
