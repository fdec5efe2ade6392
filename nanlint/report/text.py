from __future__ import annotations

from typing import Optional, Sequence

from ..finding import Finding


def fixable(finding: Finding, unsafe_fixes: bool) -> bool:
    """Would ``--fix`` (with ``--unsafe-fixes`` when ``unsafe_fixes``) fix this finding?"""
    return finding.fix is not None and (finding.fix.applicability == "safe"
                                       or (unsafe_fixes and finding.fix.applicability == "unsafe"))


def format_text(findings: Sequence[Finding], files_checked: int, *, unsafe_fixes: bool = False,
                fixed: Optional[int] = None, summary: bool = True) -> str:
    """``path:line:col: CODE [*] message`` lines (``[*]``: ``--fix`` would fix it; a finding only reported under
    ``--confidence low`` ends in ``(low confidence)``), then a summary.

    ``fixed`` is the number of findings a ``--fix`` run just fixed (``findings`` are those left); ``summary``
    False (``--quiet``) leaves out the summary line.
    """
    lines = [
        f"{f.location()}: {f.code} {'[*] ' if fixable(f, unsafe_fixes) else ''}{f.message}"
        + (" (low confidence)" if f.confidence == "low" else "")
        for f in findings
    ]
    total = len(findings) + (fixed or 0)
    if not summary:  # --quiet
        return "".join(f"{line}\n" for line in lines)
    if total:
        problems = "problem" if total == 1 else "problems"
        if fixed is not None:
            summary = f"Found {total} {problems} ({fixed} fixed, {len(findings)} remaining)."
        else:
            files = len({f.path for f in findings})
            in_files = "file" if files == 1 else "files"
            summary = f"Found {total} {problems} in {files} {in_files} ({files_checked} checked)."
        hint = fix_hint(findings, unsafe_fixes)
        lines.append(f"{summary} {hint}" if hint else summary)  # one summary line, always the last
    else:
        checked = "file" if files_checked == 1 else "files"
        lines.append(f"All checks passed ({files_checked} {checked} checked).")
    return "\n".join(lines) + "\n"


def fix_hint(findings: Sequence[Finding], unsafe_fixes: bool) -> str:
    """``[*] 2 fixable with `--fix`; 3 more with `--fix --unsafe-fixes`.`` (empty when nothing is fixable)."""
    available = sum(1 for f in findings if fixable(f, unsafe_fixes))
    hidden = 0 if unsafe_fixes else sum(1 for f in findings if f.fix is not None and f.fix.applicability == "unsafe")
    option = "`--fix --unsafe-fixes`" if unsafe_fixes else "`--fix`"
    if available and hidden:
        return f"[*] {available} fixable with {option}; {hidden} more with `--fix --unsafe-fixes`."
    if available:
        return f"[*] {available} fixable with {option}."
    if hidden:
        return f"{hidden} fixable with `--fix --unsafe-fixes`."
    return ""


def format_statistics(findings: Sequence[Finding], as_json: bool = False) -> str:
    """``--statistics``: ``count<TAB>code<TAB>name`` per rule, most frequent first (ruff's table; empty when there
    is nothing), or a JSON array of ``{"code", "name", "count", "fixable"}``."""
    counts: dict[tuple[str, str], list[int]] = {}
    for f in findings:
        row = counts.setdefault((f.code, f.name), [0, 0])
        row[0] += 1
        row[1] += f.fix is not None
    rows = sorted(counts.items(), key=lambda item: (-item[1][0], item[0][0]))
    if as_json:
        import json

        return json.dumps([{"code": code, "name": name, "count": n, "fixable": fixable}
                           for (code, name), (n, fixable) in rows], indent=2) + "\n"
    width = max((len(str(n)) for _, (n, _) in rows), default=1)
    return "".join(f"{n:>{width}}\t{code}\t{name}\n" for (code, name), (n, _) in rows)


def format_fixed(fixed: Sequence[Finding], verb: str = "Fixed") -> str:
    """``--show-fixes``: what was (or would be) fixed, per file and rule."""
    if not fixed:
        return f"{'No problems fixed' if verb == 'Fixed' else 'No problems would be fixed'}.\n"
    by_path: dict[str, dict[tuple[str, str], int]] = {}
    for f in fixed:
        counts = by_path.setdefault(f.path, {})
        counts[(f.code, f.name)] = counts.get((f.code, f.name), 0) + 1
    problems = "problem" if len(fixed) == 1 else "problems"
    out = [f"{verb} {len(fixed)} {problems}:"]
    for path in sorted(by_path):
        out.append(f"- {path}:")
        for (code, name), n in sorted(by_path[path].items()):
            out.append(f"    {n} \u00d7 {code} ({name})")
    return "\n".join(out) + "\n"


def format_unfixable(findings: Sequence[Finding]) -> str:
    """``--show-fixes``: the findings left without a fix, and why (``no_fix_reason``); a display-only fix is
    shown with its edit, since it is never applied."""
    reasons = [f for f in findings if (f.fix is None and f.extra.get("no_fix_reason"))
               or (f.fix is not None and f.fix.applicability == "display-only")]
    if not reasons:
        return ""
    out = ["Not fixed:"]
    for f in reasons:
        if f.fix is None:
            out.append(f"- {f.location()}: {f.code} {f.extra['no_fix_reason']}")
            continue
        edits = "; ".join(f"{e.line}:{e.column}-{e.end_line}:{e.end_column} -> {e.content!r}" for e in f.fix.edits)
        out.append(f"- {f.location()}: {f.code} display-only fix (shown, never applied): "
                   f"{f.fix.message} [{edits}]")
    return "\n".join(out) + "\n"
