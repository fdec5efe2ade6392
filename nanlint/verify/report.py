"""What ``nanlint verify`` found, and its text, JSON and HTML forms (no torch here).

JSON::

    {"steps": {"run", "unit"},
     "findings": [{"code", "path", "line", "column", "status", "reason", "evidence":
                   {"how", "op", "phase", "kind", "dtype", "step", "fix_verified", "fix"} | null}],
     "origins": [{"path", "line", "column", "op", "phase", "kind", "dtype", "step", "finding"}]}

``status`` says what was observed, never more:

* ``confirmed``: NaN/Inf appeared at the finding, by itself or from the injected danger value;
* ``guarded``: the rule's danger value was injected there, and the loss and gradients after it were observed
  finite;
* ``inconclusive``: the line ran, but nothing could be judged; ``reason`` says why (no value to inject, the
  run's own earlier NaN/Inf, no checkpoint after the injection, ``--no-inject``);
* ``not-reached``: the line never ran.

``how`` is ``natural`` (the run itself went non-finite there) or ``injected``
(nanlint substituted the rule's danger value); ``phase`` is ``forward`` |
``backward``; ``kind`` is ``nan`` | ``inf``; ``step`` counts from 0 in the unit
``steps.unit`` names: optimizer steps (``step``), or backward passes (``backward
pass``) in a script without an optimizer. ``fix_verified`` is true / false when
nanlint's fix was run and judged, else null, with ``fix`` saying why (``fix not
checked: ...``). Lines and columns are 1-based.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any, Optional

CONFIRMED, GUARDED, INCONCLUSIVE, NOT_REACHED = "confirmed", "guarded", "inconclusive", "not-reached"
STATUSES = (CONFIRMED, GUARDED, INCONCLUSIVE, NOT_REACHED)


@dataclass
class Evidence:
    how: str  # "natural" | "injected"
    op: Optional[str] = None
    phase: Optional[str] = None
    kind: Optional[str] = None
    dtype: Optional[str] = None
    step: Optional[int] = None
    fix_verified: Optional[bool] = None
    detail: str = ""  # one sentence for people (text and HTML)
    fix_detail: str = ""
    rank: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        return {"how": self.how, "op": self.op, "phase": self.phase, "kind": self.kind, "dtype": self.dtype,
                "step": self.step, "fix_verified": self.fix_verified, "fix": self.fix_detail or None}


@dataclass
class FindingResult:
    code: str
    name: str
    message: str
    path: str  # as shown
    line: int
    column: int
    end_line: int
    end_column: int
    status: str
    evidence: Optional[Evidence] = None
    source_line: str = ""

    def key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.column, self.code)

    def to_json(self) -> dict[str, Any]:
        reason = self.evidence.detail if self.status == INCONCLUSIVE and self.evidence is not None else None
        return {"code": self.code, "path": self.path, "line": self.line, "column": self.column,
                "status": self.status, "reason": reason,
                "evidence": self.evidence.to_json() if self.evidence else None}


@dataclass
class Origin:
    path: Optional[str]
    line: Optional[int]
    column: Optional[int]
    op: Optional[str]
    phase: str
    kind: str
    dtype: Optional[str]
    step: int
    finding: Optional[str] = None
    end_line: Optional[int] = None
    end_column: Optional[int] = None
    node: Optional[str] = None
    via: Optional[str] = None  # "path:line:col `op`" of the Inf this NaN came from
    detail: str = ""
    source_line: str = ""
    ranks: list[int] = field(default_factory=list)
    entered: bool = False  # already non-finite when it reached this op (data, weights, another rank)

    def key(self) -> tuple:
        return (self.path or "", self.line or 0, self.column or 0, self.op or "", self.phase, self.kind)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "column": self.column, "op": self.op, "phase": self.phase,
                "kind": self.kind, "dtype": self.dtype, "step": self.step, "finding": self.finding}


@dataclass
class Report:
    script: str
    findings: list[FindingResult] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)
    steps_run: int = 0
    steps_requested: int = 0
    step_unit: str = "step"  # "step" (optimizer steps) | "backward pass" (a script without an optimizer)
    device: str = "cpu"
    failure_step: Optional[int] = None
    expected_skips: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replays: int = 0
    world_size: int = 1
    rank: int = 0
    precise: bool = False  # every step was traced (no replay)
    script_error: Optional[str] = None  # the script's own traceback

    # -- outcome ---------------------------------------------------------------------
    @property
    def confirmed(self) -> list[FindingResult]:
        return [f for f in self.findings if f.status == CONFIRMED]

    @property
    def unpredicted(self) -> list[Origin]:
        return [o for o in self.origins if o.finding is None]

    @property
    def exit_code(self) -> int:
        """0: nothing confirmed; 1: a finding confirmed or a NaN/Inf origin seen; 2: the script failed."""
        if self.script_error is not None:
            return 2
        return 1 if self.confirmed or self.origins else 0

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for finding in self.findings:
            out[finding.status] = out.get(finding.status, 0) + 1
        return out

    def sort(self) -> None:
        self.findings.sort(key=FindingResult.key)
        self.origins.sort(key=lambda o: (o.step, o.path or "", o.line or 0, o.column or 0, o.phase))

    # -- formats -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"steps": {"run": self.steps_run, "unit": self.step_unit},
                "findings": [f.to_json() for f in self.findings], "origins": [o.to_json() for o in self.origins]}

    def json(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def text(self) -> str:
        return format_text(self)

    def html(self) -> str:
        return format_html(self)

    def summary(self) -> str:
        c = self.counts()
        unpredicted = len(self.unpredicted)
        return (f"{c[CONFIRMED]} confirmed, {c[GUARDED]} guarded, {c[INCONCLUSIVE]} inconclusive, "
                f"{c[NOT_REACHED]} not reached; "
                f"{unpredicted} runtime origin{'s' if unpredicted != 1 else ''} no finding predicted")


def steps_text(count: int, unit: str) -> str:
    """``1 step``, ``3 steps``, ``2 backward passes``."""
    plural = unit + ("es" if unit.endswith("s") else "s")
    return f"{count} {unit if count == 1 else plural}"


def _where(path: Optional[str], line: Optional[int], column: Optional[int]) -> str:
    if path is None:
        return "<unknown location>"
    return f"{path}:{line}:{column}" if column else f"{path}:{line}"


def describe_evidence(evidence: Optional[Evidence], status: str, steps: Optional[int] = None,
                      unit: str = "step") -> str:
    if evidence is None:
        if steps is None:
            return "the line never ran"
        return f"the line never ran in the {steps_text(steps, unit)} verified"
    if evidence.detail:
        text = evidence.detail
    else:
        text = f"{evidence.phase} {evidence.kind} at `{evidence.op}` ({evidence.dtype}), step {evidence.step}"
    if status == CONFIRMED:
        if evidence.fix_verified is True:
            text += "; nanlint's fix keeps it finite"
        elif evidence.fix_verified is False:
            text += "; nanlint's fix does NOT keep it finite"
        else:
            text += "; no fix to verify" if not evidence.fix_detail else f"; {evidence.fix_detail}"
    return text


def describe_origin(origin: Origin, unit: str = "step") -> str:
    op = f"`{origin.op}`" if origin.op else "an unknown op"
    text = f"{origin.phase} {'NaN' if origin.kind == 'nan' else 'Inf'} from {op}"
    if origin.node:
        text += f" ({origin.node})"
    if origin.dtype:
        text += f", {origin.dtype}"
    text += f", {unit} {origin.step}"
    if origin.via:
        text += f"; the Inf came from {origin.via}"
    if origin.detail:
        text += f"; {origin.detail}"
    if origin.ranks and len(origin.ranks) < 64:
        text += f" (rank{'s' if len(origin.ranks) > 1 else ''} {', '.join(map(str, origin.ranks))})"
    return text


def format_text(report: Report) -> str:
    if report.script_error is not None:
        return (f"{report.script_error.rstrip()}\n\nnanlint verify {report.script}: the script failed "
                f"(after {steps_text(report.steps_run, report.step_unit)}); nothing was verified\n")
    lines: list[str] = []
    head = f"nanlint verify {report.script}: {steps_text(report.steps_run, report.step_unit)}"
    head += f" on {report.device}"
    if report.world_size > 1:
        head += f" x {report.world_size} ranks"
    if report.failure_step is not None:
        how = "traced" if report.precise else "replayed under the tracer"
        head += f"; non-finite at {report.step_unit} {report.failure_step}, {how}"
    if report.expected_skips:
        steps = ", ".join(map(str, report.expected_skips))
        head += f"; GradScaler skipped step{'s' if len(report.expected_skips) > 1 else ''} {steps} (expected)"
    lines.append(head)
    if report.findings:
        lines.append("")
        width = max(len(s) for s in STATUSES)
        for finding in report.findings:
            where = _where(finding.path, finding.line, finding.column)
            lines.append(f"{where}: {finding.code} {finding.status:<{width}}  "
                         f"{describe_evidence(finding.evidence, finding.status, report.steps_run, report.step_unit)}")
            if finding.source_line.strip():
                lines.append(f"    {finding.source_line.strip()}")
    if report.origins:
        lines.append("")
        lines.append("NaN/Inf origins:")
        for origin in report.origins:
            tag = f"[{origin.finding}] " if origin.finding else "[no finding] "
            lines.append(f"  {_where(origin.path, origin.line, origin.column)}: {tag}{describe_origin(origin, report.step_unit)}")
            if origin.source_line.strip():
                lines.append(f"      {origin.source_line.strip()}")
    for note in report.notes:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append(report.summary())
    return "\n".join(lines) + "\n"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;color:#1d1d1f;
padding:0 1rem}
h1{font-size:1.35rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
.meta{color:#555}.summary{margin:.8rem 0 1.2rem;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.45rem .6rem;
border-bottom:1px solid #e3e3e6}th{background:#f5f5f7;font-weight:600}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{margin:.3rem 0 0;padding:.35rem .5rem;background:#f6f8fa;border-radius:4px;overflow-x:auto;white-space:pre}
mark{background:#ffe08a;padding:0 1px}
.status{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-weight:600;font-size:12px;color:#fff}
.confirmed{background:#c62828}.guarded{background:#2e7d32}.inconclusive{background:#b26a00}
.not-reached{background:#757575}
.origin{background:#6a1b9a}.msg{color:#444;margin-top:.2rem}.loc{white-space:nowrap}
"""


