"""Value facts: what an expression is known to be, shared by every rule.

:class:`Facts` answers every question a rule asks about a value; each group of
questions lives in its own module of :mod:`nanlint.analysis`:

* :mod:`.analysis.bindings` -- names followed to values, literals, eps guards, and
  the facts the walker records (in-place calls, guard tests);
* :mod:`.analysis.zeros` -- can it be *exactly* zero, and what kind of zero
  (a norm, a variance, an MSE...);
* :mod:`.analysis.probabilities` -- is it a probability that can be 0 or 1;
* :mod:`.analysis.selections` -- masks, counts and selections that can be empty;
* :mod:`.analysis.bounds` -- upper bounds of exp arguments, non-negative values;
* :mod:`.analysis.kinds`, :mod:`.analysis.triggers` -- its kind, and the input
  that makes it zero with how ordinary that input is.

Values are followed through local assignments (see :mod:`nanlint.scope`);
anything that cannot be seen is unknown, and unknown means silence.
"""
from __future__ import annotations

from .analysis.bindings import Bindings
from .analysis.bounds import Bounds
from .analysis.probabilities import Probabilities
from .analysis.selections import Selections
from .analysis.vocabulary import (
    At, Bound, COSINE_NAME, Count, NORM_KINDS, NORM_OPS, PROBABILITY_NAME, Probability, REDUCE_OPS,
    SIGMOID_OPS, SOFTMAX_OPS, SQUARE_KINDS, STD_KINDS, TRANSPARENT_OPS, ZeroSource, guard_names, names_in,
)
from .analysis.zeros import ZeroSources

__all__ = [
    "Facts", "At", "Bound", "COSINE_NAME", "Count", "NORM_KINDS", "NORM_OPS", "PROBABILITY_NAME",
    "Probability", "REDUCE_OPS", "SIGMOID_OPS", "SOFTMAX_OPS", "SQUARE_KINDS", "STD_KINDS",
    "TRANSPARENT_OPS", "ZeroSource", "guard_names", "names_in",
]


class Facts(Bindings, ZeroSources, Probabilities, Selections, Bounds):
    """Every question about a value, for one file (see the module docstring)."""
