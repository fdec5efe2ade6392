"""The one place that imports torch for the verifier, with a clear message when it is missing."""
from __future__ import annotations

from types import ModuleType

from . import VerifyError

INSTALL_HINT = ("nanlint verify needs PyTorch (the build you train with), and none is importable here: install it "
                "into this environment, e.g. `pip install torch` (CPU-only: `pip install torch --index-url "
                "https://download.pytorch.org/whl/cpu`); nanlint's `verify` extra does not install torch")


def require_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:  # torch missing or broken
        detail = "" if exc.name == "torch" else f" (importing torch failed: {exc})"
        raise VerifyError(INSTALL_HINT + detail) from None
    return torch
