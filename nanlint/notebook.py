"""Jupyter notebooks (``.ipynb``): lint the code cells as one module, report positions as ``cell N:line:col``.

* The code cells are joined in order into one Python source (a name defined in an
  earlier cell is known in a later one, as when the notebook runs top to bottom),
  with a ``# %% nanlint-cell`` line between cells.
* IPython syntax is not Python: a line magic (``%timeit f()``), a shell line
  (``!pip install x``, ``files = !ls``) or a help line (``x?``) becomes a ``pass``
  placeholder, so the cell still parses and keeps its line numbers; a cell that
  starts with a cell magic (``%%bash``) is not linted at all.
* Findings carry ``extra["cell"]``, the 1-based number of the cell among the
  notebook's code cells, and a line and column inside that cell
  (``nb.ipynb:cell 3:12:5``). Their fix edits are dropped from reports (they are
  positions in the joined source, not in the file); ``--fix`` applies them.
* ``--fix`` applies fixes to the joined source, splits it back into the cells,
  restores the magics, and writes the notebook's JSON with every other field
  (outputs, metadata, execution counts, markdown cells) as it was.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .files import FileResult, LintRequest, file_error
from .finding import Finding, Fix

if TYPE_CHECKING:  # pragma: no cover
    from .fixes import FileFix

NOTEBOOK_SUFFIX = ".ipynb"
CELL_MARKER = "# %% nanlint-cell"
_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)pass  # nanlint-magic (?P<index>\d+)$")
_LINE_MAGIC = re.compile(r"^[ \t]*(?:[%!]|[\w.]+\s*=\s*[%!])|^[ \t]*[\w.()\[\]]+\?{1,2}[ \t]*$")


def is_notebook(path: str) -> bool:
    return path.endswith(NOTEBOOK_SUFFIX)


class NotebookError(ValueError):
    """The file is not a notebook nanlint can read (not JSON, or no ``cells`` list)."""


@dataclass
class Notebook:
    data: dict[str, Any]  # the whole JSON document
    cells: list[int] = field(default_factory=list)  # indexes in data["cells"] of the code cells linted, in order
    numbers: list[int] = field(default_factory=list)  # their 1-based numbers among the code cells
    starts: list[int] = field(default_factory=list)  # the first line of each in `source`
    magics: list[str] = field(default_factory=list)  # original lines replaced by placeholders
    source: str = ""

    @classmethod
    def parse(cls, text: str) -> "Notebook":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NotebookError(f"not a notebook: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise NotebookError("not a notebook: no `cells` list")
        notebook = cls(data)
        parts: list[str] = []
        line = 1
        number = 0
        for index, cell in enumerate(data["cells"]):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            number += 1
            text = _cell_text(cell)
            if text.lstrip().startswith("%%"):
                continue  # a cell magic: the cell is another language
            if parts:
                parts.append(CELL_MARKER + "\n")
                line += 1
            body = "".join(notebook._mask(piece) for piece in text.splitlines(keepends=True))
            if not body.endswith("\n"):
                body += "\n"
            notebook.cells.append(index)
            notebook.numbers.append(number)
            notebook.starts.append(line)
            parts.append(body)
            line += body.count("\n")
        notebook.source = "".join(parts)
        return notebook

    def _mask(self, line: str) -> str:
        body = line.rstrip("\r\n")
        if not _LINE_MAGIC.match(body):
            return line
        indent = body[: len(body) - len(body.lstrip(" \t"))]
        self.magics.append(body)
        return f"{indent}pass  # nanlint-magic {len(self.magics) - 1}" + line[len(body):]

    def cell_of(self, line: int) -> tuple[int, int]:
        """(cell number, line in the cell) of a line of the joined source."""
        position = 0
        for i, start in enumerate(self.starts):
            if start <= line:
                position = i
        return (self.numbers[position], line - self.starts[position] + 1) if self.starts else (1, line)

    def locate(self, finding: Finding) -> Finding:
        """The finding with its cell and lines inside the cell; fix edits dropped (see the module doc)."""
        number, line = self.cell_of(finding.line)
        end_number, end_line = self.cell_of(finding.end_line)
        end_line, end_column = (end_line, finding.end_column) if end_number == number else (line, finding.column)
        fix = Fix(finding.fix.applicability, finding.fix.message, ()) if finding.fix is not None else None
        return dataclasses.replace(finding, line=line, end_line=end_line, end_column=end_column, fix=fix,
                                   extra={**finding.extra, "cell": number})

    def rebuild(self, source: str) -> str:
        """The notebook's JSON with the cells' code replaced by ``source`` (a fixed joined source)."""
        pieces = re.split(rf"^{re.escape(CELL_MARKER)}\r?\n", source, flags=re.M)
        if len(pieces) != len(self.cells):
            raise NotebookError("a fix removed a cell boundary")
        data = json.loads(json.dumps(self.data))
        for index, piece in zip(self.cells, pieces):
            lines = []
            for line in piece.splitlines(keepends=True):
                body = line.rstrip("\r\n")
                placeholder = _PLACEHOLDER.match(body)
                lines.append(self.magics[int(placeholder.group("index"))] + line[len(body):] if placeholder else line)
            text = "".join(lines)
            if not _cell_text(data["cells"][index]).endswith("\n"):
                text = text[:-1] if text.endswith("\n") else text
            cell = data["cells"][index]
            cell["source"] = text.splitlines(keepends=True) if isinstance(cell.get("source"), list) else text
        return dump(data)


def _cell_text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def dump(data: dict[str, Any]) -> str:
    """JSON as Jupyter (nbformat) writes it: one-space indents, sorted keys, non-ASCII kept, a final newline."""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def lint_notebook(display: str, data: bytes, request: LintRequest) -> FileResult:
    """Lint a notebook's bytes; findings positioned by cell."""
    notebook, error = parse_bytes(data)
    if notebook is None:
        return FileResult(display, [file_error(display, error or "not a notebook")])
    from .engine import lint_source  # libcst: only where a notebook is analysed

    result = lint_source(display, notebook.source, request)
    result.findings = [notebook.locate(f) for f in result.findings]
    result.source = None
    return result


