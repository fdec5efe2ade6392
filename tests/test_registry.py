"""The rule index (nanlint/_rule_index.py) is current, and each command imports only what it needs: `--version`,
`--help`, `rules` and `rule` import neither libcst nor a rule; a run whose every file is a cache hit does not either.
(What is imported is checked, not how long it takes: the times are in benchmarks/bench_lint.py.)"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nanlint import registry
from nanlint.config import Settings
from nanlint.rules import ALL_RULES

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("libcst", "nanlint.rules", "nanlint.engine", "nanlint.analysis", "nanlint.facts", "nanlint.walker",
         "nanlint.cst_pass")
HAZARD = "import torch\n\n\ndef unit(x):\n    return x / x.norm()\n"
COLD_FILE = "def add(a, b):\n    return a + b\n"

# Runs the command line in this process (as the `nanlint` script does) and prints the heavy modules it imported.
PROBE = """
import json, sys
from nanlint.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'libcst' or m.startswith(%r))
print('@@' + json.dumps(heavy), file=sys.stderr)
""" % (tuple(h for h in HEAVY if h != "libcst"),)


def imported(cwd: Path, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    marker = [line for line in done.stderr.splitlines() if line.startswith("@@")]
    assert marker, done.stderr
    return json.loads(marker[-1][2:])


def test_rule_index_is_current():
    assert registry.render() == Path(registry.INDEX_PATH).read_text(encoding="utf-8"), registry.REGENERATE


def test_screen_index_is_current():
    assert registry.render_screens() == Path(registry.SCREEN_INDEX_PATH).read_text(encoding="utf-8"), \
        registry.REGENERATE_SCREENS


def test_screen_index_screens_as_the_rule_classes_do():
    """Each rule's ``RuleScreen`` gives the rule class's answers on every fixture: the file-level condition in
    every precision, the screen's matches, and the second stage's plan."""
    from nanlint import screening
    from nanlint._screen_index import BY_CODE as SCREENS

    from test_screens import PAD, sources

    assert [s.code for s in SCREENS.values()] == [r.code for r in ALL_RULES]
    texts = [(path.name, path.read_text(encoding="utf-8")) for path in sources()]
    for name, source in texts + [(f"{name} + PAD", source + PAD) for name, source in texts]:  # long enough to slice
        for rule in ALL_RULES:
            entry = SCREENS[rule.code]
            for precision in (None, ("float32",), ("float32", "float16")):
                assert entry.may_fire(source, precision) == rule.may_fire(source, precision), (name, rule.code)
            assert [m.start() for m in entry.screen.finditer(source)] == \
                [m.start() for m in rule.screen.finditer(source)], (name, rule.code)
        screened = [r for r in ALL_RULES if r.screen.search(source)]
        by_class = screening.plan(source, screened, name)
        by_entry = screening.plan(source, [SCREENS[r.code] for r in screened], name)
        assert (by_class is None) == (by_entry is None), name
        if by_class is not None and by_entry is not None:
            assert (by_entry.text, [r.code for r in by_entry.rules]) == \
                (by_class.text, [r.code for r in by_class.rules]), name


def test_screen_index_imports_no_libcst_and_no_rule():
    probe = "import sys, nanlint._screen_index, nanlint.screening, nanlint.engine\n" \
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'libcst' or m.startswith('nanlint.rules.')" \
            " and not m.startswith(('nanlint.rules._screens', 'nanlint.rules._literal_evidence'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_rule_index_matches_the_rule_classes():
    def seen(r: object) -> tuple:
        return (r.code, r.name, r.summary, r.rows, bool(r.preview), r.docs(), len(r.witnesses),  # type: ignore
                r.fix_availability, tuple(r.fix_applicability))  # type: ignore[attr-defined]

    assert [seen(r) for r in registry.ALL_RULES] == [seen(r) for r in ALL_RULES]
    assert [r.module for r in registry.ALL_RULES] == [r.__module__.rpartition(".")[2] for r in ALL_RULES]


@pytest.mark.parametrize("settings", [
    Settings(), Settings(preview=True), Settings(select=("NAN1",), ignore=("NAN103",)),
    Settings(select=("ALL",), extend_select=("NAN204",)), Settings(per_file_ignores=(("*.py", ("NAN2",)),)),
])
def test_codes_and_rule_classes_agree(settings: Settings):
    assert tuple(r.code for r in settings.rules_for("a.py")) == settings.codes_for("a.py")
    assert tuple(r.code for r in settings.enabled_rules()) == settings.enabled_codes()


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["rules"], ["rule", "NAN101"], ["check", "--help"]])
def test_informational_commands_import_no_rule_and_no_libcst(tmp_path: Path, args: list[str]):
    assert imported(tmp_path, *args) == []


def test_a_run_of_cache_hits_imports_no_rule_and_no_libcst(tmp_path: Path):
    (tmp_path / "hazard.py").write_text(HAZARD)
    (tmp_path / "cold.py").write_text(COLD_FILE)
    args = ["check", "--isolated", "--jobs", "1", "--cache-dir", str(tmp_path / "cache"), "."]
    first = imported(tmp_path, *args)
    assert "libcst" in first and "nanlint.engine" in first  # a miss: the file is analysed
    assert imported(tmp_path, *args) == []  # every file a hit


def test_a_file_imports_only_the_rules_that_can_fire_in_it(tmp_path: Path):
    """Every rule is selected, and the file holds only a division by a norm: the engine imports NAN101's module
    and no other rule's (``rules.rule_class``; importing all of them cost 25 ms of each worker and of each
    pre-commit run)."""
    (tmp_path / "hazard.py").write_text(HAZARD)
    heavy = imported(tmp_path, "check", "--isolated", "--no-cache", "--jobs", "1", "--select", "ALL", "--preview", ".")
    assert [m for m in heavy if m.startswith("nanlint.rules.nan")] == ["nanlint.rules.nan101_divide_by_norm"]


def test_rule_class_is_the_class_all_rules_holds():
    from nanlint.rules import BY_CODE, rule_class

    assert all(rule_class(code) is rule for code, rule in BY_CODE.items())


# A long file whose only screen match (``x.norm()``) is in a docstring: the first stage lets NAN101 through, the
# second stage keeps no definition.
DOCSTRING_ONLY = '"""Unit vectors: y = x / x.norm()."""\nimport torch\n' + "".join(
    f"\n\ndef f{i}(a, b):\n    return a + b\n" for i in range(20))


@pytest.mark.parametrize("changed", [COLD_FILE, DOCSTRING_ONLY], ids=["no screen matches", "nothing kept"])
def test_a_changed_file_with_nothing_to_parse_imports_no_rule_and_no_libcst(tmp_path: Path, changed: str):
    """The pre-commit hook's second run: one file changed, and no rule can fire in it."""
    (tmp_path / "hazard.py").write_text(HAZARD)
    (tmp_path / "changed.py").write_text(HAZARD)
    args = ["check", "--isolated", "--jobs", "1", "--cache-dir", str(tmp_path / "cache"), "."]
    assert "libcst" in imported(tmp_path, *args)
    (tmp_path / "changed.py").write_text(changed)
    heavy = imported(tmp_path, *args)
    assert "nanlint.engine" in heavy  # a miss: the file is screened
    assert [m for m in heavy if m.split(".")[0] == "libcst" or m.startswith("nanlint.rules.nan")
            or m in ("nanlint.rules.base", "nanlint.cst_pass", "nanlint.walker", "nanlint.facts")] == []


def test_a_preview_with_nothing_to_parse_imports_no_rule_and_no_libcst(tmp_path: Path):
    """The language server's first keystroke in a file where no definition can hold a finding: the preview
    re-screens the changed definition and parses nothing, so it imports neither libcst nor a rule (0.2 s)."""
    path = tmp_path / "m.py"
    path.write_text(DOCSTRING_ONLY)
    probe = ("import sys\nfrom nanlint.lines import split_lines\n"
             "from nanlint.server import DocumentLint, lint_document, preview_document\n"
             "path, text = sys.argv[1], open(sys.argv[1]).read()\n"
             "before = DocumentLint(lint_document(path, text), text, split_lines(text), exact=True)\n"
             "new = text.replace('return a + b', 'return a - b', 1)\n"
             "found, exact, _ = preview_document(path, new, before)\n"
             "assert found == [] and not exact, (found, exact)\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'libcst' or m.startswith('nanlint.rules.nan')"
             " or m in ('nanlint.rules.base', 'nanlint.cst_pass', 'nanlint.walker', 'nanlint.facts')))\n")
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
