"""The rule contract declares fixes (like ruff's FixAvailability / Applicability) and the rules keep it.

Each rule states ``fix_availability`` (always / sometimes / never) and ``fix_applicability`` (safe / unsafe /
display-only). Run over everything the suite knows of the rule (its fixtures, the fix snapshots, the hazard
snippets of its witnesses), a rule that declares ``never`` emits no fix, one that declares ``sometimes`` emits
at least one, one that declares ``always`` fixes every finding, and each fix has a declared applicability,
each declared applicability being seen at least once. A display-only fix is shown and never applied.
"""
from __future__ import annotations

import re
from pathlib import Path

import libcst as cst
import pytest
from click.testing import CliRunner

from fixhelpers import FIX_FIXTURES, FIXABLE, fixture_settings
from helpers import FIXTURES, fixture_precision, lint
from nanlint.cli import main
from nanlint.engine import LintRequest
from nanlint.finding import Finding
from nanlint.fixes import fix_source
from nanlint.fixspec import APPLICABILITIES, DISPLAY_ONLY, FixSpec, InsertAt
from nanlint.rules import ALL_RULES
from nanlint.rules.base import ALWAYS, NEVER, SOMETIMES, Rule

PRELUDE = "import torch\nimport torch.nn.functional as F\n"


def _sources(rule: type[Rule]) -> list[tuple[str, str, object]]:
    """(name, source, precision) of every file and snippet the suite has for ``rule``."""
    found = []
    for path in sorted((FIXTURES / rule.code).glob("**/*.py")) + sorted(FIX_FIXTURES.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        precision = fixture_precision(source)
        if precision is None and "precision" in fixture_settings(source):
            precision = tuple(fixture_settings(source)["precision"].split(","))
        found.append((str(path), source, precision))
    for index, witness in enumerate(rule.witnesses):
        source = PRELUDE + witness.setup.replace("; ", "\n") + "\n" + witness.hazard.replace("; ", "\n")
        found.append((f"{rule.code} witness {index}", source, None))
    return found


def _findings(rule: type[Rule]) -> list[Finding]:
    findings: list[Finding] = []
    for name, source, precision in _sources(rule):
        findings += [f for f in lint(source, [rule], path=name, precision=precision) if f.code == rule.code]
    return findings


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_keeps_its_fix_contract(rule: type[Rule]) -> None:
    assert rule.fix_availability in (ALWAYS, SOMETIMES, NEVER), rule.fix_availability
    assert set(rule.fix_applicability) <= set(APPLICABILITIES), rule.fix_applicability
    findings = _findings(rule)
    assert findings, f"{rule.code}: nothing in its fixtures or witnesses is flagged"
    fixed = [f for f in findings if f.fix is not None]
    if rule.fix_availability == NEVER:
        assert not rule.fix_applicability, f"{rule.code} declares no fix but lists applicabilities"
        assert not fixed, f"{rule.code} declares `never` yet emits fixes: {fixed[:3]}"
        return
    assert rule.fix_applicability, f"{rule.code} declares fixes but no applicability"
    assert fixed, f"{rule.code} declares `{rule.fix_availability}` but fixes none of its {len(findings)} findings"
    if rule.fix_availability == ALWAYS:
        unfixed = [f for f in findings if f.fix is None]
        assert not unfixed, f"{rule.code} declares `always` but leaves findings unfixed: {unfixed[:3]}"
    seen = {f.fix.applicability for f in fixed}  # type: ignore[union-attr]
    assert seen <= set(rule.fix_applicability), f"{rule.code} emits {seen - set(rule.fix_applicability)} fixes"
    assert seen == set(rule.fix_applicability), (
        f"{rule.code} declares {set(rule.fix_applicability) - seen} fixes that none of its fixtures shows")


def test_fixable_list_follows_the_contract() -> None:
    assert set(FIXABLE) == {r.code for r in ALL_RULES if r.fix_availability != NEVER}
    assert len(FIXABLE) >= 15


def test_docs_and_cli_show_the_contract() -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["rules"]).output
    for rule in ALL_RULES:
        line = next(x for x in listing.splitlines() if x.startswith(rule.code))
        assert rule.fix_availability in line
        assert all(a in line for a in rule.fix_applicability)
        text = runner.invoke(main, ["rule", rule.code]).output
        assert f"Fix: {rule.fix_availability}" in text
    docs = (Path(__file__).resolve().parent.parent / "docs" / "rules.md").read_text(encoding="utf-8")
    assert "| Fix |" in docs and "sometimes (unsafe, display-only)" in docs


class _DisplayOnly(Rule):
    """A rule that offers only a display-only fix (for the tests below)."""

    code = "NAN998"
    name = "display-only-test"
    summary = "test"
    rows = "-"
    fix_availability = SOMETIMES
    fix_applicability = (DISPLAY_ONLY,)
    screen = re.compile("mean_of")

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "mean_of":
            self.report(node, "an average that is NaN when empty", fix=FixSpec(
                DISPLAY_ONLY, "clamp the count", (InsertAt(node, ".clamp_min(1)"),)))


def test_display_only_fix_is_never_applied(tmp_path: Path) -> None:
    source = "y = mean_of(x)\n"
    outcome = fix_source("m.py", source, LintRequest((_DisplayOnly,), None), unsafe=True)
    assert outcome.source == source and not outcome.applied
    (finding,) = outcome.remaining
    assert finding.fix is not None and finding.fix.applicability == DISPLAY_ONLY
    assert outcome.hidden_unsafe == 0


def test_display_only_fix_is_shown_not_marked_fixable() -> None:
    from nanlint.report.text import fix_hint, fixable, format_unfixable

    finding = lint("y = mean_of(x)\n", [_DisplayOnly])[0]
    assert not fixable(finding, unsafe_fixes=True)
    assert fix_hint([finding], unsafe_fixes=False) == ""
    shown = format_unfixable([finding])
    assert "display-only fix (shown, never applied): clamp the count" in shown and ".clamp_min(1)" in shown
