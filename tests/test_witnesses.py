"""Each rule's numeric witness, run with torch 2.13: the hazard is non-finite, the fix is finite.

For every witness of every rule and every dtype it claims:
* ``setup + hazard`` leaves a non-finite value in ``y`` or in a gradient of
  ``y.float().sum()`` w.r.t. the leaves (or ``bad`` is True when a custom check is given);
* ``setup + fixed`` leaves every one of those finite (``bad`` False);
* nanlint flags the hazard snippet with the rule's code and not the fixed one.
"""
from __future__ import annotations

import warnings

import pytest

from helpers import lint
from nanlint.rules import ALL_RULES

torch = pytest.importorskip("torch")
F = torch.nn.functional

PRELUDE = "import torch\nimport torch.nn.functional as F\n"
CASES = [
    (rule, index, witness)
    for rule in ALL_RULES
    for index, witness in enumerate(rule.witnesses)
]


def run_snippet(setup: str, body: str, check: str, dtype_name: str) -> bool:
    """True when the snippet produced a non-finite value (or ``bad``)."""
    dtype = getattr(torch, dtype_name)
    leaves: list = []

    def leaf(t):
        t = t.detach().clone().requires_grad_(True)
        leaves.append(t)
        return t

    namespace = {"torch": torch, "F": F, "dtype": dtype, "leaf": leaf}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. std()'s "degrees of freedom" warning: the NaN is what we test
        exec(compile(setup + "\n" + body, f"<witness {dtype_name}>", "exec"), namespace)
    if check:
        exec(check, namespace)
        return bool(namespace["bad"])
    y = namespace["y"]
    bad = not bool(torch.isfinite(y).all())
    if y.requires_grad:
        y.float().sum().backward()
        for t in leaves:
            if t.grad is not None and not bool(torch.isfinite(t.grad).all()):
                bad = True
    return bad


def test_every_rule_has_a_witness() -> None:
    from nanlint.engine import UNUSED_NOQA_CODE

    # NAN001 (unused-noqa) is about comments, not numerics: the only rule without a witness
    missing = [rule.code for rule in ALL_RULES if not rule.witnesses and rule.code != UNUSED_NOQA_CODE]
    assert not missing, f"rules without a numeric witness: {missing}"


@pytest.mark.parametrize("rule,index,witness", CASES, ids=[f"{r.code}-{i}" for r, i, _ in CASES])
def test_hazard_is_non_finite(rule, index, witness) -> None:
    for dtype in witness.hazard_dtypes:
        assert run_snippet(witness.setup, witness.hazard, witness.check, dtype), (
            f"{rule.code} witness {index}: hazard stayed finite in {dtype}"
        )


@pytest.mark.parametrize("rule,index,witness", CASES, ids=[f"{r.code}-{i}" for r, i, _ in CASES])
def test_fix_is_finite(rule, index, witness) -> None:
    for dtype in witness.fixed_dtypes:
        assert not run_snippet(witness.setup, witness.fixed, witness.check, dtype), (
            f"{rule.code} witness {index}: fixed code is non-finite in {dtype}"
        )


@pytest.mark.parametrize("rule,index,witness", CASES, ids=[f"{r.code}-{i}" for r, i, _ in CASES])
def test_linter_flags_hazard_not_fix(rule, index, witness) -> None:
    hazard = PRELUDE + witness.setup.replace("; ", "\n") + "\n" + witness.hazard.replace("; ", "\n")
    fixed = PRELUDE + witness.setup.replace("; ", "\n") + "\n" + witness.fixed.replace("; ", "\n")
    assert rule.code in {f.code for f in lint(hazard, [rule])}, f"{rule.code} does not flag its own hazard"
    assert rule.code not in {f.code for f in lint(fixed, [rule])}, f"{rule.code} flags its own fix"


FIXABLE_CASES = [(rule, index, witness) for rule, index, witness in CASES if rule.fix_availability != "never"]


def _fixed_by_nanlint(rule, witness):
    """The witness's hazard as a module, and what ``--fix --unsafe-fixes`` (this rule alone) makes of it."""
    from nanlint.engine import LintRequest
    from nanlint.fixes import fix_source

    source = PRELUDE + witness.setup.replace("; ", "\n") + "\n" + witness.hazard.replace("; ", "\n") + "\n"
    outcome = fix_source("witness.py", source, LintRequest((rule,), None, (("max-grad-norm", 1.0),)), unsafe=True)
    return source, outcome


@pytest.mark.parametrize("rule,index,witness", FIXABLE_CASES, ids=[f"{r.code}-{i}" for r, i, _ in FIXABLE_CASES])
def test_nanlints_own_fix_is_finite_at_the_witness(rule, index, witness) -> None:
    """Not the fix the witness spells, but the text nanlint writes: finite at this trigger in every dtype the
    witness's fix claims (or no fix, where the fixer declines)."""
    source, outcome = _fixed_by_nanlint(rule, witness)
    if rule.code not in {f.code for f in outcome.applied}:
        pytest.skip(f"no fix applied: {[f.extra.get('no_fix_reason') for f in outcome.remaining]}")
    for dtype in witness.fixed_dtypes:
        assert not run_snippet("", outcome.source, witness.check, dtype), (
            f"{rule.code} witness {index}: nanlint's fix is non-finite in {dtype}:\n{outcome.source}")


def test_every_fixable_rule_fixes_one_of_its_witnesses() -> None:
    missing = []
    for rule in {r for r, _, _ in FIXABLE_CASES}:
        if not any(rule.code in {f.code for f in _fixed_by_nanlint(rule, w)[1].applied} for w in rule.witnesses):
            missing.append(rule.code)
    assert not missing, f"rules whose fix no witness runs: {sorted(missing)}"
