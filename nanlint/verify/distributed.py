"""``torchrun``: every rank verifies its own process; decisions are collective; rank 0 writes the merged report.

The script creates the process group itself. nanlint then keeps it alive across
its replays: while a script runs, ``init_process_group`` is a no-op when a group
exists and ``destroy_process_group`` is deferred to the end of verification.
Replays re-run the script on every rank in lockstep, so the collectives of the
user's code (DDP's broadcast and all-reduce) still match; the per-step sentinel
flags are all-reduced, so all ranks agree on the failing step.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import torch


class Dist:
    def __init__(self) -> None:
        self.active = False
        self.rank = 0
        self.world = 1
        self.device = torch.device("cpu")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            if world > 1:
                self.active = True
                self.rank = torch.distributed.get_rank()
                self.world = world
                if torch.distributed.get_backend() == "nccl":
                    self.device = torch.device("cuda", torch.cuda.current_device())

    @classmethod
    def current(cls) -> "Dist":
        return cls()

    def any(self, value: bool) -> bool:
        if not self.active:
            return value
        flag = torch.tensor([1 if value else 0], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def all_agree(self, value: bool) -> bool:
        """True only when ``value`` is true on every rank."""
        return not self.any(not value)

    def min(self, value: Optional[int]) -> Optional[int]:
        if not self.active:
            return value
        big = 2 ** 31 - 1
        tensor = torch.tensor([big if value is None else value], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
        result = int(tensor.item())
        return None if result == big else result

    def all_gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def gather(self, obj: Any) -> Optional[list[Any]]:
        if not self.active:
            return [obj]
        out: Optional[list[Any]] = [None] * self.world if self.rank == 0 else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def flag_reducer() -> Any:
    """For :meth:`Sentinel.read`: the four flags of every rank, combined (an all-reduce of four integers)."""

    def reduce(values: list[bool]) -> list[bool]:
        dist = Dist.current()
        if not dist.active:
            return values
        flags = torch.tensor([1 if v else 0 for v in values], dtype=torch.int32, device=dist.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        return [bool(v) for v in flags.tolist()]

    return reduce


class GroupKeeper:
    """Keep the script's process group alive between runs (see the module docstring)."""

    def __init__(self) -> None:
        self.destroy_requested = False
        self._created_here = False
        self._patched: list[tuple[Any, str, Any]] = []

    @contextlib.contextmanager
    def during_run(self) -> Iterator[None]:
        if not torch.distributed.is_available():
            yield
            return
        import torch.distributed.distributed_c10d as c10d

        keeper = self
        original_init = c10d.init_process_group

        def init_process_group(*args: Any, **kwargs: Any) -> Any:
            if torch.distributed.is_initialized():
                return None
            keeper._created_here = True
            return original_init(*args, **kwargs)

        def destroy_process_group(group: Any = None) -> None:
            if group is None:
                keeper.destroy_requested = True
                return None
            return original_destroy(group)

        original_destroy = c10d.destroy_process_group
        for owner in (torch.distributed, c10d):
            for name, value in (("init_process_group", init_process_group),
                                ("destroy_process_group", destroy_process_group)):
                self._patched.append((owner, name, getattr(owner, name)))
                setattr(owner, name, value)
        try:
            yield
        finally:
            for owner, name, value in reversed(self._patched):
                setattr(owner, name, value)
            self._patched = []

    def close(self) -> None:
        """Destroy the group the script created, once verification is over."""
        if self._created_here and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
