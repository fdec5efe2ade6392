"""The language server's preview (nanlint/incremental.py): re-analysing only the definitions an edit changed gives
the findings of a full lint, except where a message names the line of float16 evidence that the edit itself moved
(the server confirms every preview with a full lint; tests/test_server.py checks what it shows at rest)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from helpers import FIXTURES

from nanlint.engine import LintRequest, lint_source
from nanlint.finding import Finding
from nanlint.incremental import edited_layout, layout, relint
from nanlint.rules import ALL_RULES

REQUEST = LintRequest(ALL_RULES, None, (("max-grad-norm", 1.0),))
EVIDENCE = re.compile(r"` on line (\d+)")
FILES = sorted(p for p in FIXTURES.rglob("*.py") if (lambda lay: lay is not None and lay.definitions)(
    layout(p.read_text(encoding="utf-8"))))


def identity(findings: list[Finding]) -> list[tuple]:
    return sorted((f.code, f.line, f.column, f.end_line, f.end_column, f.message, f.fix, f.confidence,
                   f.extra.get("target_span")) for f in findings)


def edits(lines: list[str], line: int) -> dict[str, list[str]]:
    """A blank line, a statement and a comment at ``line`` (1-based) of a definition."""
    current = lines[line - 1]
    indent = current[:len(current) - len(current.lstrip())]
    return {"blank": lines[:line - 1] + [""] + lines[line - 1:],
            "statement": lines[:line - 1] + [indent + "zz = 1"] + lines[line - 1:],
            "comment": lines[:line - 1] + [current + "  # edited"] + lines[line:]}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_preview_equals_a_full_lint(path: Path):
    text = path.read_text(encoding="utf-8")
    before = layout(text, str(path))
    assert before is not None
    findings = lint_source(str(path), text, REQUEST).findings
    lines = text.split("\n")
    evidence = {int(n) for f in findings for n in EVIDENCE.findall(f.message)}
    previewed = 0
    spans = [range(d.first + 1, d.last + 1) for d in before.definitions]
    spans += [range(s.lineno, (s.end_lineno or s.lineno) + 1) for s in before.body  # module-level statements
              if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for span in spans:
        if not span:
            continue
        for line in sorted({span[0], span[len(span) // 2], span[-1]}):  # its start, middle and end
            for kind, changed in edits(lines, line).items():
                new = "\n".join(changed)
                preview = relint(str(path), REQUEST, before, findings, new)
                if preview is None:
                    continue  # declined: the server lints the whole text
                previewed += 1
                full = lint_source(str(path), new, REQUEST).findings
                if line in evidence or line - 1 in evidence:  # the edit moved the evidence a message names
                    assert [EVIDENCE.sub("", m[5]) for m in identity(preview.findings)] == \
                        [EVIDENCE.sub("", m[5]) for m in identity(full)], (kind, line)
                else:
                    assert identity(preview.findings) == identity(full), (kind, line)
    assert previewed


def _module_level_rewrites(text: str) -> dict[tuple[int, str], str]:
    """Each module-level statement deleted (``pass`` on its first line, blank lines after, so nothing moves), and
    each one-line assignment of a number set to 0: edits that change what the definitions read."""
    lines = text.split("\n")
    out: dict[tuple[int, str], str] = {}
    for statement in ast.parse(text).body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        first, last = statement.lineno, statement.end_lineno or statement.lineno
        out[(first, "pass")] = "\n".join(lines[:first - 1] + ["pass"] + [""] * (last - first) + lines[last:])
        value = getattr(statement, "value", None)
        if isinstance(statement, ast.Assign) and first == last and isinstance(value, ast.Constant) \
                and type(value.value) in (int, float):
            line = lines[first - 1]
            zeroed = line[:value.col_offset] + "0" + line[value.end_col_offset:]
            out[(first, "zero")] = "\n".join(lines[:first - 1] + [zeroed] + lines[last:])
    return out


def test_a_preview_after_a_module_level_rewrite_equals_a_full_lint():
    """Deleting a statement or zeroing a constant changes what definitions read (a name, a call, a key) or what
    the whole text holds (an import, float16 evidence, a NaN check in a docstring): the preview re-analyses
    what the edit reaches, or declines."""
    previewed = declined = 0
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        before = layout(text, str(path))
        findings = lint_source(str(path), text, REQUEST).findings
        for (line, kind), new in _module_level_rewrites(text).items():
            preview = relint(str(path), REQUEST, before, findings, new)
            if preview is None:
                declined += 1
                continue
            previewed += 1
            assert identity(preview.findings) == identity(lint_source(str(path), new, REQUEST).findings), \
                (path, line, kind)
    assert previewed > 150 and declined > 150


def test_previews_in_a_row_reuse_the_stubs_of_unchanged_definitions():
    """As the server chains them: each preview's layout is the next one's ``before``. The second edit, in another
    definition, stubs the first one's definition again from its new text and reuses every other stub."""
    from nanlint import screening

    chained = 0
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        before = layout(text, str(path))
        assert before is not None
        if len(before.definitions) < 3:
            continue
        first, last = before.definitions[0], before.definitions[-1]
        if last.last - last.first < 2 or first.last - first.first < 2:
            continue
        lines = text.split("\n")
        once = "\n".join(edits(lines, last.first + 1)["statement"])  # inside the last definition
        one = relint(str(path), REQUEST, before, lint_source(str(path), text, REQUEST).findings, once)
        if one is None or not one.layout.stubs:
            continue
        twice = "\n".join(edits(once.split("\n"), first.first + 1)["statement"])  # then inside the first
        two = relint(str(path), REQUEST, one.layout, one.findings, twice)
        if two is None:
            continue
        chained += 1
        full = lint_source(str(path), twice, REQUEST).findings
        assert [EVIDENCE.sub("", m[5]) for m in identity(two.findings)] == \
            [EVIDENCE.sub("", m[5]) for m in identity(full)], path
        reused = set(one.layout.stubs) & set(two.layout.stubs)
        assert reused, path  # the definitions neither edit touched
        for definition in two.layout.definitions:  # what was reused is what would be made afresh
            if definition.text in two.layout.stubs:
                assert two.layout.stubs[definition.text] == screening.stub(
                    two.layout.lines, definition.first, definition.last, definition.node), path
    assert chained >= 5


