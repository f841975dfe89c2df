"""Two gloo ranks for one test: rank 1 in a spawned process, rank 0 in the test's own process (torch and
open_clip are already imported there: half the start-up cost)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import timedelta

RankFn = Callable[[int, int, str], None]


def _rank(fn: RankFn, rank: int, world_size: int, folder: str, timeout_s: float) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    try:
        fn(rank, world_size, folder)
        dist.barrier()  # neither rank tears gloo down while the other still has a collective in flight
    finally:
        dist.destroy_process_group()


def _spawned(fn: RankFn, rank: int, world_size: int, folder: str, timeout_s: float) -> None:
    # leave with os._exit once the result is on disk: gloo's threads can abort a normal interpreter shutdown
    # ("terminate called without an active exception", seen once in CI), which says nothing about the collectives
    _rank(fn, rank, world_size, folder, timeout_s)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_two_ranks(fn: RankFn, folder: str, timeout_s: float = 120) -> None:
    """Run ``fn(rank, 2, folder)`` on ranks 0 and 1 of a gloo group; fails if the spawned rank failed."""
    import torch.multiprocessing as mp

    other = mp.get_context("spawn").Process(target=_spawned, args=(fn, 1, 2, folder, timeout_s))
    other.start()
    try:
        _rank(fn, 0, 2, folder, timeout_s)
    finally:
        other.join(timeout=timeout_s + 60)
    assert other.exitcode == 0, f"rank 1 exited with {other.exitcode}"
