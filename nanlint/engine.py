"""discovery -> read -> screen -> parse (once) -> one walk with every rule -> suppress -> findings.

This module reads, screens (:mod:`nanlint.screening`, with each rule's ``RuleScreen``) and suppresses; the
parse and the walk are :mod:`nanlint.cst_pass`, imported only for a file with something to parse, so a file
no rule can fire in costs no import of libcst or of a rule."""
from __future__ import annotations

import ast
import os
from typing import TYPE_CHECKING, Optional, Sequence, Union

from .files import (FILE_ERROR_CODE, FILE_ERROR_NAME, INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME,  # noqa: F401
                    MAX_FILE_BYTES, SUPPRESSIONS_OPTION, UNUSED_NOQA_CODE, FileResult, LintRequest, decode,
                    decode_source, file_error, python_syntax_error, read_source, stdlib_tree)
from .finding import Finding
from . import screening
from .collector import collector_paused
from .rules._screens import RuleScreen
from .suppress import Suppressions, parse_suppressions

if TYPE_CHECKING:
    import libcst as cst

    from .rules.base import Rule

    Screened = Union[RuleScreen, type[Rule]]  # what the screens read: a rule's ``RuleScreen``, or the rule class


def parse(path: str, source: str) -> tuple[Optional[cst.Module], Optional[Finding]]:
    """libcst's tree, or a NAN000 finding (:func:`nanlint.cst_pass.parse`; imports libcst)."""
    from .cst_pass import parse

    return parse(path, source)


def _rule_classes(rules: Sequence[Screened]) -> list[type[Rule]]:
    """The rule classes of what the screens kept: a ``RuleScreen`` names its class by its code."""
    if not any(isinstance(rule, RuleScreen) for rule in rules):
        return list(rules)  # type: ignore[arg-type]
    from .rules import rule_class

    return [rule_class(rule.code) if isinstance(rule, RuleScreen) else rule for rule in rules]


def screened_rules(rules: Sequence[Screened], source: str,
                   precision: Optional[tuple[str, ...]] = None) -> list[Screened]:
    """The rules whose screen matches and whose file-level condition holds: the only ones that can fire."""
    return [rule for rule in rules if rule.may_fire(source, precision) and rule.screen.search(source)]


# The second-stage screen (screening.py): libcst parses only the top-level definitions a screen
# matches. Off (``NANLINT_SECOND_STAGE=0``) for the benchmark's and the tests' plain path.
SECOND_STAGE = os.environ.get("NANLINT_SECOND_STAGE", "1") != "0"


def _parse_screened(path: str, source: str, rules: list[Screened], starts: Optional[dict[Screened, list[int]]] = None
                    ) -> tuple[Optional[cst.Module], list[Screened], Optional[Finding], Optional[ast.Module]]:
    """Parse what the second-stage screen keeps; (None, [], None, tree) when nothing can fire (libcst is then not
    imported). The last item is the stdlib tree of ``source`` the second stage parsed (None on the plain path):
    the analysis's module summary reads it instead of parsing the file again."""
    plan = screening.plan(source, rules, path, starts)
    if plan is None:
        module, error = parse(path, source)
        return module, rules, error, None
    if plan.text is None:
        return None, [], None, plan.tree
    from .cst_pass import parse_kept

    module = parse_kept(plan.text)  # None where libcst disagrees with the stdlib parser: the plain path decides
    if module is None or (plan.sliced and module.default_indent != plan.indent):
        module, error = parse(path, source)
        return module, rules, error, plan.tree
    return module, plan.rules, None, plan.tree


def lint_source(path: str, source: str, request: LintRequest, keep_tree: bool = False) -> FileResult:
    """Lint decoded source. Never raises for bad input: errors become findings. ``keep_tree``: leave the stdlib
    tree of ``source`` on the result (``FileResult.tree``) where one was parsed (the language server's layout)."""
    with collector_paused():
        suppressions = parse_suppressions(source)
        result = _unused_noqa(_lint_source(path, source, request, suppressions), path, request, suppressions)
        if not keep_tree:
            # Freed here, while the collector is paused: a tree still alive when it resumes is walked by its next
            # young collection, node by node (timm, one process: 211 collections, 0.15 s, against 36 and 0.07 s).
            result.tree = None
        return result


