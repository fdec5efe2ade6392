"""``nanlint server``: a Language Server (LSP over stdio) for editors. Needs pygls (the ``lsp`` extra).

* Diagnostics for Python documents on open, change and save, from the same engine
  and configuration as the command line (``[tool.nanlint]`` found by walking up
  from the document's path; excluded files get no diagnostics, as with
  ``--force-exclude``). Each diagnostic has the rule code, ``source: nanlint``, a
  severity (error for default rules, warning for preview ones, as in SARIF), and a
  ``codeDescription`` link to the rule's documentation.
* Positions: nanlint counts 1-based lines and columns in characters (code points);
  LSP wants 0-based lines and columns in the negotiated position encoding, UTF-16
  code units unless the client offers another (so an emoji before a finding counts
  twice).
* Typing: a change is linted after ``DEBOUNCE_S`` without a newer one, or at the
  latest ``MAX_WAIT_S`` after the first change not yet published (a burst of
  keystrokes faster than the debounce is still answered while it lasts), off the
  event loop (one lint at a time). A change that ends a quiet moment (none in the
  ``DEBOUNCE_S`` before it, and no preview of the document running) is linted at
  once: there is nothing to coalesce it with, and waiting would only add to its
  latency (the first keystroke of a burst, or each one of slow typing). The first
  lint after a change re-analyses only the top-level definitions it touched
  (:mod:`nanlint.incremental`); that preview
  is confirmed by a full lint once typing pauses for ``CONFIRM_S``, published
  again only if it differs. A newer change cancels the older one's pending work:
  its debounce, its lint still queued, its confirmation even while it runs (the
  lint stops at its next statement, :mod:`nanlint.cancellation`). A preview
  already running is the one exception: it finishes and is published for its own
  version, unless a newer version has been published, so a burst of keystrokes
  faster than a preview takes is answered while it lasts instead of only when it
  stops; versions are only ever published in increasing order. At rest the
  diagnostics are exactly those of ``nanlint check``.
* Code actions for findings that carry a fix: one quick fix per finding (preferred
  when the fix is safe; an unsafe fix says so in its title) and a
  ``source.fixAll.nanlint`` action applying every safe fix.

Initialization options (all optional): ``{"docsUrl": "https://…/rules.md"}`` is the
page the diagnostic links point to (``#nan101-divide-by-norm`` is appended); by
default the ``docs/rules.md`` of a source checkout, if there is one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import click

from . import __version__
from .cancellation import cancellable
from .collector import IdleFreezer, collector_paused
from .config import ConfigError
from .docs import anchor
from .files import FILE_ERROR_CODE, LintRequest, python_syntax_error
from .finding import Edit, Finding, at_least
from .lines import common_ends, split_lines
from .registry import BY_CODE
from .report.levels import WARNING, level
from .request import SettingsResolver

if TYPE_CHECKING:  # pragma: no cover
    import ast
    import asyncio
    from concurrent.futures import Future, ThreadPoolExecutor

    from lsprotocol import types as lsp

log = logging.getLogger("nanlint.server")

SOURCE = "nanlint"
FIX_ALL_KIND = "source.fixAll.nanlint"
PYTHON_SUFFIXES = (".py", ".pyi")
INSTALL_HINT = "nanlint server needs pygls (the `lsp` extra): pip install 'pygls>=2,<3'"
DEBOUNCE_S = 0.015  # a change waits this long for the next keystroke before it is linted
MAX_WAIT_S = 0.03  # ... but no longer than this after the oldest change not yet published
CONFIRM_S = 0.3  # a preview (changed definitions re-analysed) is confirmed by a full lint after this pause
# While the worker thread lints, the event loop must still read each keystroke at once. CPython hands the GIL to a
# waiting thread only after the running one has held it this long (5 ms by default), and reading and applying one
# change waits for it several times: at 15 ms between keystrokes the loop fell 100-200 ms behind while previews ran
# (LSP p95 0.43-0.46 s typing into `_compute_mask_indices`, 0.11-0.13 s at 1 ms; benchmarks/README.md).
SWITCH_INTERVAL_S = 0.001


# -- positions (no pygls needed: tested directly) --------------------------------------------------------------------
def units_counter(encoding: Optional[str]) -> Callable[[str], int]:
    """How many code units of the negotiated LSP position encoding a piece of text takes."""
    if encoding == "utf-8":
        return lambda text: len(text.encode("utf-8", "surrogatepass"))
    if encoding == "utf-32":
        return len
    return lambda text: len(text.encode("utf-16-le", "surrogatepass")) // 2


def to_lsp_position(lines: Sequence[str], line: int, column: int, units: Callable[[str], int]) -> tuple[int, int]:
    """nanlint's 1-based line and 1-based character column -> LSP's 0-based line and code-unit character."""
    index = max(line - 1, 0)
    if index >= len(lines):
        return index, 0
    text = lines[index].rstrip("\r\n")
    return index, units(text[: min(max(column - 1, 0), len(text))])


# -- the lint behind a document ---------------------------------------------------------------------------------------
@dataclass
class DocumentLint:
    """The findings of one version of one document, and the text they refer to."""

    findings: list[Finding]
    text: str
    lines: list[str]
    key: tuple[Optional[int], str] = ("", "")  # (version, text digest)
    fixed_all: Optional[str] = None  # the text after `--fix` (safe fixes), once a fixAll action asked for it
    exact: bool = True  # False for a preview: only the changed definitions were re-analysed
    layout: Any = None  # the text's nanlint.incremental.Layout, once a preview needed it


@dataclass
class Pending:
    """The work a change started: wait out the burst, preview, confirm. ``lint`` is its lint in the worker thread,
    once submitted; setting ``stop`` makes that lint stop at its next statement (:mod:`nanlint.cancellation`)."""

    task: Optional["asyncio.Task[None]"] = None
    stop: threading.Event = field(default_factory=threading.Event)
    lint: Optional["Future[Any]"] = None
    previewing: bool = False  # ``lint`` is the preview, whose result is published even if a newer change comes

    def finishes_preview(self) -> bool:
        """Its preview is running in the worker thread: a newer change lets it finish and publish."""
        return self.previewing and self.lint is not None and self.lint.running()


@dataclass
class NanlintState:
    docs_url: Optional[str] = None
    cache: dict[str, DocumentLint] = field(default_factory=dict)
    shown_errors: set[str] = field(default_factory=set)
    pending: dict[str, Pending] = field(default_factory=dict)  # the latest change's work, per document
    published: dict[str, int] = field(default_factory=dict)  # the newest version published, per document
    waiting_since: dict[str, float] = field(default_factory=dict)  # when the oldest unpublished change came
    last_change: dict[str, float] = field(default_factory=dict)  # when the latest change came, per document
    # every lint after a change runs here, one at a time, off the event loop (which keeps reading changes)
    executor: "ThreadPoolExecutor" = field(default_factory=lambda: _lint_thread())
    freezer: IdleFreezer = field(default_factory=IdleFreezer)  # what is alive when a document is idle, frozen


def _stoppable(stop: threading.Event, work: Callable[..., Any], *args: Any) -> Any:
    with cancellable(stop), collector_paused():  # (a preview's trees are young: no collection walks them meanwhile)
        return work(*args)


def _lint_thread() -> "ThreadPoolExecutor":
    from concurrent.futures import ThreadPoolExecutor  # here: `nanlint --version` imports this module

    return ThreadPoolExecutor(1, "nanlint-lint")


def document_path(uri: str, fs_path: Optional[str]) -> str:
    """The path used for configuration and per-file-ignores; an unsaved document lints as if in the cwd."""
    if fs_path:
        return fs_path
    return os.path.join(os.getcwd(), uri.rsplit("/", 1)[-1] or "untitled.py")


def request_for(path: str) -> Optional[tuple[LintRequest, str]]:
    """The request ``nanlint check`` would lint ``path`` with, and the lowest confidence it reports; None for an
    excluded file. Raises ConfigError."""
    resolver = SettingsResolver()  # the same settings and request as `nanlint check` gives this file
    settings = resolver.for_path(path)
    if settings.is_excluded_with_parents(path):
        return None
    return resolver.request_for(path), settings.confidence


def _shown(findings: list[Finding], confidence: str) -> list[Finding]:
    return sorted((f for f in findings if at_least(f.confidence, confidence)), key=Finding.sort_key)


def lint_document(path: str, text: str) -> list[Finding]:
    """Findings for the document text at ``path``; [] for an excluded file. Raises ConfigError."""
    from .engine import lint_source

    found = request_for(path)
    if found is None:
        return []
    request, confidence = found
    result = lint_source(path, text, request, keep_tree=True)
    if result.tree is not None:
        with _trees_lock:  # (the server lints in its main thread and in its lint thread)
            _trees.pop(path, None)
            _trees[path] = (text, result.tree)
            while len(_trees) > _TREES_KEPT:  # the oldest first: a document closed before its layout was built
                del _trees[next(iter(_trees))]
    return _shown(result.findings, confidence)


# The stdlib tree of each document's last linted text, by path, until ``parsed_tree`` takes it: the layout the next
# keystroke's preview starts from is built from it (the server's ``prepare``) instead of parsing the text again
# (5,300 lines: 60 ms to 5 ms).
_trees: dict[str, tuple[str, "ast.Module"]] = {}
_TREES_KEPT = 8
_trees_lock = threading.Lock()


def parsed_tree(path: str, text: str) -> Optional[ast.Module]:
    """The stdlib tree of ``text`` if the last ``lint_document`` of ``path`` linted it (taken: asked once)."""
    with _trees_lock:
        entry = _trees.pop(path, None)
    return entry[1] if entry is not None and entry[0] == text else None


def preview_document(path: str, text: str, previous: Optional[DocumentLint]) -> tuple[list[Finding], bool, Any]:
    """(findings, exact, layout) for a changed document: the definitions that differ from ``previous`` re-analysed
    and its other findings reused (``nanlint.incremental``; exact=False), or a full lint where that cannot be done
    (exact=True). Raises ConfigError."""
    from .incremental import layout, moved_findings, relint

    found = request_for(path)
    if found is None:
        return [], True, None
    request, confidence = found
    if previous is not None:  # a preview too: what it reused stays as exact as it was; the confirmation decides
        before = previous.layout if previous.layout is not None else layout(previous.text, path)
        if before is not None:
            previous.layout = before
            done = relint(path, request, before, previous.findings, text)
            if done is not None:
                return _shown(done.findings, confidence), done.reused_all, done.layout
        error = python_syntax_error(path, text)
        if error is not None:  # mid-keystroke: Python's error, the other findings where they were (libcst may
            # still parse newer syntax: the confirmation's full lint decides)
            kept = [f for f in previous.findings if f.code != FILE_ERROR_CODE]
            return _shown(moved_findings(kept, previous.text, text) + [error], confidence), False, None
    return lint_document(path, text), True, None


def fix_all_safe(path: str, text: str) -> Optional[str]:
    """The text with every safe fix applied by the fix engine (which re-parses and re-lints after each pass and
    drops a fix that breaks the file, as ``nanlint --fix`` does); None when nothing changes."""
    from .fixes import fix_source

    resolver = SettingsResolver()
    settings = resolver.for_path(path)
    if settings.is_excluded_with_parents(path):
        return None
    outcome = fix_source(path, text, resolver.request_for(path), unsafe=False, lowest=settings.confidence)
    return outcome.source if outcome.changed else None


def offset_of(lines: Sequence[str], line: int, column: int) -> int:
    """The character offset of nanlint's 1-based (line, column) in the text split into ``lines``."""
    index = min(max(line - 1, 0), len(lines))
    column = max(column - 1, 0)
    if index < len(lines):
        column = min(column, len(lines[index].rstrip("\r\n")))
    return sum(len(text) for text in lines[:index]) + column


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """``text`` with non-overlapping edits applied (from the last to the first)."""
    lines = split_lines(text)
    spans = sorted(((offset_of(lines, e.line, e.column), offset_of(lines, e.end_line, e.end_column), e.content)
                    for e in edits), reverse=True)
    for start, end, content in spans:
        text = text[:start] + content + text[end:]
    return text


