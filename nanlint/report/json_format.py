from __future__ import annotations

import json
from typing import Sequence

from ..finding import Finding


def format_json(findings: Sequence[Finding], files_checked: int) -> str:
    return json.dumps([f.to_json() for f in findings], indent=2) + "\n"
