"""The cyclic garbage collector, paused while one file is analysed.

Parsing and analysing a file allocates hundreds of thousands of container objects
(libcst nodes, the stdlib ``ast`` of the second stage, scopes, bindings) that all
live until the file is done. CPython's collector runs a young-generation pass every
700 net allocations and a full pass every 100 young ones; each pass walks those
objects only to find that they are still alive. Measured on timm (141,115 lines,
one process, ``benchmarks/cold_paths.py``): with the collector running, it took 13 %
of nanlint's time (0.94 of 7.20 s).

With the collector paused for the file, reference counting still frees every
acyclic object at once. The analysis breaks its own reference cycles when a file is
done (``Walker.release``: a binding refers to its scope, which lists it), so the
file's trees are freed then too; what cycles remain (a closure that calls itself)
are collected by the first collection once the collector runs again. Peak memory
grows by at most one file's cyclic garbage.

The language server keeps each open document's layout and trees between keystrokes:
every full collection walked them (vision_transformer.py open: 90-115 ms pauses,
ten times a preview). ``IdleFreezer`` moves what is alive when an editor goes idle
out of the collector's sight (``gc.freeze``); reference counting still frees it.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block; nested blocks, and a caller who disabled it, keep it off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class IdleFreezer:
    """``gc.freeze()`` once a document's long-lived state is built: what is alive then (the open documents'
    layouts and trees, the server itself) is no longer walked by any collection, so a collection while typing
    costs what was made since, not every node of every open file. (``gc.freeze`` splices lists: it costs nothing.)

    Reference counting frees frozen objects as usual; only frozen objects caught in a reference cycle would stay.
    So every ``full_every``-th freeze at a moment the editor is idle first unfreezes everything and collects it
    once (the one full pause, while no one waits), then freezes what survives. (The server calls it from its one
    lint thread.)"""

    def __init__(self, full_every: int = 32) -> None:
        self.full_every = full_every
        self.since_full = 0

    def freeze(self, idle: bool) -> None:
        self.since_full += 1
        if idle and self.since_full >= self.full_every:
            gc.unfreeze()
            gc.collect()
            self.since_full = 0
        gc.freeze()
