"""docs/rules.md is generated from the rules (`python -m nanlint.docs --write`) and must be current; each rule's
section is exactly what `nanlint rule CODE` prints."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import ROOT

from nanlint.cli import main
from nanlint.docs import anchor, doc_sections, render
from nanlint.rules import ALL_RULES

RULES_MD = ROOT / "docs" / "rules.md"
REGENERATE = "docs/rules.md is out of date: run `python -m nanlint.docs --write` and commit the result"
REQUIRED_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety")


def checked_in() -> str:
    return RULES_MD.read_text(encoding="utf-8")


def sections_of(text: str) -> dict[str, str]:
    """The rule sections of rules.md by code: the text between `---` separators that starts with `# CODE `."""
    found = {}
    for chunk in text.split("\n---\n\n")[1:]:
        match = re.match(r"# (NAN\d{3}) ", chunk)
        assert match, chunk[:80]
        found[match.group(1)] = chunk.rstrip("\n")
    return found


def test_rules_md_is_current():
    assert checked_in() == render(), REGENERATE


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_command_prints_the_section(rule):
    result = CliRunner().invoke(main, ["rule", rule.code])
    assert result.exit_code == 0, result.output
    sections = sections_of(checked_in())
    assert rule.code in sections, REGENERATE
    assert result.stdout.rstrip("\n") == sections[rule.code]
    # by name too
    assert CliRunner().invoke(main, ["rule", rule.name]).stdout == result.stdout


def test_table_lists_every_rule_with_a_working_link():
    text = checked_in()
    sections = sections_of(text)
    assert list(sections) == [r.code for r in ALL_RULES], REGENERATE
    rows = re.findall(r"^\| \[(NAN\d{3})\]\(#([a-z0-9-]+)\) \| `([a-z0-9-]+)` \|.*\| (on|preview) \|", text, re.M)
    assert [(code, name, status) for code, _, name, status in rows] == [
        (r.code, r.name, "preview" if r.preview else "on") for r in ALL_RULES]
    headings = {anchor(r) for r in ALL_RULES}
    for code, link, _, _ in rows:
        assert link in headings
        heading = next(line for line in sections[code].splitlines() if line.startswith("# "))
        # GitHub's anchor for the heading: lower case, punctuation other than '-' dropped, spaces to '-'
        assert re.sub(r"[^a-z0-9\- ]", "", heading[2:].lower()).replace(" ", "-") == link


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_docs_have_the_expected_sections(rule):
    titles = [title for title, _ in doc_sections(rule)]
    missing = [t for t in REQUIRED_SECTIONS if t not in titles]
    assert not missing, f"{rule.code}'s docstring lacks the section(s) {missing} (docs/architecture.md §1: the docstring IS the docs)"
    assert all(body.strip() for _, body in doc_sections(rule)), f"{rule.code} has an empty docstring section"
    assert re.search(r"\brows?\b|§", rule.docs()) or rule.rows in ("–", "-"), \
        f"{rule.code}'s docs should cite the numerics.md row(s) they rest on"


def test_module_cli_check_and_write(tmp_path: Path):
    target = tmp_path / "docs" / "rules.md"
    run = [sys.executable, "-m", "nanlint.docs"]
    stale = subprocess.run([*run, "--check", str(target)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert stale.returncode == 1
    written = subprocess.run([*run, "--write", str(target)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    assert target.read_text(encoding="utf-8") == render()
    assert subprocess.run([*run, "--check", str(target)], cwd=ROOT, timeout=120).returncode == 0
    printed = subprocess.run(run, cwd=ROOT, capture_output=True, timeout=120)
    assert printed.stdout.decode("utf-8") == render()
