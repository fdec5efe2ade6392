"""positions.positions_of agrees with libcst's whole-module positions on every node it covers."""
from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from nanlint.positions import positions_of, whole_module

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("fixtures/**/*.py"), *(ROOT / "tests" / "data" / "corpus_sample").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_statement_positions_equal_the_whole_modules(path: Path) -> None:
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    if not module.body:
        return
    whole = whole_module(module)
    tops = module.body[1::3] or module.body  # a spread of statements, not the first
    partial = positions_of(module, tops, [tops[-1]])
    covered = 0
    for node, span in partial.items():
        assert whole[node] == span, (path, type(node).__name__)
        covered += 1
    assert covered and len(partial) < len(whole) or len(tops) == len(module.body)


def test_a_node_outside_the_statements_falls_back_to_the_whole_module() -> None:
    module = cst.parse_module("# header\n\nimport torch\n\n\ndef f(x):\n    return x / x.norm()\n")
    function = module.body[1]
    assert len(positions_of(module, [function], [function])) < len(whole_module(module))
    assert positions_of(module, [function], [module.body[0]]) == whole_module(module)
    assert positions_of(module, [function], [function])[function] == whole_module(module)[function]
