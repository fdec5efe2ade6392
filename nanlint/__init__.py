"""nanlint: find the lines of PyTorch code that make a loss or its gradients NaN/Inf."""
__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 - lazy: `import nanlint` must not import torch
    if name == "watch":
        from .verify.api import watch

        return watch
    raise AttributeError(f"module 'nanlint' has no attribute {name!r}")
