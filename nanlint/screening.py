"""The second-stage screen: which top-level definitions of a file can hold a finding.

The first stage (``engine.screened_rules``) runs each rule's ``screen`` regex over
the whole file and drops the rules that cannot fire anywhere. Most files that
pass it are long (a transformers model file is 1,000-3,000 lines) and hold the
screened word in one or two of their functions. This stage splits the module at
its top-level ``def``/``class`` statements with the stdlib parser (about a tenth
of libcst's cost, and the engine's syntax check anyway), runs the screens again
over each definition, and builds the text libcst parses:

* every top-level statement that is not a ``def``/``class`` (imports,
  assignments, ``if``/``try`` blocks, a script's training loop) is kept as is;
* a definition some enabled rule's screen matches ("hot") is kept as is;
* every other definition is replaced by a one-line stub that binds the same
  name and keeps the definition's ``import`` statements, followed by a string
  that spans the definition's remaining lines, so line and column numbers are
  unchanged and positions, suppressions and fixes need no mapping.

This is exact under the *chunk locality* contract, which every rule honours
unless it sets ``chunk_local = False`` (then the whole file is parsed whenever
the rule's screen matches):

1. What a rule reports inside a top-level definition depends only on that
   definition, on the module's other top-level statements, on the names the
   other definitions bind, on ``import`` statements anywhere in the file, and on
   the file's text through ``ctx.source`` (which is always the whole file).
   What it reports outside every definition depends on the same, minus the
   definitions' bodies.
2. A rule's screen matches the code (docstrings excluded) of the top-level
   statement that holds a finding, or of the module-level code that finding
   reads. Screens match tokens of expressions, so such a match never spans two
   top-level statements.

Under (1) a kept definition produces the same findings in the sliced file as in
the whole file; under (2) a stubbed definition produces none in either. The
stdlib parser also decides syntax: a file it rejects, a file with ``\\r``
line endings, and a sliced text libcst rejects all take the plain path.
"""
from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass
from typing import Optional, Sequence

from .rules.base import Rule

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# A file this short is parsed whole: slicing cannot save enough to pay for itself.
MIN_LINES = 60


@dataclass
class Plan:
    """What libcst should parse for one file, and with which rules.

    ``text`` is None when no rule can fire anywhere (nothing to parse);
    ``sliced`` tells whether ``text`` differs from the source;
    ``indent`` is the indentation libcst must infer for the sliced text (the
    whole file's first indented block), checked by the engine.
    """

    text: Optional[str]
    rules: list[type[Rule]]
    sliced: bool = False
    indent: Optional[str] = None
    kept_lines: int = 0
    dropped: tuple[tuple[int, int], ...] = ()  # 1-based inclusive line ranges replaced by stubs


def match_starts(rules: Sequence[type[Rule]], source: str) -> dict[type[Rule], list[int]]:
    """Where each rule's screen matches ``source`` (one scan per rule, serving both stages).

    ``bool(starts[rule])`` is exactly ``rule.screen.search(source) is not None``,
    the first stage's test.
    """
    return {rule: [m.start() for m in rule.screen.finditer(source)] for rule in rules}


