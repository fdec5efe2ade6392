"""Screen fragments shared by the rules that look for square roots (see ``Rule.screen``), and a screen with a
file-level alternative.

Each fragment is a verbose regular expression (``re.VERBOSE``): a rule joins its own
alternatives with these by ``|``. They must stay *necessary* (tests/test_screens.py).
"""
from __future__ import annotations

import itertools
import re
from typing import Callable, Iterator, Optional

_AT_START = re.compile("")


class WithFileCondition:
    """A screen that is ``pattern`` plus a zero-width match at the start of the text when ``condition(text)``
    holds: what the regex ``pattern|\\A(?=...)`` matches, with the file-level alternative tested once per text.
    In a regex that alternative is a lazy scan from the start (``\\A(?=[\\s\\S]*?...)``) that costs more than
    the rest of the screen: three times the screen's time on real files.

    ``search`` and ``finditer`` return what the joined regex would (the same matches, the same starts), so
    the engine and the second stage use it as they use a compiled pattern."""

    def __init__(self, pattern: "re.Pattern[str]", condition: Callable[[str], bool]) -> None:
        self.pattern, self.condition = pattern, condition

    def search(self, text: str) -> "Optional[re.Match[str]]":
        if self.condition(text):
            return self.pattern.match(text) or _AT_START.match(text)  # the leftmost match is at 0
        return self.pattern.search(text)

    def finditer(self, text: str) -> "Iterator[re.Match[str]]":
        found = self.pattern.finditer(text)
        if not self.condition(text) or self.pattern.match(text):
            return found  # (a match of ``pattern`` at 0 comes first, as in the joined regex)
        return itertools.chain((_AT_START.match(text),), found)  # type: ignore[arg-type]


def _power_forms(excluded_exponent: str) -> str:
    """``**`` (not ``**kwargs``), ``pow(``, ``float_power(`` whose exponent is not ``excluded_exponent``.

    A call or a group holding a call as exponent is excluded too: the rules only
    understand literal exponents.
    """
    exponent = rf"""
              (?!\s*(?: {excluded_exponent}
                      | [-+]?\s*[(](?=[^()]*?\w(?<!float)\s*[(])  # a group holding a call
                      | [-+]?\s*(?!float\s*[(])(?:[^\W\d]\w*\s*\.\s*)*[^\W\d]\w*\s*[(] ))  # a call"""
    return rf"""
          \*\*(?<![(,{{*]\*\*)(?<![(,{{][ ]\*\*)(?<![(,{{]\n[ ]{{4}}\*\*)(?<![(,{{]\n[ ]{{8}}\*\*)(?<![(,{{]\n[ ]{{12}}\*\*)
              (?<![(,{{]\n[ ]{{16}}\*\*)(?<![(,{{]\n[ ]{{20}}\*\*)(?<![(,{{]\n[ ]{{24}}\*\*){exponent}
        | pow(?<!\wpow)_?\s*[(]{exponent}
        | float_power_?\s*[(]{exponent}
        | pow(?<!\wpow)\s+as\b | float_power\s+as\b
        """


# sqrt and ``** e`` / ``pow(e)`` where e may be 0.5: not a negative number, not a nonzero integer
ROOT = r"""
          sqrt(?<!\wsqrt)(?<!math\.sqrt)(?<!np\.sqrt)(?<!numpy\.sqrt)_?(?!\w)  # torch.sqrt, x.sqrt_()
        | torch\s+as\s+(?:c?math|numpy|np)\b | functional\s+as\s+(?:c?math|numpy|np)\b  # np.sqrt is torch's
        |""" + _power_forms(r"""-\s*[\d.]  # a negative number
                      | [1-9][\d_]*(?![\w.])(?!\s*\*\*)  # a nonzero integer (but 2 ** -1 is 0.5)""")

# rsqrt and ``** e`` / ``pow(e)`` where e may be -0.5: not a positive number, not minus a nonzero integer
RECIPROCAL_ROOT = r"""
          rsqrt  # torch.rsqrt, x.rsqrt_()
        |""" + _power_forms(r"""\.?\d  # a positive number
                      | -\s*[1-9][\d_]*(?![\w.])(?!\s*\*\*)  # minus a nonzero integer""")

# ``site`` of the divide-by rules: a division, ``/`` or ``/=`` (not ``//``), or a ``div``/``divide``/
# ``true_divide`` call; ``site_anywhere``: an import renaming one of those (its calls need not say "div").
DIVISION = re.compile(r"/(?<!//)(?!/)|div")
DIVISION_RENAMED = re.compile(r"div\w*\s+as\b")
