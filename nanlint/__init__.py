"""nanlint: find the lines of PyTorch code that make a loss or its gradients NaN/Inf."""
__version__ = "0.1.0"