def parses(text: str) -> bool:
    import libcst

    try:
        libcst.parse_module(text)
    except Exception:  # libcst's native parser raises several types
        return False
    return True


def minimal_edit(before: str, after: str) -> Edit:
    """One edit turning ``before`` into ``after``: the span between their common prefix and suffix."""
    prefix, suffix = common_ends(before, after)
    lines = split_lines(before)

    def position(offset: int) -> tuple[int, int]:
        for number, text in enumerate(lines, 1):
            if offset <= len(text.rstrip("\r\n")) or offset < len(text):
                return number, min(offset, len(text.rstrip("\r\n"))) + 1
            offset -= len(text)
        return len(lines) + 1, 1

    start, end = position(prefix), position(len(before) - suffix)
    return Edit(start[0], start[1], end[0], end[1], after[prefix:len(after) - suffix])


def default_docs_url() -> Optional[str]:
    candidate = Path(__file__).resolve().parent.parent / "docs" / "rules.md"
    return candidate.as_uri() if candidate.is_file() else None


def overlaps(a: tuple[tuple[int, int], tuple[int, int]], b: tuple[tuple[int, int], tuple[int, int]]) -> bool:
    """Do two (start, end) ranges of (line, character) touch? Empty ranges touch what they sit in or next to."""
    return not (a[1] < b[0] or b[1] < a[0])


