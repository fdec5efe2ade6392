"""``--output-format sarif``: valid SARIF 2.1.0 (checked against the vendored OASIS schema), complete rule
metadata, exact regions, fingerprints that survive moved lines, fixes as replacements."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import ROOT, lint

jsonschema = pytest.importorskip("jsonschema")

from nanlint.cli import main  # noqa: E402
from nanlint.docs import section  # noqa: E402
from nanlint.finding import Edit, Finding, Fix  # noqa: E402
from nanlint.report.sarif import FINGERPRINT_KEY, SRCROOT, sarif_log  # noqa: E402
from nanlint.rules import ALL_RULES  # noqa: E402

SCHEMA_PATH = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"
SCHEMA_SIZE = 112_768
SCHEMA_SHA256 = "ddddcccbf95c7c50c037b5b07eff4140556278ca574ff374db46786b5fce7949"

LOSS = '''import torch
import torch.nn.functional as F


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def rmse(pred, target):
    return torch.sqrt(F.mse_loss(pred, target))
'''


@pytest.fixture(scope="module")
def validator():
    data = SCHEMA_PATH.read_bytes()
    assert len(data) == SCHEMA_SIZE and hashlib.sha256(data).hexdigest() == SCHEMA_SHA256, \
        "tests/data/sarif-schema-2.1.0.json was modified (see tests/data/README.md)"
    schema = json.loads(data)
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft4Validator  # the schema declares draft-04
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def assert_valid(validator, log: dict) -> None:
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10])


def run_sarif(monkeypatch, cwd: Path, *args: str) -> tuple[int, dict]:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, ["--output-format", "sarif", "--isolated", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "loss.py").write_text(LOSS, encoding="utf-8")
    (tmp_path / "src" / "broken.py").write_text("def f(:\n    pass\n", encoding="utf-8")
    (tmp_path / "src" / "clean.py").write_text("import torch\n\nx = torch.ones(3)\n", encoding="utf-8")
    (tmp_path / "src" / "my file%.py").write_text("def f(x):\n    return x / x.norm()\n", encoding="utf-8")
    return tmp_path


def test_vendored_schema_rejects_what_it_should(validator):
    # the schema is really enforced: a minimal valid log passes, a 0-based line fails
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{
        "message": {"text": "m"}, "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "a.py"}, "region": {"startLine": 1}}}]}]}]}
    assert_valid(validator, log)
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    assert list(validator.iter_errors(log))


def test_cli_output_is_valid_sarif(validator, project: Path, monkeypatch):
    code, log = run_sarif(monkeypatch, project, "src")
    assert code == 1
    assert_valid(validator, log)
    run = log["runs"][0]
    assert log["version"] == "2.1.0"
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"][SRCROOT]["uri"] == project.as_uri() + "/"
    by_file: dict[str, list[str]] = {}
    for result in run["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location["uriBaseId"] == SRCROOT
        by_file.setdefault(location["uri"], []).append(result["ruleId"])
    assert by_file == {"src/broken.py": ["NAN000"], "src/loss.py": ["NAN101", "NAN201"],
                       "src/my%20file%25.py": ["NAN101"]}
    assert run["invocations"] == [{"executionSuccessful": True}]


def test_rules_carry_their_documentation(validator, project: Path, monkeypatch):
    _, log = run_sarif(monkeypatch, project, "src/clean.py")
    assert_valid(validator, log)
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "nanlint"
    descriptors = {d["id"]: d for d in driver["rules"]}
    assert set(descriptors) == {r.code for r in ALL_RULES} | {"NAN000", "NAN999"}
    for rule in ALL_RULES:
        d = descriptors[rule.code]
        assert d["name"] == rule.name
        assert d["shortDescription"]["text"].lower().startswith(rule.summary.lower())
        what = section(rule, "What it does")
        assert what, f"{rule.code}: its docstring has no `## What it does` section"
        assert d["fullDescription"]["text"] == " ".join(line.strip() for line in what.split("\n\n")[0].splitlines())
        assert d["help"]["text"] == rule.docs()
        assert rule.docs() in d["help"]["markdown"]
        assert d["defaultConfiguration"] == {"enabled": not rule.preview,
                                             "level": "warning" if rule.preview else "error"}
        assert d["properties"]["preview"] is rule.preview
        assert d["properties"]["numericsRows"] == [f"{rule.code}.{i + 1}" for i in range(len(rule.witnesses))]


def test_regions_are_the_findings_spans(project: Path, monkeypatch):
    _, log = run_sarif(monkeypatch, project, "src/loss.py")
    findings = lint(LOSS, path="src/loss.py")
    run = log["runs"][0]
    regions = [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]) for r in run["results"]]
    expected = [(f.code, {"startLine": f.line, "startColumn": f.column, "endLine": f.end_line,
                          "endColumn": f.end_column}) for f in findings if f.code in ("NAN101", "NAN201")]
    assert regions == expected
    line = LOSS.splitlines()[expected[0][1]["startLine"] - 1]
    region = expected[0][1]
    assert line[region["startColumn"] - 1:region["endColumn"] - 1] == "x / x.norm(dim=-1, keepdim=True)"
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == "error"
        assert result["message"]["text"]


def test_file_outside_the_working_directory_gets_an_absolute_uri(validator, project: Path, tmp_path_factory,
                                                                  monkeypatch):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "far.py"
    elsewhere.write_text(LOSS, encoding="utf-8")
    _, log = run_sarif(monkeypatch, project, str(elsewhere))
    assert_valid(validator, log)
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": elsewhere.as_uri()}


def _fingerprints(source: str) -> list[str]:
    findings = lint(source, path="m.py")
    log = sarif_log(findings, cwd="/nonexistent", sources={"m.py": source})
    return [r["partialFingerprints"][FINGERPRINT_KEY] for r in log["runs"][0]["results"]]


def test_fingerprints_survive_moved_and_reindented_lines():
    before = _fingerprints(LOSS)
    assert len(before) == 2 and len(set(before)) == 2
    shifted = LOSS.replace("import torch\n", "import torch\nimport math\n\n\n", 1)
    assert _fingerprints(shifted) == before
    reindented = LOSS.replace("    return x / x.norm(dim=-1, keepdim=True)",
                              "    if True:\n        return x / x.norm(dim=-1,  keepdim=True)")
    assert _fingerprints(reindented)[0] == before[0]
    edited = LOSS.replace("x / x.norm(dim=-1, keepdim=True)", "x / x.norm(dim=1, keepdim=True)")
    assert _fingerprints(edited)[0] != before[0]


def test_identical_lines_are_told_apart_by_occurrence():
    source = "def f(x):\n    return x / x.norm()\n\n\ndef g(x):\n    return x / x.norm()\n"
    prints = _fingerprints(source)
    assert len(prints) == 2
    assert prints[0].split(":")[0] == prints[1].split(":")[0]
    assert [p.split(":")[1] for p in prints] == ["0", "1"]
    # the first one keeps its fingerprint when a third copy is added below
    assert _fingerprints(source + "\n\ndef h(x):\n    return x / x.norm()\n")[:2] == prints


def test_fixes_become_replacements(validator):
    source = "import torch\n\n\ndef f(x):\n    return x / x.norm()\n"
    fix = Fix("unsafe", "Clamp the norm", (
        Edit(5, 23, 5, 23, ".clamp_min(1e-4)"),          # an insertion: empty deleted region
        Edit(1, 1, 1, 1, "import math\n"),
        Edit(5, 12, 5, 13, "y"),                         # a replacement
    ))
    finding = Finding("NAN101", "divide-by-norm", "division by `x.norm()`", "pkg/m.py", 5, 12, 5, 23, fix)
    log = sarif_log([finding], cwd="/work", sources={"pkg/m.py": source})
    assert_valid(validator, log)
    [result] = log["runs"][0]["results"]
    [sarif_fix] = result["fixes"]
    assert sarif_fix["description"]["text"] == "Clamp the norm"
    assert sarif_fix["properties"]["applicability"] == "unsafe"
    [change] = sarif_fix["artifactChanges"]
    assert change["artifactLocation"] == {"uri": "pkg/m.py", "uriBaseId": SRCROOT}
    assert change["replacements"] == [
        {"deletedRegion": {"startLine": e.line, "startColumn": e.column, "endLine": e.end_line,
                           "endColumn": e.end_column}, "insertedContent": {"text": e.content}}
        for e in fix.edits]


def test_engine_fixes_are_exported(validator, project: Path, monkeypatch):
    findings = [f for f in lint(LOSS, path="src/loss.py") if f.fix is not None]
    if not findings:
        pytest.skip("no rule attaches a fix to these hazards yet")
    _, log = run_sarif(monkeypatch, project, "src/loss.py")
    assert_valid(validator, log)
    with_fixes = [r for r in log["runs"][0]["results"] if "fixes" in r]
    assert [r["ruleId"] for r in with_fixes] == [f.code for f in findings]
    for result, finding in zip(with_fixes, findings):
        assert finding.fix is not None
        replacements = result["fixes"][0]["artifactChanges"][0]["replacements"]
        assert [r["insertedContent"]["text"] for r in replacements] == [e.content for e in finding.fix.edits]


def test_no_findings_is_still_a_valid_log(validator, project: Path, monkeypatch):
    code, log = run_sarif(monkeypatch, project, "src/clean.py")
    assert code == 0
    assert_valid(validator, log)
    assert log["runs"][0]["results"] == []


def test_internal_error_marks_the_run_unsuccessful(validator):
    finding = Finding("NAN999", "internal-error", "internal error while linting: boom", "m.py", 1, 1, 1, 1)
    log = sarif_log([finding], cwd="/work", sources={"m.py": ""})
    assert_valid(validator, log)
    assert log["runs"][0]["invocations"] == [{"executionSuccessful": False}]
    assert log["runs"][0]["results"][0]["level"] == "error"
