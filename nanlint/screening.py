"""The second-stage screen: which definitions of a file can hold a finding.

The first stage (``engine.screened_rules``) runs each rule's ``screen`` regex (and
its file-level ``may_fire``) over the whole file and drops the rules that cannot
fire anywhere. Most files that pass it are long (a transformers model file is
1,000-3,000 lines) and hold the screened word in a few of their methods. This
stage splits the module with the stdlib parser (about a tenth of libcst's cost,
and the engine's syntax check anyway) into *regions*: its top-level ``def`` and
``class`` statements, and the methods of its top-level classes. A region is hot
for a rule when

* the rule's screen matches its code (docstrings and comment lines excluded), or
* the screen matches module-level code that binds a name the region mentions
  (directly, or through module-level statements reading that name: ``EPS =
  1e-8``; ``TINY = EPS / 2``), or the imports of another definition (a star
  import there, or one in module-level code, makes every region hot), or
* the screen matches a method that sets ``self.x`` in the same class, unless
  the rule sets ``attribute_flow = False`` (it reports only where its screen
  matches);

and, when the rule has a ``site``, the region's own code (outside its methods)
matches the site, and a divisor there reads the evidence: the right operand of
a ``/``, the base of a ``**``, or a call named like a division or a reciprocal
holds a screen match or mentions a name the evidence flows into (``_Flows``: by
name through the region's statements, ``self.x`` set by the class's
attribute-setting methods, or module-level names the match binds); when the rule has a ``root_operand``
(the square-root rules), a root's operand there reads square evidence (``_square_evidence``: a variance, a
square, a norm, an MSE), in it or by name the same ways. A rule's ``evidence_at`` may drop screen matches
that cannot be the evidence of a finding (NAN103: ``len(x)`` of a name no statement assigns a selection,
Python's ``sum``) before any of this. libcst then parses a text where

* every module-level statement is kept as is (imports, assignments, ``if``
  blocks, a script's training loop), except a multi-line assignment to plain
  names that no kept code reads, no screen matches and that reads no name the
  module-level evidence binds (``default_cfgs = {...}`` over 300 lines of a
  model file): it binds the same names to a string spanning its lines;
* a hot region is kept; a class is kept when it or one of its methods is hot,
  and so are its class-level statements and every method that sets a
  ``self.x`` whose name kept code mentions (other methods read those
  attributes; a fixpoint through the setters kept);
* every other region is replaced by a one-line stub that binds the same name at
  the same indentation and keeps the region's ``import`` statements, followed
  by a string that spans its remaining lines, so line and column numbers are
  unchanged and positions, suppressions and fixes need no mapping.

This is exact under the *chunk locality* contract, which every rule honours
unless it sets ``chunk_local = False`` (then the whole file is parsed whenever
the rule's screen matches):

1. What a rule reports inside a definition depends only on that definition, on
   the module-level statements (an assignment to plain names only through the
   names it binds being read), on the names other definitions bind, on
   ``import`` statements anywhere in the file, on the ``self.x`` assignments of
   the methods of its class, and on the file's text through ``ctx.source``
   (which is always the whole file).
2. A finding's evidence is a screen match in the region that holds it, in the
   module-level code it reads by name, or in a method of its class that sets
   attributes (only when ``attribute_flow``); a module-level finding lies in a
   statement a screen matches or that reads a name the module-level matches
   bind; a finding lies in a region its rule's ``site`` matches, and is a
   divisor computed from that evidence by names the region (or the class's
   setters) bind; a finding of a ``root_operand`` rule is a root whose operand
   is computed from square evidence the same way. Screens match tokens of
   expressions, so a match never spans two statements.

Under (1) a kept region produces the same findings in the sliced file as in
the whole file; under (2) a stubbed one produces none in either. The stdlib
parser also decides syntax: a file it rejects, a file with ``\\r`` line
endings, and a sliced text libcst rejects all take the plain path.
tests/test_screens.py checks both halves on the fixtures and a corpus sample.
"""
from __future__ import annotations

import ast
import bisect
import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

from typing import TYPE_CHECKING

from .analysis.ops import ADD_PRODUCT_OPS, CASTS, COSINE_NAME, DIVIDE_OPS, FOREIGN_MODULE_ROOTS, SQUARE_SOURCE_OPS, \
    TRANSPARENT_OPS, VARIANCE_NAME
from .files import stdlib_tree
from .rules._screens import BLOCKS, ROOT, Assignments, Screen, WithFileCondition, assignment, callee, first_line, \
    screen_starts, children, statements, walk, walk_lines

if TYPE_CHECKING:
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
    tree: Optional[ast.Module] = field(default=None, repr=False, compare=False)  # the stdlib tree of the source


def match_starts(rules: Sequence[type[Rule]], source: str) -> dict[type[Rule], list[int]]:
    """Where each rule's screen matches ``source`` (one scan per rule, serving both stages).

    ``bool(starts[rule])`` is exactly ``rule.screen.search(source) is not None``,
    the first stage's test.
    """
    shared: dict = {}  # the screens' common alternatives, scanned once
    return {rule: screen_starts(rule.screen, source, shared) for rule in rules}


def plan(source: str, rules: Sequence[type[Rule]], path: str = "<unknown>",
         starts: Optional[dict[type[Rule], list[int]]] = None) -> Optional[Plan]:
    """The second-stage plan for ``source`` (already screened to ``rules``), or None for the plain path.

    ``starts`` are the screens' match positions in ``source`` (``match_starts``),
    computed here when not given.
    """
    if "\r" in source or not all(rule.chunk_local for rule in rules) or _torch_as_foreign(source):
        return None
    tree = stdlib_tree(source, path)
    if tree is None:
        return None  # the plain path reports it exactly as before
    lines = source.split("\n")
    if len(lines) < MIN_LINES:
        return Plan(source, list(rules), kept_lines=len(lines), tree=tree)
    body = tree.body  # type: ignore[attr-defined]
    offsets = [0]  # offsets[i]: where line i + 1 starts
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    regions = _regions(body, lines)
    if not regions:
        return Plan(source, list(rules), kept_lines=len(lines), tree=tree)

    if starts is None:
        starts = match_starts(rules, source)
    assignments = Assignments(tree, source)
    memo: dict = {"assignments": assignments}
    starts = {rule: [start for start in found if not _commented(source, start) and not _after_hash(source, start)
                     and (rule.evidence_at is None or rule.evidence_at(source, start, memo))]
              for rule, found in starts.items()}
    edges, kinds = _sweep(regions, _docstring_lines(lines, tree), offsets)
    top = [index for index, region in enumerate(regions) if region.parent is None]
    stubs = {index: _stub(lines, regions[index]) for index in top}
    module_level = _ModuleLevel(body)
    module_hot: set[type[Rule]] = set()  # rules whose screen matches module-level code
    hot: dict[type[Rule], set[int]] = {}  # the regions that may hold a finding of each rule
    sites: dict[str, dict[int, set[int]]] = {}  # by the site's regex: its lines in each region (-1: module level)
    def square_names() -> set[str]:  # module-level names bound from square evidence, and what reads them
        return module_level.closure(module_level.square_names(lines, assignments))

    flows = _Flows(regions, lines, offsets, edges, kinds, starts, square_names, not _renames_root(source),
                   assignments)
    evidence_lines: set[int] = set()  # module-level lines a screen matches
    evidence_names: Optional[set[str]] = set()  # the module-level names they bind (None: any name)
    def site_lines(site: "Union[re.Pattern[str], Screen]") -> dict[int, set[int]]:  # the divide-by rules share theirs
        key = _pattern_text(site)
        if key not in sites:
            sites[key] = _lines_of(site, source, offsets, edges, kinds)
        return sites[key]

    module_sites: dict[str, list[int]] = {}  # by the site's regex: its module-level lines, sorted
    sum_divisions: dict[tuple[int, str, bool], bool] = {}

    def divides_by_sum(index: int, site: "Union[re.Pattern[str], Screen]", reciprocals: bool) -> bool:
        """Whether module-level statement ``index`` divides by what may be a sum (``_may_be_sum``, the test
        ``_Flows.reaching`` makes of a region's divisors under a file-level condition). Only its nodes on the
        module-level lines ``site`` matches are read (``walk_lines``): a division's ``/`` or ``div`` is a site
        match on a line its node spans, and a 3,000-line ``default_cfgs = {...}`` holding a URL is not walked
        whole (at every keystroke the language server previews there). ``reciprocals``: the rule's."""
        pattern = _pattern_text(site)
        if (index, pattern, reciprocals) not in sum_divisions:
            if pattern not in module_sites:
                module_sites[pattern] = sorted(site_lines(site).get(-1, ()))
            sum_divisions[index, pattern, reciprocals] = any(
                operand is not None and _may_be_sum(operand, assignments)
                for node in walk_lines(module_level.statements[index], module_sites[pattern])
                for operand in [_divisor(node, assignments, reciprocals)])
        return sum_divisions[index, pattern, reciprocals]

    for rule in rules:
        where: set[int] = set()
        everywhere = False  # some module-level code or stub may reach every definition
        spread: set[str] = set()  # module-level names a match lies in the binding of
        # a screen's file-level condition (``WithFileCondition``) holds: its evidence may be in any definition
        squares = isinstance(rule.screen, WithFileCondition) and rule.screen.condition(source)
        for start in starts.get(rule, ()):
            if squares and start == 0 and rule.screen.pattern.match(source) is None:  # type: ignore[union-attr]
                continue  # the condition's zero-width match at the start of the file, evidence of nothing there
            kind = _region_at(start, edges, kinds)
            where.add(kind)
            if kind == -1:
                line = bisect.bisect_right(offsets, start)
                bound = module_level.names_bound_at(line)
                everywhere = everywhere or bound is None
                spread |= bound or set()
                evidence_lines.add(line)
        for stub, imported in stubs.values():
            if _stub_matches(rule.screen, stub):
                everywhere = everywhere or imported is None
                spread |= imported or set()
        if squares and rule.site is None:
            everywhere = True  # (only a divide-by rule says what the condition's evidence is)
        if -1 in where:
            module_hot.add(rule)  # module-level code may hold a finding of its own
        found = set(range(len(regions))) if everywhere or squares else {w for w in where if w >= 0}
        if spread and not everywhere:
            found |= _mentioning(module_level.closure(spread), source, offsets, regions)
        for index in list(found) if rule.attribute_flow else ():
            region = regions[index]  # evidence in a method that sets ``self.x`` may reach every method
            if region.parent is not None and region.binds_attributes:
                found |= regions[region.parent].members
        if evidence_names is not None:
            evidence_names = None if everywhere else evidence_names | spread
        if found and rule.site is not None and not (rule.site_anywhere and rule.site_anywhere.search(source)):
            found &= site_lines(rule.site).keys()
            if found and not everywhere:  # the site must read what the evidence computed
                names = spread | module_level.square_names(lines, assignments) if squares else spread
                found = flows.reaching(rule, found, site_lines(rule.site),
                                       module_level.closure(names) if names else set(), squares)
        if found and rule.root_operand is not None and not everywhere and flows.roots_visible:
            found = flows.roots_reaching(found, rule.root_operand != "square", square_names)
        hot[rule] = found
        if squares and rule.site is not None:  # the condition's finding in module-level code: a division by a sum
            if rule.site_anywhere and rule.site_anywhere.search(source):
                module_hot.add(rule)  # (a division under another name may be anywhere)
                evidence_names = None
            else:
                dividing = sorted({index for line in site_lines(rule.site).get(-1, ())
                                   for index in module_level.statements_at(line)})
                if not found and any(divides_by_sum(index, rule.site, rule.reciprocals) for index in dividing):
                    module_hot.add(rule)  # (a hot region keeps module-level code anyway)
                for index in dividing:  # such a statement is no unread assignment to stub: it may hold a finding
                    statement = module_level.statements[index]
                    if statement.end_lineno != statement.lineno \
                            and divides_by_sum(index, rule.site, rule.reciprocals):
                        evidence_lines.add(statement.lineno)
    chosen = [rule for rule in rules if rule in module_hot or hot[rule]]
    if not chosen:
        return Plan(None, [], tree=tree)
    hot_regions = set().union(*hot.values())
    replaced: list[tuple[int, int, str]] = []  # (first, last, stub) in line order
    setters: list[int] = []  # methods of kept classes that are not hot but set attributes
    for index in top:
        region = regions[index]
        if not region.members & hot_regions:
            replaced.append((region.first, region.last, stubs[index][0]))
            continue
        for member in sorted(region.members - {index}):
            method = regions[member]
            if member in hot_regions:
                continue
            if method.binds_attributes:
                setters.append(member)
            else:
                replaced.append((method.first, method.last, _stub(lines, method)[0]))
    if setters:
        replaced.extend(_unread_setters(lines, regions, replaced, setters))
        replaced.sort(key=lambda item: item[0])
    if evidence_names is not None:
        replaced.extend(_unread_assignments(lines, replaced, module_level, evidence_lines,
                                            module_level.closure(evidence_names)))
        replaced.sort(key=lambda item: item[0])
    if not replaced:
        return Plan(source, chosen, kept_lines=len(lines), tree=tree)
    text, kept = sliced(lines, replaced)
    return Plan(text, chosen, sliced=True, indent=first_indent(lines, body), kept_lines=kept,
                dropped=tuple((first, last) for first, last, _ in replaced), tree=tree)


