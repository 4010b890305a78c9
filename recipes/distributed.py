"""Several processes, one run: rank and world size, the run directory rank 0 makes, one stop.

    torchrun --nproc_per_node 2 -m tui.cli --recipe demo              # DDP, same recipe file
    accelerate launch --num_processes 2 -m tui.cli --recipe demo

Every process runs the same command. Rank 0 alone writes the run directory (recipe.yaml,
events.jsonl, checkpoints, adapter, report); the other ranks learn its path by a broadcast over
the process group, emit their events to no file, and skip the evaluations (rank 0 runs them
while the others wait at the next collective). A stop (Ctrl-C: torchrun forwards SIGINT to every
worker) takes effect at the end of the same step on every rank, so one checkpoint is saved.

Nothing here imports torch at module level: the backend choice reads ``launched()`` before
unsloth or transformers are imported. Without torchrun / accelerate every function is the
single-process identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from recipes import errors

T = TypeVar("T")
_registered: list = []  # the torch.load location handler, once per process
TIMEOUT_S = 1800  # transformers' ddp_timeout: ranks > 0 wait this long for rank 0's evaluations


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE") or 1)


def rank() -> int:
    return int(os.environ.get("RANK") or 0)


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """Started by torchrun / accelerate launch with more than one process."""
    return world_size() > 1


def _group() -> Any:
    """torch.distributed with its process group (created here if the trainer has not yet; the
    trainer's accelerate state then reuses it)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        from datetime import timedelta

        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK") or 0))
        dist.init_process_group(backend="nccl" if cuda else "gloo",
                                timeout=timedelta(seconds=TIMEOUT_S))
        if not cuda:
            _load_onto_indexed_cpu()
    return dist


def _load_onto_indexed_cpu() -> None:
    """Let torch.load map onto ``cpu:0``.

    In a multi-process CPU run accelerate's device is ``cpu:<index>``, and transformers 5.17
    loads a resumed optimizer with ``map_location=args.device`` when world_size > 1; torch
    2.14 has no deserializer for that location ("don't know how to restore data location ...
    tagged with cpu:0"), so --resume failed on gloo. A CPU index names the one CPU.
    """
    import torch

    def restore(obj: Any, location: str) -> Any:
        return obj.cpu() if location.startswith("cpu:") else None

    if not _registered:
        torch.serialization.register_package(97, lambda obj: None, restore)
        _registered.append(restore)


def _tensor(value: int) -> Any:
    import torch

    dist = _group()
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    return torch.tensor([value], dtype=torch.int64, device=device)


def from_main(make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 only; its result (or the SlothlabError it raised) on every rank."""
    if not launched():
        return make()
    dist = _group()
    box: list[Any] = [None]
    failure: BaseException | None = None
    if is_main():
        try:
            box = [("ok", make())]
        except BaseException as exc:  # the other ranks must not wait forever for a result
            failure = exc
            if isinstance(exc, errors.SlothlabError):
                box = [("error", (type(exc).__name__, exc.what, exc.where, exc.fix))]
            else:
                box = [("error", ("SlothlabError", f"rank 0 failed: {type(exc).__name__}: "
                                                   f"{exc}", None, None))]
    dist.broadcast_object_list(box, src=0)
    if failure is not None:
        raise failure
    kind, value = box[0]
    if kind == "error":
        name, what, where, fix = value
        raise getattr(errors, name, errors.SlothlabError)(what, where=where, fix=fix)
    return value


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (building a cached miniature, copying it into the run), then
    the other ranks, which find its work done."""
    if not launched():
        yield
        return
    dist = _group()
    if not is_main():
        dist.barrier()
    try:
        yield
    finally:
        if is_main():
            dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank if it is true on any."""
    if not launched():
        return flag
    dist = _group()
    value = _tensor(int(flag))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def agree_min(value: int) -> int:
    """The smallest of every rank's ``value`` (e.g. an automatic batch size), on every rank."""
    if not launched():
        return value
    dist = _group()
    tensor = _tensor(value)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


class SyncedStop:
    """The run's stop flag as every rank sees it.

    A signal sets the local flag (recipes.runner.StopFlag) at any moment, on each rank at a
    slightly different point of its step; ``requested`` changes only in ``sync()``, at the end
    of a step, to the same value on every rank. Ranks that stopped at different steps would wait
    for each other forever in the next gradient all-reduce.
    """

    def __init__(self, local: Any) -> None:
        self.local = local
        self._agreed = False

    @property
    def requested(self) -> bool:
        return self._agreed

    @requested.setter
    def requested(self, value: bool) -> None:  # the stop_at_step test hook: same step everywhere
        self._agreed = bool(value)

    def sync(self) -> None:
        self._agreed = any_rank(self._agreed or bool(self.local.requested))

    def __getattr__(self, name: str) -> Any:  # the flag's other attributes (signal name, phase)
        return getattr(self.__dict__["local"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("local", "_agreed", "requested"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.local, name, value)


def synced_stop(stop: Any) -> Any:
    """``stop`` itself in one process; a SyncedStop around it when several train together."""
    return SyncedStop(stop) if launched() else stop


def stop_callbacks(stop: Any) -> list:
    """Trainer callbacks that agree on the stop flag at each step end (before the callback that
    acts on it); none in one process."""
    if not isinstance(stop, SyncedStop):
        return []
    from transformers import TrainerCallback

    class SyncStop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stop.sync()

    return [SyncStop()]


def command() -> str:
    """How this run was started, for the resume advice: slothlab, or the same launcher."""
    if not launched():
        return "slothlab"
    return f"torchrun --nproc_per_node {world_size()} -m tui.cli"


def check_same_world(run_dir: Path) -> None:
    """A resumed run continues with as many processes as it started with: the global batch
    (batch x accumulation x processes) and each rank's saved random state depend on it."""
    from recipes import events as ev
    from recipes.rundir import EVENTS_FILE

    path = run_dir / EVENTS_FILE
    started = [e for e in ev.read_events(path) if isinstance(e, ev.RunStarted)] if path.is_file() else []
    if started and started[-1].world_size != world_size():
        before, now = started[-1].world_size, world_size()
        launch = (f"torchrun --nproc_per_node {before} -m tui.cli --resume {run_dir}" if before > 1
                  else f"slothlab --resume {run_dir}")
        raise errors.RunDirError(
            f"this run trained with {before} process(es); this launch has {now}",
            where=str(run_dir), fix=f"resume it with the same number: {launch}")
