#!/usr/bin/env python3
"""Reliability run (issue 7): lint and fix real and generated code, count every failure.

    python benchmarks/reliability.py --corpus /work/corpus --generated 10000
    python benchmarks/reliability.py --corpus /work/corpus --generated 0 --skip-lint   # fixes only

(a) **lint**: ``python -m nanlint check --isolated --no-cache --select ALL --preview --output-format json``
    over the corpus in a subprocess: files, findings, exit status, seconds, NAN000 / NAN999 findings and
    any traceback on stderr.
(b) **fix**: ``fix_source(..., unsafe=True)`` with every rule on every corpus file (a process pool). Each
    fixed file must: compile; differ from the original only inside the fixed spans; be a fixed point (a
    second fix run changes nothing). The span check is made per fix pass: the edits of each pass are
    recorded (by wrapping ``nanlint.fixes._apply_checked``), and the pass's input and output are compared
    as flattened statement sequences (pre-order, each statement's *header* -- the statement with its
    nested blocks emptied -- dumped by ``ast.dump`` with its depth), after removing the statements whose
    header overlaps an edit (in the input: the replaced or deleted text; in the output: the inserted
    text). Inserted lines (``import torch``, ``clip_grad_norm_(...)``) are statements of their own and
    drop out of the output's sequence; a deleted statement drops out of the input's; everything else must
    match one for one, at the same depth: an edit that re-indents, re-nests or swallows a neighbour fails.
    Inside an edited statement, an edit that replaces an expression must be one expression of the result
    (``y / a + b`` for ``y / (a + b)`` fails: no node spans ``a + b``).
    A sample of fixed files is then copied with CRLF newlines, a BOM, a latin-1 coding cookie and mode
    0751 and fixed with the CLI (``--fix --unsafe-fixes``): the bytes must be exactly the in-process fix
    of that text in that form, newlines, BOM, encoding and mode kept, no temporary file left.
(c) **generated**: ``--generated`` N hypothesmith programs (half ``from_grammar``, half ``from_node``)
    plus N/2 with torch hazards spliced in (``tests/hazards.py``) go through lint and fix with the
    oracle ``tests/hazards.check_program`` (no exception, no NAN999, no NAN000 for a program CPython
    compiles, the fix compiles and is a fixed point).

Prints one table; ``--json`` writes the details (failures with their programs) to a file.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from hazards import ast_of  # noqa: E402 - tests/ is on the path from here on

BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")
OPTIONS = (("max-grad-norm", 1.0),)


# -- (a) the CLI over the corpus ---------------------------------------------------------------------
def lint_corpus(corpus: Path) -> dict[str, Any]:
    from nanlint.config import resolve_settings
    from nanlint.discovery import discover

    settings = resolve_settings([str(corpus)], None, True)
    files = sum(1 for _ in discover([str(corpus)], settings, False))
    command = [sys.executable, "-m", "nanlint", "check", "--isolated", "--no-cache", "--select", "ALL", "--preview",
               "--output-format", "json", str(corpus)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    try:
        findings = json.loads(done.stdout)
    except json.JSONDecodeError:
        findings = None
    by_code: dict[str, int] = {}
    for finding in findings or ():
        by_code[finding["code"]] = by_code.get(finding["code"], 0) + 1
    return {
        "command": " ".join(command[1:]), "files": files, "exit": done.returncode, "seconds": round(seconds, 1),
        "findings": len(findings) if findings is not None else None, "by_code": dict(sorted(by_code.items())),
        "file_errors": [f for f in findings or () if f["code"] == "NAN000"],
        "internal_errors": [f for f in findings or () if f["code"] == "NAN999"],
        "traceback": "Traceback" in done.stderr or "internal error" in done.stderr,
        "stderr_tail": done.stderr[-2000:],
    }


# -- (b) fixes on every corpus file ------------------------------------------------------------------
class _Offsets:
    def __init__(self, text: str) -> None:
        from nanlint.fixspec import split_lines

        self.starts = [0]
        for line in split_lines(text):
            self.starts.append(self.starts[-1] + len(line))

    def at(self, line: int, column_utf8: int, text_line: str) -> int:
        # ast columns are UTF-8 byte offsets
        column = len(text_line.encode("utf-8")[:column_utf8].decode("utf-8", "replace"))
        return self.starts[line - 1] + column


def _statements(tree: ast.Module, text: str) -> list[tuple[int, int, int, str]]:
    """Pre-order (start, header end, depth, header dump) of every statement, except handler and match case."""
    from nanlint.fixspec import split_lines

    lines = split_lines(text) + [""]
    offsets = _Offsets(text)

    def position(node: ast.AST, end: bool = False) -> int:
        line = node.end_lineno if end else node.lineno  # type: ignore[attr-defined]
        column = node.end_col_offset if end else node.col_offset  # type: ignore[attr-defined]
        return offsets.at(line, column, lines[line - 1])

    out: list[tuple[int, int, int, str]] = []

    def visit(node: ast.AST, depth: int) -> None:
        header = copy.copy(node)
        children: list[ast.AST] = []
        for name in BODY_FIELDS:
            value = getattr(node, name, None)
            if isinstance(value, list):
                children.extend(value)
                setattr(header, name, [])
        start = position(node)
        for decorator in getattr(node, "decorator_list", ()):
            start = min(start, position(decorator))
        end = start + 1
        for name, value in ast.iter_fields(header):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.AST) and hasattr(item, "end_lineno") and item.end_lineno is not None:
                    end = max(end, position(item, end=True))
        if not children:
            end = max(end, position(node, end=True))
        out.append((start, end, depth, type(node).__name__ + ":" + ast.dump(header, include_attributes=False)))
        for child in children:
            visit(child, depth + 1)

    for statement in tree.body:
        visit(statement, 0)
    return out


def _masked(statements: list[tuple[int, int, int, str]], spans: list[tuple[int, int]]) -> list[tuple[int, str]]:
    kept = []
    for start, end, depth, dump in statements:
        touched = False
        for a, b in spans:
            if a == b:
                touched = start < a <= end  # an insertion inside the header, or right at its end
            else:
                touched = start < b and a < end
            if touched:
                break
        if not touched:
            kept.append((depth, dump))
    return kept


def _expression_spans(tree: ast.Module, text: str) -> set[tuple[int, int]]:
    from nanlint.fixspec import split_lines

    lines = split_lines(text) + [""]
    offsets = _Offsets(text)
    spans = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.expr, ast.keyword, ast.arg)) and getattr(node, "end_lineno", None) is not None:
            spans.add((offsets.at(node.lineno, node.col_offset, lines[node.lineno - 1]),
                       offsets.at(node.end_lineno, node.end_col_offset, lines[node.end_lineno - 1])))
    return spans


def _strip_parens(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) and the spans inside each pair of enclosing parentheses of text[start:end]."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    out = [(start, end)]
    while end - start >= 2 and text[start] == "(" and text[end - 1] == ")":
        start, end = start + 1, end - 1
        out.append((start, end))
    return out


def check_pass(before: str, after: str, edits: list[tuple[int, int, str]]) -> list[str]:
    """Problems of one fix pass: ``edits`` (start, end, content) in ``before`` coordinates made ``after``."""
    problems = []
    old_tree, new_tree = ast_of(before), ast_of(after)
    if new_tree is None:
        return ["a pass produced code that does not parse"]
    if old_tree is None:
        return []
    old_spans, new_spans = [], []
    shift = 0
    for start, end, content in sorted(set(edits)):
        old_spans.append((start, end))
        new_spans.append((start + shift, start + shift + len(content)))
        shift += len(content) - (end - start)
    old = _masked(_statements(old_tree, before), old_spans)
    new = _masked(_statements(new_tree, after), new_spans)
    if old != new:
        index = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        left = old[index] if index < len(old) else None
        right = new[index] if index < len(new) else None
        problems.append(f"a statement outside the edits changed: {str(left)[:300]} -> {str(right)[:300]}")
    nodes = _expression_spans(new_tree, after)
    for (start, end, content), (new_start, new_end) in zip(sorted(set(edits)), new_spans):
        if start == end or "\n" in content or not content.strip():
            continue  # an insertion (".clamp_min(eps)", a statement): checked by the statement comparison
        if not any(span in nodes for span in _strip_parens(after, new_start, new_end)):
            old_nodes = _expression_spans(old_tree, before)
            if any(span in old_nodes for span in _strip_parens(before, start, end)):  # it replaced an expression
                problems.append(f"the replacement {content!r} is not one expression of the result "
                                f"(operator precedence?) at offset {new_start}")
    return problems


_RECORD: list[tuple[str, str, list[tuple[int, int, str]]]] = []


def _install_recorder() -> None:
    import nanlint.fixes as fixes

    real = fixes._apply_checked

    def recording(path, text, lines, findings, chosen, request):  # type: ignore[no-untyped-def]
        result = real(path, text, lines, findings, chosen, request)
        kept, _, new_text = result[0], result[1], result[2]
        if kept:
            edits = [(e.start, e.end, e.content or "") for c in kept for e in c.edits]
            _RECORD.append((text, new_text, edits))
        return result

    fixes._apply_checked = recording


def _fix_one(path: str) -> dict[str, Any]:
    from hazards import REQUEST
    from nanlint.engine import decode_source
    from nanlint.fixes import _apply, _Span, fix_source

    out: dict[str, Any] = {"path": path, "problems": []}
    with open(path, "rb") as handle:
        data = handle.read()
    text, _, error = decode_source(path, data)
    if error is not None or text is None:
        out["skipped"] = error.message if error else "empty"
        return out
    del _RECORD[:]
    try:
        outcome = fix_source(path, text, REQUEST, unsafe=True)
    except Exception as exc:  # noqa: BLE001
        out["problems"].append(f"fix_source raised {type(exc).__name__}: {exc}")
        return out
    out["findings"] = len(outcome.original)
    out["applied"] = len(outcome.applied)
    out["resolved"] = len(outcome.resolved)
    out["failed"] = [f"{f.finding.code}: {f.reason}" for f in outcome.failed]
    out["passes"] = outcome.passes
    out["internal"] = [f.message for f in outcome.remaining if f.code == "NAN999"]
    out["problems"].extend(f"NAN999 after fixing: {m}" for m in out["internal"])
    out["changed"] = outcome.changed
    if not outcome.changed:
        return out
    records = list(_RECORD)
    if not records or records[0][0] != text or records[-1][1] != outcome.source:
        out["problems"].append("the recorded passes do not lead from the input to the output")
    for before, after, edits in records:
        if _apply(before, [_Span(s, e, c) for s, e, c in edits])[0] != after:
            out["problems"].append("a pass's text is not its edits applied")
        out["problems"].extend(check_pass(before, after, edits))
    if ast_of(outcome.source) is None:
        out["problems"].append("the fixed file does not parse")
    again = fix_source(path, outcome.source, REQUEST, unsafe=True)
    if again.changed:
        out["problems"].append("a second fix run changed the file again")
    return out


def _init_worker() -> None:
    _install_recorder()
    sys.setrecursionlimit(10_000)


def fix_corpus(corpus: Path, jobs: int) -> dict[str, Any]:
    files = sorted(str(p) for p in corpus.rglob("*.py") if p.is_file())
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs, initializer=_init_worker) as pool:
        results = list(pool.imap_unordered(_fix_one, files, chunksize=4))
    seconds = time.perf_counter() - started
    changed = [r for r in results if r.get("changed")]
    return {
        "files": len(files), "seconds": round(seconds, 1),
        "skipped": sum(1 for r in results if "skipped" in r),
        "findings": sum(r.get("findings", 0) for r in results),
        "applied": sum(r.get("applied", 0) for r in results),
        "resolved": sum(r.get("resolved", 0) for r in results),
        "failed_fixes": sum(len(r.get("failed", ())) for r in results),
        "failed_reasons": sorted({reason for r in results for reason in r.get("failed", ())}),
        "files_changed": len(changed), "passes": sum(r.get("passes", 0) for r in results),
        "problems": [{"path": r["path"], "problems": r["problems"]} for r in results if r["problems"]],
        "changed_paths": sorted(r["path"] for r in changed),
    }


# -- (b2) encodings, newlines, mode through the CLI ---------------------------------------------------
VARIANTS = ("crlf", "bom", "latin1", "crlf+bom")


def _variant(text: str, kind: str) -> Optional[tuple[bytes, str]]:
    """(bytes on disk, the text nanlint decodes from them)."""
    if "crlf" in kind:
        if "\r" in text:
            return None
        text = text.replace("\n", "\r\n")
    if kind == "latin1":
        text = "# -*- coding: latin-1 -*-\n# caf\xe9\n" + text
        try:
            return text.encode("latin-1"), text
        except UnicodeEncodeError:
            return None
    data = text.encode("utf-8")
    if "bom" in kind:
        data = b"\xef\xbb\xbf" + data
    return data, text


def encodings(paths: list[str], sample: int) -> dict[str, Any]:
    from hazards import REQUEST
    from nanlint.fixes import fix_source

    problems: list[str] = []
    expected: dict[str, tuple[bytes, str]] = {}
    work = Path(tempfile.mkdtemp(prefix="nanlint-reliability-"))
    try:
        for index, path in enumerate(paths[:sample]):
            text = Path(path).read_text(encoding="utf-8")
            for kind in VARIANTS:
                made = _variant(text, kind)
                if made is None:
                    continue
                data, decoded = made
                name = f"f{index:03d}_{kind.replace('+', '_')}.py"
                (work / name).write_bytes(data)
                os.chmod(work / name, 0o751)
                fixed = fix_source(name, decoded, REQUEST, unsafe=True).source
                encoding = "latin-1" if kind == "latin1" else "utf-8"
                want = fixed.encode(encoding)
                if "bom" in kind:
                    want = b"\xef\xbb\xbf" + want
                expected[name] = (want, kind)
        done = subprocess.run([sys.executable, "-m", "nanlint", "check", "--isolated", "--no-cache", "--select",
                               "ALL", "--preview", "--fix", "--unsafe-fixes", str(work)],
                              capture_output=True, text=True, cwd=REPO)
        if done.returncode not in (0, 1) or "Traceback" in done.stderr:
            problems.append(f"CLI exit {done.returncode}: {done.stderr[-500:]}")
        for name, (want, kind) in expected.items():
            got = (work / name).read_bytes()
            if got != want:
                problems.append(f"{name}: bytes differ from the in-process fix of the same text")
            if "crlf" in kind and b"\n" in got.replace(b"\r\n", b""):
                problems.append(f"{name}: a bare LF in a CRLF file")
            if ("bom" in kind) != got.startswith(b"\xef\xbb\xbf"):
                problems.append(f"{name}: BOM not kept")
            if stat.S_IMODE(os.stat(work / name).st_mode) != 0o751:
                problems.append(f"{name}: mode not kept")
        extra = sorted(p.name for p in work.iterdir() if p.name not in expected)
        if extra:
            problems.append(f"files left behind: {extra[:5]}")
        return {"files": len(expected), "sources": min(sample, len(paths)), "exit": done.returncode,
                "problems": problems}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- (c) generated programs ----------------------------------------------------------------------------
def _generated_worker(args: tuple[str, int, int]) -> dict[str, Any]:
    kind, count, seed = args
    import hypothesmith
    from hypothesis import HealthCheck, given, seed as hseed, settings

    from hazards import check_program, generated_programs, spliced_programs

    strategy = {"grammar": hypothesmith.from_grammar(), "node": hypothesmith.from_node(),
                "spliced": spliced_programs(generated_programs())}[kind]
    stats: dict[str, int] = {}
    failures: list[dict[str, Any]] = []

    @hseed(seed)
    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(source: str) -> None:
        problems = check_program(source, stats=stats)
        if problems:
            failures.append({"kind": kind, "problems": problems, "source": source})

    sys.setrecursionlimit(10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()
    return {"kind": kind, "stats": stats, "failures": failures}


def generated(count: int, jobs: int, seed: int) -> dict[str, Any]:
    per = max(1, jobs)
    tasks = []
    for kind, total in (("grammar", count - count // 2), ("node", count // 2), ("spliced", count // 2)):
        chunk = -(-total // (per * 4))
        made = 0
        index = 0
        while made < total:
            n = min(chunk, total - made)
            tasks.append((kind, n, seed + index * 7919 + {"grammar": 1, "node": 2, "spliced": 3}[kind]))
            made += n
            index += 1
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        results = pool.map(_generated_worker, tasks, chunksize=1)
    seconds = time.perf_counter() - started
    by_kind: dict[str, dict[str, int]] = {}
    failures = []
    for result in results:
        totals = by_kind.setdefault(result["kind"], {})
        for key, value in result["stats"].items():
            totals[key] = totals.get(key, 0) + value
        failures.extend(result["failures"])
    return {"seconds": round(seconds, 1), "by_kind": by_kind, "failures": failures}


# -- the table ------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--generated", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sample", type=int, default=60, help="changed files copied with CRLF/BOM/latin-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-lint", action="store_true")
    parser.add_argument("--skip-fix", action="store_true")
    parser.add_argument("--json", type=Path, help="write the details here")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    rows: list[tuple[str, str, str]] = []
    failures = 0
    if not args.skip_lint:
        lint = report["lint"] = lint_corpus(args.corpus)
        bad = len(lint["internal_errors"]) + int(lint["traceback"]) + int(lint["exit"] not in (0, 1))
        failures += bad
        rows.append(("(a) lint corpus (CLI, ALL + preview)",
                     f"{lint['files']} files, {lint['findings']} findings, exit {lint['exit']}, "
                     f"{lint['seconds']} s", f"NAN999 {len(lint['internal_errors'])}, NAN000 "
                     f"{len(lint['file_errors'])}, traceback {'yes' if lint['traceback'] else 'no'}"))
    if not args.skip_fix:
        fix = report["fix"] = fix_corpus(args.corpus, args.jobs)
        failures += len(fix["problems"])
        rows.append(("(b) fix every corpus file (unsafe)",
                     f"{fix['files']} files, {fix['findings']} findings, {fix['applied']} fixes applied + "
                     f"{fix['resolved']} resolved, {fix['files_changed']} files changed, {fix['seconds']} s",
                     f"{len(fix['problems'])} files with problems; {fix['failed_fixes']} fixes withheld by the "
                     f"fixer's own checks"))
        enc = report["encodings"] = encodings(fix["changed_paths"], args.sample)
        failures += len(enc["problems"])
        rows.append(("(b) CRLF / BOM / latin-1 / mode 0751 (CLI --fix)",
                     f"{enc['files']} files from {enc['sources']} sources, exit {enc['exit']}",
                     f"{len(enc['problems'])} problems"))
    if args.generated:
        gen = report["generated"] = generated(args.generated, args.jobs, args.seed)
        failures += len(gen["failures"])
        for kind, stats in sorted(gen["by_kind"].items()):
            mine = sum(1 for f in gen["failures"] if f["kind"] == kind)
            rows.append((f"(c) generated: {kind}",
                         f"{stats.get('programs', 0)} programs, {stats.get('with_findings', 0)} with findings, "
                         f"{stats.get('findings', 0)} findings, {stats.get('fixed', 0)} fixed",
                         f"{mine} failures; {stats.get('libcst_refused', 0)} valid programs libcst cannot parse "
                         f"(NAN000, not counted)"))
        rows.append(("(c) generated: time", f"{gen['seconds']} s on {args.jobs} processes", ""))
    width = [max(len(row[i]) for row in rows + [("check", "measured", "failures")]) for i in range(3)]
    print(f"| {'check':<{width[0]}} | {'measured':<{width[1]}} | {'failures':<{width[2]}} |")
    print(f"|{'-' * (width[0] + 2)}|{'-' * (width[1] + 2)}|{'-' * (width[2] + 2)}|")
    for row in rows:
        print(f"| {row[0]:<{width[0]}} | {row[1]:<{width[1]}} | {row[2]:<{width[2]}} |")
    for section in ("lint", "fix", "encodings", "generated"):
        part = report.get(section, {})
        for item in (part.get("problems") or part.get("failures") or part.get("internal_errors") or [])[:10]:
            print(f"{section}: {json.dumps(item)[:600]}")
    if "fix" in report and report["fix"]["failed_reasons"]:
        print("fixes withheld (reasons):")
        for reason in report["fix"]["failed_reasons"][:20]:
            print(f"  {reason}")
    print(f"total failures: {failures}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
