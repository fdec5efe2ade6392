"""``nanlint verify``: run the user's training code and confirm each static finding at runtime.

Nothing here imports torch at import time: ``nanlint`` stays light for static
use, and the CLI command, the pytest plugin and :func:`watch` import torch only
when they run. The pieces:

* :mod:`.runner` runs a script as ``__main__`` (its local modules through an
  import hook), stops it after N optimizer steps (N backward passes in a script
  without an optimizer: each ``backward()`` / ``autograd.grad`` is then a step)
  and replays single steps;
* :mod:`.controller` finds the step boundaries (optimizer and GradScaler steps,
  backward passes) and decides what each run checks there;
* :mod:`.sentinel` is the cheap per-step check (finite loss, ``_foreach_norm`` of
  the gradients, flags kept on the device, read once per step) and the pre-step
  snapshot (parameters, optimizer, buffers, RNG);
* :mod:`.tracer` is the precise tracer (a ``TorchFunctionMode`` that stamps each
  op's user frame and column span into ``grad_fn.metadata``; node hooks find the
  first backward node that turns finite gradients non-finite);
* :mod:`.injection` substitutes a rule's danger value at a flagged op;
* :mod:`.report` holds the result model and its text / JSON / HTML formats.
"""
from __future__ import annotations

from typing import Any

__all__ = ["watch", "verify_script", "VerifyError"]


class VerifyError(Exception):
    """A problem running the verifier itself (torch missing, CUDA unavailable): a clear one-line message."""


def __getattr__(name: str) -> Any:
    if name == "watch":
        from .api import watch

        return watch
    if name == "verify_script":
        from .runner import verify_script

        return verify_script
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
