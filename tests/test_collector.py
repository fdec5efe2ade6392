"""The cyclic collector is paused while a file is analysed, and only then (nanlint/collector.py)."""
import gc

import pytest

from nanlint import engine
from nanlint.collector import collector_paused
from nanlint.config import Settings
from nanlint.files import LintRequest


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_and_restored_after(collector_on):
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # a nested block does not turn it back on early
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_restored_when_the_block_raises(collector_on):
    with pytest.raises(ValueError):
        with collector_paused():
            raise ValueError
    assert gc.isenabled()


def test_a_caller_who_disabled_it_keeps_it_off(collector_on):
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_lint_source_pauses_it_and_frees_the_files_cycles(collector_on, monkeypatch):
    seen = []
    original = engine._lint_source

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "_lint_source", spy)
    source = "import torch\n\ndef f(x):\n    return x / x.norm()\n"
    result = engine.lint_source("a.py", source, LintRequest(Settings().codes_for("a.py")))
    assert seen == [False] and gc.isenabled()
    assert [f.code for f in result.findings] == ["NAN101"]
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(3):
        engine.lint_source("a.py", source, LintRequest(Settings().codes_for("a.py")))
    gc.collect()  # what the paused collector left is reclaimed once it runs: nothing accumulates
    assert len(gc.get_objects()) <= before + 50


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_idle_freezer_freezes_and_collects_frozen_cycles_only_when_idle(collector_on):
    """``IdleFreezer`` (the language server): every freeze hides what is alive from later collections; a freeze at
    an idle moment after ``full_every`` of them first unfreezes and collects, so a frozen cycle does not stay."""
    import weakref

    from nanlint.collector import IdleFreezer

    freezer = IdleFreezer(full_every=2)
    try:
        cycle = _Cycle()
        alive = weakref.ref(cycle)
        freezer.freeze(idle=True)  # the first: no full collection yet
        assert gc.get_freeze_count() > 0
        del cycle
        gc.collect()
        assert alive() is not None  # frozen: no collection sees the cycle
        freezer.freeze(idle=False)  # the second, while typing: still no full collection
        gc.collect()
        assert alive() is not None
        freezer.freeze(idle=True)  # idle, and two since the last full one: unfreeze, collect, freeze again
        assert alive() is None and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
