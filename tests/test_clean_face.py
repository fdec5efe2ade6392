"""Issue 16 point 9: the command line, the LSP, the docs and the reports import each other without a loop."""
from __future__ import annotations

import ast
import re
import importlib.util

from helpers import ROOT

FACE = ("cli", "server", "docs", "request", "report", "report.sarif", "report.text", "report.github",
        "report.json_format", "report.levels")


def _imports(module: str) -> set[str]:
    """The FACE modules ``module`` imports anywhere in its file (module level or inside functions)."""
    path = ROOT / "nanlint" / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / "nanlint" / module.replace(".", "/") / "__init__.py"
    package = f"nanlint.{module}" if path.name == "__init__.py" else f"nanlint.{module}".rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import docs`
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name.removeprefix("nanlint.") for name in found} & set(FACE)


def test_no_import_loop_among_cli_server_docs_and_reports() -> None:
    graph = {module: _imports(module) for module in FACE}
    for start in FACE:
        stack, seen = list(graph[start]), set()
        while stack:
            current = stack.pop()
            assert current != start, f"import loop through nanlint.{start}: {graph}"
            if current not in seen:
                seen.add(current)
                stack.extend(graph.get(current, ()))


def test_the_lsp_uses_the_request_module_not_the_cli() -> None:
    assert "request" in _imports("server") and "cli" not in _imports("server")
    assert "request" in _imports("cli") and "docs" in _imports("cli")
    assert "_request" not in (ROOT / "nanlint" / "server.py").read_text(encoding="utf-8")


def test_moved_and_removed_names() -> None:
    import nanlint.engine
    import nanlint.fixes
    import nanlint.fixspec
    import nanlint.names
    import nanlint.rules
    from nanlint.docs import rule_text  # noqa: F401  (rule text lives in docs.py)
    from nanlint.lines import split_lines  # noqa: F401

    assert "def split_lines" not in (ROOT / "nanlint" / "fixspec.py").read_text(encoding="utf-8")
    assert not hasattr(nanlint.rules, "by_codes") and not hasattr(nanlint.names, "iter_attribute_names")
    assert not hasattr(nanlint.names.ImportTable, "torch_star_imported")
    assert not hasattr(nanlint.fixes.FixOutcome, "fixed_count")
    assert "module" not in nanlint.engine.FileResult.__dataclass_fields__


def test_readme_options_table_lists_every_format_and_option() -> None:
    from nanlint.cli import check
    from nanlint.report import FORMATTERS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"^\| `--output-format ([a-z\\|]+)`", readme, re.M)
    assert listed is not None and set(listed.group(1).split("\\|")) == set(FORMATTERS)
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `-"))
    missing = [p.opts[-1] for p in check.params if p.opts[0].startswith("-") and not any(
        f"`{opt}" in table for opt in p.opts)]
    assert not missing, f"README options table lacks {missing}"
