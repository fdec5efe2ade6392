"""Helpers for the fix tests: the snapshot fixtures under ``fixtures/fix`` and running fixed code.

A snapshot is a pair ``name.py`` -> ``name.fixed.py``. A first-line comment
``# nanlint-fixture: key=value ...`` sets ``unsafe=false`` (default true),
``fix-eps=``, ``max-grad-norm=``, ``precision=float16,...`` and ``select=NAN101,...``.
Every rule that declares a fix runs by default (``FIXABLE``, derived from the
rules' fix contract), so a fixture shows what ``--fix --unsafe-fixes`` does to it. Regenerate after a deliberate
change with ``python tests/fixhelpers.py`` and review the diff.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nanlint.engine import LintRequest  # noqa: E402
from nanlint.fixes import FixOutcome, fix_source  # noqa: E402
from nanlint.rules import ALL_RULES, BY_CODE  # noqa: E402
from nanlint.rules.base import NEVER  # noqa: E402

FIX_FIXTURES = ROOT / "fixtures" / "fix"
# every rule whose contract declares fixes (``fix_availability`` other than "never"): a rule that starts fixing
# must declare it, and then needs a snapshot (tests/test_fix_contract.py)
FIXABLE = tuple(rule.code for rule in ALL_RULES if rule.fix_availability != NEVER)
HEADER = re.compile(r"#\s*nanlint-fixture:(?P<items>.*)$", re.M)


def fixture_settings(source: str) -> dict[str, str]:
    match = HEADER.search(source)
    if not match:
        return {}
    return dict(item.split("=", 1) for item in match.group("items").split())


def request_for(source: str, codes: Optional[tuple[str, ...]] = None) -> tuple[LintRequest, bool]:
    settings = fixture_settings(source)
    codes = codes or tuple(settings.get("select", ",".join(FIXABLE)).split(","))
    options = [("max-grad-norm", float(settings.get("max-grad-norm", 1.0)))]
    if "fix-eps" in settings:
        options.append(("fix-eps", float(settings["fix-eps"])))
    precision = tuple(settings["precision"].split(",")) if "precision" in settings else None
    request = LintRequest(tuple(BY_CODE[c] for c in codes), precision, tuple(options))
    return request, settings.get("unsafe", "true") != "false"


def fix_fixture(path: Path) -> FixOutcome:
    source = path.read_text(encoding="utf-8")
    request, unsafe = request_for(source)
    return fix_source(path.name, source, request, unsafe=unsafe)


def snapshot_inputs() -> list[Path]:
    return sorted(p for p in FIX_FIXTURES.glob("*.py") if not p.name.endswith(".fixed.py"))


def expected_path(path: Path) -> Path:
    return path.with_name(path.stem + ".fixed.py")


if __name__ == "__main__":  # regenerate the snapshots
    for fixture in snapshot_inputs():
        outcome = fix_fixture(fixture)
        expected_path(fixture).write_text(outcome.source, encoding="utf-8", newline="")
        print(f"{fixture.name}: {len(outcome.applied)} applied, {len(outcome.resolved)} resolved, "
              f"{len(outcome.remaining)} remaining, {len(outcome.failed)} failed")
