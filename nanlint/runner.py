"""Lint many files: cache lookups, a process pool sized to the cores, results streamed in order.

``lint_files(jobs)`` yields one :class:`~nanlint.engine.FileResult` per job, in
the jobs' order, whatever order the workers finish in:

* the main process hashes each file's bytes (or takes the hash the cache recorded
  for the file's unchanged ``stat``, without reading it); a cache hit
  (:mod:`nanlint.cache`) is yielded without parsing anything;
* a miss is linted in a worker process (the bytes travel with the task, so the
  result always belongs to the bytes that were hashed). The pool starts only
  once enough work has queued up (``POOL_MIN_FILES`` files or ``POOL_MIN_BYTES``
  bytes), so a pre-commit run on three files never pays for it;
* at most ``WINDOW_PER_PROCESS * processes`` files are in flight: memory does not
  grow with the number of files, and results carry no source text or tree. When
  the window is full the runner waits for any file to finish, not for the oldest:
  a slow file (a worker's first to parse, which imports libcst) would otherwise
  leave the other workers idle with nothing submitted (timm: 0.12-0.15 s of each
  worker's 1.8 s). Results wait behind the oldest file for at most
  ``AHEAD_PER_PROCESS * processes`` files;
* a worker that dies (a parser crash) costs only its file: the pool is rebuilt,
  the files in flight are retried one at a time, and the one that kills a worker
  on its own is reported as NAN999.

The findings equal those of :func:`nanlint.engine.lint_path` for the same file,
except that ``Finding.extra`` keeps only plain data (what can cross a process
boundary or be cached).
"""
from __future__ import annotations

import os
import sys
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Deque, Iterable, Iterator, Optional, Union

from .cache import Cache, content_hash, entry_key, plain_extra, request_key
from .files import INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME, FileResult, LintRequest, decode_source, file_error
from .finding import Finding

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future, ProcessPoolExecutor

POOL_MIN_FILES = 16
POOL_MIN_BYTES = 512 * 1024
WINDOW_PER_PROCESS = 8
AHEAD_PER_PROCESS = 32


@dataclass(frozen=True)
class Job:
    """One file to lint: where to read it, the name to report, and with what."""

    path: str
    display: str
    request: LintRequest
    missing: bool = False  # a path given on the command line that does not exist


def default_processes() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def lint_files(jobs: Iterable[Job], processes: Optional[int] = None, cache: Optional[Cache] = None
               ) -> Iterator[FileResult]:
    """One result per job, in order. ``processes``: worker processes (default: the usable cores; 1 = none)."""
    processes = default_processes() if processes is None else max(1, processes)
    runner = _Runner(processes, cache)
    try:
        yield from runner.run(jobs)
    finally:
        runner.close()
        if cache is not None:
            cache.save()


# -- the work of one file (in a worker or in-process) ---------------------------------------------
def lint_bytes(path: str, display: str, data: bytes, request: LintRequest) -> FileResult:
    """Decode and lint, as ``engine.lint_path`` does (a decoding error names ``path``, as there); the result
    holds no source text, no tree, and only plain ``extra`` data."""
    from .engine import lint_source  # here, not at the top: a run of cache hits never imports libcst or a rule

    if path.endswith(".ipynb"):  # notebook.is_notebook, without importing notebook.py for a .py file
        from .notebook import lint_notebook

        result = lint_notebook(display, data, request)
        encoding = "utf-8"
    else:
        source, encoding, error = decode_source(path, data)
        if error is not None:
            return FileResult(display, [error], encoding=encoding)
        assert source is not None
        result = lint_source(display, source, request)
    findings = [f if not f.extra else replace(f, extra=plain_extra(f.extra)) for f in result.findings]
    return FileResult(display, findings, result.internal_error, encoding=encoding)


