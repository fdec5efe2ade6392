"""SARIF 2.1.0 (``--output-format sarif``), for GitHub code scanning and other SARIF viewers.

One run; the tool driver lists every rule (and the engine's NAN000/NAN999) with its
documentation. Each result carries:

* a physical location: the artifact URI relative to the working directory under the
  ``%SRCROOT%`` base (``originalUriBaseIds`` gives the absolute directory), or an
  absolute ``file:`` URI for a file outside it; a region with 1-based lines and
  columns, the end column exclusive, columns counted in Unicode code points
  (``run.columnKind``), as everywhere in nanlint;
* ``partialFingerprints["nanlintFingerprint/v1"]``: a hash of the rule code and the
  whitespace-normalised text of the finding's source lines, plus the occurrence
  index of that pair in the file. It survives lines moving up or down and
  re-indentation, so code scanning keeps tracking the same alert; it changes when
  the flagged line itself changes;
* ``fixes`` when the finding has a fix: each text edit becomes a replacement
  (``deletedRegion`` + ``insertedContent``); ``properties.applicability`` says
  ``safe`` or ``unsafe``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence
from urllib.parse import quote

from .. import __version__
from ..docs import first_paragraph, numerics_rows, rests_on, section
from ..files import FILE_ERROR_CODE, FILE_ERROR_NAME, INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME, decode
from ..finding import Edit, Finding
from ..lines import split_lines
from ..registry import ALL_RULES, BY_CODE, RuleInfo as Rule
from .levels import level

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "nanlintFingerprint/v1"

_ENGINE_RULES = (
    (FILE_ERROR_CODE, FILE_ERROR_NAME, "a file that cannot be read, decoded or parsed",
     "nanlint could not read, decode or parse this file, so no rule ran on it. Every other file is still "
     "linted. The message says what failed and where (a syntax error's line and column, the first byte "
     "that is not valid in the file's encoding...)."),
    (INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME, "a rule crashed on this file (a bug in nanlint)",
     "A rule raised an exception while linting this file; the other files were linted. nanlint exits with "
     "status 2. Please report it with the file (or a reduced example)."),
)


# SARIF `result.rank` (0.0-100.0, higher is more certain; GitHub code scanning sorts by it) from
# Finding.confidence: high 90.0, medium 60.0, low 30.0.
CONFIDENCE_RANK = {"high": 90.0, "medium": 60.0, "low": 30.0}


def format_sarif(findings: Sequence[Finding], files_checked: int, suppressed: Sequence[Finding] = ()) -> str:
    return json.dumps(sarif_log(findings, suppressed=suppressed), indent=2, ensure_ascii=False) + "\n"


def sarif_log(findings: Sequence[Finding], cwd: Optional[str] = None,
              sources: Optional[dict[str, str]] = None, suppressed: Sequence[Finding] = ()) -> dict[str, Any]:
    """The SARIF log as a dict. ``sources`` maps a finding's path to its text (else the file is read).
    ``suppressed``: findings a comment suppresses; they are results with an ``inSource`` suppression, which code
    scanning shows as dismissed (not as fixed)."""
    cwd = os.path.abspath(cwd or os.getcwd())
    rules = _rule_descriptors()
    index = {descriptor["id"]: i for i, descriptor in enumerate(rules)}
    texts = _SourceCache(cwd, sources or {})
    results = []
    occurrences: dict[tuple[str, str, str], int] = {}
    hidden = {id(f) for f in suppressed}
    for finding in sorted([*findings, *suppressed], key=Finding.sort_key):  # occurrences count in source order
        location = _artifact_location(finding.path, cwd)
        region_text = texts.region_text(finding)
        key = (finding.path, finding.code, region_text)
        occurrence = occurrences.get(key, 0)
        occurrences[key] = occurrence + 1
        result: dict[str, Any] = {
            "ruleId": finding.code,
            "level": level(finding.code),
            "message": {"text": finding.message if finding.cell is None
                        else f"{finding.location()}: {finding.message}"},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": location,
                    "region": _region(finding.line, finding.column, finding.end_line, finding.end_column),
                },
            }],
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding.code, region_text, occurrence)},
            "rank": CONFIDENCE_RANK.get(finding.confidence, CONFIDENCE_RANK["high"]),
            "properties": {"confidence": finding.confidence},
        }
        if finding.cell is not None:  # the region's lines are inside this code cell, not lines of the JSON file
            result["properties"]["cell"] = finding.cell
        if finding.code in index:
            result["ruleIndex"] = index[finding.code]
        if id(finding) in hidden:
            result["suppressions"] = [{"kind": "inSource", "status": "accepted",
                                       "justification": "a `# noqa` or `# nanlint: ignore` comment"}]
        if finding.fix is not None and finding.fix.edits:
            result["fixes"] = [{
                "description": {"text": finding.fix.message},
                "artifactChanges": [{
                    "artifactLocation": location,
                    "replacements": [_replacement(edit) for edit in finding.fix.edits],
                }],
                "properties": {"applicability": finding.fix.applicability},
            }]
        results.append(result)
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "nanlint",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": not any(f.code == INTERNAL_ERROR_CODE for f in findings),
            }],
            "originalUriBaseIds": {SRCROOT: {"uri": _directory_uri(cwd)}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def fingerprint(code: str, region_text: str, occurrence: int) -> str:
    digest = hashlib.sha256(f"{code}\0{region_text}".encode("utf-8")).hexdigest()
    return f"{digest[:32]}:{occurrence}"


def normalize(text: str) -> str:
    """Source text as the fingerprint sees it: whitespace runs collapsed to one space, ends stripped."""
    return re.sub(r"\s+", " ", text).strip()


# -- rules ---------------------------------------------------------------------------------------------------------
def _rule_descriptors() -> list[dict[str, Any]]:
    descriptors = [_rule_descriptor(rule) for rule in ALL_RULES]
    for code, name, summary, description in _ENGINE_RULES:
        if code in BY_CODE:  # pragma: no cover - a rule would never take an engine code
            continue
        descriptors.append({
            "id": code,
            "name": name,
            "shortDescription": {"text": summary},
            "fullDescription": {"text": description},
            "help": {"text": description, "markdown": description},
            "defaultConfiguration": {"level": level(code)},
            "properties": {"preview": False, "tags": ["nanlint", "engine"]},
        })
    return descriptors


def _rule_descriptor(rule: type[Rule]) -> dict[str, Any]:
    what = section(rule, "What it does")
    docs = rule.docs()
    status = "preview (opt-in)" if rule.preview else "on by default"
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": _sentence(rule.summary)},
        "fullDescription": {"text": first_paragraph(what) if what else _sentence(rule.summary)},
        "help": {
            "text": docs,
            "markdown": f"**{rule.code} {rule.name}**: {_sentence(rule.summary)} Status: {status}. "
                        f"{rests_on(rule)}\n\n{docs}",
        },
        "defaultConfiguration": {"enabled": rule.default_on(), "level": level(rule.code)},
        "properties": {
            "preview": rule.preview,
            "numericsRows": numerics_rows(rule),
            "tags": ["nanlint", "numerics", "preview" if rule.preview else "default"],
            "precision": "medium" if rule.preview else "high",
        },
    }


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# -- locations -----------------------------------------------------------------------------------------------------
def _region(line: int, column: int, end_line: int, end_column: int) -> dict[str, int]:
    line = max(line, 1)
    column = max(column, 1)
    end_line = max(end_line, line)
    end_column = max(end_column, 1) if end_line > line else max(end_column, column)
    return {"startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column}


def _replacement(edit: Edit) -> dict[str, Any]:
    return {
        "deletedRegion": _region(edit.line, edit.column, edit.end_line, edit.end_column),
        "insertedContent": {"text": edit.content},
    }


def _artifact_location(path: str, cwd: str) -> dict[str, str]:
    absolute = os.path.normpath(os.path.join(cwd, path))
    relative = os.path.relpath(absolute, cwd) if _same_drive(absolute, cwd) else None
    if relative is not None and not relative.startswith(os.pardir):
        return {"uri": quote(relative.replace(os.sep, "/"), safe="/"), "uriBaseId": SRCROOT}
    return {"uri": Path(absolute).as_uri()}


def _directory_uri(path: str) -> str:
    uri = Path(path).as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _same_drive(a: str, b: str) -> bool:
    return os.path.splitdrive(a)[0].lower() == os.path.splitdrive(b)[0].lower()


class _SourceCache:
    """Source lines per finding path: from ``sources`` or read (and decoded like the engine does) from disk."""

    def __init__(self, cwd: str, sources: dict[str, str]) -> None:
        self.cwd = cwd
        self.lines: dict[str, Optional[list[str]]] = {path: split_lines(text) for path, text in sources.items()}

    def _lines(self, path: str) -> Optional[list[str]]:
        if path not in self.lines:
            try:
                with open(os.path.join(self.cwd, path), "rb") as handle:
                    text, _ = decode(handle.read())
                self.lines[path] = split_lines(text)
            except (OSError, SyntaxError, UnicodeDecodeError, LookupError):
                self.lines[path] = None
        return self.lines[path]

    def region_text(self, finding: Finding) -> str:
        """The normalised text of the finding's lines; the message when the source cannot be read (stdin)."""
        lines = self._lines(finding.path) if finding.cell is None else None  # a cell's text is not the file's
        if lines is None or not 1 <= finding.line <= len(lines):
            return normalize(finding.message)
        return normalize("".join(lines[finding.line - 1:min(finding.end_line, len(lines))]))