def parse_bytes(data: bytes) -> tuple[Optional[Notebook], Optional[str]]:
    try:
        return Notebook.parse(data.decode("utf-8-sig")), None
    except UnicodeDecodeError:
        return None, "cannot decode notebook: not UTF-8"
    except NotebookError as exc:
        return None, str(exc)


def fix_notebook_file(path: str, display: str, request: LintRequest, unsafe: bool, write: bool,
                      lowest: str = "low") -> "FileFix":
    """``--fix`` / ``--diff`` for a notebook: fix the joined code cells, write the JSON back (atomically) with
    everything else unchanged; the diff is of the notebook file."""
    from .fixes import FileFix, finish, fix_source

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return FileFix(display, findings=[file_error(display, f"cannot read: {exc.strerror or exc}")])
    notebook, error = parse_bytes(data)
    if notebook is None:
        return FileFix(display, findings=[file_error(display, error or "not a notebook")])
    outcome = fix_source(display, notebook.source, request, unsafe, lowest)
    original = data.decode("utf-8-sig")
    fixed_notebook = notebook
    if outcome.changed:
        try:
            rebuilt = notebook.rebuild(outcome.source)
            fixed_notebook = Notebook.parse(rebuilt)
        except NotebookError as exc:
            result = FileFix(display, findings=[notebook.locate(f) for f in outcome.original])
            result.error = str(exc)
            return result
    else:
        rebuilt = original
    before = [notebook.locate(f) for f in outcome.applied + outcome.resolved]
    remaining = [fixed_notebook.locate(f) for f in outcome.remaining]
    outcome = dataclasses.replace(outcome, original_source=original, source=rebuilt, remaining=remaining,
                                  original=[notebook.locate(f) for f in outcome.original], applied=before,
                                  resolved=[], failed=[dataclasses.replace(failure, finding=notebook.locate(
                                      failure.finding)) for failure in outcome.failed])
    return finish(outcome, path, data, "utf-8", write)
