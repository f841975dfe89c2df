"""After a test SIGKILLs a driver that joined the tests' Ray session: wait, by polling conditions (never a fixed
sleep), until nothing that driver started can still write. Ray ends the job when the driver's connection drops and
its raylet then kills the job's workers; on a busy machine either step can take seconds."""

from __future__ import annotations

import contextlib
import time


def busy_workers(since: float) -> list[int]:
    """PIDs of the Ray workers below this process (the session's raylet) started at or after ``since`` (a
    ``create_time``) that still run something: alive and not ``ray::IDLE``."""
    import psutil

    pids = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # gone, or a zombie: it runs nothing
            title = (proc.cmdline() or [""])[0]
            if proc.create_time() >= since and title.startswith("ray::") and title != "ray::IDLE":
                pids.append(proc.pid)
    return pids


def wait_until_job_ended(driver_pid: int, since: float, timeout_s: float = 120.0) -> None:
    """Wait until the GCS marks the job of the (killed) driver ``driver_pid`` dead and every Ray worker started
    since ``since`` has exited or gone idle; fail after ``timeout_s``."""
    from ray._private.state import jobs

    deadline = time.monotonic() + timeout_s
    while not any(j["DriverPid"] == driver_pid and j["IsDead"] for j in jobs()):
        assert time.monotonic() < deadline, f"the job of driver {driver_pid} not marked dead in {timeout_s} s"
        time.sleep(0.1)
    while busy := busy_workers(since):
        assert time.monotonic() < deadline, f"workers {busy} of driver {driver_pid} still run after {timeout_s} s"
        time.sleep(0.1)