def test_preview_declines_what_it_cannot_do():
    text = "import torch\n\nEPS = 0\n\n\ndef f(x):\n    return x / x.norm()\n\n\ndef g(x):\n    return x\n"
    before = layout(text)
    findings = lint_source("m.py", text, REQUEST).findings
    assert [f.code for f in findings] == ["NAN101"]
    # a star import in module-level code, a definition renamed, added, or a syntax error: the whole text is linted
    for changed in (text.replace("EPS = 0", "from torch import *"), text.replace("def g(", "def h("),
                    text + "\n\ndef h():\n    pass\n", text.replace("return x\n", "return x +\n")):
        assert relint("m.py", REQUEST, before, findings, changed) is None
    # an edit inside g: f's finding is reused, moved by the line g did not gain
    preview = relint("m.py", REQUEST, before, findings, text.replace("    return x\n", "    y = x\n    return y\n"))
    assert preview is not None and preview.changed == 1
    assert identity(preview.findings) == identity(findings)
    # an edit inside f that adds a line above the hazard moves it
    edited = text.replace("def f(x):\n", "def f(x):\n    x = x + 1\n")
    preview = relint("m.py", REQUEST, before, findings, edited)
    assert preview is not None
    assert identity(preview.findings) == identity(lint_source("m.py", edited, REQUEST).findings)
    assert [f.line for f in preview.findings] == [8]


def test_a_module_level_edit_re_analyses_the_definitions_that_mention_what_it_changed():
    text = ("import torch\n\nEPS = 1e-6\nSCALE = EPS * 2\n\n\ndef f(x):\n    return x / (x.norm() + SCALE)\n\n\n"
            "def g(x):\n    return x / x.norm()\n\n\ndef h(x):\n    return x / (x.norm() + EPS)\n")
    before = layout(text)
    findings = lint_source("m.py", text, REQUEST).findings
    assert [(f.code, f.line) for f in findings] == [("NAN101", 12)]
    # EPS becomes 0: f reads it through SCALE, h directly; g is reused
    edited = text.replace("EPS = 1e-6", "EPS = 0.0")
    preview = relint("m.py", REQUEST, before, findings, edited)
    assert preview is not None and preview.changed == 2
    full = lint_source("m.py", edited, REQUEST).findings
    assert identity(preview.findings) == identity(full) and len(full) > 1
    # a line added to module-level code moves what lies below it; a comment changes no statement: nothing is
    # re-analysed
    for edited in (text.replace("EPS = 1e-6\n", "EPS = 1e-6\nzz = 1\n"), text.replace("\n\n\ndef g", "\n# c\n\n\ndef g")):
        preview = relint("m.py", REQUEST, before, findings, edited)
        assert preview is not None and preview.changed == 0
        assert identity(preview.findings) == identity(lint_source("m.py", edited, REQUEST).findings)
    # definitions with no line between them: a blank line inserted there moves the second one
    tight = "import torch\ndef f(x):\n    return x\ndef g(x):\n    return x / x.norm()\n"
    edited = tight.replace("    return x\ndef g", "    return x\n\ndef g")
    found = lint_source("m.py", tight, REQUEST).findings
    preview = relint("m.py", REQUEST, layout(tight), found, edited)
    assert preview is not None and [f.line for f in preview.findings] == [f.line + 1 for f in found] == [6]


def _shape(lay) -> tuple:
    """A layout's spans, texts and nodes (positions aside: the moved definitions keep their old nodes)."""
    def definition(d) -> tuple:
        return (d.first, d.last, d.text, d.frame, ast.dump(d.node), tuple(definition(m) for m in d.methods))
    return (tuple(definition(d) for d in lay.definitions),
            tuple((s.first, s.last, ast.dump(s.node)) for s in lay.statements), lay.file_ignores)


