#!/usr/bin/env python3
"""Audit what ``nanlint check --fix --unsafe-fixes`` does to real code: does every fix keep the code working?

    python benchmarks/fix_audit.py --corpus /work/corpus --libs /work/libs --python /tmp/auditvenv/bin/python
    python benchmarks/fix_audit.py --libs /work/libs --targets kornia,torchmetrics   # a subset

Targets: the corpus's packages (``--corpus``: transformers, diffusers, timm, pytorch_lightning) and the three
libraries unpacked from their wheels under ``--libs`` (``pip download --no-deps`` pytorch-metric-learning
2.9.0, kornia 0.9.0, torchmetrics 1.9.0, then ``unzip``). For each target:

1. every ``.py`` file is fixed in memory as ``--fix --unsafe-fixes`` fixes it (:func:`nanlint.fixes.fix_source`,
   the default rules, ``unsafe=True``) and the changed files are written into a copy of the tree under
   ``--out`` (the sources are never touched);
2. every fixed module is compiled, and imported in a fresh interpreter (``--python``: one with torch and the
   libraries' dependencies) from the copy and from the original; an import that works in the original and
   fails in the copy is a failure of the fix, one that fails in both is skipped and counted with its reason
   (a missing dependency);
3. every edit is listed with its rule and, where it writes ``torch.finfo(<receiver>.dtype)``, the receiver,
   whether it is the guarded expression itself, the kind the value analysis gave it
   (:mod:`nanlint.analysis.kinds`) and why the fixer took it as floating. A receiver is *bad* when the
   analysis says it is not a floating tensor (int, bool, a number, a list, numpy) or when a ``finfo`` edit
   carries no receiver record;
4. every top-level function that an edit touches, in a module that imports both ways, is called with small
   random float tensors (shapes (4, 3), (2, 3, 4), (8,); every required positional argument one tensor) until
   the original returns; the fixed function must return the same values (``allclose``, rtol 1e-3) away from
   the trigger and finite values at the trigger (the same call with zeros). The table counts the functions
   covered.

Benchmarks are scripts, not tests: this prints a markdown table (``benchmarks/README.md`` keeps one) and
exits 1 when a bad receiver, a compile failure or an import failure caused by a fix is found.
"""
from __future__ import annotations

import argparse
import ast
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nanlint.analysis import kinds  # noqa: E402

CORPUS_PACKAGES = {"transformers": "transformers", "diffusers": "diffusers", "timm": "timm",
                   "pytorch_lightning": "pytorch_lightning"}
LIBRARIES = ("pytorch_metric_learning", "kornia", "torchmetrics")
NOT_FLOATING = {kinds.INT_TENSOR, kinds.BOOL_TENSOR, kinds.PY_INT, kinds.PY_FLOAT, kinds.NUMPY, kinds.SEQUENCE}


@dataclass
class Target:
    name: str
    import_root: Path  # the directory that goes on sys.path
    package: Path  # the package directory under it


@dataclass
class EditRecord:
    path: str
    line: int
    rule: str
    applicability: str
    finfo: bool  # the edit reads torch.finfo(<receiver>.dtype)
    receiver: Optional[str] = None
    guarded: Optional[bool] = None
    kind: Optional[str] = None
    basis: Optional[str] = None

    @property
    def bad(self) -> bool:
        return self.finfo and (self.kind is None or self.kind in NOT_FLOATING)


@dataclass
class FileResult:
    path: str
    changed: bool
    fixed: str = ""
    edits: list = field(default_factory=list)
    display_only: int = 0
    no_fix: Counter = field(default_factory=Counter)
    error: str = ""


def _request():
    from nanlint.engine import LintRequest
    from nanlint.rules import ALL_RULES

    rules = tuple(r for r in ALL_RULES if r.default_on())
    return LintRequest(rules, None, (("max-grad-norm", 1.0),))


_REQUEST = None


