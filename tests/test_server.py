"""``nanlint server`` spoken to as an editor would: a subprocess, LSP JSON-RPC over stdio.

Every wait has a deadline and the server process is killed in teardown, so a
broken server fails a test instead of hanging the suite.
"""
from __future__ import annotations

import ast
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from helpers import ROOT, lint

pytest.importorskip("pygls", reason="nanlint server needs the `lsp` extra (pygls)")

from nanlint.finding import Edit  # noqa: E402
from nanlint.server import DocumentLint, apply_edits, lint_document, minimal_edit, preview_document, \
    to_lsp_position, units_counter  # noqa: E402

TIMEOUT = 20.0  # seconds for any one answer; a cold start (imports, first lint) takes about 1 s here
EMOJI = "\U0001F600"  # outside the BMP: 1 code point, 2 UTF-16 code units, 4 UTF-8 bytes

HAZARD = f'''import torch


def unit(x):
    label = "{EMOJI}"; y = x / x.norm(dim=-1, keepdim=True)
    return label, y
'''
CLEAN = '''import torch


def unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-4)
'''
FIXABLE = f'''import torch


def unit(x):
    label = "{EMOJI}"; return label, x / x.norm()
'''


class LspClient:
    """A minimal LSP client: Content-Length framing, requests with ids, a queue of everything the server sends."""

    COMMAND = [sys.executable, "-m", "nanlint", "server", "--stdio"]

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            self.COMMAND,
            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.messages: "queue.Queue[dict[str, Any]]" = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            headers: dict[str, str] = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            self.messages.put(json.loads(body.decode("utf-8")))

    def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        ident = self.next_id
        self.send({"id": ident, "method": method, "params": params})
        reply = self.wait(lambda m: m.get("id") == ident and "method" not in m, f"reply to {method}")
        assert "error" not in reply, reply
        return reply.get("result")

    def wait(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {TIMEOUT} s; server stderr:\n{self.stderr()}")
            try:
                message = self.messages.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited ({self.process.returncode}) before {what}:\n"
                                         f"{self.stderr()}")
                continue
            self.seen.append(message)
            if predicate(message):
                return message

    def diagnostics(self, uri: str, version: Optional[int] = None) -> list[dict[str, Any]]:
        def matches(m: dict[str, Any]) -> bool:
            if m.get("method") != "textDocument/publishDiagnostics" or m["params"]["uri"] != uri:
                return False
            return version is None or m["params"].get("version") == version

        return self.wait(matches, f"diagnostics for {uri} (version {version})")["params"]["diagnostics"]

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read().decode("utf-8", "replace")[-4000:]

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.request("shutdown", None)
                self.notify("exit", None)
                self.process.wait(timeout=5)
        except Exception:
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.nanlint]\nextend-exclude = ["generated"]\n', encoding="utf-8")
    return tmp_path


def start(project: Path, position_encodings: Optional[list[str]] = None,
          init_options: Optional[dict[str, Any]] = None) -> tuple[LspClient, dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    client = LspClient(project, env)
    capabilities: dict[str, Any] = {
        "textDocument": {
            "publishDiagnostics": {"versionSupport": True, "codeDescriptionSupport": True},
            "codeAction": {"codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix", "source"]}}},
        },
        "workspace": {"workspaceEdit": {"documentChanges": True}},
    }
    if position_encodings is not None:
        capabilities["general"] = {"positionEncodings": position_encodings}
    result = client.request("initialize", {
        "processId": os.getpid(),
        "rootUri": project.as_uri(),
        "capabilities": capabilities,
        "initializationOptions": init_options or {},
    })
    client.notify("initialized", {})
    return client, result


@pytest.fixture
def session(project: Path):
    clients: list[LspClient] = []

    def open_session(**kwargs: Any) -> tuple[LspClient, dict[str, Any]]:
        client, result = start(project, **kwargs)
        clients.append(client)
        return client, result

    yield open_session
    for client in clients:
        client.close()


