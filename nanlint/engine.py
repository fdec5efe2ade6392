"""discovery -> read -> screen -> parse (once) -> one walk with every rule -> suppress -> findings."""
from __future__ import annotations

import ast
import os
import sys
from typing import Mapping, Optional, Sequence

import libcst as cst
from libcst.metadata import CodeRange

from .context import FileContext, RawFinding
from .files import (FILE_ERROR_CODE, FILE_ERROR_NAME, INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME,  # noqa: F401
                    MAX_FILE_BYTES, SUPPRESSIONS_OPTION, UNUSED_NOQA_CODE, FileResult, LintRequest, decode,
                    decode_source, file_error, python_syntax_error, read_source)
from .finding import Finding
from .fixspec import FixSpec, to_fix
from .lines import split_lines
from .positions import positions_of, whole_module
from . import screening
from .collector import collector_paused
from .rules.base import Rule
from .suppress import Suppressions, parse_suppressions
from .walker import Walker

# The walk recurses once per tree level; CPython accepts ~3,000 levels of nesting,
# libcst's tree is a few times deeper than that. Python-to-Python calls do not use
# the C stack in 3.11+, so a higher limit is safe for the walk.
_WALK_RECURSION_LIMIT = 50_000

def parse(path: str, source: str) -> tuple[Optional[cst.Module], Optional[Finding]]:
    """libcst's tree, or a NAN000 finding. Never crashes the process.

    The stdlib parser runs first (about a tenth of libcst's cost): libcst's native
    parser overflows its stack and kills the process (SIGSEGV) on nesting that
    CPython rejects cleanly (measured: 2,000 nested parentheses, 5,000-deep
    attribute chains; CPython refuses above 200 parentheses and ~3,000 levels
    of other nesting). Only a SyntaxError that may be newer syntax than this
    interpreter knows is handed to libcst to decide.
    """
    python_error = python_syntax_error(path, source)
    if python_error is not None and not python_error.extra.get("newer_syntax_possible"):
        return None, python_error
    try:
        return cst.parse_module(source), None
    except cst.ParserSyntaxError as exc:
        if python_error is not None:
            return None, python_error
        message = str(exc.message).strip().splitlines()[0] if exc.message else "invalid syntax"
        return None, file_error(path, f"cannot parse (libcst): {message}", exc.raw_line, exc.raw_column + 1)
    except RecursionError:
        return None, file_error(path, "cannot parse: nesting too deep")
    except Exception as exc:  # libcst's native parser raises a few other types
        return None, file_error(path, f"cannot parse: {type(exc).__name__}: {exc}")


