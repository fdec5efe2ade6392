"""Precision of nanlint's findings on real code: per rule and per confidence, against judged findings.

    python benchmarks/precision.py --corpus corpus                   # the corpus of make_corpus.sh
    python benchmarks/precision.py --corpus corpus --libs libs       # + pytorch-metric-learning, kornia, torchmetrics
    python benchmarks/precision.py --corpus corpus --sample 40       # + a random sample of default findings to read

``--libs DIR`` holds the ``.py`` files of pytorch-metric-learning 2.9.0, kornia 0.9.0 and torchmetrics
1.9.0 as their wheels lay them out (``pip download --no-deps`` them and unzip into DIR).

``benchmarks/judged/corpus-findings.tsv`` lists findings of an earlier nanlint on that code, each read in its
source and classed A (real: an ordinary input reaches it where it matters), B (numerically true but
practically noise) or C (false), with the reason. The table says, per rule, how many findings each
confidence has, how many are shown by default (high and medium), how many lie where no gradient flows,
and how many of the judged A / B / C lines are still shown by default. The goal: every A shown, no C.
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nanlint.analysis import shown  # noqa: E402
from nanlint.engine import LintRequest  # noqa: E402
from nanlint.rules import ALL_RULES  # noqa: E402
from nanlint.runner import Job, lint_files  # noqa: E402

JUDGED = Path(__file__).resolve().parent / "judged" / "corpus-findings.tsv"
LIB_ROOTS = ("kornia", "pytorch_metric_learning", "torchmetrics")
CORPUS_ROOTS = ("transformers", "timm", "diffusers", "pytorch_lightning")


def python_files(root: Path, tops: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for top in tops:
        base = root / top
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    out.append((path, os.path.relpath(path, root)))
    return out


def judged() -> dict[tuple[str, int, str], tuple[str, str]]:
    table = {}
    for line in JUDGED.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        code, path, number, cls, reason = line.split("\t")
        table[(path, int(number), code)] = (cls, reason)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="corpus")
    parser.add_argument("--libs", default=None)
    parser.add_argument("--sample", type=int, default=0, help="print N random default findings with their source")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--threshold", default="medium", choices=("high", "medium", "low"))
    parser.add_argument("--select", default="", help="comma-separated codes to measure instead of the default "
                                                     "rules (a preview rule, before it leaves preview)")
    args = parser.parse_args()

    selected = {code.strip() for code in args.select.split(",") if code.strip()}
    request = LintRequest(tuple(rule for rule in ALL_RULES
                                if (rule.code in selected if selected else rule.default_on())))
    files = python_files(Path(args.corpus), CORPUS_ROOTS)
    if args.libs:
        files += python_files(Path(args.libs), LIB_ROOTS)
    if not files:
        print(f"no files under {args.corpus}: build it with benchmarks/make_corpus.sh", file=sys.stderr)
        return 2
    findings = []
    for result in lint_files(Job(path, display, request) for path, display in files):
        findings.extend(f for f in result.findings if f.code.startswith("NAN") and f.code not in ("NAN000", "NAN999"))
    measured = {rule.code for rule in request.rules}
    truth = {key: value for key, value in judged().items() if key[2] in measured}  # lines of the measured rules
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    counted: set[tuple[str, int, str]] = set()
    for f in findings:
        row = rows[f.code]
        row["findings"] += 1
        row[f.confidence] += 1
        default = shown(f.confidence, args.threshold)
        row["default"] += default
        row["no-grad"] += bool(f.extra.get("no_gradient"))
        cls = truth.get((f.path, f.line, f.code), ("", ""))[0]
        if cls and default and (f.path, f.line, f.code) not in counted:
            counted.add((f.path, f.line, f.code))
            row[cls] += 1
    totals: collections.Counter = collections.Counter()
    for row in rows.values():
        totals.update(row)
    judged_totals = collections.Counter(cls for cls, _ in truth.values())
    scope = "corpus" + (" + libs" if args.libs else "")
    print(f"{len(files)} files ({scope}); default = confidence >= {args.threshold}")
    print()
    header = ("rule", "findings", "high", "medium", "low", "default", "no-grad", "A shown", "B shown", "C shown")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for code in sorted(rows) + ["total"]:
        row = totals if code == "total" else rows[code]
        print("| " + " | ".join([code] + [str(row[k]) for k in header[1:7]]
                                + [str(row[k]) for k in ("A", "B", "C")]) + " |")
    print()
    print("judged lines still shown by default: " + ", ".join(
        f"{cls} {totals[cls]}/{judged_totals[cls]}" for cls in "ABC"))
    present = {(f.path, f.line, f.code) for f in findings if shown(f.confidence, args.threshold)}
    for key, (cls, reason) in sorted(truth.items()):
        if (cls == "A" and key not in present) or (cls == "C" and key in present):
            if args.libs or not key[0].startswith(LIB_ROOTS):
                print(f"  {'MISSED A' if cls == 'A' else 'SHOWN C'}: {key[2]} {key[0]}:{key[1]}  ({reason})")
    if args.sample:
        default = [f for f in findings if shown(f.confidence, args.threshold)]
        rng = random.Random(args.seed)
        picked = rng.sample(default, min(args.sample, len(default)))
        roots = {top: Path(args.libs) for top in LIB_ROOTS} if args.libs else {}
        for i, f in enumerate(sorted(picked, key=lambda f: (f.path, f.line)), 1):
            root = roots.get(f.path.split("/")[0], Path(args.corpus))
            lines = (root / f.path).read_text(encoding="utf-8", errors="replace").splitlines()
            print(f"\n## {i}. {f.path}:{f.line} {f.code} [{f.confidence}]\n{f.message}")
            for number in range(max(1, f.line - 6), min(len(lines), f.line + 2) + 1):
                print(f"{'>' if number == f.line else ' '}{number:5d} {lines[number - 1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
