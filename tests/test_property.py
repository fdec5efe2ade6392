"""Property tests: any valid program goes through lint and fix without a crash or a broken result.

Programs come from hypothesmith (``from_grammar``: text from CPython's grammar;
``from_node``: libcst node trees) and from :func:`hazards.spliced_programs`,
which splices torch hazards into them so the rules and their fixes run inside
odd syntax. For each: ``lint_source`` with every rule (preview included)
raises nothing and reports no NAN999 (and no NAN000 for a program CPython
compiles); ``fix_source(..., unsafe=True)`` raises nothing, its result
compiles, and fixing the result again changes nothing. See
``hazards.check_program``. ``benchmarks/reliability.py --generated N`` runs the
same oracle on many more programs.

``NANLINT_PROPERTY_EXAMPLES`` scales the example counts (CI default below).
"""
from __future__ import annotations

import os

import hypothesmith
import pytest
from hypothesis import HealthCheck, example, given, settings

from hazards import REQUEST_FP16, check_program, spliced_programs

pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")  # generated code: `1()`, `"a" "b"()`

EXAMPLES = int(os.environ.get("NANLINT_PROPERTY_EXAMPLES", "50"))

PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@PROPERTY
@given(hypothesmith.from_grammar())
def test_grammar_programs(source: str) -> None:
    assert check_program(source) == []


@settings(PROPERTY, max_examples=max(1, EXAMPLES // 2))  # from_node is the slowest generator
@given(hypothesmith.from_node())
def test_node_programs(source: str) -> None:
    assert check_program(source) == []


def test_spliced_hazard_programs() -> None:
    stats: dict[str, int] = {}

    @settings(PROPERTY, max_examples=EXAMPLES * 3 // 2)
    @given(spliced_programs())
    @example("import torch\nx = x / x.norm()\n")
    @example("import torch\n\n@(lambda f: f)\ndef g(x):\n\treturn x / \\\n\t\tx.norm()\n")
    @example("import torch\nasync def g(x):\n    async with a:\n        return [torch.sqrt(v) async for v in x]\n")
    @example("import torch\nmatch x:\n    case [a, *b] if a / a.norm():\n        y = torch.sqrt(b)\n")
    @example("import torch\nclass C:\n    def f(self): loss.backward(); opt.step()\n")
    @example("import torch\nfor b in d:\n    loss.backward()\n    opt.step() # c\n    \n# end")
    def run(source: str) -> None:
        assert check_program(source, stats=stats) == []

    run()
    # the strategy is only useful if the hazards fire and the fixes run
    assert stats["with_findings"] >= stats["programs"] // 2, stats
    assert stats.get("fixed", 0) >= stats["programs"] // 4, stats


@settings(PROPERTY, max_examples=max(1, EXAMPLES // 2))
@given(spliced_programs())
def test_spliced_hazard_programs_with_precision_and_fix_eps(source: str) -> None:
    assert check_program(source, REQUEST_FP16) == []


@pytest.mark.parametrize("source", [
    "import torch\ny = -x / -x.norm()\n",
    "import torch\ny = x / x.norm() ** 2\n",
    "import torch\ny = x / (a + b).norm()\n",
    "import torch\ny = torch.sqrt(v) ** 2 + x / x.norm()[0]\n",
    "import torch\nf = lambda q: q / q.norm()\n",
    "import torch\ny = [q / q.norm() for q in qs if q / q.norm()]\n",
    "import torch\ny = (n := x.norm()) and x / n\n",
    "import torch\ny = f'{x / x.norm()!r:>{w}}'\n",
    "import torch\ny = x / x.norm() if c else torch.sqrt(v)\n",
])
def test_fixes_in_tricky_expression_positions(source: str) -> None:
    assert check_program(source) == []