def _compiles(source: str, path: str) -> bool:
    try:
        compile(source, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def screened_rules(rules: Sequence[type[Rule]], source: str,
                   precision: Optional[tuple[str, ...]] = None) -> list[type[Rule]]:
    """The rules whose screen matches and whose file-level condition holds: the only ones that can fire."""
    return [rule for rule in rules if rule.may_fire(source, precision) and rule.screen.search(source)]


# The second-stage screen (screening.py): libcst parses only the top-level definitions a screen
# matches. Off (``NANLINT_SECOND_STAGE=0``) for the benchmark's and the tests' plain path.
SECOND_STAGE = os.environ.get("NANLINT_SECOND_STAGE", "1") != "0"


def _parse_screened(path: str, source: str, rules: list[type[Rule]],
                    starts: Optional[dict[type[Rule], list[int]]] = None
                    ) -> tuple[Optional[cst.Module], list[type[Rule]], Optional[Finding]]:
    """Parse what the second-stage screen keeps; (None, [], None) when nothing can fire."""
    plan = screening.plan(source, rules, path, starts)
    if plan is None:
        module, error = parse(path, source)
        return module, rules, error
    if plan.text is None:
        return None, [], None
    try:  # the stdlib parser has accepted the whole file: no need to run it again
        module = cst.parse_module(plan.text)
    except Exception:  # libcst disagrees with the stdlib parser: the plain path decides
        module = None
    if module is None or (plan.sliced and module.default_indent != plan.indent):
        module, error = parse(path, source)
        return module, rules, error
    return module, plan.rules, None


def lint_source(path: str, source: str, request: LintRequest) -> FileResult:
    """Lint decoded source. Never raises for bad input: errors become findings."""
    with collector_paused():
        suppressions = parse_suppressions(source)
        return _unused_noqa(_lint_source(path, source, request, suppressions), path, request, suppressions)


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
    rules = [rule for rule in possible if rule.screen.search(text)]
    plan = screening.plan(text, rules, path) if rules and SECOND_STAGE else None
    if plan is not None:  # the second stage on ``text``: exact under the same contract, and often nothing to parse
        text, rules = plan.text or "", plan.rules
    if rules:
        try:
            module = cst.parse_module(text)
        except Exception:  # libcst's native parser raises several types
            return None
        if indent is None or module.default_indent != indent:
            return None
        result = _analyse(result, path, source, module, rules, request, suppressions)
    return _unused_noqa(result, path, request, suppressions)


def _unused_noqa(result: FileResult, path: str, request: LintRequest, suppressions: Suppressions) -> FileResult:
    """NAN001 (a preview rule): after every other rule, the suppression comments that suppressed nothing."""
    rules = request.rule_classes()
    unused = next((rule for rule in rules if rule.code == UNUSED_NOQA_CODE), None)
    if unused is not None and not any(f.code in (FILE_ERROR_CODE, INTERNAL_ERROR_CODE) for f in result.findings):
        enabled = frozenset(rule.code for rule in rules)
        for comment, codes in suppressions.unused(enabled):
            if UNUSED_NOQA_CODE in suppressions.by_line.get(comment.line, ()) \
                    or suppressions.covers(UNUSED_NOQA_CODE, ()):  # NAN001 named on that line, or file-ignored
                continue
            what = f"code{'s' if len(codes) > 1 else ''} {', '.join(codes)}" if codes else "comment"
            result.findings.append(Finding(
                UNUSED_NOQA_CODE, unused.name, f"unused `{comment.kind}` {what}: no finding to suppress here",
                path, comment.line, comment.column, comment.line, comment.column))
    return result


def _lint_source(path: str, source: str, request: LintRequest, suppressions: Suppressions) -> FileResult:
    result = FileResult(path, source=source)
    all_rules = request.rule_classes()
    if SECOND_STAGE:  # one scan per screen serves both stages (the same test as screened_rules)
        possible = [rule for rule in all_rules if rule.may_fire(source, request.precision)]
        starts = screening.match_starts(possible, source)
        rules = [rule for rule in possible if starts[rule]]
    else:
        rules = screened_rules(all_rules, source, request.precision)
    if not rules:
        # No rule can fire, so libcst is not needed; a syntax error is still reported
        # (the cheap stdlib parser finds it; libcst confirms before we say so).
        if not _compiles(source, path):
            _, error = parse(path, source)
            if error is not None:
                result.findings.append(error)
        return result
    if not SECOND_STAGE:
        module, error = parse(path, source)
    else:
        module, rules, error = _parse_screened(path, source, rules, starts)
        if module is None and error is None:
            return result  # no definition any rule's screen matches: nothing to parse (screening.py)
    if error is not None:
        result.findings.append(error)
        return result
    assert module is not None
    return _analyse(result, path, source, module, rules, request, suppressions)


def _analyse(result: FileResult, path: str, source: str, module: cst.Module, rules: Sequence[type[Rule]],
             request: LintRequest, suppressions: Suppressions) -> FileResult:
    """One walk of ``module`` with ``rules``; findings located in ``source``."""
    ctx = FileContext(path, source, request.precision, dict(request.options))
    instances = [rule(ctx) for rule in rules]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, _WALK_RECURSION_LIMIT))
    walker = Walker(ctx, instances)
    try:
        walker.run(module)
    except RecursionError:
        result.findings.append(file_error(path, "cannot analyse: nesting too deep"))
        return result
    except Exception as exc:  # a rule bug must not stop the other files
        result.internal_error = True
        result.findings.append(Finding(
            INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME,
            f"internal error while linting: {type(exc).__name__}: {exc} (please report this)",
            path, 1, 1, 1, 1,
        ))
        return result
    else:
        failed = {type(rule) for rule, _, _ in walker.failures}
        raw = [f for f in ctx.findings if f.rule not in failed]
        if raw:
            result.findings.extend(_locate(path, source, module, raw, suppressions,
                                           bool(dict(request.options).get(SUPPRESSIONS_OPTION))))
        for rule, exc, _ in walker.failures:
            result.internal_error = True
            code, name = getattr(rule, "code", "?"), getattr(rule, "name", "?")
            result.findings.append(Finding(
                INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME,
                f"internal error in rule {code} ({name}): {type(exc).__name__}: {exc}; the other rules ran "
                "(please report this)",
                path, 1, 1, 1, 1,
            ))
    finally:
        sys.setrecursionlimit(limit)
        walker.release()
    return result