def sliced(lines: list[str], replaced: list[tuple[int, int, str]]) -> tuple[str, int]:
    """``lines`` with each ``(first, last, stub)`` of ``replaced`` (in line order) put in place of its lines;
    and how many lines are left as they were."""
    pieces: list[str] = []
    previous = 0
    kept = len(lines)
    for first, last, stub in replaced:
        pieces.extend(lines[previous:first - 1])
        pieces.append(stub)
        previous = last
        kept -= last - first
    pieces.extend(lines[previous:])
    return "\n".join(pieces), kept


def _unread_assignments(lines: list[str], replaced: list[tuple[int, int, str]], module_level: "_ModuleLevel",
                        evidence_lines: set[int], tainted: set[str]) -> list[tuple[int, int, str]]:
    """Stubs for the module-level assignments that no kept code reads: ``default_cfgs = {...}`` over 300 lines
    of a model file, ``__all__ = [...]``.

    A candidate is a statement on lines of its own that assigns only plain names (``X = ...``, ``a, b = ...``,
    ``X: T = ...``; not ``obj.attr = ...`` or ``d[k] = ...``, which change an object); only one that spans more
    than one line is stubbed, but a one-line candidate reads only if it stays itself (``_quick_cfgs = [n for n
    in default_cfgs]``, ``default_cfgs = generate_default_cfgs(default_cfgs)``). A ``for`` loop whose body
    only assigns is a candidate too, binding its targets and the names whose items or attributes it sets
    (``for n in _quick_cfgs: default_cfgs[n + '_x'] = copy(default_cfgs[n])``). It stays when a screen matches
    it, when it reads a name the module-level evidence binds (it may hold a module-level finding), or when a
    name it binds is mentioned by what libcst will parse without the candidates (the kept definitions, the
    stubs, every other module-level statement) or by a candidate that stays (a fixpoint: ``EPS = ...`` read by
    ``CONFIG = dict(eps=EPS, ...)`` read by a kept function). Mentions are words anywhere in that text,
    strings and comments included. Every other multi-line candidate binds the same names to a string spanning
    its lines, so positions are unchanged: nothing the rules analyse can read it."""
    tainted_words = word_pattern(tainted) if tainted else None
    candidates: list[tuple[int, int, set[str], str]] = []  # first, last, bound names, stub
    for index, statement in enumerate(module_level.statements):
        changed: set[str] = set()  # a loop's subscript and attribute targets: the objects it changes
        if isinstance(statement, ast.Assign):
            targets: list[ast.expr] = statement.targets
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets = [statement.target]
        elif isinstance(statement, ast.For) and _assignments_only(statement):
            targets = [statement.target]  # ``for n in names: cfgs[n + '_x'] = copy(cfgs[n])``
            changed = {_base_name(t) for node in walk(statement) if isinstance(node, (ast.Assign, ast.AugAssign,
                       ast.AnnAssign)) for t in (getattr(node, "targets", None) or [node.target])  # type: ignore
                       if isinstance(t, (ast.Subscript, ast.Attribute))} - {""}
        else:
            continue
        first, last = statement.lineno, statement.end_lineno or statement.lineno
        if statement.col_offset or not all(_plain_names(target) for target in targets):
            continue
        if module_level.statements_at(first) != [index] or module_level.statements_at(last) != [index]:
            continue  # shares a line with another statement (``;``)
        if any(first <= line <= last for line in evidence_lines):
            continue
        bound = (module_level.bound(index) or set()) | changed
        if not bound or (tainted_words is not None and tainted_words.search("\n".join(lines[first - 1:last]))):
            continue
        names = [n.id for target in targets for n in walk(target) if isinstance(n, ast.Name)] + sorted(changed)
        stub = " = ".join(dict.fromkeys(names)) + ' = """' + "\n" * (last - first) + '"""'
        candidates.append((first, last, bound, stub))
    found = unread(lines, replaced, [(first, last, bound) for first, last, bound, _ in candidates])
    return [(candidates[i][0], candidates[i][1], candidates[i][3]) for i in found
            if candidates[i][1] > candidates[i][0]]


def _assignments_only(loop: ast.For) -> bool:
    """A loop whose body (and ``else``) only assigns: no call statement, definition, import or ``global``."""
    return all(isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.For, ast.Pass, ast.Continue,
                                 ast.Break))
               and (not isinstance(node, ast.For) or _assignments_only(node))
               and (not isinstance(node, ast.If) or all(isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign,
                                                                         ast.Pass)) for n in node.body + node.orelse))
               for node in loop.body + loop.orelse)


def _base_name(target: ast.expr) -> str:
    """``cfgs`` of ``cfgs[k]`` or ``cfgs.x[k].y``; "" when the base is not a name."""
    while isinstance(target, (ast.Subscript, ast.Attribute)):
        target = target.value
    return target.id if isinstance(target, ast.Name) else ""


def unread(lines: list[str], replaced: list[tuple[int, int, str]],
            candidates: list[tuple[int, int, set[str]]]) -> list[int]:
    """The indices of ``candidates`` (first line, last line, the names each binds) that nothing kept reads:
    none of their names is a word of what libcst parses without any candidate (``replaced`` applied, the
    candidates cut out), nor of a candidate that stays (a fixpoint: a candidate read by one that stays is
    read). Words anywhere count, strings and comments included."""
    if not candidates:
        return []
    words = word_pattern(set().union(*(names for _, _, names in candidates)))
    spans = sorted([*replaced, *((first, last, "") for first, last, _ in candidates)], key=lambda r: r[0])
    mentioned = set(words.findall(sliced(lines, spans)[0]))  # of the candidates' names
    unread = list(range(len(candidates)))
    changed = True
    while changed:
        changed = False
        for index in list(unread):
            first, last, names = candidates[index]
            if names & mentioned:
                mentioned.update(words.findall("\n".join(lines[first - 1:last])))
                unread.remove(index)
                changed = True
    return unread


def _plain_names(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_plain_names(element) for element in target.elts)
    return isinstance(target, ast.Starred) and _plain_names(target.value)


@dataclass
class _Region:
    """A top-level definition, or a method of a top-level class (``parent``: the class's region)."""

    first: int  # 1-based, the first decorator's line
    last: int
    node: ast.stmt
    parent: Optional[int] = None
    members: set[int] = field(default_factory=set)  # a class: itself and its methods; else itself
    _attributes: Optional[frozenset[str]] = None

    @property
    def attributes(self) -> frozenset[str]:
        """A method's ``name.attr`` targets (``self.x = ...``: ``x``); none for a top-level definition. Read
        when first asked: most files' plans never ask of most methods."""
        if self._attributes is None:
            self._attributes = frozenset(stored_attributes(self.node)) if self.parent is not None else frozenset()
        return self._attributes

    @property
    def binds_attributes(self) -> bool:
        return bool(self.attributes)


def _regions(body: list[ast.stmt], lines: list[str]) -> list[_Region]:
    """The definitions the second stage may replace by stubs: top-level ones and the methods of top-level
    classes that start on a line of their own."""
    regions: list[_Region] = []
    for statement in body:
        if not isinstance(statement, _DEFINITIONS):
            continue
        index = len(regions)
        regions.append(_Region(first_line(statement), statement.end_lineno or statement.lineno, statement,
                               members={index}))
        if not isinstance(statement, ast.ClassDef):
            continue
        for child in statement.body:
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            first = first_line(child)
            if first <= statement.lineno or not lines[first - 1].lstrip().startswith(("@", "def", "async")):
                continue  # shares a line with the class header
            regions[index].members.add(len(regions))
            last = child.end_lineno or child.lineno
            regions.append(_Region(first, last, child, parent=index))
    return regions


def binds_attributes(function: ast.AST) -> bool:
    """Whether ``function`` assigns to ``name.attr`` (what the walker binds as ``self.attr``)."""
    return bool(stored_attributes(function))


def stored_attributes(function: ast.AST) -> set[str]:
    """The attribute names ``function`` assigns to as ``name.attr``: an ``=`` / annotated target, a ``for``
    target or a ``with ... as`` target, tuples included. Only statements are visited, not expressions: a
    fifth of the cost of ``ast.walk``."""
    stored: set[str] = set()
    for node in statements(function.body):  # type: ignore[attr-defined]
        if isinstance(node, ast.Assign):
            targets: list[ast.expr] = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
        else:
            targets = []
        for target in targets:
            _stored_attributes(target, stored)
    return stored


