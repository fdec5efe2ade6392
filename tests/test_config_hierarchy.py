"""Issue 16 point 1: each file takes the nearest configuration, whatever the order of the paths, and the LSP agrees.

Layout: ``a/pyproject.toml`` ignores NAN101, ``b/nanlint.toml`` has its own
per-file-ignores, the root ``pyproject.toml`` ignores nothing.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from test_cli import run, write

HAZARD = "import torch\n\ndef f(x):\n    return x / x.norm()\n"  # NAN101


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    write(tmp_path, "pyproject.toml", "[tool.nanlint]\n")
    write(tmp_path, "a/pyproject.toml", '[tool.nanlint]\nignore = ["NAN101"]\n')
    write(tmp_path, "a/x.py", HAZARD)
    write(tmp_path, "b/nanlint.toml", 'per-file-ignores = {"gen/*.py" = ["NAN1"]}\n')  # anchored at b/
    write(tmp_path, "b/y.py", HAZARD)
    write(tmp_path, "b/gen/z.py", HAZARD)
    write(tmp_path, "gen/w.py", HAZARD)  # b/'s pattern does not reach the root's gen/
    return tmp_path


def _paths(cwd: Path, args: list[str]) -> set[str]:
    result = run(["--output-format", "json", "--no-cache", *args], cwd)
    assert result.exit_code in (0, 1), result.output
    return {f["path"].replace(os.sep, "/") for f in json.loads(result.output)}


def test_each_file_uses_its_nearest_configuration_in_any_order(monorepo: Path) -> None:
    expected = {"b/y.py", "gen/w.py"}
    assert _paths(monorepo, ["a/x.py", "b/y.py", "b/gen/z.py", "gen/w.py"]) == expected
    assert _paths(monorepo, ["gen/w.py", "b/gen/z.py", "b/y.py", "a/x.py"]) == expected
    assert _paths(monorepo, ["."]) == expected
    assert _paths(monorepo, ["b", "a", "gen"]) == expected
    # the command line still applies on top of every file's configuration
    assert _paths(monorepo, ["--ignore", "NAN101", "."]) == set()
    # --config names one file for all; --isolated uses none
    assert _paths(monorepo, ["--isolated", "a/x.py", "b/gen/z.py"]) == {"a/x.py", "b/gen/z.py"}
    assert _paths(monorepo, ["--config", "a/pyproject.toml", "b/y.py", "gen/w.py"]) == set()


def test_a_sub_project_excludes_its_own_tree_only(monorepo: Path) -> None:
    write(monorepo, "b/nanlint.toml", 'extend-exclude = ["gen"]\n')
    assert _paths(monorepo, ["."]) == {"b/y.py", "gen/w.py"}


pygls_client = pytest.importorskip("pygls.lsp.client", reason="the LSP test needs the `lsp` extra (pygls)")


def test_the_lsp_resolves_each_document_as_the_command_line_does(monorepo: Path) -> None:
    """A real pygls client opens the four documents; the diagnostics name the same files as `nanlint .`."""
    from lsprotocol import types as lsp

    async def session() -> dict[str, list[str]]:
        client = pygls_client.LanguageClient("nanlint-test", "1")
        published: dict[str, list[str]] = {}
        done = asyncio.Event()

        @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
            published[params.uri] = [str(d.code) for d in params.diagnostics]
            if len(published) == 4:
                done.set()

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        await client.start_io(sys.executable, "-m", "nanlint", "server", "--stdio", cwd=str(monorepo), env=env)
        try:
            await client.initialize_async(lsp.InitializeParams(
                capabilities=lsp.ClientCapabilities(), root_uri=monorepo.as_uri(), process_id=os.getpid()))
            client.initialized(lsp.InitializedParams())
            for rel in ("a/x.py", "b/y.py", "b/gen/z.py", "gen/w.py"):
                path = monorepo / rel
                client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
                    uri=path.as_uri(), language_id="python", version=1, text=path.read_text(encoding="utf-8"))))
            await asyncio.wait_for(done.wait(), timeout=30)
            await client.shutdown_async(None)
            client.exit(None)
        finally:
            await client.stop()
        return published

    published = asyncio.run(session())
    flagged = {Path(uri.removeprefix("file://")).relative_to(monorepo).as_posix()
               for uri, codes in published.items() if codes}
    assert flagged == {"b/y.py", "gen/w.py"} == _paths(monorepo, ["."])
