"""What a rule is: a code, a name, docs (its docstring), a screen, and visitor hooks.

A rule subclasses :class:`Rule` and defines ``visit_<NodeType>`` /
``leave_<NodeType>`` methods named after libcst node classes (``visit_Call``,
``visit_BinaryOperation``...). The engine calls them during its single walk of
the file; a rule reports with ``self.report(node, message)``. Rules never walk
the tree themselves.

``screen`` is a regular expression over the raw source: when it does not match,
the rule cannot fire in that file and the engine skips it (and skips parsing a
file no enabled rule can fire in). A screen must be *necessary*: every finding
of the rule contains a match for it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional, Sequence

import libcst as cst

if TYPE_CHECKING:
    from ..context import FileContext
    from ..fixspec import FixSpec


@dataclass(frozen=True)
class Witness:
    """An executable proof of the rule (numerics.md rows): run by the test suite with torch.

    ``setup`` builds the inputs; it sees ``torch``, ``F``, ``dtype`` and ``leaf(t)``
    (marks a tensor as requiring grad). ``hazard`` must produce a non-finite value
    in ``y`` or in a leaf's gradient (of ``y.float().sum()``) in every dtype of
    ``hazard_dtypes``; ``fixed`` must keep both finite in every dtype of ``fixed_dtypes``.
    """

    setup: str
    hazard: str
    fixed: str
    hazard_dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")
    fixed_dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")
    # statement(s) run after ``hazard``/``fixed`` that must return the value to check;
    # default: ``y`` forward and the gradient of ``y.float().sum()``
    check: str = ""


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    rows: ClassVar[str]  # rows of numerics.md §1 (or section) the rule rests on
    preview: ClassVar[bool] = False
    screen: ClassVar[re.Pattern[str]]
    witnesses: ClassVar[Sequence[Witness]] = ()

    def __init__(self, ctx: "FileContext") -> None:
        self.ctx = ctx
        self.facts = ctx.facts

    def report(self, node: cst.CSTNode, message: str, fix: "Optional[FixSpec]" = None, **extra: object) -> None:
        """Report ``node``. ``fix`` describes the rewrite (see :mod:`nanlint.fixspec`); ``extra`` may hold
        ``target=<node>`` (the sub-expression whose value is dangerous, e.g. the divisor) and
        ``no_fix_reason="..."`` when a fix was impossible."""
        if fix is not None:
            extra["fix"] = fix
        self.ctx.report(self, node, message, extra)

    @classmethod
    def docs(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def default_on(cls) -> bool:
        return not cls.preview