def _highlight(source_line: str, column: Optional[int], end_column: Optional[int], same_line: bool) -> str:
    if not source_line:
        return ""
    if not column:
        return html.escape(source_line)
    start = max(column - 1, 0)
    end = (end_column - 1) if (same_line and end_column) else len(source_line)
    end = max(min(end, len(source_line)), start)
    return (html.escape(source_line[:start]) + "<mark>" + html.escape(source_line[start:end]) + "</mark>"
            + html.escape(source_line[end:]))


def format_html(report: Report) -> str:
    """A standalone page (inline CSS, no scripts, no external resources)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>nanlint verify: {e(report.script)}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>nanlint verify <code>{e(report.script)}</code></h1>",
    ]
    meta = f"{e(steps_text(report.steps_run, report.step_unit))} on {e(report.device)}"
    if report.world_size > 1:
        meta += f", {report.world_size} ranks"
    if report.failure_step is not None:
        meta += (f"; non-finite at {e(report.step_unit)} {report.failure_step}, "
                 f"{'traced' if report.precise else 'replayed under the tracer'}")
    if report.expected_skips:
        meta += f"; GradScaler skipped step(s) {', '.join(map(str, report.expected_skips))} (expected)"
    parts.append(f'<p class="meta">{meta}</p>')
    parts.append(f'<p class="summary">{e(report.summary())}</p>')
    if report.script_error:
        parts.append("<h2>The script failed</h2>")
        parts.append(f"<pre>{e(report.script_error)}</pre>")
    parts.append("<h2>Static findings</h2>")
    if not report.findings:
        parts.append("<p>No static finding in the script or the local modules it imported.</p>")
    else:
        parts.append("<table><thead><tr><th>Rule</th><th>Location</th><th>Status</th><th>Source and evidence</th>"
                     "</tr></thead><tbody>")
        for f in report.findings:
            source = _highlight(f.source_line, f.column, f.end_column, f.line == f.end_line)
            evidence = describe_evidence(f.evidence, f.status, report.steps_run, report.step_unit)
            parts.append(
                f"<tr><td><code>{e(f.code)}</code><div class=\"msg\">{e(f.name)}</div></td>"
                f"<td class=\"loc\"><code>{e(_where(f.path, f.line, f.column))}</code></td>"
                f"<td><span class=\"status {e(f.status)}\">{e(f.status)}</span></td>"
                f"<td><pre>{f.line:>5} | {source}</pre><div class=\"msg\">{e(evidence)}</div>"
                f"<div class=\"msg\">{e(f.message)}</div></td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("<h2>NaN/Inf origins</h2>")
    if not report.origins:
        parts.append("<p>No NaN or Inf appeared in the natural run.</p>")
    else:
        parts.append("<table><thead><tr><th>Location</th><th>Finding</th><th>Source and evidence</th></tr></thead>"
                     "<tbody>")
        for o in report.origins:
            source = _highlight(o.source_line, o.column, o.end_column, o.line == o.end_line)
            label = f"<code>{e(o.finding)}</code>" if o.finding else '<span class="status origin">no finding</span>'
            parts.append(
                f"<tr><td class=\"loc\"><code>{e(_where(o.path, o.line, o.column))}</code></td><td>{label}</td>"
                f"<td>{f'<pre>{o.line:>5} | {source}</pre>' if o.source_line else ''}"
                f"<div class=\"msg\">{e(describe_origin(o, report.step_unit))}</div></td></tr>"
            )
        parts.append("</tbody></table>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


FORMATS = {"text": format_text, "json": lambda r: r.json(), "html": format_html}