def _stored_attributes(target: ast.expr, stored: set[str]) -> None:
    if isinstance(target, ast.Attribute):
        if isinstance(target.value, ast.Name):
            stored.add(target.attr)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _stored_attributes(element, stored)
    elif isinstance(target, ast.Starred):
        _stored_attributes(target.value, stored)


def _sweep(regions: list[_Region], docstrings: list[tuple[int, int]],
           offsets: list[int]) -> tuple[list[int], list[int]]:
    """Sorted edges, each with what lies from there on (-1: module level, -2: a docstring, i >= 0: the
    innermost region i), for bisect. Methods and docstrings nest in definitions."""
    edges: list[int] = []
    kinds: list[int] = []
    bounds = sorted([(offsets[r.first - 1], offsets[r.last], i) for i, r in enumerate(regions)]
                    + [(offsets[a - 1], offsets[b], -2) for a, b in docstrings])
    enclosing: list[tuple[int, int]] = []  # (end, kind) of what the next interval may sit in
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
    return edges, kinds


def _stub(lines: list[str], region: _Region) -> tuple[str, Optional[set[str]]]:
    """One logical line that binds the definition's name and keeps its imports, spanning the region's
    lines at its indentation; and the names the stub binds (None: a star import binds names no one can tell)."""
    first, last, node = region.first, region.last, region.node
    opening = lines[first - 1]
    indent = opening[: len(opening) - len(opening.lstrip(" \t"))]
    keyword = "class" if isinstance(node, ast.ClassDef) else "def"
    head = f"{keyword} {node.name}:" if keyword == "class" else f"def {node.name}():"  # type: ignore[attr-defined]
    imports = ""
    names: Optional[set[str]] = {node.name}  # type: ignore[attr-defined]
    if any("import" in line for line in lines[first - 1:last]):
        found = [n for n in statements(node.body) if isinstance(n, (ast.Import, ast.ImportFrom))]
        found.sort(key=lambda n: (n.lineno, n.col_offset))
        imports = "".join(ast.unparse(n) + "; " for n in found)
        for statement in found:
            bound = bound_names(statement)
            names = None if bound is None or names is None else names | bound
    if last == first:
        return f"{indent}{head} {imports}pass", names
    return f'{indent}{head} {imports}"""' + "\n" * (last - first) + '"""', names


def stub(lines: list[str], first: int, last: int, node: ast.stmt) -> str:
    """The line-preserving stub of the definition ``node`` spanning ``first``..``last`` (1-based) of ``lines``."""
    return _stub(lines, _Region(first, last, node))[0]