def fix_one(args: tuple[str, str]) -> FileResult:
    """Fix one file in memory (as ``--fix --unsafe-fixes`` does) and record every applied edit."""
    global _REQUEST
    from nanlint.fixes import fix_source

    path, display = args
    if _REQUEST is None:
        _REQUEST = _request()
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return FileResult(display, False, error=f"unreadable: {exc}")
    try:
        outcome = fix_source(display, source, _REQUEST, unsafe=True)
    except Exception as exc:  # a crash of the fixer is a finding of this audit
        return FileResult(display, False, error=f"{type(exc).__name__}: {exc}")
    result = FileResult(display, outcome.source != source, outcome.source if outcome.source != source else "")
    for finding in outcome.applied:
        assert finding.fix is not None
        text = "".join(e.content for e in finding.fix.edits)
        receiver = finding.extra.get("dtype_receiver")
        record = EditRecord(display, finding.line, finding.code, finding.fix.applicability, "finfo(" in text)
        if isinstance(receiver, dict):
            record.receiver, record.guarded = str(receiver["receiver"]), bool(receiver["guarded"])
            record.kind, record.basis = str(receiver["kind"]), str(receiver["basis"])
            if record.basis.startswith("a cast"):
                record.kind = kinds.FLOAT_TENSOR
        result.edits.append(record)
    for finding in outcome.remaining:
        if finding.fix is not None and finding.fix.applicability == "display-only":
            result.display_only += 1
        elif finding.fix is None and finding.extra.get("no_fix_reason"):
            reason = str(finding.extra["no_fix_reason"])
            result.no_fix[f"{finding.code}: {_reason_key(reason)}"] += 1
    return result


def _reason_key(reason: str) -> str:
    """The reason without the names in it (``\\`x\\` is of unknown kind`` -> ``is of unknown kind``)."""
    import re

    return re.sub(r"`[^`]*`", "`...`", reason)[:90]


# -- imports and calls, in a fresh interpreter --------------------------------------------------------------
IMPORT_PROBE = textwrap.dedent("""
    import importlib, json, sys, traceback, warnings
    warnings.simplefilter("ignore")
    root, modules = sys.argv[1], json.loads(sys.stdin.read())
    sys.path[:0] = [root] + sys.argv[2:]  # the tree, then the other targets' originals (diffusers imports transformers)
    out = {}
    for name in modules:
        try:
            importlib.import_module(name)
            out[name] = ""
        except BaseException as exc:
            out[name] = (type(exc).__name__ + ": " + str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:160]
    print(json.dumps(out))
""")

CALL_PROBE = textwrap.dedent("""
    import importlib, inspect, json, math, sys, warnings
    warnings.simplefilter("ignore")
    import torch
    original_root, fixed_root, todo = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
    sys.path[:0] = sys.argv[3:]  # the other targets' originals
    SHAPES = [(4, 3), (2, 3, 4), (8,)]

    def load(root, module):
        for key in [k for k in sys.modules if k == module.split(".")[0] or k.startswith(module.split(".")[0] + ".")]:
            del sys.modules[key]
        sys.path.insert(0, root)
        try:
            return importlib.import_module(module)
        finally:
            sys.path.remove(root)

    def tensors(out):
        if isinstance(out, torch.Tensor):
            return [out]
        if isinstance(out, (tuple, list)):
            return [t for o in out for t in tensors(o)]
        if isinstance(out, dict):
            return [t for o in out.values() for t in tensors(o)]
        return []

    def call(fn, args):
        torch.manual_seed(0)
        with torch.no_grad():
            return tensors(fn(*[a.clone() for a in args]))

    results = []
    for module, names in todo.items():
        try:
            a, b = load(original_root, module), load(fixed_root, module)
        except BaseException as exc:
            results += [{"module": module, "name": n, "status": "import: " + type(exc).__name__} for n in names]
            continue
        for name in names:
            fa, fb = getattr(a, name, None), getattr(b, name, None)
            status = "not callable"
            if callable(fa) and callable(fb):
                try:
                    sig = inspect.signature(fa)
                    required = [p for p in sig.parameters.values() if p.default is p.empty
                                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
                except (TypeError, ValueError):
                    required = None
                status = "no float-tensor call works"
                for shape in SHAPES if required is not None else []:
                    torch.manual_seed(1)
                    args = [torch.rand(shape) * 0.9 + 0.05 for _ in required]  # small, away from 0
                    try:
                        before = call(fa, args)
                    except BaseException:
                        continue
                    if not before or not all(t.is_floating_point() for t in before):
                        continue
                    try:
                        after = call(fb, args)
                    except BaseException as exc:
                        status = "fixed raises: " + type(exc).__name__
                        break
                    same = len(before) == len(after) and all(
                        x.shape == y.shape and torch.allclose(x, y, rtol=1e-3, atol=1e-5, equal_nan=True)
                        for x, y in zip(before, after))
                    zeros = [torch.zeros(shape) for _ in required]
                    try:
                        at_trigger = call(fb, zeros)
                        finite = all(bool(torch.isfinite(t).all()) for t in at_trigger if t.is_floating_point())
                        try:
                            original_finite = all(bool(torch.isfinite(t).all()) for t in call(fa, zeros)
                                                  if t.is_floating_point())
                        except BaseException:
                            original_finite = False
                    except BaseException as exc:
                        finite, original_finite = False, None
                    status = ("match" if same else "differs") + (", finite at zeros" if finite else ", NON-FINITE at zeros") \\
                        + (" (original non-finite there)" if original_finite is False else "")
                    break
            results.append({"module": module, "name": name, "status": status})
    print(json.dumps(results))
""")


