"""Busy neighbours for the benchmarks: ``--busy N`` measures once idle and once beside N CPU-burning processes,
in the same run, and prints the figures side by side.

A neighbour is a separate Python process spinning on the CPU (no I/O, no memory), bounded twice: it stops at a
deadline (``--busy-seconds``, default one hour) and as soon as the benchmark that started it is gone, so a
killed benchmark never leaves one behind.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

_BURN = """
import os, sys, time
parent, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline and os.getppid() == parent:
    x = 0
    for i in range(200000):
        x += i * i
"""


def add_busy_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="measure idle, then again beside N CPU-burning processes, and print both side by side "
                             "(default 0: idle only)")
    parser.add_argument("--busy-seconds", type=float, default=3600.0,
                        help="a neighbour stops by itself after this long (default 3600)")


class Neighbours:
    """``with Neighbours(n):`` n processes each spinning one core, stopped on exit."""

    def __init__(self, n: int, seconds: float = 3600.0):
        if n < 0:
            raise ValueError(f"--busy must be >= 0, got {n}")
        self.n, self.seconds, self.procs = n, seconds, []

    def __enter__(self) -> Neighbours:
        import os

        self.procs = [subprocess.Popen([sys.executable, "-c", _BURN, str(os.getpid()), str(self.seconds)])
                      for _ in range(self.n)]
        time.sleep(0.5 if self.n else 0)  # let them start spinning before anything is timed
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def side_by_side(measure: Callable[[], dict], busy: int, headline: Sequence[str], *,
                 seconds: float = 3600.0, tolerance: float = 0.20) -> dict:
    """``measure()`` idle, then (``busy`` > 0) beside ``busy`` neighbours; prints the numeric figures of both
    and, for each ``headline`` figure, busy / idle and whether it stays within ``tolerance`` of idle.
    Returns ``{"idle": {...}, "busy": {...}, "busy_n": busy, "held": {figure: bool}}``."""
    print(f"== idle{f' (then beside {_processes(busy)})' if busy else ''}", flush=True)
    result: dict = {"idle": measure(), "busy_n": busy}
    if busy:
        print(f"== beside {_processes(busy)}", flush=True)
        with Neighbours(busy, seconds):
            result["busy"] = measure()
        print_table(result, headline, tolerance)
    return result


def _processes(n: int) -> str:
    return f"{n} busy process{'es' if n > 1 else ''}"


def print_table(result: dict, headline: Sequence[str], tolerance: float) -> None:
    idle, busy = result["idle"], result["busy"]
    keys = [k for k in idle if isinstance(idle[k], (int, float)) and not isinstance(idle[k], bool)]
    width = max(len(k) for k in keys) if keys else 10
    busy_label = f"busy {result['busy_n']}"
    print(f"\n{'figure':<{width}}  {'idle':>12}  {busy_label:>12}  {'busy/idle':>9}")
    held = {}
    for k in keys:
        a, b = idle[k], busy.get(k)
        ratio = b / a if isinstance(b, (int, float)) and a else float("nan")
        mark = ""
        if k in headline:
            held[k] = abs(ratio - 1) <= tolerance
            mark = f"  headline: {'within' if held[k] else 'NOT within'} {tolerance:.0%} of idle"
        print(f"{k:<{width}}  {a:>12.4g}  {b if b is not None else float('nan'):>12.4g}  {ratio:>9.2f}{mark}")
    result["held"] = held