def lint_sliced(path: str, source: str, text: str, request: LintRequest, indent: Optional[str],
                possible: Optional[Sequence[type[Rule]]] = None) -> Optional[FileResult]:
    """The findings of ``source`` where libcst parses ``text`` instead: ``source`` with some definitions replaced
    by line-preserving stubs (``screening.stub``), as the second stage does; the rules see the whole ``source``
    (``ctx.source``). None when libcst rejects ``text`` or infers another indentation than ``indent`` (the
    whole file's, which fixes use): the caller lints ``source`` instead. ``possible``: the rules whose file-level
    condition (``may_fire``) holds on ``source``, if the caller knows them. A rule runs when its screen matches
    ``text``: under the chunk-locality contract every finding in a kept definition or in module-level code has
    its evidence there. The second stage then cuts ``text`` further (exact under the same contract), and libcst
    is not needed at all when the changed definitions cannot hold a finding. Used by the language server to
    re-analyse only the definitions an edit changed."""
    with collector_paused():
        return _lint_sliced(path, source, text, request, indent, possible)


def _lint_sliced(path: str, source: str, text: str, request: LintRequest, indent: Optional[str],
                 possible: Optional[Sequence[type[Rule]]]) -> Optional[FileResult]:
    suppressions = parse_suppressions(source)
    result = FileResult(path, source=source)
    if possible is None:
        possible = [rule for rule in request.rule_classes() if rule.may_fire(source, request.precision)]
    starts = screening.match_starts(possible, text)  # one scan per screen serves both stages
    rules = [rule for rule in possible if starts[rule]]
    plan = screening.plan(text, rules, path, starts) if rules and SECOND_STAGE else None
    if plan is not None:  # the second stage on ``text``: exact under the same contract, and often nothing to parse
        text, rules = plan.text or "", plan.rules
    if rules:
        from .cst_pass import analyse, parse_kept

        module = parse_kept(text)
        if module is None or indent is None or module.default_indent != indent:
            return None
        result = analyse(result, path, source, module, _rule_classes(rules), request, suppressions)
    return _unused_noqa(result, path, request, suppressions)


def _unused_noqa(result: FileResult, path: str, request: LintRequest, suppressions: Suppressions) -> FileResult:
    """NAN001 (a preview rule): after every other rule, the suppression comments that suppressed nothing."""
    enabled = frozenset(request.codes)
    failed = any(f.code in (FILE_ERROR_CODE, INTERNAL_ERROR_CODE) for f in result.findings)
    if UNUSED_NOQA_CODE in enabled and not failed:
        from .registry import BY_CODE  # the rule's name, without importing the rule

        name = BY_CODE[UNUSED_NOQA_CODE].name
        for comment, codes in suppressions.unused(enabled):
            if UNUSED_NOQA_CODE in suppressions.by_line.get(comment.line, ()) \
                    or suppressions.covers(UNUSED_NOQA_CODE, ()):  # NAN001 named on that line, or file-ignored
                continue
            what = f"code{'s' if len(codes) > 1 else ''} {', '.join(codes)}" if codes else "comment"
            result.findings.append(Finding(
                UNUSED_NOQA_CODE, name, f"unused `{comment.kind}` {what}: no finding to suppress here",
                path, comment.line, comment.column, comment.line, comment.column))
    return result


def _lint_source(path: str, source: str, request: LintRequest, suppressions: Suppressions) -> FileResult:
    result = FileResult(path, source=source)
    all_rules = request.rule_screens()
    if SECOND_STAGE:  # one scan per screen serves both stages (the same test as screened_rules)
        possible = [rule for rule in all_rules if rule.may_fire(source, request.precision)]
        starts = screening.match_starts(possible, source)
        rules = [rule for rule in possible if starts[rule]]
    else:
        rules = screened_rules(all_rules, source, request.precision)
    if not rules:
        # No rule can fire, so libcst is not needed; a syntax error is still reported
        # (the cheap stdlib parser finds it; libcst confirms before we say so).
        result.tree = stdlib_tree(source, path)
        if result.tree is None:
            _, error = parse(path, source)
            if error is not None:
                result.findings.append(error)
        return result
    tree: Optional[ast.Module] = None
    if not SECOND_STAGE:
        module, error = parse(path, source)
    else:
        module, rules, error, tree = _parse_screened(path, source, rules, starts)
        result.tree = tree
        if module is None and error is None:
            return result  # no definition any rule's screen matches: nothing to parse (screening.py)
    if error is not None:
        result.findings.append(error)
        return result
    assert module is not None
    from .cst_pass import analyse

    return analyse(result, path, source, module, _rule_classes(rules), request, suppressions, tree)


def lint_path(path: str, request: LintRequest, display: Optional[str] = None) -> FileResult:
    shown = display or path
    source, encoding, error = read_source(path)
    if error is not None:
        return FileResult(shown, [error])
    assert source is not None
    result = lint_source(shown, source, request)
    result.encoding = encoding
    return result
