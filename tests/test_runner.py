"""The runner: pool, cache and streaming report exactly what the plain single-process path reports."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Iterator

import libcst as cst
import pytest

from nanlint import engine, runner
from nanlint.cache import Cache
from nanlint.engine import LintRequest, lint_path
from nanlint.finding import Finding
from nanlint.rules import ALL_RULES
from nanlint.rules.base import Rule
from nanlint.runner import Job, lint_files

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "corpus_sample"
REQUEST = LintRequest(ALL_RULES)


def corpus_files() -> list[Path]:
    """Fixtures, the demo project and the vendored corpus sample."""
    return sorted([*ROOT.glob("fixtures/**/*.py"), *SAMPLE.rglob("*.py")])


def identity(findings: list[Finding]) -> list[tuple]:
    return [(f.path, f.code, f.name, f.message, f.line, f.column, f.end_line, f.end_column, f.fix)
            for f in sorted(findings, key=Finding.sort_key)]


@pytest.fixture(scope="module")
def plain() -> dict[str, list[tuple]]:
    """What the plain path (one process, no second-stage screen, no cache) reports, file by file."""
    saved = engine.SECOND_STAGE
    engine.SECOND_STAGE = False
    try:
        return {str(p): identity(lint_path(str(p), REQUEST).findings) for p in corpus_files()}
    finally:
        engine.SECOND_STAGE = saved


def jobs(paths: list[Path]) -> list[Job]:
    return [Job(str(p), str(p), REQUEST) for p in paths]


class Pulled:
    """The jobs of ``paths``, counting how many the runner has taken (``count``)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.count = paths, 0

    def __iter__(self) -> Iterator[Job]:
        for job in jobs(self.paths):
            self.count += 1
            yield job


@pytest.fixture
def eager_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the pool at the first miss and keep few files in flight, to exercise ordering and retries."""
    monkeypatch.setattr(runner, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(runner, "WINDOW_PER_PROCESS", 2)


def test_sample_is_there() -> None:
    assert len(list(SAMPLE.rglob("*.py"))) >= 8


@pytest.mark.parametrize("processes", [1, 2])
def test_parallel_and_cached_paths_equal_the_plain_path(processes: int, plain: dict, eager_pool: None,
                                                        tmp_path: Path) -> None:
    paths = corpus_files()
    for attempt in ("cold", "warm"):
        cache = Cache(str(tmp_path))
        results = list(lint_files(jobs(paths), processes, cache))
        assert [r.path for r in results] == [str(p) for p in paths], "results must come in job order"
        for path, result in zip(paths, results):
            assert identity(result.findings) == plain[str(path)], (attempt, path)
            assert result.source is None  # nothing big is kept
        if attempt == "warm":
            assert cache.misses == 0 and cache.hits == len(paths)
    assert sum(len(v) for v in plain.values()) > 50  # the comparison is not vacuous


def test_a_warm_run_reads_no_unchanged_file_and_equals_the_plain_path(plain: dict, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's file records (stat -> content hash) answer a warm run without reading a file; a file whose
    stat changed is read and hashed again."""
    from nanlint import cache as cache_module

    if not cache_module.STAT_RECORDS:
        pytest.skip("no stat records where st_ctime is the creation time (Windows)")
    monkeypatch.setattr(cache_module, "RACY_NS", 0)  # files written just now may be recorded too
    paths = corpus_files()
    list(lint_files(jobs(paths), 1, Cache(str(tmp_path / "cache"))))
    read: list[str] = []
    original = runner._read

    def counting(job: Job):
        read.append(job.path)
        return original(job)

    monkeypatch.setattr(runner, "_read", counting)
    cache = Cache(str(tmp_path / "cache"))
    results = list(lint_files(jobs(paths), 1, cache))
    assert read == [] and cache.misses == 0
    assert {str(p): identity(r.findings) for p, r in zip(paths, results)} == plain
    # the same bytes under a new stat: read and hashed again, still a hit; new bytes: a miss
    copy = tmp_path / "m.py"
    copy.write_text("import torch\n\ndef f(x):\n    return x / x.norm()\n")
    first = list(lint_files(jobs([copy]), 1, Cache(str(tmp_path / "cache"))))
    os.utime(copy, ns=(1, 1))
    cache = Cache(str(tmp_path / "cache"))
    again = list(lint_files(jobs([copy]), 1, cache))
    assert read[-1] == str(copy) and cache.hits == 1 and identity(again[0].findings) == identity(first[0].findings)
    stat = copy.stat()
    copy.write_text("import torch\n\ndef f(x):\n    return x / x.norm().clamp_min(1)\n")
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime; ctime and size tell
    cache = Cache(str(tmp_path / "cache"))
    assert list(lint_files(jobs([copy]), 1, cache))[0].findings == [] and cache.misses == 1


