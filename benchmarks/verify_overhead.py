"""Per-step overhead of ``nanlint verify``'s sentinel and precise tracer, against a plain step and detect_anomaly.

One training step = zero_grad + forward + loss + backward + optimizer step. A
second table times scripts without an optimizer (a unit test, a gradient check:
zero_grad + forward + loss + backward), where every ``backward()`` is a
checkpoint of its own: the verifier hooks each leaf's ``AccumulateGrad`` node for
that pass's gradients and checks them when the call returns. Every
approach runs the same step function; the verifier's own machinery is used as
is (the global optimizer hooks, the backward wrapper, the device-side flags):

* ``sentinel``: :class:`nanlint.verify.controller.SentinelRun` without snapshots
  (finite loss at backward, ``_foreach_norm`` of the gradients, one read per step);
* ``sentinel + snapshot``: the same, plus the pre-step snapshot a replay restores
  (what ``nanlint verify`` runs every step);
* ``precise tracer``: the ``TorchFunctionMode`` + node hooks of a replayed step
  (``WatchController(precise=True)``: every step traced and resolved);
* ``detect_anomaly``: ``torch.autograd.detect_anomaly()`` (check_nan=True).

Approaches are interleaved and each is timed as the best of ``--reps`` blocks of
``--steps`` steps, which is robust to other load on a shared machine; on CPU the
time is the process's CPU time (``time.process_time``: other processes on a busy
machine do not count), on CUDA the wall time between ``torch.cuda.synchronize()``
calls. Ratios are against the plain step of the same run. Not a test: run it by hand::

    python benchmarks/verify_overhead.py [--device cpu|cuda] [--threads 1]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from typing import Any, Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from nanlint.verify.controller import HOOKS, Controller, SentinelRun, WatchController  # noqa: E402


def mlp(inp: int, width: int, out: int = 10) -> nn.Module:
    return nn.Sequential(nn.Linear(inp, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 1000, dim: int = 128, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)))


def workloads(device: torch.device) -> list[tuple[str, nn.Module, Callable[[nn.Module], torch.Tensor]]]:
    gen = torch.Generator().manual_seed(0)
    x_small = torch.randn(32, 64, generator=gen).to(device)
    y_small = torch.randint(0, 10, (32,), generator=gen).to(device)
    x_big = torch.randn(128, 256, generator=gen).to(device)
    y_big = torch.randint(0, 10, (128,), generator=gen).to(device)
    tokens = torch.randint(0, 1000, (16, 64), generator=gen).to(device)
    torch.manual_seed(0)
    return [
        ("MLP 64-128-128-10, batch 32", mlp(64, 128).to(device), lambda m: F.cross_entropy(m(x_small), y_small)),
        ("MLP 256-512-512-10, batch 128", mlp(256, 512).to(device), lambda m: F.cross_entropy(m(x_big), y_big)),
        ("transformer 2x(d128, 4 heads), batch 16x64", TinyTransformer().to(device),
         lambda m: F.cross_entropy(m(tokens).flatten(0, 1), tokens.flatten())),
    ]


@contextlib.contextmanager
def controlled(controller: Controller) -> Iterator[None]:
    HOOKS.push(controller)
    tracer = controller.tracer
    if tracer is not None:
        tracer.__enter__()
    controller.run_start()
    try:
        yield
    finally:
        if tracer is not None:
            tracer.enabled = False
            tracer.__exit__(None, None, None)
        HOOKS.pop(controller)


@contextlib.contextmanager
def anomaly() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autograd.detect_anomaly():
            yield


APPROACHES: list[tuple[str, Callable[[], Any]]] = [
    ("plain step", contextlib.nullcontext),
    ("sentinel", lambda: controlled(SentinelRun(10 ** 9, snapshots=False))),
    ("sentinel + snapshot", lambda: controlled(SentinelRun(10 ** 9, snapshots=True))),
    ("precise tracer", lambda: controlled(WatchController(precise=True))),
    ("detect_anomaly", anomaly),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def clock(device: torch.device) -> float:
    return time.perf_counter() if device.type == "cuda" else time.process_time()


def timed(device: torch.device, args: argparse.Namespace, optimizer: bool) -> tuple[list[str], dict[str, list[str]]]:
    table: dict[str, list[str]] = {a: [] for a, _ in APPROACHES}
    titles = []
    for title, model, loss_fn in workloads(device):
        titles.append(title)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3) if optimizer else None

        def step() -> None:
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model)
            loss.backward()
            if opt is not None:
                opt.step()

        times: dict[str, list[float]] = {a: [] for a, _ in APPROACHES}
        for _ in range(3):
            step()
        for _ in range(args.reps):
            for approach, factory in APPROACHES:
                with factory():
                    step()  # warm the approach (first traced step, hooks)
                    sync(device)
                    start = clock(device)
                    for _ in range(args.steps):
                        step()
                    sync(device)
                    times[approach].append((clock(device) - start) / args.steps)
        base = min(times["plain step"])
        for approach, _ in APPROACHES:
            best = min(times[approach])
            table[approach].append(f"{best * 1e3:.2f} ms (x{best / base:.2f})")
    return titles, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--reps", type=int, default=5, help="timed blocks per approach (best one counts)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    timer = "wall time" if device.type == "cuda" else "process CPU time"
    print(f"torch {torch.__version__}, {name}; {timer}, best of {args.reps} x {args.steps} steps, "
          "approaches interleaved\n")
    for optimizer in (True, False):
        titles, table = timed(device, args, optimizer)
        print("with an optimizer (a step per `opt.step()`):" if optimizer else
              "\nwithout an optimizer (a step per `backward()`, each one checked):")
        print("| approach | " + " | ".join(titles) + " |")
        print("|---|" + "---|" * len(titles))
        for approach, _ in APPROACHES:
            print(f"| {approach} | " + " | ".join(table[approach]) + " |")


if __name__ == "__main__":
    main()