def _locate(path: str, source: str, module: cst.Module, raw: list[RawFinding], suppressions: Suppressions,
            keep_suppressed: bool = False) -> list[Finding]:
    positions = _positions(source, module, raw)
    source_lines = split_lines(source)
    findings: list[Finding] = []
    seen: set[tuple[str, int, int, int, int]] = set()
    for item in raw:
        span = positions[item.node]
        suppress_lines: tuple[int, ...] = (span.start.line,)
        if item.statement is not None and item.statement in positions:
            statement = positions[item.statement]
            suppress_lines = (span.start.line, statement.start.line)
            if isinstance(item.statement, cst.SimpleStatementLine):
                suppress_lines += (statement.end.line,)
        code = item.rule.code
        suppressed = suppressions.covers(code, suppress_lines)
        if suppressed and not keep_suppressed:
            continue
        key = (code, span.start.line, span.start.column, span.end.line, span.end.column)
        if key in seen:
            continue
        seen.add(key)
        extra = dict(item.extra)
        if keep_suppressed:
            extra["noqa_lines"] = suppress_lines
            if suppressed:
                extra["suppressed"] = True
        confidence = extra.pop("confidence", "high")
        spec = extra.pop("fix", None)
        fix = to_fix(spec, positions, module, source_lines) if isinstance(spec, FixSpec) else None
        target = extra.pop("target", None)
        if isinstance(target, cst.CSTNode) and target in positions:
            t = positions[target]
            extra["target_span"] = (t.start.line, t.start.column + 1, t.end.line, t.end.column + 1)
        findings.append(Finding(
            code, item.rule.name, item.message, path,
            span.start.line, span.start.column + 1, span.end.line, span.end.column + 1,
            fix, extra, confidence=confidence,
        ))
    return findings


def _positions(source: str, module: cst.Module, raw: list[RawFinding]) -> Mapping[cst.CSTNode, CodeRange]:
    """Positions of what the findings need: only their top-level statements where that is exact."""
    if "\r" in source or any(item.top is None for item in raw):  # lines counted by "\n" alone
        return whole_module(module)
    needed: list[cst.CSTNode] = []
    for item in raw:
        needed.append(item.node)
        if item.statement is not None:
            needed.append(item.statement)
        target = item.extra.get("target")
        if isinstance(target, cst.CSTNode):
            needed.append(target)
        spec = item.extra.get("fix")
        if isinstance(spec, FixSpec):
            needed.extend(getattr(change, "node", None) or change.statement for change in spec.changes)
    return positions_of(module, {id(item.top): item.top for item in raw}.values(), needed)


def lint_path(path: str, request: LintRequest, display: Optional[str] = None) -> FileResult:
    shown = display or path
    source, encoding, error = read_source(path)
    if error is not None:
        return FileResult(shown, [error])
    assert source is not None
    result = lint_source(shown, source, request)
    result.encoding = encoding
    return result