def bound_names(statement: ast.AST) -> Optional[set[str]]:
    """Every name ``statement`` (and anything nested in it) binds; None for a star import."""
    names: set[str] = set()
    for node in walk(statement):
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                names.add(node.id)
        elif isinstance(node, ast.alias):
            if node.name == "*":
                return None
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, _DEFINITIONS):
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler):
            if node.name:
                names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)):
            if node.name:
                names.add(node.name)
        elif isinstance(node, ast.MatchMapping):
            if node.rest:
                names.add(node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


class _ModuleLevel:
    """The module-level statements (every top-level statement but a definition), for the names they bind.

    A screen match in module-level code makes a definition hot only when the
    definition can read what the code binds: when it mentions one of the names
    the matching statement binds, or binds through other module-level statements
    that read them (``EPS = 1e-8``; ``TINY = EPS / 2``; a function using ``TINY``).
    """

    def __init__(self, body: list[ast.stmt]) -> None:
        self.statements = [s for s in body if not isinstance(s, _DEFINITIONS)]
        self._at_line: dict[int, list[int]] = {}
        for index, statement in enumerate(self.statements):
            for line in range(statement.lineno, (statement.end_lineno or statement.lineno) + 1):
                self._at_line.setdefault(line, []).append(index)
        self._bound: dict[int, Optional[set[str]]] = {}
        self._closures: dict[frozenset[str], set[str]] = {}  # each rule asks for its names' closure twice
        self._square_names: Optional[set[str]] = None

    def bound(self, index: int) -> Optional[set[str]]:
        """The names statement ``index`` binds (None: a star import)."""
        if index not in self._bound:
            self._bound[index] = bound_names(self.statements[index])
        return self._bound[index]

    def statements_at(self, line: int) -> list[int]:
        """The indices of the statements on ``line`` (1-based)."""
        return self._at_line.get(line, [])

    def names_bound_at(self, line: int) -> Optional[set[str]]:
        """The names bound by the module-level statements on ``line`` (1-based); empty between statements
        (a comment), None when one of them is a star import."""
        names: set[str] = set()
        for index in self._at_line.get(line, ()):
            bound = self.bound(index)
            if bound is None:
                return None
            names |= bound
        return names

    def square_names(self, lines: list[str], assignments: Assignments) -> set[str]:
        """The names the module-level statements holding square evidence bind (a star import holds none)."""
        if self._square_names is None:
            self._square_names = set()
            for index, statement in enumerate(self.statements):
                text = "\n".join(lines[statement.lineno - 1:statement.end_lineno or statement.lineno])
                if _SQUARE_TEXT.search(text) and any(_square_evidence(node, assignments) for node in walk(statement)):
                    self._square_names |= self.bound(index) or set()
        return self._square_names

    def closure(self, names: set[str]) -> set[str]:
        """``names`` and every name a module-level statement binds while reading one of them."""
        key = frozenset(names)
        if key not in self._closures:
            self._closures[key] = self._closure(names) if names else set()
        return set(self._closures[key])

    def _closure(self, names: set[str]) -> set[str]:
        tainted = set(names)
        changed = True
        while changed:
            changed = False
            for index, statement in enumerate(self.statements):
                bound = self.bound(index)
                if not bound or bound <= tainted:
                    continue
                if any(isinstance(n, ast.Name) and n.id in tainted for n in walk(statement)):
                    tainted |= bound
                    changed = True
        return tainted


def _commented(source: str, position: int) -> bool:
    """Whether ``position`` lies on a line that is a comment (or, inside a string, reads like one): no rule's
    finding in a definition rests on it (what rules read of comments, float16 words, they read in the whole
    ``ctx.source``)."""
    return source[source.rfind("\n", 0, position) + 1:position].lstrip().startswith("#")


@functools.lru_cache(maxsize=4096)
def _stub_matches(screen: Union[Screen, WithFileCondition], stub: str) -> bool:
    """``screen.search(stub)``, remembered: the language server's previews cut the same unchanged definitions
    into the same stubs at every keystroke (a file of 200 definitions: a thousand searches)."""
    return screen.search(stub) is not None


def _after_hash(source: str, position: int) -> bool:
    """Whether a ``#`` precedes ``position`` on its line with no quote before it: ``position`` is then in a
    comment, or in a string the line began in (a ``#`` with no quote before it starts a comment when the line
    begins in code), never in code."""
    line = source.rfind("\n", 0, position) + 1
    hash_at = source.find("#", line, position)
    return hash_at >= 0 and "'" not in source[line:position] and '"' not in source[line:position]


def _region_at(position: int, edges: list[int], kinds: list[int]) -> int:
    """What ``position`` lies in (see ``_sweep``): -1 module level, -2 a docstring, i >= 0 region i."""
    index = bisect.bisect_right(edges, position) - 1
    return kinds[index] if index >= 0 else -1


def _lines_of(pattern: "Union[re.Pattern[str], Screen]", source: str, offsets: list[int], edges: list[int],
              kinds: list[int]) -> dict[int, set[int]]:
    """The lines (1-based) ``pattern`` matches on in each region, outside its methods and docstrings, and (-1) in
    module-level code."""
    found: dict[int, set[int]] = {}
    for start in screen_starts(pattern, source):
        kind = _region_at(start, edges, kinds)
        if kind != -2 and not _after_hash(source, start):
            found.setdefault(kind, set()).add(bisect.bisect_right(offsets, start))
    return found


def _pattern_text(pattern: "Union[re.Pattern[str], Screen]") -> str:
    """The regex of a compiled pattern or of a ``Screen``."""
    inner = getattr(pattern, "pattern")
    return inner if isinstance(inner, str) else inner.pattern


class _Unit:
    """A simple statement, a compound statement's header, or a nested definition on lines ``first``..``last``:
    the names its targets set (None: an expression statement, whose in-place calls ``_Flows.binds`` reads, or
    one that may set anything it mentions), and its nodes (where its divisors and the names its comprehensions,
    lambdas and walruses bind are looked for)."""

    __slots__ = ("first", "last", "targets", "nodes", "text", "reads", "binds", "square_binds", "divisor_binds",
                 "_walked")

    def __init__(self, first: int, last: int, targets: Optional[frozenset[str]], nodes: tuple[ast.AST, ...]) -> None:
        self.first, self.last, self.targets, self.nodes = first, last, targets, nodes
        self.text: Optional[str] = None  # its lines, and what they read and bind (``_Flows``: computed once)
        self.reads: Optional[frozenset[str]] = None
        self.binds: Optional[frozenset[str]] = None
        self.square_binds: Optional[frozenset[str]] = None
        self.divisor_binds: Optional[frozenset[str]] = None
        self._walked: Optional[list[ast.AST]] = None

    def walked(self) -> list[ast.AST]:
        """Every node under its nodes, in ``ast.walk`` order (each unit is walked once, whoever asks)."""
        if self._walked is None:
            self._walked = [node for top in self.nodes for node in walk(top)]
        return self._walked


_IDENTIFIER = re.compile(r"[^\W\d]\w*")


class _Flows:
    """Whether a rule's evidence can reach a divisor inside a region: the third, per-rule condition of the rules
    with a ``site`` (the divide-by rules), on the stdlib tree of the regions still hot.

    A finding of a divide-by rule is a division whose divisor the analysis computed from the op its screen
    matches (``x / x.norm()``; ``n = m.sum()`` ... ``y / n``; ``self.n = x.norm()`` in ``__init__``, ``/ self.n``
    in ``forward``). So a region is kept only when a divisor (the right operand of ``/`` or ``/=``, the base of
    ``**``, a call named like a division or a reciprocal) holds a screen match, or mentions a name that the
    statements holding a screen match set, directly or through other statements of the region (a fixpoint, in any
    order: loops), through ``self.x`` set by the class's attribute-setting methods, or through the module-level
    names the match binds. Everything is over-approximated and matched by identifier (``self.n`` is ``self`` and
    ``n``): a statement reads every identifier on its lines (strings and comments too); it sets its targets and
    the names under a subscript or attribute target (``d[d == 0] = 1`` sets ``d``, ``self.n = ...`` sets ``n``),
    what comprehensions, lambdas and walruses in it bind; an expression statement sets the objects of its
    in-place calls (``deg.index_add_(0, row, ones)`` sets ``deg``: ``_mutated``), a nested definition (or an
    import, ``global``) everything it mentions.
    """

    def __init__(self, regions: list[_Region], lines: list[str], offsets: list[int], edges: list[int],
                 kinds: list[int], starts: dict[type[Rule], list[int]], square_names: Callable[[], set[str]],
                 roots_visible: bool, assignments: Assignments) -> None:
        self.regions, self.lines, self.offsets, self.edges, self.kinds = regions, lines, offsets, edges, kinds
        self.starts = starts
        self.square_names = square_names  # the module-level names bound from square evidence
        self.roots_visible = roots_visible  # no import renames a root (``_renames_root``)
        self.assignments = assignments
        self._units: dict[int, list[_Unit]] = {}
        self._seeds: dict[type[Rule], tuple[dict[int, set[int]], dict[int, set[int]]]] = {}
        self._divisors: dict[tuple[int, frozenset[int], Union[bool, str]], list[tuple[int, int, frozenset[str]]]] = {}
        self._square_lines: dict[int, set[int]] = {}
        self._roots: dict[int, tuple[bool, list[tuple[int, int, list[ast.AST]]]]] = {}
        self._fed: dict[int, set[int]] = {}
        self._square_attributes: dict[int, set[str]] = {}  # per class: the attributes set from a square
        self._negative_attributes: dict[int, set[str]] = {}  # ... from one rounding may make negative
        self._source: Optional[str] = None
        self._local: dict[int, _Lazy] = {}

    def local_names(self, index: int) -> "_Lazy":
        """The names whose reads in region ``index`` never take a variance-like name's prior (``_local_names``
        of a function, walked when a name like a variance is first read; none in a class body)."""
        if index not in self._local:
            node = self.regions[index].node
            self._local[index] = _Lazy(functools.partial(_local_names, node)) \
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else _NONE
        return self._local[index]

    def reaching(self, rule: type[Rule], found: set[int], sites: dict[int, set[int]], names: set[str],
                 squares: bool = False) -> set[int]:
        """The regions of ``found`` where the evidence of ``rule`` may reach a divisor on a line of ``sites``; with
        ``squares``, square evidence (``_square_evidence``) is evidence too: a divide-by rule whose screen's
        file-level condition holds (NAN101: a sum whose every term vanishes with its input holds a square or a
        norm of it)."""
        seeds, roots = self._seed_lines(rule)

        def evidence(index: int) -> set[int]:  # a root matched is evidence where its operand may be a square
            found = roots.get(index)
            return seeds.get(index, set()) | self._fed_lines(index, found) if found else seeds.get(index, set())

        if rule.site_reads == "division or log":  # NAN303: the exp reaches a softmax's division or a log
            return self._reaching(found, evidence, lambda: names, rule.attribute_flow,
                                  lambda index: self.divisions(index, sites[index]), _NAMES)
        kept = self._reaching(found, evidence, lambda: names, rule.attribute_flow,
                              lambda index: self.divisors(index, sites[index], rule.reciprocals), _DIVISOR)
        if squares and found - kept:  # such a sum is a divisor written with ``+``, or a name assigned one
            kept |= self._reaching(found - kept, lambda index: evidence(index) | self.square_lines(index),
                                   lambda: names, rule.attribute_flow,
                                   lambda index: self.divisors(index, sites[index], rule.reciprocals, sums=True),
                                   _DIVISOR)
        return kept

    def roots_reaching(self, found: set[int], beside: bool, names: Callable[[], set[str]]) -> set[int]:
        """The regions of ``found`` with a square root whose operand may be a square (``fed_roots``): a rule's
        ``root_operand``. With ``beside``, a region that has a root with something added to it or a ``hypot``
        call is kept as well."""
        kept = set()
        for index in found:
            beside_root, roots = self.roots(index)
            if beside and beside_root or roots and self.fed_roots(index, names):
                kept.add(index)
        return kept

    def _reaching(self, found: set[int], seed_lines: Callable[[int], set[int]], module_names: Callable[[], set[str]],
                  attribute_flow: bool, targets: Callable[[int], list[tuple[int, int, frozenset[str]]]],
                  flow: str) -> set[int]:
        """The regions of ``found`` where the evidence on ``seed_lines`` (by region) may reach one of the
        ``targets`` (by region: each one's lines and names): a target on a line of evidence, or one that
        mentions a name the evidence flows into (``flow``: ``_tainted``'s)."""
        attributes: dict[int, set[str]] = {}  # per class: the attributes its setters compute from evidence
        kept = set()
        for index in found:
            reached = targets(index)
            if not reached:
                continue
            lines = seed_lines(index)
            if any(_covers(first, last, lines) for first, last, _ in reached):
                kept.add(index)
                continue
            region = self.regions[index]
            names = module_names()
            initial = names
            if region.parent is not None and attribute_flow:
                if region.parent not in attributes:
                    attributes[region.parent] = self._class_attributes(region.parent, seed_lines, names, flow)
                initial = names | attributes[region.parent]
            tainted = self._tainted(index, lines, initial, flow)
            if any(mentioned & tainted for _, _, mentioned in reached):
                kept.add(index)
        return kept

    def _class_attributes(self, parent: int, seed_lines: Callable[[int], set[int]], names: set[str],
                          flow: str) -> set[str]:
        """The attributes the class's setters compute from the evidence (``flow``: ``_tainted``'s); a square's
        and a negative square's through the class-level statements too."""
        setters = [m for m in self.regions[parent].members if m != parent and self.regions[m].binds_attributes]
        if flow in (_SQUARE, _NEGATIVE):
            setters.append(parent)
        attributes: set[str] = set()
        while True:
            found = set(attributes)
            for member in setters:
                found |= self._tainted(member, seed_lines(member), names | attributes, flow)
            if found == attributes:
                return attributes
            attributes = found

    def square_lines(self, index: int) -> set[int]:
        """The lines of the region's own statements that hold square evidence."""
        if index not in self._square_lines:
            local = self.local_names(index)
            self._square_lines[index] = {node.lineno for unit in self.units(index)  # type: ignore[attr-defined]
                                         if _SQUARE_TEXT.search(self.text(unit))
                                         for node in unit.walked() if _square_evidence(node, self.assignments, local)}
        return self._square_lines[index]

    def roots(self, index: int) -> tuple[bool, list[tuple[int, int, list[ast.AST]]]]:
        """The region's square roots (``_root_parts``): each one's lines and operand parts; and whether a root
        has something added to it or the region calls ``hypot`` (NAN201's eps outside the root)."""
        if index not in self._roots:
            beside = False
            found = []
            for unit in self.units(index):
                if not _ROOT_TEXT.search(self.text(unit)):
                    continue
                for node in unit.walked():
                    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (
                            _root_parts(node.left, self.assignments) or _root_parts(node.right, self.assignments)) \
                            or isinstance(node, ast.Call) and callee(node) == "hypot":
                        beside = True
                    parts = _root_parts(node, self.assignments)
                    if parts is not None:
                        found.append((node.lineno, node.end_lineno or node.lineno, parts))  # type: ignore
            self._roots[index] = (beside, found)
        return self._roots[index]

    def _fed_lines(self, index: int, lines: set[int]) -> set[int]:
        """Those of ``lines`` (of root matches in region ``index``) on a root whose operand may be a square
        (``fed_roots``), or on no root the stdlib tree shows."""
        kept = set()
        for line in lines:
            covering = [first for first, last, _ in self.roots(index)[1] if first <= line <= last]
            if not covering or not self.fed_roots(index, self.square_names).isdisjoint(covering):
                kept.add(line)
        return kept

    def fed_roots(self, index: int, names: Callable[[], set[str]]) -> set[int]:
        """The lines of the region's roots whose operand may be a square (``_may_square``), reading names through
        the region's statements, ``self.x`` set by its class (methods and class-level statements) and the
        module-level ``names``, each bound from square evidence (``_square_taint``)."""
        if index not in self._fed:
            roots = self.roots(index)[1]
            local = self.local_names(index)
            fed = {line for line, _, parts in roots
                   if any(_may_square(part, self.assignments, frozenset(), local=local) for part in parts)}
            pending = [(line, parts) for line, _, parts in roots if line not in fed]
            if pending:
                square, negative = self._square_taint(index, names)
                fed |= {line for line, parts in pending
                        if any(_may_square(part, self.assignments, square, negative, local) for part in parts)}
            self._fed[index] = fed
        return self._fed[index]

    def _square_taint(self, index: int, names: Callable[[], set[str]]) -> tuple[frozenset[str], "_Lazy"]:
        """The names region ``index`` may bind from a square, and (computed when first asked) from a square that
        rounding may make negative (a one-pass variance: ``_negative_lines``), through its statements, ``self.x``
        set by its class and the module-level ``names`` (each of which may be negative)."""
        outside = names()
        parent = self.regions[index].parent
        squares: set[str] = set()
        if parent is not None:
            if parent not in self._square_attributes:
                self._square_attributes[parent] = self._class_attributes(parent, self.square_lines, outside, _SQUARE)
            squares = self._square_attributes[parent]
        square = frozenset(self._tainted(index, self.square_lines(index), outside | squares, _SQUARE))

        def negative() -> set[str]:
            negatives: set[str] = set()
            if parent is not None:
                if parent not in self._negative_attributes:
                    memo: dict[int, set[int]] = {}

                    def negative_lines(member: int) -> set[int]:
                        if member not in memo:
                            taint = frozenset(self._tainted(member, self.square_lines(member), outside | squares,
                                                            _SQUARE))
                            memo[member] = self._negative_lines(member, taint)
                        return memo[member]

                    self._negative_attributes[parent] = self._class_attributes(parent, negative_lines, outside,
                                                                               _NEGATIVE)
                negatives = self._negative_attributes[parent]
            return self._tainted(index, self._negative_lines(index, square), outside | negatives, _NEGATIVE)

        return square, _Lazy(negative)

    def _negative_lines(self, index: int, square: frozenset[str]) -> set[int]:
        """The lines of the region's statements holding a difference that may be a square (``_may_square`` with
        ``square``) or an ``addmm``-style expanded distance: a value rounding may make negative."""
        return {unit.first for unit in self.units(index)
                if "-" in self.text(unit) or any(word in self.text(unit) for word in _EXPANDING)
                if any(isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub)
                       and _may_square(inner, self.assignments, square, local=self.local_names(index))
                       or isinstance(inner, ast.Call) and callee(inner) in _EXPANDING
                       for inner in unit.walked())}

    def _tainted(self, index: int, seed_lines: set[int], initial: set[str], flow: str) -> set[str]:
        """The names the evidence on ``seed_lines`` (and the ``initial`` names) may flow into in region ``index``:
        any name a statement sets (``_NAMES``: ``binds``), a divisor (``_DIVISOR``: ``divisor_binds``), a square
        (``_SQUARE``: ``square_binds``, and a plain assignment to one name only when its value may be a square,
        ``square_value``) or a square rounding may make negative (``_NEGATIVE``: ``square_binds``)."""
        units = self.units(index)
        binding = self.square_binds if flow in (_SQUARE, _NEGATIVE) else self.divisor_binds if flow == _DIVISOR \
            else self.binds
        tainted = set(initial)
        local = self.local_names(index) if flow == _SQUARE else _NONE

        def sets(unit: _Unit) -> bool:  # (asked only where its evidence or a tainted name reaches the unit)
            value = self.square_value(unit) if flow == _SQUARE else None
            return value is None or _may_square(value, self.assignments, frozenset(tainted), _ANY, local)

        for unit in units:
            if _covers(unit.first, unit.last, seed_lines) and not binding(unit) <= tainted and sets(unit):
                tainted |= binding(unit)
        changed = True
        while changed:
            changed = False
            for unit in units:
                binds = binding(unit)
                if not binds <= tainted and not self.reads(unit).isdisjoint(tainted) and sets(unit):
                    tainted |= binds
                    changed = True
        return tainted

    def square_value(self, unit: _Unit) -> Optional[ast.expr]:
        """The value of a plain assignment to one name or attribute (``v = ...``, ``self.v: T = ...``): the
        value analysis makes the target a square exactly where the value may be one (``zero_source`` of a plain
        binding is its value's, ``_may_square``); None for any other statement."""
        found = assignment(unit.nodes[0]) if len(unit.nodes) == 1 else None
        if found is not None and len(found[0]) == 1 and isinstance(found[0][0], (ast.Name, ast.Attribute)):
            return found[1]
        return None

    def text(self, unit: _Unit) -> str:
        if unit.text is None:
            unit.text = "\n".join(self.lines[unit.first - 1:unit.last])
        return unit.text

    def reads(self, unit: _Unit) -> frozenset[str]:
        if unit.reads is None:
            unit.reads = frozenset(_IDENTIFIER.findall(self.text(unit)))
        return unit.reads

    def binds(self, unit: _Unit) -> frozenset[str]:
        if unit.binds is None:
            targets = unit.targets
            if targets is None and unit.nodes and isinstance(unit.nodes[0], ast.Expr):
                targets = _mutated(unit.nodes[0].value)  # (read here: only a taint asks, of few of the units)
            unit.binds = self.reads(unit) if targets is None else targets | self._bound_inside(unit, unit.nodes)
        return unit.binds

    def _bound_inside(self, unit: _Unit, nodes: Sequence[ast.AST]) -> frozenset[str]:
        """What the comprehensions, lambdas and walruses under ``nodes`` (of ``unit``) bind (``_local_targets``;
        none where the unit's text has no word that can start one)."""
        if not any(word in self.text(unit) for word in _LOCAL_BINDERS):
            return frozenset()
        return frozenset().union(*map(_local_targets, nodes))

    def divisor_binds(self, unit: _Unit) -> frozenset[str]:
        """What ``unit`` may make a divisor the divide-by rules report of: what it binds (``binds``), except that
        an assignment of a value kept off 0 (``_guarded``: ``n = mask.sum(1).clamp(min=1)``, ``s = v + 1e-6``)
        sets only what its walruses and comprehensions bind. The value analysis follows a name to its assignment
        (``zero_source``, ``count``, ``vanishing_sum``), where the guard ends it. An attribute named like a
        variance keeps what it is assigned: with two bindings the analysis takes the name's prior instead."""
        if unit.divisor_binds is None:
            unit.divisor_binds = self.binds(unit)
            found = assignment(unit.nodes[0]) if unit.nodes else None
            if found is not None and _guarded(found[1], self.assignments) \
                    and all(isinstance(target, ast.Name) or isinstance(target, ast.Attribute)
                            and VARIANCE_NAME.match(target.attr) is None for target in found[0]):
                unit.divisor_binds = self._bound_inside(unit, [found[1]])
        return unit.divisor_binds

    def square_binds(self, unit: _Unit) -> frozenset[str]:
        """What ``unit`` may make a square of: what it binds (``binds``), except that an expression statement
        sets only the object an ``addmm_``-style call is made on (``d.addmm_(x, y.t(), alpha=-2)``) and what
        its walruses and comprehensions bind. The value analysis follows a name to its assignment; of the
        in-place calls after it, only those may make it a square (``Facts._binding_source``: a clamp's floor
        keeps the assigned value's source, any other call leaves it), so ``param.mul_(1 - lr ** 2 * wd)``
        makes no square of ``param``."""
        if unit.square_binds is None:
            if unit.nodes and isinstance(unit.nodes[0], ast.AugAssign):
                # ``v += a ** 2``: ``zero_source`` ends at an augmented assignment (``*=`` and ``/=`` read the
                # binding before it, which another unit makes), and the walker binds no attribute there
                unit.square_binds = self._bound_inside(unit, [unit.nodes[0].value])
            elif unit.nodes and isinstance(unit.nodes[0], ast.Expr):
                bound: set[str] = set()
                for node in unit.walked():
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                            and node.func.attr in _EXPANDING:
                        _target_names(node.func.value, bound)
                unit.square_binds = frozenset(bound) | self._bound_inside(unit, unit.nodes[:1])
            else:
                unit.square_binds = self.binds(unit)
        return unit.square_binds

    def _seed_lines(self, rule: type[Rule]) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
        """The lines of the rule's screen matches in each region; with ``root_evidence``, its root matches
        (``ROOT``) apart, evidence only where the root's operand may be a square (``_fed_lines``)."""
        if rule not in self._seeds:
            lines: dict[int, set[int]] = {}
            roots: dict[int, set[int]] = {}
            apart = rule.root_evidence and self.roots_visible
            for start in self.starts.get(rule, ()):
                kind = _region_at(start, self.edges, self.kinds)
                if kind >= 0:
                    into = roots if apart and _ROOT_FORM.match(self.source, start) else lines
                    into.setdefault(kind, set()).add(bisect.bisect_right(self.offsets, start))
            self._seeds[rule] = (lines, roots)
        return self._seeds[rule]

    def divisors(self, index: int, site_lines: set[int], reciprocals: bool, sums: bool = False
                 ) -> list[tuple[int, int, frozenset[str]]]:
        """The divisors (``_divisor``; ``reciprocals``: the rule's) of the region's statements that hold a site
        match: each one's lines and names. ``sums``: only those that may be a sum (``_may_be_sum``)."""
        if sums:
            return [_target(operand) for operand in self._divisor_nodes(index, site_lines, reciprocals)
                    if _may_be_sum(operand, self.assignments)]
        key = (index, frozenset(site_lines), reciprocals)
        if key not in self._divisors:
            self._divisors[key] = [_target(operand) for operand in self._divisor_nodes(index, site_lines, reciprocals)]
        return self._divisors[key]

    def divisions(self, index: int, site_lines: set[int]) -> list[tuple[int, int, frozenset[str]]]:
        """The divisions and the ``log``/``log1p`` calls of the region's statements that hold a site match
        (``site_reads = "division or log"``), whole: each one's lines and names."""
        key = (index, frozenset(site_lines), "division or log")
        if key not in self._divisors:
            self._divisors[key] = [_target(node) for unit in self.units(index)
                                   if _covers(unit.first, unit.last, site_lines)
                                   for node in unit.walked() if _division_or_log(node)]
        return self._divisors[key]

    @property
    def source(self) -> str:
        if self._source is None:
            self._source = "\n".join(self.lines)
        return self._source

    def _divisor_nodes(self, index: int, site_lines: set[int], reciprocals: bool) -> list[ast.AST]:
        return [operand for unit in self.units(index) if _covers(unit.first, unit.last, site_lines)
                for node in unit.walked() for operand in [_divisor(node, self.assignments, reciprocals)]
                if operand is not None]

    def units(self, index: int) -> list[_Unit]:
        if index not in self._units:
            region = self.regions[index]
            units: list[_Unit] = []
            node = region.node
            if isinstance(node, ast.ClassDef):
                methods = {self.regions[m].node for m in region.members if m != index}
                _statement_units([s for s in node.body if s not in methods], units)
            else:
                arguments = node.args  # type: ignore[attr-defined]
                evaluated = (*node.decorator_list, *arguments.defaults,  # type: ignore[attr-defined]
                             *(d for d in arguments.kw_defaults if d is not None))
                parameters = frozenset(a.arg for a in (*arguments.posonlyargs, *arguments.args,
                                                       *arguments.kwonlyargs, arguments.vararg, arguments.kwarg)
                                       if a is not None)
                body = node.body  # type: ignore[attr-defined]
                # a default's (or decorator's) value flows into the parameters; the parameters' names read nothing
                signature = _Unit(region.first, max(region.first, body[0].lineno - 1), parameters, evaluated)
                signature.reads = frozenset().union(*map(_identifiers, evaluated))
                units.append(signature)
                _statement_units(body, units)
            self._units[index] = units
        return self._units[index]


