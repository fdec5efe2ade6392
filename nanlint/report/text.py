from __future__ import annotations

from typing import Sequence

from ..finding import Finding


def format_text(findings: Sequence[Finding], files_checked: int) -> str:
    lines = [f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}" for f in findings]
    if findings:
        files = len({f.path for f in findings})
        problems = "problem" if len(findings) == 1 else "problems"
        in_files = "file" if files == 1 else "files"
        lines.append(f"Found {len(findings)} {problems} in {files} {in_files} ({files_checked} checked).")
    else:
        checked = "file" if files_checked == 1 else "files"
        lines.append(f"All checks passed ({files_checked} {checked} checked).")
    return "\n".join(lines) + "\n"


def format_statistics(findings: Sequence[Finding]) -> str:
    counts: dict[tuple[str, str], int] = {}
    for f in findings:
        counts[(f.code, f.name)] = counts.get((f.code, f.name), 0) + 1
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0][0]))
    width = max((len(str(n)) for _, n in rows), default=1)
    return "".join(f"{n:>{width}}\t{code}\t{name}\n" for (code, name), n in rows)
