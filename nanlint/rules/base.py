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

``site`` (optional) is a second, finer necessary condition used by the
second-stage screen (:mod:`nanlint.screening`): the *top-level definition that
holds a finding* contains a match for it (a division for the divide-by rules),
wherever the screen's evidence came from. A rule with a site also promises that
every finding is a division (``/``, ``/=``, ``torch.div``: ``patterns.division``)
whose divisor is computed from what its screen matches, so the second stage keeps a
definition only when the evidence reaches such a divisor there (by name, through
the definition's statements, ``self.x`` or module-level names). ``site_anywhere`` (optional) matches
what makes the site test unreliable for a whole file (an import that renames
``torch.div``), and turns it off there. ``reciprocals`` (NAN103) adds a negative
power or a reciprocal (``deg ** -0.5``, ``n.rsqrt()``) to what such a finding can be.
``site_reads = "division or log"`` (NAN303) promises instead that every finding is
a division or a ``log``/``log1p`` call that reads the evidence anywhere in it (a
hand-written softmax's numerator, a logsumexp's operand).

``attribute_flow`` (default True) says that evidence in a method that sets
``self.x`` can make a finding in another method of the class (NAN101: ``self.n =
x.norm()`` in one method, ``y / self.n`` in another). A rule that reports only at
the very node its screen matches (or at a call of an import alias its screen
matches) sets it to False, and the second stage keeps only its hot methods.

``root_operand`` (NAN201, NAN202) promises that every finding is a square root or
a reciprocal one (``sqrt``, ``rsqrt``, ``pow``, ``**``) whose operand the value
analysis computes from a square, a variance, a norm or an MSE: the second stage
keeps a hot definition only when such evidence reaches a root's operand there
(by name, through the definition's statements, ``self.x`` or module-level
names). ``"square or beside"`` also keeps a definition with a root that has something
added to it (NAN201's eps outside the root) or a ``hypot`` call.

``root_evidence`` (NAN101, NAN102) says that a square root its screen matches
(``ROOT``: a hand-written norm, the root of a variance) is evidence only when
the root's operand may be a square by the same test: the second stage does not
count the other root matches as evidence that reaches a divisor.

``chunk_local`` (default True) promises the contract :mod:`nanlint.screening`
relies on to parse only the hot definitions of a file; a rule that cannot keep
it sets it to False and always sees the whole file.

The engine screens with a copy of these attributes (``RuleScreen``, in
``nanlint/_screen_index.py``) so that a file nothing can fire in imports neither
libcst nor the rules: a function among them (``file_condition``,
``evidence_at``, a ``WithFileCondition``'s test) lives in a module that imports
no libcst (``_screens``, ``_literal_evidence``, ``nanlint.fp16_text``). After
changing one, run ``python -m nanlint.registry --write``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Optional, Sequence, Union

import libcst as cst

if TYPE_CHECKING:
    from ..analysis.gradient import Gradient
    from ..analysis.triggers import Trigger
    from ..context import FileContext
    from ..fixspec import FixSpec
    from ._screens import Screen, WithFileCondition


@dataclass(frozen=True)
class Witness:
    """An executable proof of the rule (docs/probe.md rows): run by the test suite with torch.

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


@dataclass(frozen=True)
class Judgement:
    """What the analysis says of one hazard: the finding's confidence, its trigger, the gradient context."""

    confidence: str
    trigger: "Trigger"
    gradient: "Gradient"

    def extra(self) -> dict[str, object]:
        extra: dict[str, object] = {"confidence": self.confidence, "trigger": self.trigger.text}
        if not self.gradient.flows:
            extra["no_gradient"] = self.gradient.reason
        return extra

    @property
    def reached_by(self) -> str:
        """`` for <trigger>`` for messages."""
        return f"for {self.trigger.text}"

    def forward(self) -> str:
        """``forward NaN, NaN gradient`` -- or, where no gradient flows, only the forward claim and why."""
        if self.gradient.flows:
            return "forward NaN, NaN gradient"
        if self.gradient.updates_weights:
            return "forward NaN, written into the weights by this optimizer step"
        return f"forward NaN; no gradient flows here: {self.gradient.reason}"


# How often a rule's findings carry a fix (ruff's ``FixAvailability``): every finding, some, or none.
ALWAYS, SOMETIMES, NEVER = "always", "sometimes", "never"


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    rows: ClassVar[str]  # rows of docs/probe.md §1 (or section) the rule rests on
    preview: ClassVar[bool] = False
    screen: ClassVar[Union[re.Pattern[str], Screen, WithFileCondition]]
    site: ClassVar[Optional[Union[re.Pattern[str], Screen]]] = None
    site_anywhere: ClassVar[Optional[Union[re.Pattern[str], Screen]]] = None
    attribute_flow: ClassVar[bool] = True
    root_operand: ClassVar[Optional[str]] = None  # None, "square" or "square or beside"
    root_evidence: ClassVar[bool] = False  # a root its screen matches is evidence only when its operand is a square
    reciprocals: ClassVar[bool] = False  # a site rule's finding may be a negative power or a reciprocal
    site_reads: ClassVar[str] = "divisor"  # what of a site rule's finding the evidence reaches (or "division or log")
    # The second stage's test of each screen match: can it be the evidence of a finding? (NAN103: ``len(x)`` of
    # a parameter is no count.) Every match by default; ``memo`` is one file's cache, holding its plain
    # assignments (``_screens.Assignments``) under "assignments".
    evidence_at: ClassVar[Optional[Callable[[str, int, dict], bool]]] = None
    chunk_local: ClassVar[bool] = True
    # A cheap, file-level necessary condition beyond ``screen``, ``(source, precision) -> bool`` (``precision``:
    # the configured one, or None): the engine skips the rule where it is False. A function of a module that
    # imports no libcst (``_screens``, ``nanlint.fp16_text``): ``_screen_index.py`` imports it by name.
    file_condition: ClassVar[Optional[Callable[[str, Optional[tuple[str, ...]]], bool]]] = None
    # Text the rule reads anywhere in the file (``ctx.source``) whatever code it analyses (NAN603: a NaN check
    # anywhere): the language server's preview lints the whole text when an edit adds or removes a match.
    file_facts: ClassVar[Optional[re.Pattern[str]]] = None
    witnesses: ClassVar[Sequence[Witness]] = ()
    # The fix contract (ruff's FixAvailability / Applicability), shown by `nanlint rules`, `nanlint rule CODE` and
    # docs/rules.md, and enforced by tests/test_fix_contract.py: a rule declaring NEVER emits no fix, one declaring
    # ALWAYS / SOMETIMES fixes (all / some of) its fixture findings, and every fix it emits has one of the declared
    # applicabilities (``nanlint.fixspec``: safe, unsafe, display-only).
    fix_availability: ClassVar[str] = NEVER
    fix_applicability: ClassVar[tuple[str, ...]] = ()

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

    def silenced(self, value: cst.BaseExpression, trigger: "Optional[Trigger]" = None) -> bool:
        """The hazard on ``value`` cannot happen: ``value`` is a Python number, numpy or a sequence (not a
        torch hazard), a boolean filter kept only non-zero entries (``e[e != 0]``), or the statement's result
        is repaired afterwards (``torch.where(torch.isfinite(y), y, ...)``). ``trigger``: ``value``'s, when the
        caller has it already."""
        from ..analysis import kinds
        from ..analysis.guards import repaired_inline, repaired_later
        from ..analysis.triggers import IMPOSSIBLE

        at = self.ctx.at()
        if self.facts.kind(value, at) in (kinds.NUMBERS | {kinds.NUMPY, kinds.SEQUENCE}):
            return True
        if (trigger or self.facts.trigger(value, at)).likelihood == IMPOSSIBLE:
            return True
        return repaired_later(self.ctx) or repaired_inline(self.ctx)

    def judge(self, value: cst.BaseExpression, gradient_only: bool = False,
              values: Sequence[cst.BaseExpression] = (), floor: "Optional[Trigger]" = None,
              trigger: "Optional[Trigger]" = None) -> "Optional[Judgement]":
        """Ask the analysis whether the hazard on ``value`` (the vector that must be exactly 0) matters here.

        None means silence: ``value`` is a Python number, numpy or a sequence (not a torch hazard), or the
        hazard is gradient-only and no gradient flows (:mod:`nanlint.analysis.gradient`). Otherwise the
        trigger that reaches it, the gradient context and the finding's confidence
        (:func:`nanlint.analysis.confidence`). ``values`` (default: ``value``) are what must carry the
        gradient; ``floor`` is a trigger the hazard always has, whatever the provenance shows; ``trigger``
        replaces the zero trigger for a hazard that is not a zero (``exp`` overflowing:
        :func:`nanlint.analysis.triggers.overflow_trigger`).
        """
        from ..analysis import confidence
        from ..analysis.gradient import gradient_at

        at = self.ctx.at()
        if trigger is None:
            trigger = self.facts.trigger(value, at)
        if self.silenced(value, trigger):
            return None
        gradient = gradient_at(self.ctx, values or (value,))
        if floor is not None:
            from ..analysis.triggers import at_least_plausible

            trigger = at_least_plausible(trigger, floor)
        level = confidence(trigger, gradient, gradient_only)
        return None if level is None else Judgement(level, trigger, gradient)

    @classmethod
    def may_fire(cls, source: str, precision: Optional[tuple[str, ...]]) -> bool:
        """``file_condition``, or True when the rule has none."""
        return cls.file_condition is None or cls.file_condition(source, precision)

    @classmethod
    def docs(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def default_on(cls) -> bool:
        return not cls.preview
