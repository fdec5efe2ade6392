"""Screen fragments shared by the rules that look for square roots (see ``Rule.screen``).

Each fragment is a verbose regular expression (``re.VERBOSE``): a rule joins its own
alternatives with these by ``|``. They must stay *necessary* (tests/test_screens.py).
"""
from __future__ import annotations

import re


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
