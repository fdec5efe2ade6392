"""The one place that imports torch for the verifier, with a clear message when it is missing."""
from __future__ import annotations

from types import ModuleType

from . import VerifyError

INSTALL_HINT = ("nanlint verify needs PyTorch: install it with `pip install torch numpy` (the `verify` extra; "
                "or your torch build)")


def require_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:  # torch missing or broken
        detail = "" if exc.name == "torch" else f" (importing torch failed: {exc})"
        raise VerifyError(INSTALL_HINT + detail) from None
    return torch