def open_document(client: LspClient, path: Path, text: str, version: int = 1) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {
        "textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}})
    return uri


def apply_text_edits(text: str, edits: list[dict[str, Any]], units: Callable[[str], int]) -> str:
    """Apply LSP TextEdits (positions in the negotiated code units) the way an editor does: back to front."""
    lines = text.splitlines(keepends=True) or [""]

    def offset(position: dict[str, int]) -> int:
        line, character = position["line"], position["character"]
        if line >= len(lines):
            return len(text)
        start = sum(len(x) for x in lines[:line])
        content = lines[line].rstrip("\r\n")
        for i in range(len(content) + 1):
            if units(content[:i]) >= character:
                return start + i
        return start + len(content)

    for edit in sorted(edits, key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
                       reverse=True):
        start, end = offset(edit["range"]["start"]), offset(edit["range"]["end"])
        text = text[:start] + edit["newText"] + text[end:]
    return text


def utf16_units(text: str) -> int:
    """The test's own count (independent of nanlint.server's): UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def expected_character(line_text: str, column: int, encoding: str) -> int:
    prefix = line_text[: column - 1]
    return {"utf-16": len(prefix.encode("utf-16-le")) // 2, "utf-8": len(prefix.encode("utf-8")),
            "utf-32": len(prefix)}[encoding]


# -- pure position conversion ---------------------------------------------------------------------------------------
def test_position_conversion_counts_code_units():
    lines = [f'a = "{EMOJI}"; b = 1\n', "c = 2\n"]
    column = lines[0].index("b") + 1  # nanlint's 1-based character column
    assert to_lsp_position(lines, 1, column, units_counter("utf-16")) == (0, column - 1 + 1)
    assert to_lsp_position(lines, 1, column, units_counter("utf-8")) == (0, column - 1 + 3)
    assert to_lsp_position(lines, 1, column, units_counter("utf-32")) == (0, column - 1)
    assert to_lsp_position(lines, 2, 1, units_counter("utf-16")) == (1, 0)
    assert to_lsp_position(lines, 3, 1, units_counter("utf-16")) == (2, 0)  # end of file after the last newline
    assert to_lsp_position(lines, 2, 99, units_counter("utf-16")) == (1, 5)  # clamped to the end of the line


# -- a real session -------------------------------------------------------------------------------------------------
def test_diagnostics_on_open_change_save_and_close(project: Path, session):
    client, result = session()
    capabilities = result["capabilities"]
    assert capabilities.get("positionEncoding", "utf-16") == "utf-16"
    assert result["serverInfo"]["name"] == "nanlint"
    assert "quickfix" in capabilities["codeActionProvider"]["codeActionKinds"]

    path = project / "model.py"
    uri = open_document(client, path, HAZARD)
    diagnostics = client.diagnostics(uri, version=1)
    assert [d["code"] for d in diagnostics] == ["NAN101"]
    diag = diagnostics[0]
    expected = lint(HAZARD)
    assert [(f.code, f.line) for f in expected] == [("NAN101", 5)]
    finding = expected[0]
    line_text = HAZARD.splitlines()[finding.line - 1]
    start = expected_character(line_text, finding.column, "utf-16")
    end = expected_character(line_text, finding.end_column, "utf-16")
    assert start == finding.column - 1 + 1  # the emoji before the finding counts two UTF-16 units
    assert diag["range"] == {"start": {"line": finding.line - 1, "character": start},
                             "end": {"line": finding.end_line - 1, "character": end}}
    assert line_text.encode("utf-16-le")[2 * start: 2 * end].decode("utf-16-le") == "x / x.norm(dim=-1, keepdim=True)"
    assert diag["source"] == "nanlint"
    assert diag["severity"] == 1  # Error: a default rule
    assert finding.message == diag["message"]
    assert diag["codeDescription"]["href"].endswith("#nan101-divide-by-norm")

    # didChange (full-text change) to clean code: diagnostics are cleared
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": CLEAN}]})
    assert client.diagnostics(uri, version=2) == []

    # an incremental change that brings the hazard back: delete `.clamp_min(1e-4)`
    clean_line = CLEAN.splitlines()[4]
    start_char = clean_line.index(".clamp_min")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{
        "range": {"start": {"line": 4, "character": start_char},
                  "end": {"line": 4, "character": start_char + len(".clamp_min(1e-4)")}},
        "text": ""}]})
    assert [d["code"] for d in client.diagnostics(uri, version=3)] == ["NAN101"]

    # didSave re-reads the configuration: ignoring NAN101 in pyproject.toml silences it
    (project / "pyproject.toml").write_text('[tool.nanlint]\nignore = ["NAN101"]\n', encoding="utf-8")
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri, version=3) == []

    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri) == []


def test_excluded_and_non_python_documents_get_no_findings(project: Path, session):
    client, _ = session()
    excluded = open_document(client, project / "generated" / "model.py", HAZARD)
    assert client.diagnostics(excluded, version=1) == []
    # a document that is not Python is not linted at all: no diagnostics are published for it
    text_uri = (project / "notes.txt").as_uri()
    client.notify("textDocument/didOpen", {
        "textDocument": {"uri": text_uri, "languageId": "plaintext", "version": 1, "text": HAZARD}})
    python = open_document(client, project / "ok.py", HAZARD)
    assert [d["code"] for d in client.diagnostics(python, version=1)] == ["NAN101"]
    assert not any(m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == text_uri
                   for m in client.seen)


def test_utf8_position_encoding_when_the_client_prefers_it(project: Path, session):
    client, result = session(position_encodings=["utf-8", "utf-16"])
    assert result["capabilities"]["positionEncoding"] == "utf-8"
    uri = open_document(client, project / "model.py", HAZARD)
    diag = client.diagnostics(uri, version=1)[0]
    finding = lint(HAZARD)[0]
    line_text = HAZARD.splitlines()[finding.line - 1]
    assert diag["range"]["start"]["character"] == expected_character(line_text, finding.column, "utf-8")
    assert diag["range"]["start"]["character"] == finding.column - 1 + 3


def test_bad_configuration_is_shown_not_crashed(project: Path, session):
    (project / "pyproject.toml").write_text('[tool.nanlint]\nselekt = ["NAN1"]\n', encoding="utf-8")
    client, _ = session()
    uri = open_document(client, project / "model.py", HAZARD)
    shown = client.wait(lambda m: m.get("method") == "window/showMessage", "error message")
    assert "unknown key `selekt`" in shown["params"]["message"]
    assert client.diagnostics(uri, version=1) == []


def test_docs_url_initialization_option(project: Path, session):
    client, _ = session(init_options={"docsUrl": "https://example.org/nanlint/rules.md"})
    uri = open_document(client, project / "model.py", HAZARD)
    diag = client.diagnostics(uri, version=1)[0]
    assert diag["codeDescription"]["href"] == "https://example.org/nanlint/rules.md#nan101-divide-by-norm"


def _fixable_now() -> bool:
    return any(f.fix is not None for f in lint(FIXABLE))


# Until a rule attaches fixes (NAN101's is being added in another change), the code-action path is driven through
# the server's one seam, `nanlint.server.lint_document`: a wrapper gives each NAN101 finding the fix
# `<divisor>.clamp_min(1e-4)` at the divisor's real span (the engine's `target_span`). Everything else is the real
# server: the session, the conversion of the edit to UTF-16 positions past the emoji, the WorkspaceEdit.
SEAM_BOOTSTRAP = """
import dataclasses, sys
import nanlint.server as server
from nanlint.finding import Edit, Fix
real = server.lint_document
def with_fix(path, text):
    lines = text.splitlines(True)
    out = []
    for f in real(path, text):
        span = f.extra.get("target_span")
        if f.code == "NAN101" and span and span[0] == span[2]:
            line, col, _, end = span
            divisor = lines[line - 1][col - 1:end - 1]
            f = dataclasses.replace(f, fix=Fix("safe", "Clamp the norm with `.clamp_min(1e-4)`",
                                                (Edit(line, col, line, end, divisor + ".clamp_min(1e-4)"),)))
        out.append(f)
    return out
server.lint_document = with_fix
from nanlint.cli import main
sys.argv = ["nanlint", "server"]
main()
"""


@pytest.mark.parametrize("source_of_fix", [
    pytest.param("engine", marks=pytest.mark.skipif(
        not _fixable_now(), reason="no rule attaches a fix to `x / x.norm()` yet (NAN101's fix is being added in "
                                   "another change); the `seam` case covers the server's side meanwhile")),
    "seam",
])
def test_code_action_applies_the_fix(project: Path, session, monkeypatch, source_of_fix: str):
    if source_of_fix == "seam":
        monkeypatch.setattr(LspClient, "COMMAND", [sys.executable, "-c", SEAM_BOOTSTRAP])
    client, _ = session()
    uri = open_document(client, project / "model.py", FIXABLE)
    diagnostics = client.diagnostics(uri, version=1)
    assert [d["code"] for d in diagnostics] == ["NAN101"]
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diagnostics[0]["range"],
        "context": {"diagnostics": diagnostics, "only": ["quickfix"]}})
    assert len(actions) == 1, actions
    action = actions[0]
    assert action["kind"] == "quickfix"
    assert action["title"].startswith("NAN101: ")
    assert action["diagnostics"][0]["range"] == diagnostics[0]["range"]
    if source_of_fix == "engine":
        fix = lint(FIXABLE)[0].fix
        assert fix is not None
        safe = fix.applicability == "safe"
        assert action["title"] == f"NAN101: {fix.message}" + ("" if safe else " (unsafe fix)")
        assert action.get("isPreferred", False) is safe
    [change] = action["edit"]["documentChanges"]
    assert change["textDocument"] == {"uri": uri, "version": 1}
    fixed = apply_text_edits(FIXABLE, change["edits"], utf16_units)
    assert fixed != FIXABLE
    if source_of_fix == "seam":
        assert fixed == FIXABLE.replace("x / x.norm()", "x / x.norm().clamp_min(1e-4)")
        assert action["isPreferred"] is True
        assert action["title"] == "NAN101: Clamp the norm with `.clamp_min(1e-4)`"
    assert [f.code for f in lint(fixed)] == []  # the fixed text lints clean
    # the editor applies the edit and sends the new text: the diagnostic goes away, and so do the actions
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": fixed}]})
    assert client.diagnostics(uri, version=2) == []
    assert client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diagnostics[0]["range"], "context": {"diagnostics": []}}) == []


LOG_SOFTMAX = f'''import torch
import torch.nn.functional as F


def nll(x, y):
    s = "{EMOJI}"; return s, -torch.log(F.softmax(x, dim=-1)), y / y.norm()
'''


def test_fix_all_applies_the_safe_fixes_only(project: Path, session):
    findings = lint(LOG_SOFTMAX)
    if not any(f.code == "NAN301" and f.fix is not None and f.fix.applicability == "safe" for f in findings):
        pytest.skip("NAN301 has no safe fix in this tree")
    client, _ = session()
    uri = open_document(client, project / "model.py", LOG_SOFTMAX)
    assert sorted(d["code"] for d in client.diagnostics(uri, version=1)) == ["NAN101", "NAN301"]
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
        "context": {"diagnostics": [], "only": ["source.fixAll"]}})
    assert [a["kind"] for a in actions] == ["source.fixAll.nanlint"]
    [change] = actions[0]["edit"]["documentChanges"]
    fixed = apply_text_edits(LOG_SOFTMAX, change["edits"], utf16_units)
    # the safe fix (log_softmax) is applied, the unsafe one (NAN101's clamp) is not
    assert fixed == LOG_SOFTMAX.replace("torch.log(F.softmax(x, dim=-1))", "F.log_softmax(x, dim=-1)")
    assert [f.code for f in lint(fixed)] == ["NAN101"]


def test_edit_helpers():
    text = f"a = 1\r\nb = \"{EMOJI}\" + c\nd\n"
    edit = Edit(2, 11, 2, 12, "e")  # replace `c` (code point columns)
    assert apply_edits(text, [edit]) == text.replace("+ c", "+ e")
    assert apply_edits(text, [Edit(4, 1, 4, 1, "z = 2\n"), Edit(1, 1, 1, 1, "# top\n")]) == \
        "# top\n" + text + "z = 2\n"
    for after in (text.replace("+ c", "+ e"), "# top\n" + text, text + "z\n", text.replace("b = ", ""), "", text):
        assert apply_edits(text, [minimal_edit(text, after)]) == after


NO_FIX_BOOTSTRAP = """
import dataclasses, sys
import nanlint.server as server
real = server.lint_document
server.lint_document = lambda path, text: [dataclasses.replace(f, fix=None) for f in real(path, text)]
from nanlint.cli import main
sys.argv = ["nanlint", "server"]
main()
"""


def test_the_tree_of_a_lint_is_handed_to_the_layout_of_that_text_only(tmp_path: Path):
    """``lint_document`` keeps the stdlib tree it parsed for the server's next layout (``prepare``): given once,
    and only for the very text it linted."""
    from nanlint.server import parsed_tree

    path = str(tmp_path / "m.py")
    text = "import torch\n\n\ndef f(x):\n    return x / x.norm()\n"
    lint_document(path, text)
    assert parsed_tree(path, text + "\n") is None  # another text: taken and dropped
    lint_document(path, text)
    tree = parsed_tree(path, text)
    assert tree is not None and ast.dump(tree) == ast.dump(ast.parse(text))
    assert parsed_tree(path, text) is None  # taken once


def test_no_code_action_without_a_fix_or_away_from_the_finding(project: Path, session, monkeypatch):
    # findings stripped of their fixes (through the same seam): diagnostics, but no action
    monkeypatch.setattr(LspClient, "COMMAND", [sys.executable, "-c", NO_FIX_BOOTSTRAP])
    client, _ = session()
    uri = open_document(client, project / "model.py", FIXABLE)
    diagnostics = client.diagnostics(uri, version=1)
    assert [d["code"] for d in diagnostics] == ["NAN101"]
    assert client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diagnostics[0]["range"],
        "context": {"diagnostics": diagnostics}}) == []
    # with fixes (the seam that adds one): none offered for a range on another line
    monkeypatch.setattr(LspClient, "COMMAND", [sys.executable, "-c", SEAM_BOOTSTRAP])
    client, _ = session()
    uri = open_document(client, project / "model.py", FIXABLE)
    assert [d["code"] for d in client.diagnostics(uri, version=1)] == ["NAN101"]
    assert client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 5}},
        "context": {"diagnostics": [], "only": ["quickfix"]}}) == []


def test_missing_pygls_gives_a_clear_message(tmp_path: Path):
    # a `pygls` package that fails to import stands in for a missing one
    fake = tmp_path / "fake"
    (fake / "pygls").mkdir(parents=True)
    (fake / "pygls" / "__init__.py").write_text("raise ImportError('No module named pygls')\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]))
    done = subprocess.run([sys.executable, "-m", "nanlint", "server"], cwd=tmp_path, env=env, input=b"",
                          capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 2
    assert "pip install 'pygls>=2,<3'" in done.stderr.decode()
    assert done.stdout == b""


# -- typing: debounced, superseded work dropped, previews confirmed ------------------------------------------------
TYPED = '''import torch


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = 2.0

    def unit(self, x):
        return x / x.norm()

    def other(self, x):
        y = x * self.scale
        return y


def train(model, batch):
    return model(batch).half()
'''


def test_rapid_typing_publishes_in_order_and_at_rest_what_check_reports(project: Path, session):
    client, _ = session()
    path = project / "typed.py"
    uri = open_document(client, path, TYPED)
    client.diagnostics(uri, version=1)
    lines = TYPED.split("\n")
    at = lines.index("        y = x * self.scale")
    text = TYPED
    # a new line in `other` above the others, then one character at a time: every version is valid Python
    for version, insert in enumerate(["        _t = 1\n", *"234567890"], start=2):
        if version == 2:
            change = {"range": {"start": {"line": at, "character": 0}, "end": {"line": at, "character": 0}},
                      "text": insert}
            text = "\n".join(lines[:at] + ["        _t = 1"] + lines[at:])
        else:
            column = len(text.split("\n")[at])
            change = {"range": {"start": {"line": at, "character": column}, "end": {"line": at, "character": column}},
                      "text": insert}
            typed = text.split("\n")
            typed[at] += insert
            text = "\n".join(typed)
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [change]})
    final = 2 + len("234567890")
    expected = [(f.code, f.line - 1, f.message) for f in lint(text, path=str(path))]
    assert [code for code, _, _ in expected] == ["NAN101"]

    def at_rest(message: dict[str, Any]) -> bool:  # the preview, or the confirmation that replaces it
        if message.get("method") != "textDocument/publishDiagnostics" or message["params"]["uri"] != uri:
            return False
        params = message["params"]
        return params.get("version") == final and [(d["code"], d["range"]["start"]["line"], d["message"])
                                                   for d in params["diagnostics"]] == expected

    client.wait(at_rest, "the diagnostics of the last version")
    versions = [m["params"].get("version") for m in client.seen
                if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri]
    assert versions == sorted(versions)  # a superseded version is never published after a newer one


def test_a_preview_that_moved_float16_evidence_is_confirmed(project: Path, session):
    """The edit moves the float16 evidence `.half()` inside `train`: the preview re-analyses `train` only and reuses
    the finding in `unit`, whose message names the evidence's old line; what is shown at rest names the new one."""
    source = TYPED.replace("return x / x.norm()", "return x.masked_fill(x > 0, -1e9)")  # NAN403
    client, _ = session()
    path = project / "evidence.py"
    uri = open_document(client, path, source)
    client.diagnostics(uri, version=1)
    edited = source.replace("def train(model, batch):\n", "def train(model, batch):\n    batch = batch\n")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": edited}]})
    expected = [(f.code, f.message) for f in lint_document(str(path), edited)]
    assert [code for code, _ in expected] == ["NAN403"] and "`.half()` on line 19" in expected[0][1]
    assert "`.half()` on line 18" in preview_document(str(path), edited, DocumentLint(
        lint_document(str(path), source), source, source.splitlines(True)))[0][0].message  # the preview's

    def confirmed(message: dict[str, Any]) -> bool:
        params = message.get("params") or {}
        return (message.get("method") == "textDocument/publishDiagnostics" and params.get("uri") == uri
                and params.get("version") == 2 and [(d["code"], d["message"]) for d in params["diagnostics"]]
                == expected)

    client.wait(confirmed, "the confirmed diagnostics")


def test_a_keystroke_that_breaks_the_syntax_previews_the_error_beside_the_findings_that_stay(project: Path):
    """Mid-keystroke (``foo(`` not closed yet) the preview shows Python's syntax error and keeps the findings on
    lines the edit did not touch, moved by the lines it added; it is not exact, so the full lint confirms it once
    typing pauses (which, like ``nanlint check``, reports only the syntax error)."""
    path = project / "typed.py"
    lines = TYPED.split("\n")
    before = [f for f in lint_document(str(path), TYPED)]
    assert [(f.code, f.line) for f in before] == [("NAN101", 10)]
    broken = "\n".join(lines[:12] + ["        z = foo(", ""] + lines[12:])  # inside `other`, below the finding
    shown, exact, _ = preview_document(str(path), broken, DocumentLint(before, TYPED, TYPED.splitlines(True)))
    assert not exact and [(f.code, f.line) for f in shown] == [("NAN101", 10), ("NAN000", 13)]
    above = "\n".join(lines[:3] + ["z = foo(", ""] + lines[3:])  # above it: the finding moves down two lines
    shown, exact, _ = preview_document(str(path), above, DocumentLint(before, TYPED, TYPED.splitlines(True)))
    assert not exact and [(f.code, f.line) for f in shown] == [("NAN000", 4), ("NAN101", 12)]
    assert [f.code for f in lint_document(str(path), above)] == ["NAN000"]  # what the confirmation shows
    # still broken at the next keystroke: the previous preview's findings move on, its error is replaced
    previous = DocumentLint(shown, above, above.splitlines(True), exact=False)
    again, _, _ = preview_document(str(path), above.replace("z = foo(", "z = foo(x,"), previous)
    assert [(f.code, f.line) for f in again] == [("NAN000", 4), ("NAN101", 12)]


# -- work in the lint thread when a newer change comes: a running preview is published, a confirmation stops ---------
SLOW_BOOTSTRAP = """
import os, sys, time
import nanlint.server as server
from nanlint.cancellation import Superseded, current_event
gate = os.environ["NANLINT_TEST_GATE"]
real_preview, real_lint = server.preview_document, server.lint_document
def wait_for_gate(name):
    open(os.path.join(gate, name + ".started"), "w").close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(os.path.join(gate, name + ".go")):
            return "released"
        event = current_event()
        if event is not None and event.is_set():
            open(os.path.join(gate, name + ".stopped"), "w").close()
            raise Superseded  # as the walker does at its next statement
        time.sleep(0.01)
    return "timed out"
def preview(path, text, previous):
    if "_slow_preview" in text:
        wait_for_gate("preview")
    return real_preview(path, text, previous)
def lint(path, text):
    if "_slow_confirm" in text:
        wait_for_gate("confirm")
    return real_lint(path, text)
server.preview_document, server.lint_document = preview, lint
from nanlint.cli import main
sys.argv = ["nanlint", "server"]
main()
"""


def typed_change(client: LspClient, uri: str, version: int, line: int, text: str) -> None:
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [
        {"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}}, "text": text}]})


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def open_typed(client: LspClient, project: Path) -> tuple[str, int]:
    """TYPED opened and its diagnostics received; the line of ``other`` where the edits go."""
    uri = open_document(client, project / "typed.py", TYPED)
    client.diagnostics(uri, version=1)
    return uri, TYPED.split("\n").index("        y = x * self.scale")


@pytest.fixture
def slow_session(project: Path, session, monkeypatch):
    gate = project / "gate"
    gate.mkdir()
    monkeypatch.setenv("NANLINT_TEST_GATE", str(gate))
    monkeypatch.setattr(LspClient, "COMMAND", [sys.executable, "-c", SLOW_BOOTSTRAP])
    client, _ = session()
    return client, gate


def test_a_preview_running_when_a_newer_change_comes_is_published_for_its_own_version(project: Path, slow_session):
    """Typing faster than a preview takes: the preview already running finishes and is published (its version),
    then the newest version's; an older version is never published after a newer one."""
    client, gate = slow_session
    uri, at = open_typed(client, project)
    typed_change(client, uri, 2, at, "        _slow_preview = 1\n")
    wait_for_file(gate / "preview.started")  # version 2's preview is running in the lint thread
    typed_change(client, uri, 3, at, "        _t = 1\n")
    time.sleep(0.2)  # version 3 is waiting behind it
    (gate / "preview.go").touch()
    assert [d["code"] for d in client.diagnostics(uri, version=2)] == ["NAN101"]
    assert [d["code"] for d in client.diagnostics(uri, version=3)] == ["NAN101"]
    versions = [m["params"].get("version") for m in client.seen
                if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri]
    assert versions == sorted(versions) and 2 in versions
    assert not (gate / "preview.stopped").exists()


def test_a_confirmation_running_when_a_newer_change_comes_stops(project: Path, slow_session):
    """A full lint confirming a preview is dropped when the document changes: it stops (the lint thread's event is
    set) instead of making the newer version's preview wait for it."""
    client, gate = slow_session
    uri, at = open_typed(client, project)
    typed_change(client, uri, 2, at, "        _slow_confirm = 1\n")
    client.diagnostics(uri, version=2)  # the preview, published at once
    wait_for_file(gate / "confirm.started")  # typing paused: the confirmation is running
    typed_change(client, uri, 3, at, "        _t = 1\n")
    wait_for_file(gate / "confirm.stopped")
    assert [d["code"] for d in client.diagnostics(uri, version=3)] == ["NAN101"]
    assert not (gate / "confirm.go").exists()


# -- the debounce: a change after a quiet moment is linted at once, a burst is coalesced -----------------------------
LONG_DEBOUNCE_BOOTSTRAP = """
import sys
import nanlint.server as server
server.DEBOUNCE_S = server.MAX_WAIT_S = 5.0  # a change that waited for the debounce would be answered in 5 s
from nanlint.cli import main
sys.argv = ["nanlint", "server"]
main()
"""


def test_a_change_after_a_quiet_moment_is_linted_at_once_and_a_burst_waits(project: Path, session, monkeypatch):
    """With a 5 s debounce: the first change after a quiet moment is answered at once (nothing to coalesce it
    with); one that follows it closely waits out the debounce."""
    monkeypatch.setattr(LspClient, "COMMAND", [sys.executable, "-c", LONG_DEBOUNCE_BOOTSTRAP])
    client, _ = session()
    uri, at = open_typed(client, project)
    started = time.monotonic()
    typed_change(client, uri, 2, at, "        _t = 1\n")
    assert [d["code"] for d in client.diagnostics(uri, version=2)] == ["NAN101"]
    assert time.monotonic() - started < 4.0  # not after the debounce
    typed_change(client, uri, 3, at, "        _u = 1\n")
    time.sleep(1.0)
    with client.messages.mutex:  # what has come so far, read or not
        received = [*client.seen, *client.messages.queue]
    assert 3 not in [m["params"].get("version") for m in received
                     if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri]
    assert [d["code"] for d in client.diagnostics(uri, version=3)] == ["NAN101"]  # after the debounce


def test_the_server_ends_with_its_input_whatever_stdin_is(tmp_path: Path):
    """stdin a pipe (editors; read by the event loop), a file or /dev/null (pygls's reader): at the end of the
    input the server exits instead of waiting forever, having answered what came before."""
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                          "params": {"processId": None, "rootUri": None, "capabilities": {}}}).encode()
    framed = b"X-Noise: " + b"x" * 100_000 + b"\r\n" + b"Content-Length: %d\r\n\r\n" % len(message) + message
    (tmp_path / "input").write_bytes(framed)  # (a line longer than asyncio's default limit comes first)
    command = [sys.executable, "-m", "nanlint", "server"]
    piped = subprocess.run(command, input=framed, capture_output=True, timeout=60, cwd=tmp_path)
    with open(tmp_path / "input", "rb") as handle:
        from_file = subprocess.run(command, stdin=handle, capture_output=True, timeout=60, cwd=tmp_path)
    from_null = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, cwd=tmp_path)
    for done in (piped, from_file, from_null):
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    for done in (piped, from_file):
        assert b'"id": 1' in done.stdout or b'"id":1' in done.stdout  # the initialize request was answered
