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
        f"{rule.code}'s docs should cite the docs/probe.md row(s) they rest on"


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


# -- the docstring examples, as Fixit's VALID / INVALID ----------------------------------------------------
DOC_PRELUDE = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
_CODE_BLOCK = re.compile(r"```python\n(?P<code>.*?)```", re.S)


def _code_of(rule, title: str) -> str:
    from nanlint.docs import section

    body = section(rule, title)
    assert body is not None, f"{rule.code} has no `## {title}` section"
    match = _CODE_BLOCK.search(body)
    assert match, f"{rule.code}: `## {title}` has no ```python block"
    return DOC_PRELUDE + match.group("code")


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_example_is_flagged_and_use_instead_is_silent(rule) -> None:
    from helpers import lint

    if rule.code == "NAN001":
        pytest.skip("NAN001 (unused-noqa) is checked by the engine on comments; tests/test_adoption.py runs it")
    example, instead = _code_of(rule, "Example"), _code_of(rule, "Use instead")
    # as the snippets stand (no precision configured) and declared to run in every dtype (float16 included):
    # the float16 rules (NAN304, NAN403, NAN501) fire only there, and "Use instead" must hold there too
    every = ("float32", "bfloat16", "float16")
    found = {f.code for f in lint(example, [rule])} | {f.code for f in lint(example, [rule], precision=every)}
    assert rule.code in found, f"{rule.code} does not flag its own `## Example`"
    for precision in (None, every):
        flagged = [f for f in lint(instead, [rule], precision=precision) if f.code == rule.code]
        assert not flagged, f"{rule.code} flags its own `## Use instead` ({precision}): {[f.message for f in flagged]}"