def _read(job: Job) -> Union[bytes, FileResult]:
    """The file's bytes, or the result that reports why it cannot be read (as ``engine.read_source`` does)."""
    if job.missing:
        return FileResult(job.display, [file_error(job.display, "no such file or directory")])
    try:
        with open(job.path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        return FileResult(job.display, [file_error(job.path, "cannot read: is a directory")])
    except OSError as exc:
        return FileResult(job.display, [file_error(job.path, f"cannot read: {exc.strerror or exc}")])


def _crashed(display: str) -> FileResult:
    return FileResult(display, [Finding(
        INTERNAL_ERROR_CODE, INTERNAL_ERROR_NAME,
        "internal error: the process linting this file died (the parser crashed); please report this",
        display, 1, 1, 1, 1,
    )], internal_error=True)


@dataclass
class _Task:
    path: str
    display: str
    data: bytes
    request: LintRequest
    key: Optional[str]  # cache entry key (None: no cache)
    future: Optional["Future[FileResult]"] = None
    pool: Optional["ProcessPoolExecutor"] = None
    result: Optional[FileResult] = None


class _Runner:
    def __init__(self, processes: int, cache: Optional[Cache]) -> None:
        self.processes = processes
        self.cache = cache
        self.pool: Optional["ProcessPoolExecutor"] = None
        self._settings_keys: dict[LintRequest, str] = {}

    # -- main loop -----------------------------------------------------------------------------
    def run(self, jobs: Iterable[Job]) -> Iterator[FileResult]:
        pending: Deque[Union[FileResult, _Task]] = deque()  # in job order
        queued: list[_Task] = []  # misses waiting for the pool to be worth starting
        queued_bytes = 0
        window = WINDOW_PER_PROCESS * self.processes
        ahead = AHEAD_PER_PROCESS * self.processes
        for job in jobs:
            item = self._prepare(job)
            pending.append(item)
            if isinstance(item, _Task):
                if self.processes == 1:
                    self._run_here(item)
                elif self.pool is not None:
                    self._submit(item)
                else:
                    queued.append(item)
                    queued_bytes += len(item.data)
                    if len(queued) >= POOL_MIN_FILES or queued_bytes >= POOL_MIN_BYTES:
                        self.pool = self._new_pool()
                        for task in queued:
                            self._submit(task)
                        queued, queued_bytes = [], 0
            yield from self._ready(pending)
            while True:
                if len(pending) >= ahead:
                    self._wait(pending[0])  # type: ignore[arg-type]  # the head is the oldest unfinished task
                elif sum(1 for p in pending if isinstance(p, _Task) and p.result is None) >= window:
                    self._wait_any(pending)
                else:
                    break
                yield from self._ready(pending)
        for task in queued:  # too little work for a pool
            self._run_here(task)
        while pending:
            head = pending[0]
            if isinstance(head, _Task) and head.result is None:
                self._wait(head)
            yield from self._ready(pending)

    def _prepare(self, job: Job) -> Union[FileResult, _Task]:
        if self.cache is None:
            data = _read(job)
            return data if isinstance(data, FileResult) else _Task(job.path, job.display, data, job.request, None)
        settings = self._settings_keys.get(job.request)
        if settings is None:
            settings = request_key(job.request.codes, job.request.precision, job.request.options)
            self._settings_keys[job.request] = settings
        where = f"{job.path}\0{job.display}"
        absolute = os.path.abspath(job.path)
        try:
            st: Optional[os.stat_result] = None if job.missing else os.stat(absolute)
        except OSError:
            st = None  # _read says why
        if st is not None:  # unchanged since the cache hashed it: no need to read it
            digest = self.cache.digest_of(absolute, st)
            if digest is not None:
                found = self.cache.get(entry_key(where, settings, digest))
                if found is not None:
                    return FileResult(job.display, found)
        data = _read(job)
        if isinstance(data, FileResult):
            return data
        digest = content_hash(data)
        if st is not None:
            self.cache.record(absolute, st, digest)  # the stat taken before reading: a later write changes it
        key = entry_key(where, settings, digest)
        found = self.cache.get(key)
        if found is not None:
            return FileResult(job.display, found)
        return _Task(job.path, job.display, data, job.request, key)

    def _ready(self, pending: Deque[Union[FileResult, _Task]]) -> Iterator[FileResult]:
        """Yield the finished results at the head of the queue."""
        while pending:
            head = pending[0]
            if isinstance(head, _Task):
                if head.result is None and head.future is not None and head.future.done():
                    self._collect(head)
                if head.result is None:
                    return
                result = head.result
                if self.cache is not None and head.key is not None and not result.internal_error:
                    self.cache.put(head.key, result.findings)
            else:
                result = head
            pending.popleft()
            yield result

    # -- execution ------------------------------------------------------------------------------
    def _run_here(self, task: _Task) -> None:
        task.result = lint_bytes(task.path, task.display, task.data, task.request)
        task.data = b""

    def _submit(self, task: _Task) -> None:
        assert self.pool is not None
        try:
            task.future = self.pool.submit(lint_bytes, task.path, task.display, task.data, task.request)
            task.pool = self.pool
        except _broken_pool():
            self._replace_pool(self.pool)
            self._retry_alone(task)

    def _wait_any(self, pending: Deque[Union[FileResult, _Task]]) -> None:
        """Collect every task that has finished once one has, not only the head: a slow head (a worker's first
        file to parse, which imports libcst) must not keep the other worker idle with nothing submitted."""
        head = pending[0]
        running = [p.future for p in pending if isinstance(p, _Task) and p.result is None and p.future is not None]
        if not running or isinstance(head, _Task) and head.result is None and head.future is None:
            self._wait(head)  # type: ignore[arg-type]  # the head is the oldest unfinished task
            return
        from concurrent.futures import FIRST_COMPLETED, wait

        wait(running, return_when=FIRST_COMPLETED)
        for task in list(pending):
            if isinstance(task, _Task) and task.result is None and task.future is not None and task.future.done():
                self._collect(task)

    def _wait(self, task: _Task) -> None:
        if task.future is None:
            self._run_here(task)
        else:
            self._collect(task)

    def _collect(self, task: _Task) -> None:
        assert task.future is not None
        try:
            task.result = task.future.result()
            task.data = b""
        except _broken_pool():
            self._replace_pool(task.pool)
            self._retry_alone(task)

    def _replace_pool(self, broken: Optional["ProcessPoolExecutor"]) -> None:
        """A worker died and took its pool down: the files still to come get a new pool."""
        if broken is not None and broken is self.pool:
            broken.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()

    def _retry_alone(self, task: _Task) -> None:
        """Lint ``task`` in a one-off process; if that dies too, this file is what kills the parser."""
        pool = self._new_pool(1)
        try:
            task.result = pool.submit(lint_bytes, task.path, task.display, task.data, task.request).result()
        except _broken_pool():
            task.result = _crashed(task.display)
        finally:
            pool.shutdown(wait=True)
        task.data = b""

    def _new_pool(self, processes: Optional[int] = None) -> "ProcessPoolExecutor":
        import nanlint.engine  # noqa: F401  (forked workers inherit libcst, the rules and the analysis, imported once)

        pool_class = sys.modules[__name__].ProcessPoolExecutor  # type: ignore[attr-defined]  # (module __getattr__)
        return pool_class(max_workers=processes or self.processes, mp_context=_context())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _context() -> Any:
    """``fork`` where it is safe (Linux, no other threads): workers start in milliseconds with nanlint
    already imported; ``spawn`` elsewhere."""
    import multiprocessing

    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _broken_pool() -> type:
    return sys.modules[__name__].BrokenProcessPool  # type: ignore[no-any-return]  # (module __getattr__)


def __getattr__(name: str) -> Any:
    """``ProcessPoolExecutor`` and ``BrokenProcessPool``, imported when first asked for: multiprocessing costs
    10-20 ms to import, and a run whose files are all cache hits (or too few for a pool) never starts one."""
    if name in ("ProcessPoolExecutor", "BrokenProcessPool"):
        from concurrent.futures import process

        return getattr(process, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