def _covers(first: int, last: int, lines: set[int]) -> bool:
    return any(first <= line <= last for line in lines)


_RECIPROCALS = frozenset({"pow", "float_power", "rsqrt", "reciprocal"})


def _divisor(node: ast.AST, assignments: Assignments, reciprocals: bool) -> Optional[ast.AST]:
    """What ``node`` divides by, as a site rule's finding can (``patterns.division``): the right operand of ``/``
    and ``/=``, the divisor of a ``div``, ``divide`` or ``true_divide`` call (``torch.div(a, b)``,
    ``a.div_(b)``: ``b``; ``DIVIDE_OPS``: not ``torch._foreach_div``). With ``reciprocals`` (NAN103's
    ``_reciprocal``) also the base of ``**`` and ``**=`` and the whole of a ``pow`` call, unless the exponent
    is a literal number >= 0 (``d ** 2``; ``d ** -0.5`` or ``d ** e``, whose name may hold a negative number,
    are), and of an ``rsqrt`` or ``reciprocal`` call. None for an operand kept off 0 (``_guarded``)."""
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Div):
            return None if _guarded(node.right, assignments) else node.right
        if isinstance(node.op, ast.Pow) and reciprocals and not _non_negative(node.right, assignments):
            return None if _guarded(node.left, assignments) else node.left
    elif isinstance(node, ast.AugAssign):
        if isinstance(node.op, ast.Div):
            return None if _guarded(node.value, assignments) else node.value
        if isinstance(node.op, ast.Pow) and reciprocals and not _non_negative(node.value, assignments):
            return node.target
    elif isinstance(node, ast.Call):
        name = callee(node)
        if name.rstrip("_") in _DIVIDE_CALLS:
            divisor = _argument(node, "other", 0)
            if divisor is None:
                return node
            return None if _guarded(divisor, assignments) else divisor
        if reciprocals and name.rstrip("_") in _RECIPROCALS \
                and not (name.rstrip("_") in _POWER_CALLS and _non_negative(_exponent(node), assignments)):
            return node
    return None


