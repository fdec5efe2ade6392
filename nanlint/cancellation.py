"""Stopping a lint whose result nobody will read: the language server's superseded work.

The server lints in a worker thread (``nanlint/server.py``). When the document changes
while a lint that would only confirm an older version is running, that lint's result
will be dropped; letting it run to its end keeps the thread busy, and the lint of the
new version waits behind it (a full lint of a 2,000-line file takes 140-170 ms here).

A thread cannot be stopped from outside, so the lint stops itself: the server runs it
inside :func:`cancellable` with an event it sets when the work is superseded, and the
walker checks the event at every statement it enters and raises
:class:`Superseded`, a ``BaseException``: the handlers that turn a rule's exception
into an internal-error finding catch ``Exception`` only, so nothing reports it as a
finding, and every ``finally`` (the recursion limit, the paused collector, the
walker's release) still runs. Outside :func:`cancellable` (the command line, the
cache, pre-commit) the event is None and the check is one comparison.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Optional


class Superseded(BaseException):
    """The lint's document changed: its result would be dropped, so it stops."""


class _Current(threading.local):
    event: Optional[threading.Event] = None


_current = _Current()


@contextmanager
def cancellable(event: threading.Event) -> Iterator[None]:
    """Lint in this thread until ``event`` is set; then the walker raises :class:`Superseded`."""
    outer = _current.event
    _current.event = event
    try:
        yield
    finally:
        _current.event = outer


def current_event() -> Optional[threading.Event]:
    """The event that stops the lint running in this thread, if any (the walker reads it once per file)."""
    return _current.event
