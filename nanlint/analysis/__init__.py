"""What a value is: the one vocabulary every rule asks, computed on demand per expression.

* :mod:`.kinds` -- float / int / bool tensor, Python number, numpy, sequence, unknown;
* :mod:`.triggers` -- what input makes a value exactly 0 and how ordinary it is in training;
* :mod:`.gradient` -- whether a gradient can flow (one policy for every rule);
* :mod:`.guards` -- branch tests before an operation and repairs of its result;
* :mod:`.shapes` -- what makes a reduction's dimensions hold one element (a 1x1 map, a batch of one);
* :mod:`.dtype` -- which float16 evidence applies to a value (its own class or function);
* :mod:`.uses` -- where a value goes: only comparisons and ranking indices, or an output;
* :mod:`.summary` -- whole-module facts from the stdlib parser (callers, grad mode, strings);
* :func:`confidence` -- how a trigger and the gradient context make a finding's confidence.

Values are followed through assignments by :class:`nanlint.facts.Facts` (ranges,
zero sources, probabilities, masks); rules never keep their own copies.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the package itself imports no libcst: the screens read ``ops`` before anything is parsed
    from .gradient import Gradient
    from .triggers import Trigger

HIGH, MEDIUM, LOW = "high", "medium", "low"
LEVELS = (HIGH, MEDIUM, LOW)


def confidence(trigger: Trigger, gradient: Gradient, gradient_only: bool = False) -> Optional[str]:
    """A finding's confidence, or None when it cannot happen.

    * ``high``: an ordinary trigger (an all-padding row, a perfect prediction) where a gradient flows;
    * ``medium``: a plausible edge case, or an ordinary trigger in code that records no gradient (the
      forward NaN still reaches an output);
    An optimizer's ``step`` records no gradient, but a forward NaN there is written into the weights: it keeps
    the trigger's level, as if a gradient flowed.

    * ``low``: only a degenerate trigger (a learned projection or a Gaussian sample exactly 0); a
      plausible edge case in code that records no gradient (one inference output or metric value, not a
      training run); a gradient-only hazard in code that nothing shows training differentiates (a metric,
      a solver, a detector's post-processing: :func:`nanlint.analysis.gradient.evidence`).

    A gradient-only hazard (finite value, infinite derivative) where no gradient flows is None. A value
    that only comparisons and ranking indices use (``gradient.inert``) reaches no output: low for a
    forward hazard, None for a gradient-only one.
    """
    from .triggers import DEGENERATE, IMPOSSIBLE, ORDINARY, PLAUSIBLE

    if trigger.likelihood == IMPOSSIBLE or gradient_only and not gradient.flows:
        return None
    if gradient.inert:
        return LOW
    level = {ORDINARY: HIGH, PLAUSIBLE: MEDIUM, DEGENERATE: LOW}[trigger.likelihood]
    if gradient_only and not gradient.evidence:
        return LOW
    if not gradient.flows and not gradient.updates_weights:  # an optimizer's forward NaN is a NaN weight
        return MEDIUM if level == HIGH else LOW
    return level


def shown(level: str, threshold: str) -> bool:
    """True when a finding of confidence ``level`` is shown at the configured lowest ``threshold``."""
    return LEVELS.index(level) <= LEVELS.index(threshold)