def _division_or_log(node: ast.AST) -> bool:
    """``a / b``, ``a /= b``, a ``div`` call (``DIVIDE_OPS``), or a ``log``/``log1p`` call not on another
    library's module (``torch.log(s)``, ``s.log()``: NAN303's findings, ``visit_Call``)."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        return isinstance(node.op, ast.Div)
    if isinstance(node, ast.Call):
        name = callee(node)
        return name.rstrip("_") in _DIVIDE_CALLS or name in ("log", "log_", "log1p") and not _foreign(node)
    return False


def _non_negative(exponent: Optional[ast.AST], assignments: Assignments) -> bool:
    """An exponent the value analysis can only read as a number >= 0, or as none (``Assignments.literals``: ``2``,
    ``p`` of ``p = 2``, ``e`` of ``for e in ...``): no reciprocal (``_reciprocal`` needs a negative literal)."""
    found = assignments.literals(exponent)
    return found is not None and all(value >= 0 for value in found)


def _may_be(exponent: Optional[ast.AST], assignments: Assignments, *numbers: float) -> bool:
    """Whether the value analysis may read ``exponent`` as one of ``numbers`` (``Assignments.literals``)."""
    found = assignments.literals(exponent)
    return found is None or any(number in found for number in numbers)


_CLAMPS = frozenset({"clamp", "clip", "clamp_", "clip_", "clamp_min", "clamp_min_"})
_DIVIDE_CALLS = frozenset(name.rstrip("_") for name in DIVIDE_OPS)  # ``div``, ``divide``, ``true_divide``
_KEEPING_A_FLOOR = TRANSPARENT_OPS | CASTS  # what the value analysis reads through to a clamp (zero sources, counts)


def _guarded(operand: ast.AST, assignments: Assignments) -> bool:
    """A divisor no divide-by rule reports: kept off 0 by a positive number (``_positive``), added (``n + 1e-6``,
    ``s + eps`` of ``eps=1e-6``, ``n.add_(eps)``: ``Bindings.is_positive`` ends ``Facts.zero_source`` at a sum,
    which reads no ``add`` call, a count holds no number and a constant term does not vanish) or a clamp's floor
    (``n.clamp(min=1)``, ``s.clamp_min(eps)``, ``torch.clamp(n, 1)``: ``Bindings.clamp_guard`` ends
    ``zero_source`` and ``Facts.count``, and a call is one term of no vanishing sum); then any reshape, cast or
    subscript (``n.clamp(min=1).float()[:, None]``)."""
    while True:
        if isinstance(operand, ast.Subscript):
            operand = operand.value
        elif isinstance(operand, ast.Call) and isinstance(operand.func, ast.Attribute) \
                and operand.func.attr in _KEEPING_A_FLOOR:
            operand = operand.func.value
        else:
            break
    if isinstance(operand, ast.BinOp) and isinstance(operand.op, ast.Add):
        return _positive(operand.left, assignments) or _positive(operand.right, assignments)
    if not isinstance(operand, ast.Call):
        return False
    name = callee(operand)
    if name in _CLAMPS:
        floor = _argument(operand, "min", 0)
        return floor is not None and _positive(floor, assignments)
    if name in ("add", "add_") and not any(keyword.arg == "alpha" for keyword in operand.keywords):
        added = _argument(operand, "other", 0)
        return added is not None and _positive(added, assignments)
    return False


def _argument(call: ast.Call, keyword: str, index: int) -> Optional[ast.AST]:
    """The argument passed by ``keyword`` or at positional ``index`` after the operand (``names.TorchCall.argument``):
    a call on ``torch`` or a bare name is the function form, its operand the first positional argument."""
    found = next((item.value for item in call.keywords if item.arg == keyword), None)
    if found is not None:
        return found
    func = call.func
    function_form = isinstance(func, ast.Name) or isinstance(func, ast.Attribute) \
        and isinstance(func.value, ast.Name) and func.value.id == "torch"
    positional = [argument for argument in call.args if not isinstance(argument, ast.Starred)]
    index += function_form
    return positional[index] if index < len(positional) else None


def _positive(node: ast.AST, assignments: Assignments) -> bool:
    """A number > 0 wherever the value analysis folds ``node`` (``Assignments.literals``: ``1e-6``, ``eps`` of
    ``eps = 1e-6``), and something it folds."""
    found = assignments.literals(node)
    return bool(found) and all(value > 0 for value in found)


_SQUARE_CALLS = frozenset(key.rpartition(".")[2] for key in SQUARE_SOURCE_OPS)
_ROOT_CALLS = frozenset({"sqrt", "sqrt_", "rsqrt", "rsqrt_", "pow", "pow_", "float_power"})
_POWER_CALLS = frozenset({"pow", "pow_", "float_power"})


def _caseless(word: str) -> str:
    """``word`` in any case, as character classes: ``[vV][aA][rR]``. Unlike ``re.IGNORECASE`` it leaves the
    other alternatives of a pattern case-sensitive, and keeps the scan fast (a pattern compiled with
    ``re.IGNORECASE`` scanned a file about six times slower, measured on timm)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _words(names: "frozenset[str]") -> list[str]:
    """``names`` less those that hold another of them (``pow`` finds ``float_power``): the same text test."""
    return sorted(n for n in names if not any(o != n and o in n for o in names))


# text without which a statement holds no square evidence (``_square_evidence``: ``*`` for ``a * a`` and ``**``,
# ``var`` and ``sigma`` in any case for ``VARIANCE_NAME``, an op's name as written for a call of
# ``SQUARE_SOURCE_OPS``), and no root (``_root_parts``) or ``hypot``
_SQUARE_TEXT = re.compile(r"\*|" + "|".join([_caseless("var"), _caseless("sigma"), *_words(
    frozenset(n for n in _SQUARE_CALLS if "var" not in n.lower() and "sigma" not in n.lower()))]))
_ROOT_FORM = re.compile(ROOT, re.VERBOSE)  # the square-root forms of the screens (a match of NAN101's is one)
_ROOT_TEXT = re.compile(r"\*\*|" + "|".join(_words(_ROOT_CALLS | {"hypot"})))
_ROOT_NAMES = _SQUARE_CALLS | _ROOT_CALLS | {"hypot"}
_AS = re.compile(r"as(?<=\sas)\s")  # literal-first: `` as `` is rare, a leading ``\b`` tries every position
_WORD_BEFORE = re.compile(r"(\w+)\s+\Z")


def _renames_root(source: str) -> bool:
    """An import renames a root or a square's op (``from torch import sqrt as s``): its calls need not say what
    they are."""
    for found in _AS.finditer(source):
        before = _WORD_BEFORE.search(source, max(0, found.start() - 40), found.start())
        if before is not None and before.group(1) in _ROOT_NAMES:
            return True
    return False


# ``import numpy as np``, ``import torch.linalg as np``: a rename to another library's module name (``as``
# literal-first: a leading ``\b`` tries every position)
_AS_FOREIGN = re.compile(r"as(?<=\sas)(?:\s|\\\n)+(?:" + "|".join(sorted(FOREIGN_MODULE_ROOTS)) + r")\b")
# ``from torch import (sqrt,\n np)``: the names an import from torch binds (spaces and line continuations
# allowed where Python allows them)
_FROM_TORCH = re.compile(r"from(?:\s|\\\n)+torch(?:\s*\.\s*\w+)*(?:\s|\\\n)+import(?:\s|\\\n)*"
                         r"(\([^)]*\)|(?:\\\n|[^\n])*)")
_FOREIGN_WORD = re.compile(r"\b(?:" + "|".join(sorted(FOREIGN_MODULE_ROOTS)) + r")\b")


def _torch_as_foreign(source: str) -> bool:
    """An import may bind another library's module name to torch (``import torch as np``, ``from torch import
    linalg as np``): ``np.sqrt(x)`` is then a torch root, which ``_foreign`` would say it is not. Such a file
    takes the plain path. (A rename's import statement starts on the line of the last ``import`` before it, or
    above that line when it continues one with a backslash: torch must be named between there and the rename.)"""
    for found in _AS_FOREIGN.finditer(source):
        start = source.rfind("\n", 0, max(0, source.rfind("import", 0, found.start()))) + 1
        while start > 1 and source[start - 2] == "\\":
            start = source.rfind("\n", 0, start - 1) + 1
        if "torch" in source[start:found.start()]:
            return True
    return any(_FOREIGN_WORD.search(found.group(1)) for found in _FROM_TORCH.finditer(source))


def _number(node: Optional[ast.AST]) -> Optional[float]:
    """The value of a numeric literal, signed or not (``2``, ``-0.5``); None for anything else."""
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return sign * node.value
    return None


def _exponent(node: ast.AST) -> Optional[ast.AST]:
    """The exponent of ``a ** e`` or of a ``pow`` call (its ``exponent=`` or last positional argument)."""
    if isinstance(node, ast.BinOp):
        return node.right
    assert isinstance(node, ast.Call)
    for keyword in node.keywords:
        if keyword.arg == "exponent":
            return keyword.value
    return node.args[-1] if node.args and not isinstance(node.args[-1], ast.Starred) else None


class _Lazy:
    """A set of names computed when first asked whether it holds one."""

    def __init__(self, compute: Callable[[], set[str]]) -> None:
        self._compute: Optional[Callable[[], set[str]]] = compute
        self._names: set[str] = set()

    def __contains__(self, name: object) -> bool:
        if self._compute is not None:
            self._names, self._compute = self._compute(), None
        return name in self._names


_NONE = _Lazy(set)


class _Any(_Lazy):
    """Every name: a plain assignment's value may be negative through any of them (``_Flows._tainted``)."""

    def __contains__(self, name: object) -> bool:
        return True


_ANY = _Any(set)
# what a taint follows (``_Flows._tainted``)
_NAMES, _DIVISOR, _SQUARE, _NEGATIVE = "names", "divisor", "square", "negative"