def plan(source: str, rules: Sequence[type[Rule]], path: str = "<unknown>",
         starts: Optional[dict[type[Rule], list[int]]] = None) -> Optional[Plan]:
    """The second-stage plan for ``source`` (already screened to ``rules``), or None for the plain path.

    ``starts`` are the screens' match positions in ``source`` (``match_starts``),
    computed here when not given.
    """
    if "\r" in source or not all(getattr(rule, "chunk_local", True) for rule in rules):
        return None
    try:
        tree = compile(source, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None  # the plain path reports it exactly as before
    lines = source.split("\n")
    if len(lines) < MIN_LINES:
        return Plan(source, list(rules), kept_lines=len(lines))
    body = tree.body  # type: ignore[attr-defined]
    chunks: list[tuple[int, int, ast.stmt]] = []
    for statement in body:
        if isinstance(statement, _DEFINITIONS):
            first = min([statement.lineno, *(d.lineno for d in statement.decorator_list)])
            chunks.append((first, statement.end_lineno or statement.lineno, statement))
    if not chunks:
        return Plan(source, list(rules), kept_lines=len(lines))

    if starts is None:
        starts = match_starts(rules, source)
    offsets = [0]  # offsets[i]: where line i + 1 starts
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    # Each match start is placed in the part of the file it lies in: a definition, or module-level
    # code; one that starts in a docstring does not count. Docstrings nest in definitions; a sweep
    # turns the intervals into sorted edges, each with what lies from there on, for bisect.
    edges: list[int] = []
    kinds: list[int] = []  # -1: module level, -2: docstring, i >= 0: chunk i
    docstrings = sorted(_docstring_lines(lines, tree))
    bounds = sorted([(offsets[a - 1], offsets[b], i) for i, (a, b, _) in enumerate(chunks)]
                    + [(offsets[a - 1], offsets[b], -2) for a, b in docstrings])
    enclosing: list[tuple[int, int]] = []  # (end, kind) of the chunks a docstring may sit in
    for start, end, kind in bounds:
        while enclosing and enclosing[-1][0] <= start:
            closed_end, _ = enclosing.pop()
            edges.append(closed_end)
            kinds.append(enclosing[-1][1] if enclosing else -1)
        edges.append(start)
        kinds.append(kind)
        enclosing.append((end, kind))
    while enclosing:
        closed_end, _ = enclosing.pop()
        edges.append(closed_end)
        kinds.append(enclosing[-1][1] if enclosing else -1)
    stubs = [_stub(lines, first, last, node) for first, last, node in chunks]
    stub_text = "\n".join(stubs)
    everywhere: set[type[Rule]] = set()
    hot_chunks: dict[type[Rule], set[int]] = {}
    for rule in rules:
        where = set()
        for start in starts.get(rule, ()):
            index = bisect.bisect_right(edges, start) - 1
            where.add(kinds[index] if index >= 0 else -1)
        if -1 in where or rule.screen.search(stub_text):
            everywhere.add(rule)  # module-level code, or a stub (a name, imports) other definitions see
        hot_chunks[rule] = {w for w in where if w >= 0}
    hot_rules = set(everywhere) | {rule for rule, found in hot_chunks.items() if found}
    keep = [bool(everywhere) or any(index in found for found in hot_chunks.values())
            for index in range(len(chunks))]
    chosen = [rule for rule in rules if rule in hot_rules]
    if not chosen:
        return Plan(None, [])
    if all(keep):
        return Plan(source, chosen, kept_lines=len(lines))
    pieces: list[str] = []
    previous = 0
    kept = len(lines)
    dropped = []
    for (first, last, _), stub, hot in zip(chunks, stubs, keep):
        if hot:
            continue
        pieces.extend(lines[previous:first - 1])
        pieces.append(stub)
        previous = last
        kept -= last - first
        dropped.append((first, last))
    pieces.extend(lines[previous:])
    return Plan("\n".join(pieces), chosen, sliced=True, indent=_first_indent(lines, body), kept_lines=kept,
                dropped=tuple(dropped))


def _stub(lines: list[str], first: int, last: int, node: ast.stmt) -> str:
    """One logical line that binds the definition's name and keeps its imports, spanning lines first..last."""
    keyword = "class" if isinstance(node, ast.ClassDef) else "def"
    head = f"{keyword} {node.name}:" if keyword == "class" else f"def {node.name}():"  # type: ignore[attr-defined]
    imports = ""
    if any("import" in line for line in lines[first - 1:last]):
        found = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
        found.sort(key=lambda n: (n.lineno, n.col_offset))
        imports = "".join(ast.unparse(n) + "; " for n in found)
    if last == first:
        return f"{head} {imports}pass"
    return f'{head} {imports}"""' + "\n" * (last - first) + '"""'


def _docstring_lines(lines: list[str], tree: ast.AST) -> list[tuple[int, int]]:
    """Line ranges (1-based, inclusive) of the docstrings of the module, its definitions and their methods.

    Only whole lines that hold nothing but the docstring count; screens never
    look for evidence in a docstring.
    """
    found: list[tuple[int, int]] = []
    owners: list[ast.AST] = [tree]
    for statement in tree.body:  # type: ignore[attr-defined]
        if isinstance(statement, _DEFINITIONS):
            owners.append(statement)
            if isinstance(statement, ast.ClassDef):
                owners.extend(s for s in statement.body if isinstance(s, _DEFINITIONS))
    for owner in owners:
        block = owner.body  # type: ignore[attr-defined]
        if not block:
            continue
        doc = block[0]
        if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)):
            continue
        start, end = doc.lineno, doc.end_lineno or doc.lineno
        if len(block) > 1 and block[1].lineno <= end:
            continue  # ``"""doc"""; x = 1``
        opening = lines[start - 1].lstrip()
        if not opening or opening[0] not in "\"'rRuUbBfF":
            continue  # the docstring shares its first line with the header
        closing = lines[end - 1].rstrip()
        if not closing.endswith(("'", '"')):
            continue  # something follows the string on its last line
        found.append((start, end))
    return found


def _first_indent(lines: list[str], body: list[ast.stmt]) -> Optional[str]:
    """The indentation of the file's first indented block (what libcst infers as ``default_indent``).

    None when it cannot be told cheaply (a ``match`` statement comes first); the
    engine then parses the whole file.
    """
    for statement in body:
        if type(statement).__name__ == "Match":
            return None
        inner = getattr(statement, "body", None)
        if not isinstance(inner, list) or not inner:
            continue
        line = lines[inner[0].lineno - 1]
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if inner[0].lineno > statement.lineno and inner[0].col_offset == len(indent) > 0:
            return indent
    return "    "  # no indented block: libcst's default
