"""A lint stops itself when the language server no longer needs it (nanlint/cancellation.py)."""
from __future__ import annotations

import gc
import sys
import threading

import pytest

from helpers import ALL_RULES, lint
from nanlint.cancellation import Superseded, cancellable, current_event
from nanlint.engine import lint_source
from nanlint.files import LintRequest

SOURCE = '''import torch


def unit(x):
    return x / x.norm()


def other(x):
    return x * 2
'''
REQUEST = LintRequest(tuple(ALL_RULES))


def test_a_set_event_stops_the_lint_at_a_statement_and_restores_what_the_lint_changed():
    limit = sys.getrecursionlimit()
    event = threading.Event()
    event.set()
    with cancellable(event):
        with pytest.raises(Superseded):
            lint_source("unit.py", SOURCE, REQUEST)
    assert gc.isenabled() and sys.getrecursionlimit() == limit
    assert current_event() is None


def test_an_event_not_set_changes_nothing():
    with cancellable(threading.Event()):
        inside = [(f.code, f.line) for f in lint_source("unit.py", SOURCE, REQUEST).findings]
    assert inside == [(f.code, f.line) for f in lint(SOURCE)] == [("NAN101", 5)]


def test_the_event_belongs_to_the_thread_that_set_it():
    seen: list[object] = []
    event = threading.Event()
    with cancellable(event):
        worker = threading.Thread(target=lambda: seen.append(current_event()))
        worker.start()
        worker.join()
        assert current_event() is event
    assert seen == [None]


def test_superseded_is_not_an_exception_a_rule_handler_would_swallow():
    assert not issubclass(Superseded, Exception)
