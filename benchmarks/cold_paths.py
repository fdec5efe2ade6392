#!/usr/bin/env python3
"""Where a cold run's time goes, and what the alternatives the issue names could save (issue 15, item "Cold").

    python benchmarks/cold_paths.py /work/corpus/timm            # every file, one process
    python benchmarks/cold_paths.py /work/corpus --every 4        # every fourth file of the corpus

One process, every file, every step timed in the same loop, so the ratios share one load. Per file:

* ``libcst whole``: ``libcst.parse_module`` of the whole file: the reference (the issue's "bare libcst parse");
* ``ast whole``: ``ast.parse`` of the whole file; ``ast walk``: one ``ast.walk`` over that tree (the least any
  analysis on the stdlib tree must spend: a visit of every node);
* ``nanlint``: ``engine.lint_source`` with the default rules (what a cold worker does per file), and the
  part of it that is libcst parsing the second stage's sliced text (``libcst kept``);
* ``nanlint, collector running``: the same call with the cyclic garbage collector left running, as before
  ``nanlint.collector`` paused it for each file; ``collector in ...``: the time the collector itself took in
  each (``gc.callbacks``). Both calls end with a young-generation collection, timed with them: the one that
  frees the file's reference cycles once the collector runs again;
* ``libcst finding defs``: libcst parsing only the top-level definitions (and module-level statements) that
  hold a finding of the cold run: what libcst would still parse if the analysis ran on the stdlib tree and
  libcst were kept for exact positions and fixes.

It prints the totals and each as a ratio of ``libcst whole``. The ratio ``ast whole + ast walk + libcst finding
defs`` is the floor of an "``ast`` first, libcst only where a finding is" design: the analysis itself (today
a walk of libcst's tree with every rule) comes on top of it.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import gc
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def files_under(root: Path) -> list[Path]:
    out = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        out.extend(Path(folder) / n for n in sorted(names) if n.endswith(".py"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--every", type=int, default=1, help="take every n-th file")
    args = parser.parse_args(argv)

    import libcst

    from nanlint import cst_pass, engine, screening
    from nanlint.config import Settings
    from nanlint.files import LintRequest

    request = LintRequest(Settings().codes_for("x.py"))
    rules = request.rule_classes()
    totals = dict.fromkeys(("libcst whole", "ast whole", "ast walk", "nanlint", "libcst kept",
                            "nanlint, collector running", "collector in nanlint",
                            "collector in nanlint, collector running", "libcst finding defs"), 0.0)
    lines = kept_lines = finding_lines = 0
    files = files_under(args.root)[::args.every]
    original_parse = libcst.parse_module
    kept_time = [0.0]

    def timed_parse(text: str, *a, **k):  # the engine's own libcst parses, timed inside lint_source
        start = time.perf_counter()
        try:
            return original_parse(text, *a, **k)
        finally:
            kept_time[0] += time.perf_counter() - start

    collecting = [0.0, 0.0]  # seconds in the collector; when the running collection started

    def on_collection(phase: str, info: dict) -> None:
        if phase == "start":
            collecting[1] = time.perf_counter()
        else:
            collecting[0] += time.perf_counter() - collecting[1]

    gc.callbacks.append(on_collection)

    def timed_lint(path: Path, source: str, paused: bool):  # lint_source, and the collection that follows it
        engine.collector_paused = paused_collector if paused else contextlib.nullcontext
        collected = collecting[0]
        start = time.perf_counter()
        result = engine.lint_source(str(path), source, request)
        gc.collect(0)
        seconds = time.perf_counter() - start
        engine.collector_paused = paused_collector
        return result, seconds, collecting[0] - collected

    paused_collector = engine.collector_paused
    for path in files:
        source = path.read_bytes().decode("utf-8", "replace")
        lines += source.count("\n")
        start = time.perf_counter()
        try:
            libcst.parse_module(source)
        except Exception:
            continue
        totals["libcst whole"] += time.perf_counter() - start
        start = time.perf_counter()
        tree = ast.parse(source)
        totals["ast whole"] += time.perf_counter() - start
        start = time.perf_counter()
        for _ in ast.walk(tree):
            pass
        totals["ast walk"] += time.perf_counter() - start
        _, seconds, collector = timed_lint(path, source, paused=False)
        totals["nanlint, collector running"] += seconds
        totals["collector in nanlint, collector running"] += collector
        kept_time[0] = 0.0
        cst_pass.cst.parse_module = timed_parse
        result, seconds, collector = timed_lint(path, source, paused=True)
        totals["nanlint"] += seconds
        totals["collector in nanlint"] += collector
        cst_pass.cst.parse_module = original_parse
        totals["libcst kept"] += kept_time[0]
        plan = screening.plan(source, engine.screened_rules(rules, source), str(path))  # as the engine does
        kept_lines += plan.kept_lines if plan is not None and plan.text is not None else (
            0 if plan is not None else source.count("\n"))
        # the top-level statements holding a finding: what libcst would parse for positions and fixes
        holding = sorted({f.line for f in result.findings if f.code not in ("NAN000", "NAN999")})
        if holding:
            text_lines = source.split("\n")
            pieces = []
            for statement in tree.body:
                first = min([statement.lineno, *(d.lineno for d in getattr(statement, "decorator_list", []))])
                last = statement.end_lineno or statement.lineno
                if any(first <= line <= last for line in holding):
                    pieces.append("\n".join(text_lines[first - 1:last]))
            text = "\n".join(pieces) + "\n"
            finding_lines += text.count("\n")
            start = time.perf_counter()
            libcst.parse_module(text)
            totals["libcst finding defs"] += time.perf_counter() - start

    reference = totals["libcst whole"]
    print(f"{len(files)} files, {lines:,} lines under {args.root}; one process; Python {sys.version.split()[0]}")
    print(f"lines kept by the second stage: {kept_lines:,} ({kept_lines / max(lines, 1):.1%}); "
          f"lines in top-level statements holding a finding: {finding_lines:,} ({finding_lines / max(lines, 1):.2%})")
    print()
    print("| step | seconds | x libcst whole |")
    print("|---|---|---|")
    for name, seconds in totals.items():
        print(f"| {name} | {seconds:.2f} | {seconds / reference:.3f} |")
    floor = totals["ast whole"] + totals["ast walk"] + totals["libcst finding defs"]
    print(f"| floor of 'ast first, libcst where a finding is' (ast whole + ast walk + libcst finding defs) "
          f"| {floor:.2f} | {floor / reference:.3f} |")
    print(f"| nanlint minus its libcst parses (screens, compile, walk, rules, positions) "
          f"| {totals['nanlint'] - totals['libcst kept']:.2f} | "
          f"{(totals['nanlint'] - totals['libcst kept']) / reference:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
