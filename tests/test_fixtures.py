"""Every fixture file: nanlint reports exactly the marked codes on exactly the marked lines.

Markers are comments ``# error: NAN101`` (several codes comma-separated) on the
line where the finding starts: a finding shown by default (confidence high or
medium). ``# low: NAN101`` marks a finding of low confidence (only a degenerate
trigger reaches it: hidden unless ``--confidence low``). Fixtures are linted with every default rule plus
the rule the fixture's directory is named after (so a preview rule is tested in
its own fixtures), so a fixture also proves that the other default rules stay silent.
A ``# nanlint-fixture: precision=float16`` comment sets the declared precision.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import FIXTURES, expected_levels, expected_markers, fixture_precision, lint, rule_fixture_files


@pytest.mark.parametrize("path", rule_fixture_files(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_markers(path: Path) -> None:
    from nanlint.rules import ALL_RULES

    source = path.read_text(encoding="utf-8")
    own = path.relative_to(FIXTURES).parts[0]
    rules = [r for r in ALL_RULES if not r.preview or r.code == own]
    findings = lint(source, rules, path=str(path), precision=fixture_precision(source))
    found = {(f.line, f.code) for f in findings}
    levels = expected_levels(source)
    expected = set(levels)
    missing = sorted(expected - found)
    extra = sorted(found - expected)
    assert not missing and not extra, f"missing: {missing}\nunexpected: {extra}"
    wrong = sorted((f.line, f.code, f.confidence) for f in findings
                   if (f.confidence == "low") != (levels[(f.line, f.code)] == "low"))
    assert not wrong, f"confidence differs from the markers (`# low:` = low, `# error:` = high/medium): {wrong}"


def test_every_rule_has_flagged_and_silent_fixtures() -> None:
    from nanlint.rules import ALL_RULES

    for rule in ALL_RULES:
        folder = FIXTURES / rule.code
        files = list(folder.glob("*.py"))
        assert files, f"{rule.code} has no fixtures in {folder}"
        markers = set()
        for f in files:
            markers |= {code for _, code in expected_markers(f.read_text(encoding="utf-8"))}
        assert rule.code in markers, f"{rule.code}: no fixture line is marked with it"
        assert any(not any(code == rule.code for _, code in expected_markers(f.read_text(encoding="utf-8")))
                   for f in files), f"{rule.code}: no near-miss fixture file (one without its markers)"