def _square_evidence(node: ast.AST, assignments: Assignments, local: "_Lazy" = _NONE) -> bool:
    """What the value analysis can call a square, a variance, a norm or an MSE starts at ``node``: a name like a
    variance (``VARIANCE_NAME``) but one of ``local`` (``_local_names``), a call of an op of ``SQUARE_SOURCE_OPS``
    (a power only when its exponent is not a number other than 2 and 0.5), ``a ** e`` (the same), or ``a * a``."""
    if isinstance(node, ast.Name):
        return VARIANCE_NAME.match(node.id) is not None and node.id not in local
    if isinstance(node, ast.Attribute):
        return VARIANCE_NAME.match(node.attr) is not None
    if isinstance(node, ast.Call):
        name = callee(node)
        if name not in _SQUARE_CALLS or _foreign(node):
            return False
        return name not in _POWER_CALLS or _may_be(_exponent(node), assignments, 2, 0.5)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            return _may_be(node.right, assignments, 2, 0.5)
        return _self_product(node)
    return False


def _self_product(node: ast.BinOp) -> bool:
    """``a * a``: a product of one expression with itself (``_same_code``)."""
    return isinstance(node.op, ast.Mult) and type(node.left) is type(node.right) \
        and ast.dump(node.left) == ast.dump(node.right)


def _operands(call: ast.Call) -> list[ast.AST]:
    """What a call reads besides the op: its arguments (positional, then keyword) and a method's receiver."""
    found: list[ast.AST] = [*call.args, *(keyword.value for keyword in call.keywords)]
    if isinstance(call.func, ast.Attribute):
        found.append(call.func.value)
    return found


def _may_square(node: ast.AST, assignments: Assignments, tainted: frozenset[str], negative: "_Lazy" = _NONE,
                local: "_Lazy" = _NONE) -> bool:
    """Whether the value analysis may call ``node`` a square, a variance, a norm or an MSE (what ``sqrt_hazard``
    asks of a root's operand), by the shape ``zero_source`` follows: a name like a variance or one bound from
    square evidence (``tainted``), a call of an op of ``SQUARE_SOURCE_OPS`` or of a tainted callable (a
    criterion), ``a * a``, ``a ** 2``; through any other call's operands, ``a - b``, ``a * b``, ``a / b``'s
    numerator, subscripts; and ``a + b`` only when both may be (a positive term guards the sum) or it may hold
    a square that rounding makes negative (``_may_be_negative``: a one-pass variance plus an eps, which rounds
    below it; ``negative``: the names bound from one). A power's exponent is what ``assignments`` may make of it
    (``Assignments.literals``). ``local``: names a read of which never takes a variance-like name's prior
    (``_local_names``)."""
    if isinstance(node, ast.Name):
        return node.id in tainted or VARIANCE_NAME.match(node.id) is not None and node.id not in local
    if isinstance(node, ast.Attribute):
        return node.attr in tainted or VARIANCE_NAME.match(node.attr) is not None \
            or _may_square(node.value, assignments, tainted, negative, local)
    if isinstance(node, ast.Call):
        if _foreign(node):
            return False  # (``Facts._call_source``: no zero source, not even through its operands)
        name = callee(node)
        if name in tainted or _square_evidence(node, assignments, local):
            return True
        if name in _POWER_CALLS:
            return False  # ``x.pow(3)``, ``x.pow(-0.5)``: no square (2 and 0.5 are evidence)
        return any(_may_square(operand, assignments, tainted, negative, local) for operand in _operands(node))
    if isinstance(node, ast.BinOp):
        if _square_evidence(node, assignments, local):  # ``a * a``, ``a ** 2``, ``a ** e``
            return isinstance(node.op, ast.Mult) or _may_be(node.right, assignments, 2) \
                or _may_square(node.left, assignments, tainted, negative, local)
        if isinstance(node.op, ast.Pow):
            return False  # a power whose exponent is another number
        if isinstance(node.op, ast.Add):
            return _may_square(node.left, assignments, tainted, negative, local) \
                and _may_square(node.right, assignments, tainted, negative, local) \
                or _may_be_negative(node, assignments, tainted, negative, local)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            return _may_square(node.left, assignments, tainted, negative, local)
        if isinstance(node.op, ast.Sub):  # ``ZeroSources._binary_source``: a one-pass variance, an expanded
            # squared distance (``a2 + b2 - 2 * a @ b.T``: ``cross_term``), one minus a squared cosine
            if _may_square(node.left, assignments, tainted, negative, local) and (
                    _may_square(node.right, assignments, tainted, negative, local) or _may_be_cross_term(node.right)):
                return True
            return _may_be(node.left, assignments, 1.0) \
                and any(_may_be_cosine(base, assignments) for base in _squared_bases(node.right, assignments))
        return _may_square(node.left, assignments, tainted, negative, local) \
            or _may_square(node.right, assignments, tainted, negative, local)
    if isinstance(node, (ast.Subscript, ast.Starred)):
        return _may_square(node.value, assignments, tainted, negative, local)
    if isinstance(node, ast.UnaryOp):
        return _may_square(node.operand, assignments, tainted, negative, local)
    if isinstance(node, ast.IfExp):
        return _may_square(node.body, assignments, tainted, negative, local) \
            or _may_square(node.orelse, assignments, tainted, negative, local)
    if isinstance(node, (ast.BoolOp, ast.Tuple, ast.List)):
        values = node.values if isinstance(node, ast.BoolOp) else node.elts
        return any(_may_square(value, assignments, tainted, negative, local) for value in values)
    return False


def _squared_bases(node: ast.AST, assignments: Assignments) -> list[ast.AST]:
    """What ``c`` of ``c ** 2``, ``c * c``, ``c.pow(2)``, ``torch.square(c)`` (where the exponent may be 2) may be
    (``vocabulary._squared_base``): of a call, its receiver and its first argument (an alias of torch may make
    either the operand)."""
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow) and _may_be(node.right, assignments, 2):
            return [node.left]
        if _self_product(node):
            return [node.left]
    if isinstance(node, ast.Call) and not _foreign(node) and (
            callee(node) == "square" or callee(node) == "pow" and _may_be(_exponent(node), assignments, 2)):
        return [*node.args[:1], *(keyword.value for keyword in node.keywords if keyword.arg == "input"),
                *([node.func.value] if isinstance(node.func, ast.Attribute) else [])]
    return []


def _cosine_call(value: ast.expr) -> bool:
    return isinstance(value, ast.Call) and callee(value) == "cosine_similarity" and not _foreign(value)


def _may_be_cosine(node: ast.AST, assignments: Assignments) -> bool:
    """``vocabulary._cosine_like``: a ``cosine_similarity`` call, through a chain of plain assignments
    (``Assignments.reaches``), or a name or attribute named like a cosine (``COSINE_NAME``)."""
    if isinstance(node, ast.Call):
        return _cosine_call(node)
    if isinstance(node, ast.Name):
        return COSINE_NAME.search(node.id) is not None or assignments.reaches(node.id, _cosine_call)
    if isinstance(node, ast.Attribute):
        return COSINE_NAME.search(node.attr) is not None or assignments.reaches("." + node.attr, _cosine_call)
    return False


def _may_be_cross_term(node: ast.AST) -> bool:
    """``ZeroSources.cross_term``'s shape: a product (``*``, ``@``) with a factor that may be 2 and a matrix
    product, here any ``@``, call or name a product may hide in."""
    factors: list[ast.AST] = []
    product = False
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.BinOp) and isinstance(current.op, (ast.Mult, ast.MatMult)):
            product = product or isinstance(current.op, ast.MatMult)
            pending.extend((current.left, current.right))
        else:
            factors.append(current)
    two = any(_number(factor) == 2 or _number(factor) is None and not isinstance(factor, ast.Constant)
              for factor in factors)
    return len(factors) > 1 and two and (product or any(
        isinstance(factor, (ast.Call, ast.Name, ast.Attribute, ast.Subscript)) for factor in factors))


def _may_be_negative(node: ast.AST, assignments: Assignments, tainted: frozenset[str], negative: _Lazy,
                     local: _Lazy) -> bool:
    """``node`` may hold a square that rounding makes negative (``ZeroSource.negative``): a difference that may
    be a square (``E[x**2] - E[x]**2``, ``a2 + b2 - 2 * a @ b.T``), an ``addmm``-style expanded distance, or
    a name bound from one (``negative``)."""
    for inner in walk(node):
        if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub) \
                and _may_square(inner, assignments, tainted, negative, local):
            return True
        if isinstance(inner, ast.Call) and callee(inner) in _EXPANDING:
            return True
        if isinstance(inner, ast.Name) and inner.id in negative or \
                isinstance(inner, ast.Attribute) and inner.attr in negative:
            return True
    return False


_EXPANDING = frozenset(ADD_PRODUCT_OPS)


