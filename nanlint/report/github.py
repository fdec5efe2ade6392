"""GitHub Actions workflow commands (``--output-format github``): one annotation per finding.

``::error file=src/loss.py,line=7,col=12,endLine=7,endColumn=30,title=NAN101 divide-by-norm::message``

GitHub shows each line as an annotation on the pull request's diff. Preview rules
are ``::warning``. Escaping follows the Actions toolkit (``@actions/core``): in the
message ``%``, ``\\r`` and ``\\n`` become ``%25``, ``%0D``, ``%0A``; in a property
value ``:`` and ``,`` also become ``%3A`` and ``%2C``, so a path or title holding
them cannot end the property list early.
"""
from __future__ import annotations

import os
from typing import Sequence

from ..finding import Finding
from .levels import level


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding) -> str:
    """One workflow command. A notebook finding names its cell in the message and has no line: GitHub's lines
    are the lines of the .ipynb file's JSON, not of the cell."""
    properties: tuple[tuple[str, str], ...] = (("file", finding.path.replace(os.sep, "/")),)
    message = finding.message
    if finding.cell is None:
        properties += (
            ("line", str(finding.line)),
            ("col", str(finding.column)),
            ("endLine", str(finding.end_line)),
            ("endColumn", str(finding.end_column)),
        )
    else:
        message = f"cell {finding.cell}:{finding.line}:{finding.column}: {message}"
    properties += (("title", f"{finding.code} {finding.name}"),)
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::{level(finding.code)} {joined}::{escape_data(message)}"


def format_github(findings: Sequence[Finding], files_checked: int) -> str:
    return "".join(annotation(finding) + "\n" for finding in findings)