def run_probe(python: str, probe: str, argv: list[str], payload: object, timeout: int = 900) -> object:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([python, "-c", probe, *argv], input=json.dumps(payload), capture_output=True, text=True,
                          timeout=timeout, env=env)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"probe failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def touched_functions(source: str, lines: set[int]) -> list[str]:
    """Top-level functions whose body holds one of ``lines``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and any(
                node.lineno <= line <= (node.end_lineno or node.lineno) for line in lines):
            names.append(node.name)
    return names


# -- one target -------------------------------------------------------------------------------------------
def audit(target: Target, out: Path, python: str, jobs: int, others: list[str]) -> dict:
    started = time.perf_counter()
    files = sorted(p for p in target.package.rglob("*.py"))
    copy_root = out / target.name
    if copy_root.exists():
        shutil.rmtree(copy_root)
    shutil.copytree(target.package, copy_root / target.package.name)
    work = [(str(p), str(p.relative_to(target.import_root))) for p in files]
    with multiprocessing.Pool(jobs) as pool:
        results = pool.map(fix_one, work, chunksize=8)
    changed = [r for r in results if r.changed]
    compile_failures = []
    for r in changed:
        (copy_root / r.path).write_text(r.fixed, encoding="utf-8")
        try:
            compile(r.fixed, r.path, "exec")
        except SyntaxError as exc:
            compile_failures.append(f"{r.path}: {exc}")
    modules = {module_name(copy_root / r.path, copy_root): r for r in changed}
    before = run_probe(python, IMPORT_PROBE, [str(target.import_root), *others], sorted(modules)) if modules else {}
    after = run_probe(python, IMPORT_PROBE, [str(copy_root), *others], sorted(modules)) if modules else {}
    imported = [m for m in modules if not before[m] and not after[m]]  # type: ignore[index]
    broken = {m: after[m] for m in modules if not before[m] and after[m]}  # type: ignore[index]
    skipped = Counter(before[m].split(":")[0] + ": " + before[m].split(": ", 1)[-1][:60]  # type: ignore[index]
                      for m in modules if before[m])  # type: ignore[index]
    todo = {}
    for m in imported:
        r = modules[m]
        names = touched_functions(r.fixed, {e.line for e in r.edits})
        if names:
            todo[m] = names
    calls = run_probe(python, CALL_PROBE, [str(target.import_root), str(copy_root), *others], todo) if todo else []
    edits = [e for r in results for e in r.edits]
    return {
        "target": target.name,
        "files": len(files),
        "lines": sum(len(Path(p).read_text(encoding="utf-8", errors="replace").splitlines()) for p, _ in work),
        "seconds": time.perf_counter() - started,
        "fixer_errors": [f"{r.path}: {r.error}" for r in results if r.error],
        "changed": len(changed),
        "edits": [e.__dict__ for e in edits],
        "display_only": sum(r.display_only for r in results),
        "no_fix": sum((r.no_fix for r in results), Counter()),
        "compile_failures": compile_failures,
        "modules": len(modules),
        "imported": len(imported),
        "import_broken": broken,
        "import_skipped": skipped,
        "calls": calls,
    }


def summarize(report: dict) -> dict:
    edits = [EditRecord(**e) for e in report["edits"]]
    finfo = [e for e in edits if e.finfo]
    calls = report["calls"]
    called = [c for c in calls if c["status"].startswith(("match", "differs", "fixed raises"))]
    return {
        "edits": len(edits),
        "by_rule": Counter(e.rule for e in edits),
        "finfo": len(finfo),
        "guarded": sum(1 for e in finfo if e.guarded),
        "kinds": Counter(f"{e.kind} ({e.basis})" if e.kind != kinds.FLOAT_TENSOR else e.kind for e in finfo),
        "bad": [e for e in edits if e.bad],
        "called": len(called),
        "match": sum(1 for c in called if c["status"].startswith("match")),
        "finite": sum(1 for c in called if "finite at zeros" in c["status"] and "NON-FINITE" not in c["status"]),
        "repaired": sum(1 for c in called if "original non-finite" in c["status"] and "NON-FINITE" not in c["status"]),
    }


def table(reports: list[dict]) -> str:
    rows = ["| target | files | lines | files fixed | edits (by rule) | `finfo` edits | receiver = guarded | "
            "receiver kinds | bad receivers | compile failures | imports ok / broken by a fix / skipped | "
            "functions called: same away from trigger / finite at zeros (of which repaired) | display-only shown |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        s = summarize(r)
        by_rule = ", ".join(f"{k} {v}" for k, v in sorted(s["by_rule"].items()))
        kinds_text = "; ".join(f"{k}: {v}" for k, v in s["kinds"].most_common())
        rows.append(
            f"| {r['target']} | {r['files']} | {r['lines']:,} | {r['changed']} | {s['edits']} ({by_rule}) | "
            f"{s['finfo']} | {s['guarded']} | {kinds_text or '-'} | {len(s['bad'])} | {len(r['compile_failures'])} | "
            f"{r['imported']} / {len(r['import_broken'])} / {sum(r['import_skipped'].values())} | "
            f"{s['called']}: {s['match']} / {s['finite']} ({s['repaired']}) | {r['display_only']} |")
    return "\n".join(rows)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="the shared corpus (transformers, diffusers, timm, lightning)")
    parser.add_argument("--libs", type=Path, help="a folder with the unpacked libraries " + ", ".join(LIBRARIES))
    parser.add_argument("--targets", default="", help="comma-separated subset of the target names")
    parser.add_argument("--out", type=Path, default=Path("/tmp/nanlint-fix-audit"), help="where the copies go")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the import and call probes")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="write the full report (every edit, import, call) here")
    args = parser.parse_args(argv)
    targets: list[Target] = []
    if args.corpus:
        for name, package in CORPUS_PACKAGES.items():
            root = args.corpus / name
            for pkg in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
                targets.append(Target(pkg.name if len(list(root.iterdir())) > 1 else name, root, pkg))
    if args.libs:
        for name in LIBRARIES:
            if (args.libs / name).is_dir():
                targets.append(Target(name, args.libs, args.libs / name))
    roots = sorted({str(t.import_root) for t in targets})
    if args.targets:
        wanted = set(args.targets.split(","))
        targets = [t for t in targets if t.name in wanted]
    if not targets:
        parser.error("no targets: give --corpus and/or --libs")
    args.out.mkdir(parents=True, exist_ok=True)
    reports = []
    for target in targets:
        others = [root for root in roots if root != str(target.import_root)]
        report = audit(target, args.out, args.python, args.jobs, others)
        s = summarize(report)
        print(f"{target.name}: {report['files']} files, {report['changed']} fixed, {s['edits']} edits, "
              f"{len(s['bad'])} bad receivers, {len(report['import_broken'])} imports broken, "
              f"{report['seconds']:.0f} s", file=sys.stderr)
        reports.append(report)
    print(table(reports))
    problems = 0
    for r in reports:
        for e in summarize(r)["bad"]:
            print(f"BAD RECEIVER {e.path}:{e.line} {e.rule} `{e.receiver}` kind {e.kind}", file=sys.stderr)
            problems += 1
        for m, why in r["import_broken"].items():
            print(f"IMPORT BROKEN BY A FIX {r['target']}: {m}: {why}", file=sys.stderr)
            problems += 1
        for line in r["compile_failures"] + r["fixer_errors"]:
            print(f"FAILED {r['target']}: {line}", file=sys.stderr)
            problems += 1
        for reason, n in r["import_skipped"].most_common(3):
            print(f"{r['target']}: import skipped x{n}: {reason}", file=sys.stderr)
        for c in r["calls"]:
            if not c["status"].startswith("match") or "NON-FINITE" in c["status"]:
                print(f"{r['target']}: call {c['module']}.{c['name']}: {c['status']}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1, default=lambda o: dict(o) if isinstance(o, Counter)
                                        else str(o)), encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
