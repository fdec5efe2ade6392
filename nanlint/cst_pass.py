"""The libcst half of the engine: parse a file (or the text the second stage keeps), walk it once with every
rule that can fire, and locate the findings in the source. :mod:`nanlint.engine` imports this module only for a
file it must parse, so a run whose files hold nothing to parse imports no libcst and no rule."""
from __future__ import annotations

import ast
import sys
from typing import Mapping, Optional, Sequence

import libcst as cst
from libcst.metadata import CodeRange

from .context import FileContext, RawFinding
from .files import INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME, SUPPRESSIONS_OPTION, FileResult, LintRequest, \
    file_error, python_syntax_error
from .finding import Finding
from .fixspec import FixSpec, to_fix
from .lines import split_lines
from .positions import positions_of, whole_module
from .rules.base import Rule
from .suppress import Suppressions
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


def parse_kept(text: str) -> Optional[cst.Module]:
    """libcst's tree of a text the stdlib parser has accepted (the second stage's), or None where libcst
    rejects it (its native parser raises several types).

    Each node libcst's parser builds checks its own fields (``CSTNode._validate``: parentheses balanced,
    whitespace where the grammar needs it), a sixth of the parse's time (measured on timm's kept text:
    0.74 s validated, 0.62 s not). A tree parsed from source holds what the source holds, so the checks
    cannot fail (libcst's own comment on ``__post_init__`` says as much); they are skipped while this parse
    runs, and only where ``__post_init__`` does nothing but call them (``_SKIPPABLE``). A node built by
    another thread meanwhile (a fix's, in the language server) goes unchecked, and the fix engine's re-parse
    of the fixed text still catches anything invalid."""
    base = cst.CSTNode
    try:
        if _SKIPPABLE:
            base.__post_init__ = _unchecked  # type: ignore[method-assign]
        return cst.parse_module(text)
    except Exception:
        return None
    finally:
        base.__post_init__ = _checked  # type: ignore[method-assign]


_checked = cst.CSTNode.__post_init__
# The libcst releases nanlint supports: ``def __post_init__(self): self._validate()``; another body is left alone.
_SKIPPABLE = _checked.__code__.co_names == ("_validate",)


def _unchecked(self: cst.CSTNode) -> None:
    """``CSTNode.__post_init__`` without its ``_validate``."""


def analyse(result: FileResult, path: str, source: str, module: cst.Module, rules: Sequence[type[Rule]],
             request: LintRequest, suppressions: Suppressions, tree: Optional[ast.Module] = None) -> FileResult:
    """One walk of ``module`` with ``rules``; findings located in ``source``. ``tree``: the stdlib tree of
    ``source``, when the caller has one (the module summary then does not parse ``source`` again)."""
    ctx = FileContext(path, source, request.precision, dict(request.options), tree)
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