# -- the server -------------------------------------------------------------------------------------------------------
def create_server() -> Any:
    """Build the pygls server (imports pygls; raises ImportError when it is missing)."""
    import asyncio

    from lsprotocol import types as lsp
    from pygls.lsp.server import LanguageServer

    server = LanguageServer("nanlint", __version__)
    state = NanlintState()

    def units() -> Callable[[str], int]:
        encoding = server.workspace.position_encoding
        return units_counter(str(encoding.value if hasattr(encoding, "value") else encoding))

    def lsp_range(lines: Sequence[str], line: int, column: int, end_line: int, end_column: int) -> lsp.Range:
        count = units()
        start = to_lsp_position(lines, line, column, count)
        end = to_lsp_position(lines, end_line, end_column, count)
        if end < start:
            end = start
        return lsp.Range(lsp.Position(*start), lsp.Position(*end))

    def report_error(message: str) -> None:
        log.error("%s", message)
        if message not in state.shown_errors:
            state.shown_errors.add(message)
            server.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Error, message=message))

    def is_python(document: Any) -> bool:
        return document.language_id == "python" or document.uri.endswith(PYTHON_SUFFIXES)

    def lint(uri: str) -> Optional[DocumentLint]:
        document = server.workspace.get_text_document(uri)
        if not is_python(document):
            return None
        text = document.source
        key = (document.version, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
        cached = state.cache.get(uri)
        if cached is not None and cached.key == key and cached.exact:
            return cached
        try:
            findings = lint_document(document_path(uri, document.path), text)
        except ConfigError as exc:
            report_error(f"nanlint: {exc}")
            findings = []
        linted = DocumentLint(findings, text, split_lines(text), key)
        state.cache[uri] = linted
        return linted

    def diagnostic(linted: DocumentLint, finding: Finding) -> lsp.Diagnostic:
        rule = BY_CODE.get(finding.code)
        href = f"{state.docs_url}#{anchor(rule)}" if rule is not None and state.docs_url else None
        return lsp.Diagnostic(
            range=lsp_range(linted.lines, finding.line, finding.column, finding.end_line, finding.end_column),
            message=finding.message,
            severity=lsp.DiagnosticSeverity.Warning if level(finding.code) == WARNING
            else lsp.DiagnosticSeverity.Error,
            code=finding.code,
            code_description=lsp.CodeDescription(href=href) if href else None,
            source=SOURCE,
        )

    def send(uri: str, version: Optional[int], linted: DocumentLint) -> None:
        if version is not None:
            state.published[uri] = version
        server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=version, diagnostics=[diagnostic(linted, f) for f in linted.findings],
        ))

    def publish(uri: str, force: bool = False) -> None:
        cancel(uri)
        if force:
            state.cache.pop(uri, None)
        linted = lint(uri)
        if linted is None:
            return
        document = server.workspace.get_text_document(uri)
        send(uri, document.version, linted)
        prepare(uri, document.version, document_path(uri, document.path), linted)

    def prepare(uri: str, version: Optional[int], path: str, linted: DocumentLint) -> None:
        """After an exact lint, while the editor is idle: the layout the next keystroke's preview starts from, and
        what a preview after a module-level edit reads of it (``Layout.prepare``); a newer version stops it."""
        def changed() -> bool:  # (read from the lint thread: a dictionary lookup and an attribute)
            document = server.workspace.text_documents.get(uri)
            return document is None or document.version != version

        def work() -> None:
            from .incremental import layout

            if changed() or state.cache.get(uri) is not linted:
                return
            with collector_paused():
                if linted.layout is None:
                    linted.layout = layout(linted.text, path, parsed_tree(path, linted.text))
                # the layout and its tree live until the next exact lint: no collection walks them again
                state.freezer.freeze(idle=not changed())
                if linted.layout is not None:
                    linted.layout.prepare(changed)

        state.executor.submit(work)

    def cancel(uri: str, superseded: bool = True) -> None:
        """Drop the pending work of an older version: its debounce, its queued lint, its running confirmation
        (stopped at its next statement). A ``superseded`` preview already running finishes, and is published if
        no newer version has been (typing faster than a preview takes would otherwise publish nothing until it
        pauses); a closed document's work stops whatever it is doing."""
        pending = state.pending.pop(uri, None)
        if pending is None or pending.task is None or pending.task.done() \
                or (superseded and pending.finishes_preview()):
            return
        pending.stop.set()
        pending.task.cancel()

    def current(uri: str, version: Optional[int], text: str) -> bool:
        document = server.workspace.text_documents.get(uri)
        return document is not None and document.version == version and document.source == text

    def newest(uri: str, version: Optional[int]) -> bool:
        """``version`` of an open document is newer than every version published for it."""
        published = state.published.get(uri)
        return (version is not None and uri in server.workspace.text_documents
                and (published is None or version > published))

    async def in_thread(pending: Pending, work: Callable[..., Any], *args: Any) -> Any:
        pending.lint = state.executor.submit(_stoppable, pending.stop, work, *args)
        return await asyncio.wrap_future(pending.lint)  # cancelling this cancels the lint if it has not started

    async def refresh(uri: str, pending: Pending, quiet: bool = False) -> None:
        """After a change: wait out the burst (unless the change ends a ``quiet`` moment), preview, publish, then
        confirm with a full lint once typing pauses."""
        loop = asyncio.get_running_loop()
        since = state.waiting_since.setdefault(uri, loop.time())
        if not quiet:
            await asyncio.sleep(min(DEBOUNCE_S, max(0.0, since + MAX_WAIT_S - loop.time())))
        document = server.workspace.get_text_document(uri)
        if not is_python(document):
            state.waiting_since.pop(uri, None)
            return
        version, text = document.version, document.source
        path = document_path(uri, document.path)
        key = (version, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
        read_at = loop.time()
        pending.previewing = True
        try:
            findings, exact, layout = await in_thread(pending, preview_document, path, text, state.cache.get(uri))
        except ConfigError as exc:
            report_error(f"nanlint: {exc}")
            findings, exact, layout = [], True, None
        pending.previewing = False
        is_current = current(uri, version, text)
        if not (is_current or newest(uri, version)):
            return  # a newer version is out, or the document was closed
        linted = DocumentLint(findings, text, split_lines(text), key, exact=exact, layout=layout)
        state.cache[uri] = linted
        if is_current:
            state.waiting_since.pop(uri, None)
        else:  # superseded while it ran: the changes not yet answered all came after its text was read
            state.waiting_since[uri] = read_at
        send(uri, version, linted)
        if exact and is_current:
            prepare(uri, version, path, linted)
        if exact or not is_current:
            return  # a newer change has its own task, which confirms
        await asyncio.sleep(CONFIRM_S)
        try:
            confirmed = await in_thread(pending, lint_document, path, text)
        except ConfigError as exc:
            report_error(f"nanlint: {exc}")
            return
        if not current(uri, version, text):
            return
        state.cache[uri] = DocumentLint(confirmed, text, linted.lines, key, layout=layout)
        if confirmed != findings:
            send(uri, version, state.cache[uri])

    def schedule(uri: str) -> None:
        now = asyncio.get_running_loop().time()
        previous = state.pending.get(uri)
        quiet = now - state.last_change.get(uri, -DEBOUNCE_S) >= DEBOUNCE_S \
            and not (previous is not None and previous.finishes_preview())
        state.last_change[uri] = now
        cancel(uri)
        pending = Pending()
        pending.task = asyncio.ensure_future(refresh(uri, pending, quiet))
        state.pending[uri] = pending

    def workspace_edit(uri: str, version: Optional[int], edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
        capabilities = server.client_capabilities
        workspace = capabilities.workspace if capabilities else None
        workspace_edit_caps = workspace.workspace_edit if workspace else None
        if workspace_edit_caps is not None and workspace_edit_caps.document_changes:
            return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
                text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
                edits=edits,
            )])
        return lsp.WorkspaceEdit(changes={uri: edits})

    def text_edits(linted: DocumentLint, edits: Sequence[Edit]) -> list[lsp.TextEdit]:
        return [lsp.TextEdit(range=lsp_range(linted.lines, e.line, e.column, e.end_line, e.end_column),
                             new_text=e.content) for e in edits]

    @server.feature(lsp.INITIALIZE)
    def initialize(params: lsp.InitializeParams) -> None:
        options = params.initialization_options if isinstance(params.initialization_options, dict) else {}
        docs_url = options.get("docsUrl")
        state.docs_url = docs_url.rstrip("#") if isinstance(docs_url, str) and docs_url else default_docs_url()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        schedule(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
        publish(params.text_document.uri, force=True)  # the configuration may have changed on disk

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        cancel(params.text_document.uri, superseded=False)
        state.waiting_since.pop(params.text_document.uri, None)
        state.last_change.pop(params.text_document.uri, None)
        state.published.pop(params.text_document.uri, None)
        state.cache.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL_KIND]),
    )
    def code_action(params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        uri = params.text_document.uri
        linted = lint(uri)
        if linted is None:
            return []
        version = server.workspace.get_text_document(uri).version
        only = params.context.only
        wanted = (lambda kind: True) if not only else (lambda kind: any(kind == k or kind.startswith(f"{k}.")
                                                                       for k in only))
        requested = ((params.range.start.line, params.range.start.character),
                     (params.range.end.line, params.range.end.character))
        actions: list[lsp.CodeAction] = []
        if wanted(lsp.CodeActionKind.QuickFix):
            for finding in linted.findings:
                if finding.fix is None or not finding.fix.edits or finding.fix.applicability == "display-only":
                    continue  # a display-only fix is described in the diagnostic's message, never applied
                diag = diagnostic(linted, finding)
                span = ((diag.range.start.line, diag.range.start.character),
                        (diag.range.end.line, diag.range.end.character))
                if not overlaps(span, requested):
                    continue
                if not parses(apply_edits(linted.text, finding.fix.edits)):
                    log.warning("%s fix at %s:%s does not parse; not offered", finding.code, finding.line,
                                finding.column)
                    continue
                unsafe = finding.fix.applicability != "safe"
                actions.append(lsp.CodeAction(
                    title=f"{finding.code}: {finding.fix.message}" + (" (unsafe fix)" if unsafe else ""),
                    kind=lsp.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    is_preferred=not unsafe,
                    edit=workspace_edit(uri, version, text_edits(linted, finding.fix.edits)),
                ))
        if wanted(FIX_ALL_KIND) and any(f.fix is not None and f.fix.applicability == "safe"
                                         for f in linted.findings):
            if linted.fixed_all is None:  # computed once per document version: it lints up to MAX_PASSES times
                document = server.workspace.get_text_document(uri)
                try:
                    linted.fixed_all = fix_all_safe(document_path(uri, document.path), linted.text) or linted.text
                except ConfigError as exc:
                    report_error(f"nanlint: {exc}")
                    linted.fixed_all = linted.text
            if linted.fixed_all != linted.text:
                actions.append(lsp.CodeAction(
                    title="nanlint: apply all safe fixes",
                    kind=FIX_ALL_KIND,
                    edit=workspace_edit(uri, version,
                                        text_edits(linted, [minimal_edit(linted.text, linted.fixed_all)])),
                ))
        return actions

    return server


@click.command(name="server")
@click.option("--stdio", is_flag=True, help="Talk LSP over stdin/stdout (the default and only transport).")
def command(stdio: bool) -> None:
    """Run the Language Server (LSP over stdio) for editors; needs pygls: `pip install 'pygls>=2,<3'`."""
    try:
        server = create_server()
    except ImportError as exc:
        click.echo(f"{INSTALL_HINT} ({exc})", err=True)
        sys.exit(2)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    serve_stdio(server)


# How long a line of the input may be (asyncio's default, 64 KiB, would stop the server at a longer one; pygls's own
# reader has no limit, and skips a line that is no header)
_LINE_LIMIT = 1 << 30


class _PipeReader:
    """pygls's ``AsyncReader`` over an asyncio stream the event loop fills itself."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def readline(self) -> Any:
        return self.stream.readline()  # b"" at the end of the input: pygls stops

    async def readexactly(self, n: int) -> bytes:
        import asyncio

        try:
            return await self.stream.readexactly(n)  # type: ignore[no-any-return]
        except asyncio.IncompleteReadError:
            return b""  # the client closed the pipe in the middle of a message: pygls stops


def serve_stdio(server: Any) -> None:
    """``server.start_io()``, with stdin read by the event loop (asyncio's pipe transport). pygls reads each header
    line and each body in its thread pool: three thread hops per message, and while a lint holds the GIL every hop
    waits for it (a keystroke reached its handler 10-25 ms after it was sent, typing into a 5,300-line file). Where
    stdin is no pipe or socket (a file, ``/dev/null``, a terminal), or on Windows, pygls's own reader is used."""
    import asyncio
    import stat

    from pygls.io_ import StdoutWriter, run_async

    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        mode = 0
    if os.name != "posix" or not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        server.start_io()
        return

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=_LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), sys.stdin.buffer)
        server._stop_event = threading.Event()
        server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
        await run_async(stop_event=server._stop_event, reader=_PipeReader(stream), protocol=server.protocol,
                        error_handler=server.report_server_error)

    try:
        asyncio.run(serve())
    except BrokenPipeError:
        logging.getLogger(__name__).error("the connection to the client is lost: shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