def _root_parts(node: ast.AST, assignments: Assignments) -> Optional[list[ast.AST]]:
    """What a square root at ``node`` reads besides the op: the base of ``a ** e``, the receiver and the
    arguments of a root call (``sqrt``, ``rsqrt``, ``pow``); None when ``node`` is no root (a power whose
    exponent is a number other than +-0.5); [] for a power whose exponent the value analysis never reads as
    +-0.5 (``x ** k`` of ``k = 1.0``: ``Assignments.literals``) and a root of another library's module (a
    number's: ``math.sqrt``), which a square cannot reach and which hold the root a text match may see."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _root_exponent(node.right, assignments, [node.left])
    if not isinstance(node, ast.Call):
        return None
    name = callee(node)
    if name not in _ROOT_CALLS:
        return None
    parts = _operands(node)
    if name in _POWER_CALLS:
        parts = _root_exponent(_exponent(node), assignments, parts)  # type: ignore[assignment]
    return [] if parts and _foreign(node) else parts


def _root_exponent(exponent: Optional[ast.AST], assignments: Assignments, parts: list[ast.AST]
                   ) -> Optional[list[ast.AST]]:
    """``parts`` when a power with ``exponent`` may be a root; None for a literal other than +-0.5; [] for an
    exponent the value analysis never reads as +-0.5 (``Assignments.literals``)."""
    number = _number(exponent)
    if number is not None:
        return parts if number in (0.5, -0.5) else None
    return parts if _may_be(exponent, assignments, 0.5, -0.5) else []


def _foreign(call: ast.Call) -> bool:
    """A call on another library's module (``math.sqrt(n)``, ``np.linalg.norm(v)``): no torch op, so no root
    and no square for the value analysis (``names.match_call``), whatever its operands hold. (An import that
    binds such a name to torch sends the file to the plain path: ``_TORCH_AS_FOREIGN``.)"""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    receiver = func.value
    while isinstance(receiver, ast.Attribute):
        receiver = receiver.value
    return isinstance(receiver, ast.Name) and receiver.id in FOREIGN_MODULE_ROOTS


def _may_be_sum(divisor: ast.AST, assignments: Assignments) -> bool:
    """A divisor that may be a sum written with ``+`` to ``Facts.vanishing_sum`` (which resolves plain
    assignments and parameters' defaults, ``Bindings.resolve``): ``a + b``, a name or attribute a chain of them
    leads to one (``s = a + b; t = s``, ``def f(x, s=a + b)``), or such an operand of a call (``torch.div(x, a +
    b)``, ``float(n)``)."""
    if isinstance(divisor, ast.BinOp):
        return isinstance(divisor.op, ast.Add)
    if isinstance(divisor, (ast.Name, ast.Attribute)):
        dotted = divisor.id if isinstance(divisor, ast.Name) else "." + divisor.attr
        return assignments.reaches(dotted, _sum_value, defaults=True)
    if isinstance(divisor, ast.Call):
        return any(_may_be_sum(operand, assignments) for operand in _operands(divisor))
    return isinstance(divisor, ast.Starred) and _may_be_sum(divisor.value, assignments)


def _sum_value(value: ast.expr) -> bool:
    return isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add)


def _target(node: ast.AST) -> tuple[int, int, frozenset[str]]:
    """A target of ``_Flows._reaching``: ``node``'s lines and the names it mentions."""
    return node.lineno, node.end_lineno or node.lineno, _identifiers(node)  # type: ignore[attr-defined]


def _identifiers(node: ast.AST) -> frozenset[str]:
    """The names and attribute names mentioned under ``node``."""
    found: set[str] = set()
    for child in walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return frozenset(found)


_COMPOUND_HEADERS = {ast.If: ("test",), ast.While: ("test",), ast.For: ("target", "iter"),
                     ast.AsyncFor: ("target", "iter"), ast.With: ("items",), ast.AsyncWith: ("items",)}
_INERT = (ast.Return, ast.Pass, ast.Break, ast.Continue, ast.Delete, ast.Raise, ast.Assert)
_LOCAL_BINDERS = ("for", "lambda", ":=")  # text that may hide a comprehension, a lambda or a walrus


def _statement_units(statements: list[ast.stmt], out: list[_Unit]) -> None:
    for statement in statements:
        first, last = statement.lineno, statement.end_lineno or statement.lineno
        if isinstance(statement, _DEFINITIONS):
            out.append(_Unit(first_line(statement), last, None, (statement,)))
            continue
        blocks = [getattr(statement, block) for block in BLOCKS if getattr(statement, block, None)]
        if not blocks:  # a simple statement
            out.append(_Unit(first, last, _binds(statement), (statement,)))
            continue
        header: list[ast.AST] = []
        for name in _COMPOUND_HEADERS.get(type(statement), ()):
            value = getattr(statement, name)
            header.extend(value if isinstance(value, list) else [value])
        if type(statement).__name__ == "Match":
            header = [statement.subject]  # type: ignore[attr-defined]
        if header:
            bound: set[str] = set()
            if isinstance(statement, (ast.For, ast.AsyncFor)):
                _target_names(statement.target, bound)
            elif isinstance(statement, (ast.With, ast.AsyncWith)):
                for item in statement.items:
                    if item.optional_vars is not None:
                        _target_names(item.optional_vars, bound)
            header_last = max(first, statement.body[0].lineno - 1)  # type: ignore[attr-defined]
            out.append(_Unit(first, header_last, frozenset(bound), tuple(header)))  # walrus: ``_LOCAL_BINDERS``
        for block in blocks:
            for item in block:
                if isinstance(item, ast.ExceptHandler):
                    out.append(_Unit(item.lineno, item.lineno, frozenset([item.name] if item.name else []),
                                     (item.type,) if item.type is not None else ()))
                    _statement_units(item.body, out)
                elif type(item).__name__ == "match_case":
                    captured = frozenset(n.name for n in walk(item.pattern)  # type: ignore[attr-defined]
                                         if isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name)
                    guard = (item.guard,) if item.guard is not None else ()  # type: ignore[attr-defined]
                    out.append(_Unit(item.pattern.lineno, item.pattern.lineno, captured, guard))  # type: ignore
                    _statement_units(item.body, out)  # type: ignore[attr-defined]
                else:
                    _statement_units([item], out)


def _local_targets(node: ast.AST) -> set[str]:
    """The names comprehensions, lambdas and walruses under ``node`` bind (their values come from what the
    statement reads)."""
    bound: set[str] = set()
    for child in walk(node):
        if isinstance(child, ast.comprehension):
            _target_names(child.target, bound)
        elif isinstance(child, ast.NamedExpr):
            _target_names(child.target, bound)
        elif isinstance(child, ast.arg):
            bound.add(child.arg)
    return bound


def _local_names(function: Union[ast.FunctionDef, ast.AsyncFunctionDef]) -> set[str]:
    """The names the value analysis binds in ``function``'s own scope other than as a parameter, less any name a
    parameter there or in a nested function or lambda has and any named by ``global`` or ``nonlocal``. A read of
    one anywhere in the definition finds a binding that is no parameter (``scope.lookup``: a later binding in
    the function makes the name local there), so ``ZeroSources.zero_source`` never takes the prior of a name like
    a variance for it: ``expected_var = 1.0`` ... ``expected_var += a ** 2`` ... ``expected_var ** 0.5`` holds
    no square for it. The walker binds assignments' and augmented assignments' names, walrus targets, ``for``
    targets, ``with ... as`` and ``except ... as`` names, and nested definitions' names; not a comprehension's
    targets, an import's names or a nested scope's bindings."""
    bound: set[str] = set()
    kept: set[str] = set()  # names the prior may still hold for
    pending: list[ast.AST] = [*function.decorator_list, function.args, *function.body]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            if not isinstance(node, ast.Lambda):
                bound.add(node.name)
            kept.update(inner.arg for inner in walk(node) if isinstance(inner, ast.arg))  # a nested scope's own
            kept.update(name for inner in walk(node) if isinstance(inner, (ast.Global, ast.Nonlocal))
                        for name in inner.names)
            continue
        if isinstance(node, ast.arg):
            kept.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            kept.update(node.names)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                _target_names(target, bound, bases=False)
        elif isinstance(node, (ast.AugAssign, ast.NamedExpr)) and isinstance(node.target, ast.Name):
            bound.add(node.target.id)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            _target_names(node.target, bound, bases=False)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            _target_names(node.target, bound, bases=False)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            _target_names(node.optional_vars, bound, bases=False)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        pending.extend(children(node))
    return bound - kept


def _binds(statement: ast.stmt) -> Optional[frozenset[str]]:
    """The names the targets of ``statement`` set; None for an expression statement (``_Flows.binds`` reads its
    in-place calls: ``_mutated``) and for one that may set anything it mentions (an import, ``global``...)."""
    if isinstance(statement, ast.Assign):
        targets: list[ast.expr] = statement.targets
    elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        targets = [statement.target]
    elif isinstance(statement, _INERT):
        targets = []
    else:
        return None
    bound: set[str] = set()
    for target in targets:
        _target_names(target, bound)
    return frozenset(bound)


def _mutated(expression: ast.expr) -> frozenset[str]:
    """What an expression statement may set for the value analysis: the object of each in-place call in it
    (``deg.index_add_(0, row, ones)`` sets ``deg``; ``self.n.clamp_(min=1)`` sets ``n``). ``Bindings.note_in_place``
    records only a call whose name ends with ``_`` (not a private one) on a name no module holds; any other
    call (``xs.append(v)``, ``f(buf)``) leaves a name its assigned value. (``torch`` and other libraries' module
    names hold modules: ``names.ImportTable.is_module``.)"""
    bound: set[str] = set()
    for node in walk(expression):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method.endswith("_") and not method.startswith("_"):
                receiver = node.func.value
                if isinstance(receiver, ast.Name):
                    if receiver.id != "torch" and receiver.id not in FOREIGN_MODULE_ROOTS:
                        bound.add(receiver.id)
                elif isinstance(receiver, ast.Attribute):
                    bound.add(receiver.attr)
    return frozenset(bound)


def _target_names(target: ast.expr, bound: set[str], bases: bool = True) -> None:
    """Add the names an assignment to ``target`` sets to ``bound``: a name, those in a tuple or list of targets
    (starred or nested), and with ``bases`` an attribute's (``self.n = ...`` sets ``n``) and a subscript's base
    (``d[d == 0] = 1`` sets ``d``); without, only what the walker binds (``scope.assignment_targets``)."""
    if isinstance(target, ast.Name):
        bound.add(target.id)
    elif isinstance(target, ast.Attribute):
        if bases:
            bound.add(target.attr)
    elif isinstance(target, ast.Subscript):
        if bases:
            _target_names(target.value, bound)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _target_names(element, bound, bases)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, bound, bases)


def _unread_setters(lines: list[str], regions: list[_Region], replaced: list[tuple[int, int, str]],
                    setters: list[int]) -> list[tuple[int, int, str]]:
    """Stubs for the methods that no screen made hot and that stay only because they set attributes
    (``self.x = ...`` in ``__init__``), when no kept code can read what they set.

    What one method of a class can tell the analysis of another is an attribute binding, looked up by
    its name (``scope.lookup_attribute``). So a setter stays when an attribute name it stores is mentioned
    by what libcst will parse without the setters (the hot methods, the class bodies, module-level code,
    the stubs), or by a setter that stays (a fixpoint: ``self.scale`` set in ``__init__`` from ``self.dim``
    set in ``_configure``): :func:`unread`."""
    methods = [regions[member] for member in setters]
    found = unread(lines, replaced, [(method.first, method.last, set(method.attributes)) for method in methods])
    return [(methods[i].first, methods[i].last, _stub(lines, methods[i])[0]) for i in found]


def word_pattern(names: set[str]) -> "re.Pattern[str]":
    """A pattern matching any of ``names`` as a word: what ``\\b(?:a|b)\\b`` matches. Python's ``re`` tries a
    pattern that begins with ``\\b`` at every position; one whose alternatives each begin with their literal (the
    ``\\b`` before it a look back over it) is found by a fast search for the literal or its first characters: on
    timm, 4-30 times faster for up to ten names, no faster from some twenty on."""
    ordered = sorted(names)
    if len(ordered) > _WORDS_LITERAL_FIRST or not all(ordered):
        return re.compile(r"\b(?:" + "|".join(map(re.escape, ordered)) + r")\b")
    parts = []
    for name in ordered:
        literal = re.escape(name)
        parts.append(literal + (f"(?<!\\w{literal})" if _WORD_CHAR.match(name) else f"(?<=\\w{literal})"))
    return re.compile("(?:" + "|".join(parts) + r")\b")


_WORDS_LITERAL_FIRST = 20
_WORD_CHAR = re.compile(r"\w")


def _mentioning(names: set[str], source: str, offsets: list[int], regions: list[_Region]) -> set[int]:
    """The regions whose text holds one of ``names`` as a word."""
    pattern = word_pattern(names)
    return {index for index, region in enumerate(regions)
            if pattern.search(source, offsets[region.first - 1], offsets[region.last])}


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


def first_indent(lines: list[str], body: list[ast.stmt]) -> Optional[str]:
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