def test_pool_is_really_used(eager_pool: None, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    original = runner._Runner._new_pool

    def counting(self, processes=None):
        started.append(processes or self.processes)
        return original(self, processes)

    monkeypatch.setattr(runner._Runner, "_new_pool", counting)
    results = list(lint_files(jobs(corpus_files()[:6]), 2))
    assert started == [2] and len(results) == 6


def test_small_inputs_run_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("no pool for three files")

    monkeypatch.setattr(runner, "ProcessPoolExecutor", refuse)
    results = list(lint_files(jobs(corpus_files()[:3]), 8))
    assert len(results) == 3


def test_results_stream_and_input_is_consumed_lazily(eager_pool: None) -> None:
    """With a bounded look-ahead the runner never reads far ahead of what it has yielded."""
    paths = corpus_files() * 3
    source = Pulled(paths)
    ahead = runner.AHEAD_PER_PROCESS * 2
    yielded = 0
    for _ in lint_files(source, 2):
        yielded += 1
        assert source.count - yielded <= ahead + 1, (source.count, yielded)
    assert yielded == len(paths)


_LINT_BYTES = runner.lint_bytes


def _slow_head(path: str, display: str, data: bytes, request: LintRequest):  # (forked workers find it by name)
    if path.endswith("slow.py"):
        time.sleep(1.0)
    return _LINT_BYTES(path, display, data, request)


def test_a_slow_file_does_not_stall_the_other_workers(eager_pool: None, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """While the oldest file is still being linted, the runner goes on submitting as other files finish: with a
    full window it waits for any file, not for the oldest (which would idle every other worker)."""
    monkeypatch.setattr(runner, "lint_bytes", _slow_head)
    files = [tmp_path / "slow.py", *(tmp_path / f"m{i}.py" for i in range(30))]
    for file in files:
        file.write_text("x = 1\n")
    source = Pulled(files)
    results = lint_files(source, 2)
    first = next(results)
    assert first.path.endswith("slow.py")
    assert source.count > runner.WINDOW_PER_PROCESS * 2 + 1, source.count  # past a full window while it slept
    assert [r.path for r in results] == [str(f) for f in files[1:]]


def test_unreadable_missing_and_undecodable_files_match_the_engine(tmp_path: Path) -> None:
    (tmp_path / "latin.py").write_bytes(b"x = '\xe9'\n")
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    (tmp_path / "bad_cookie.py").write_bytes(b"# -*- coding: nope -*-\nx = 1\n")
    (tmp_path / "syntax.py").write_text("def f(:\n    pass\n")
    (tmp_path / "adir.py").mkdir()
    paths = [tmp_path / n for n in ("latin.py", "nul.py", "bad_cookie.py", "syntax.py", "adir.py")]
    shown = [f"shown/{p.name}" for p in paths]  # a display name that differs from the path, as for absolute args
    work = [Job(str(p), d, REQUEST) for p, d in zip(paths, shown)]
    got = list(lint_files([*work, Job(str(tmp_path / "gone.py"), "gone.py", REQUEST, missing=True)], 1))
    for path, display, result in zip(paths, shown, got):
        assert result.path == display
        assert identity(result.findings) == identity(lint_path(str(path), REQUEST, display).findings), path
        assert [f.code for f in result.findings] == ["NAN000"]
    assert got[-1].findings[0].message == "no such file or directory"
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.py"
        locked.write_text("x = 1\n")
        locked.chmod(0)
        result = next(lint_files(jobs([locked]), 1))
        assert identity(result.findings) == identity(lint_path(str(locked), REQUEST).findings)


def test_extra_keeps_only_plain_data(tmp_path: Path) -> None:
    file = tmp_path / "m.py"
    file.write_text("import torch\n\ndef f(x):\n    return x / x.norm()\n")
    (result,) = lint_files(jobs([file]), 1)
    (finding,) = result.findings
    assert finding.extra.get("target_span") == (4, 16, 4, 24)
    assert not any(isinstance(v, cst.CSTNode) for v in finding.extra.values())


# -- a worker that dies ----------------------------------------------------------------------------
class KillsTheWorker(Rule):
    """Stands for a parser crash (SIGSEGV): exits the process on a file that says so."""

    code = "NAN990"
    name = "kills-the-worker"
    summary = "test only"
    rows = "-"
    screen = re.compile("KILL-THE-WORKER")

    def visit_Module(self, node: cst.Module) -> None:
        os._exit(3)


def test_a_dying_worker_costs_only_its_file(tmp_path: Path, eager_pool: None) -> None:
    request = LintRequest((*ALL_RULES, KillsTheWorker))
    good = "import torch\n\ndef f(x):\n    return x / x.norm()\n"
    names = []
    for i in range(8):
        name = tmp_path / f"m{i}.py"
        name.write_text(good if i != 3 else good + "# KILL-THE-WORKER\n")
        names.append(name)
    results = list(lint_files([Job(str(p), str(p), request) for p in names], 2))
    assert [r.path for r in results] == [str(p) for p in names]
    for i, result in enumerate(results):
        if i == 3:
            assert result.internal_error and [f.code for f in result.findings] == ["NAN999"]
        else:
            assert [f.code for f in result.findings] == ["NAN101"], i


def test_internal_errors_are_not_cached(tmp_path: Path, eager_pool: None) -> None:
    request = LintRequest((*ALL_RULES, KillsTheWorker))
    file = tmp_path / "m.py"
    file.write_text("x = 1  # KILL-THE-WORKER\n" * 30)
    cache = Cache(str(tmp_path / "cache"))
    (first,) = lint_files([Job(str(file), str(file), request)], 2, cache)
    assert first.internal_error
    again = Cache(str(tmp_path / "cache"))
    assert again._entries == {}
