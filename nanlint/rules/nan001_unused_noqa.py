"""NAN001: a suppression comment that suppresses nothing (the engine checks it: nanlint/engine.py)."""
from __future__ import annotations

from ._screens import Screen, never
from .base import Rule


class UnusedNoqa(Rule):
    """
    ## What it does
    Flags a `# noqa: NAN101` or `# nanlint: ignore[NAN101]` comment where the
    named rule reports nothing, and a bare `# nanlint: ignore` on a line with
    no finding. Only codes of rules enabled for the file count: a comment
    naming a rule that is not selected, or another tool's code (`# noqa:
    E501`), is left alone, and so is a bare `# noqa`, which other linters read
    too.

    ## Why is this bad?
    A suppression outlives the hazard it was written for: after the code is
    fixed (or the rule learns that it is guarded), the comment still silences
    the rule on that line, so a hazard written there later is never reported.
    Teams that adopt nanlint with `--add-noqa` remove these comments as the
    baseline shrinks. The rule rests on no row of the truth table: it is
    about comments, not numerics.

    ## Example
    ```python
    y = x / x.norm().clamp_min(1e-12)  # noqa: NAN101
    ```

    ## Use instead
    ```python
    y = x / x.norm().clamp_min(1e-12)
    ```

    ## Fix safety
    There is no automatic fix: delete the code (or the comment) by hand, or
    keep the comment with `# noqa: NAN101, NAN001` when it guards against a
    hazard the rule does not see yet. The rule is in preview: enable it with
    `--extend-select NAN001`.
    """

    code = "NAN001"
    name = "unused-noqa"
    summary = "suppression comment that suppresses nothing"
    rows = "–"
    preview = True
    screen = Screen(r"noqa|nanlint:\s*ignore")

    # not a tree walk: the engine compares the comments with the other rules' findings
    file_condition = staticmethod(never)
