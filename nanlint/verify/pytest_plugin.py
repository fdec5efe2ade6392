"""pytest plugin: ``pytest --nanlint-watch`` fails a test whose code produced a NaN/Inf origin.

Registered through the ``pytest11`` entry point of the ``nanlint`` distribution
(or ``pytest -p nanlint.verify.pytest_plugin``). Each test's call phase runs
under :func:`nanlint.watch`; when an op made a NaN (or an Inf from finite
inputs; deliberate ``-inf`` fills excepted) the test fails with the op, the user
line and the static finding that predicted it. Tests that make NaN on purpose
take ``@pytest.mark.nanlint_allow``. torch is imported only when the option is on;
without torch the option stops the run once, at configure time.

The hook wrapper is pluggy's old style (``hookwrapper=True``), which every pytest
this plugin loads into understands (the new ``wrapper=True`` needs pluggy 1.1;
with pytest 7.2 / pluggy 1.0 it made every run fail at plugin load).
"""
from __future__ import annotations

from typing import Any, Generator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nanlint")
    group.addoption("--nanlint-watch", action="store_true", default=False,
                    help="fail a test whose code produces a NaN/Inf (nanlint's precise tracer around each test)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nanlint_allow: the test makes NaN/Inf on purpose; --nanlint-watch lets it pass")
    if config.getoption("nanlint_watch"):
        from . import VerifyError
        from ._torch import require_torch

        try:
            require_torch()
        except VerifyError as exc:
            raise pytest.UsageError(f"--nanlint-watch: {exc}") from None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    if not item.config.getoption("nanlint_watch") or item.get_closest_marker("nanlint_allow") is not None:
        yield
        return
    from . import VerifyError
    from .api import watch
    from .report import describe_origin

    try:
        watcher = watch()
    except VerifyError as exc:
        raise pytest.UsageError(f"--nanlint-watch: {exc}") from None
    with watcher:
        outcome = yield
    if outcome.excinfo is not None:
        return  # the test failed on its own: its error is the one to show
    origins = watcher.report().origins
    if origins:
        lines = []
        for origin in origins:
            where = f"{origin.path}:{origin.line}" if origin.path else "<unknown location>"
            predicted = f" (predicted by {origin.finding})" if origin.finding else ""
            lines.append(f"  {where}: {describe_origin(origin)}{predicted}")
            if origin.source_line.strip():
                lines.append(f"      {origin.source_line.strip()}")
        pytest.fail("nanlint: this test produced a NaN/Inf\n" + "\n".join(lines), pytrace=False)
