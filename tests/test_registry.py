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
HEAVY = ("libcst", "nanlint.rules", "nanlint.engine", "nanlint.analysis", "nanlint.facts", "nanlint.walker")
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


def test_rule_index_matches_the_rule_classes():
    def seen(r: object) -> tuple:
        return (r.code, r.name, r.summary, r.rows, bool(r.preview), r.docs(), len(r.witnesses),  # type: ignore
                r.fix_availability, tuple(r.fix_applicability))  # type: ignore[attr-defined]

    assert [seen(r) for r in registry.ALL_RULES] == [seen(r) for r in ALL_RULES]


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