def test_an_edit_inside_one_definition_is_laid_out_from_the_last_layout():
    """``edited_layout`` compiles only the edited definition (or method) again and gives what ``layout`` gives for
    the whole new text; an edit it cannot place (a header, a last line, module-level text) is left to ``layout``."""
    used = declined = 0
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        before = layout(text, str(path))
        lines = text.split("\n")
        for definition in before.definitions:
            units = [definition, *definition.methods]
            for unit in units:
                for line in sorted({unit.first, (unit.first + unit.last) // 2, unit.last}):
                    for changed in edits(lines, line).values():
                        new = "\n".join(changed)
                        fast = edited_layout(before, new, str(path))
                        if fast is None:
                            declined += 1
                            continue
                        used += 1
                        full = layout(new, str(path))
                        assert full is not None and _shape(fast) == _shape(full), (path, line)
                        for was, now, whole in zip(before.definitions, fast.definitions, full.definitions):
                            if now.node is was.node:
                                continue
                            pairs = [(n.node, w.node) for m, n, w in zip(was.methods, now.methods, whole.methods)
                                     if n.node is not m.node]  # one method recompiled, or the whole definition
                            recompiled = pairs if len(pairs) == 1 and len(now.methods) > 1 else [(now.node, whole.node)]
                            for mine, theirs in recompiled:  # it sits where the file has it
                                assert ast.dump(mine, include_attributes=True) == \
                                    ast.dump(theirs, include_attributes=True), (path, line)
    assert used > 200 and declined > 50
    broken = "def f(x):\n    return x\n\n\ndef g(x):\n    y = x\n    return y\n"
    assert edited_layout(layout(broken), broken.replace("    y = x\n", "    y = (x\n")) is None  # does not compile
    dedented = broken.replace("    y = x\n", "y = x\n")  # no longer inside g: the whole text decides
    assert edited_layout(layout(broken), dedented) is None


SETTERS = '''import torch


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.eps = 0.0

    def unit(self, x):
        return x / (x.norm() + self.eps)

    def count(self, x):
        self.steps = len(x)
        return x
'''


def test_a_setter_the_changed_method_does_not_read_is_not_parsed():
    """Editing ``unit``: ``__init__`` sets ``self.eps``, which ``unit`` reads, so it is analysed with it (an eps of
    0 guards nothing); ``count`` sets only ``self.steps``, which nothing kept mentions, so it is stubbed."""
    before = layout(SETTERS)
    findings = lint_source("m.py", SETTERS, REQUEST).findings
    assert [(f.code, f.line) for f in findings] == [("NAN101", 10)]
    edited = SETTERS.replace("        return x / (x.norm()", "        x = x * 1\n        return x / (x.norm()")
    preview = relint("m.py", REQUEST, before, findings, edited)
    assert preview is not None
    assert identity(preview.findings) == identity(lint_source("m.py", edited, REQUEST).findings)
    assert [(f.code, f.line) for f in preview.findings] == [("NAN101", 11)]
    count = next(m for d in preview.layout.definitions for m in d.methods if m.node.name == "count")
    assert preview.kept_lines == len(edited.split("\n")) - (count.last - count.first)  # count's lines: one stub


def test_prepare_reads_ahead_every_free_name_a_module_level_preview_needs_and_stops_when_asked():
    text = "\n".join(["EPS = 1e-6", "", "def f(x):", "    return x / EPS", "", "class C:",
                      "    def g(self, y):", "        return y * SCALE", "", "    def h(self):", "        return 1", ""])
    lay = layout(text)
    units = [u for d in lay.definitions for u in (d, *d.methods)]
    assert len(units) == 4
    calls = []
    lay.prepare(lambda: calls.append(1) or len(calls) > 2)  # stops before the third
    assert len(lay.free) == 2
    lay.prepare()
    assert {text: set(names) - {"self"} for text, names in lay.free.items()} == {
        units[0].text: {"EPS"}, units[1].text: {"SCALE"}, units[2].text: {"SCALE"}, units[3].text: set()}


def test_a_layout_from_the_engines_tree_is_the_layout_of_the_text():
    """The language server builds the layout of a text it has just linted from the stdlib tree the engine parsed
    (``FileResult.tree``); for every fixture that is the layout ``layout`` parses for itself."""
    from_tree = 0
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        tree = lint_source(str(path), text, REQUEST, keep_tree=True).tree
        if tree is None:
            continue  # the plain path parsed with libcst alone: the server parses the text itself
        from_tree += 1
        assert _shape(layout(text, str(path), tree)) == _shape(layout(text, str(path))), path
    assert from_tree > len(FILES) // 2
    assert all(lint_source(str(path), path.read_text(encoding="utf-8"), REQUEST).tree is None for path in FILES)
