"""A real multi-node Ray cluster on one machine, on loopback addresses (shared by tests/test_loopback.py and
tests/test_cluster.py): head on 127.0.0.2, a worker node on 127.0.0.3 with the custom resource ``worker_node``.
Each ``ray start --block`` runs in its own process group and is stopped by that group's id.

Ray 2.60 binds its servers to every interface unless a node's address is 127.0.0.1 (tests/bind_node_ip.c says
where), so each node's processes, and a driver started with :func:`node_env`, run with an ``LD_PRELOAD`` shim that
turns a wildcard ``bind()`` into one on the node's own address. The GCS, raylet and workers look for their node's
metrics agent on 127.0.0.1, where it then no longer listens, so the nodes run with Ray's metrics collection off
(``RAY_enable_metrics_collection=0``) instead of logging failed exports."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def free_port(ip: str = HEAD_IP) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def cluster_env() -> dict:
    """The environment of every cluster process and client: no inherited cluster address, no macOS/Windows
    single-node switch, no auth token, no usage stats; this venv's ``python`` and ``ray`` first on PATH (a job's
    entrypoint ``python ...`` runs with the raylet's environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1",
               RAY_DATA_DISABLE_PROGRESS_BARS="1", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return env


@functools.cache
def bind_shim() -> str:
    """tests/bind_node_ip.c built with the system C compiler (once per source version, in the temp directory)."""
    source = Path(__file__).with_name("bind_node_ip.c")
    lib = Path(tempfile.gettempdir()) / f"uniqa-bind-node-ip-{hashlib.sha256(source.read_bytes()).hexdigest()[:12]}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        try:
            subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(tmp), str(source), "-ldl"], check=True,
                           capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise RuntimeError(f"the loopback cluster needs a C compiler (cc) to build {source}: "
                               f"{getattr(e, 'stderr', '') or e}") from e
        os.replace(tmp, lib)
    return str(lib)


def node_env(ip: str) -> dict:
    """:func:`cluster_env` for the processes of the node on ``ip``: every wildcard ``bind()`` binds to ``ip``; no
    metrics collection (see the module's docstring)."""
    env = cluster_env()
    env["LD_PRELOAD"] = ":".join(filter(None, (bind_shim(), env.get("LD_PRELOAD"))))
    env["BIND_NODE_IP"] = ip
    env["RAY_enable_metrics_collection"] = "0"
    return env


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)  # Ray stops its processes on SIGTERM; what is left after 5 s is killed
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class Cluster:
    address: str  # GCS address of the head, 127.0.0.2:PORT
    dashboard: str | None  # http://127.0.0.2:PORT (job submission, state API), or None
    start_seconds: float  # from the first `ray start` until both nodes were up (and the dashboard answered)
    pids: tuple[int, ...]  # the `ray start` processes (head, worker node); each leads its node's process group


def get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (a loopback http:// URL)
        return json.loads(r.read())


def _alive_nodes(dashboard: str) -> list[str]:
    reply = get_json(f"{dashboard}/api/v0/nodes?limit=100&detail=false")
    return [n["node_ip"] for n in reply["data"]["result"]["result"] if n["state"] == "ALIVE"]


def _gcs_alive_nodes(address: str) -> list[str]:
    """The alive nodes' IPs as the GCS at ``address`` lists them ([] while it does not answer yet)."""
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    with contextlib.suppress(Exception):  # not listening yet, or an RPC timeout on a busy machine: ask again
        infos = GcsClient(address=address).get_all_node_info(timeout=5).values()
        return [n.node_manager_address for n in infos if n.state == GcsNodeInfo.GcsNodeState.ALIVE]
    return []


def _wait_until(ready, what: str, timeout: float, procs: list[subprocess.Popen]) -> None:
    """Poll ``ready()`` every second until it holds; fail if a `ray start` exits or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert all(p.poll() is None for p in procs), "a `ray start` exited"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not up after {timeout} s")
        time.sleep(1)


@contextlib.contextmanager
def two_node_cluster(num_cpus: int = 1, dashboard: bool = False, object_store: int = 100_000_000,
                     log_dir: Path | None = None, ready_timeout: float = 120) -> Iterator[Cluster]:
    """Start the head (127.0.0.2, optionally with the dashboard on 127.0.0.2) and one worker node (127.0.0.3,
    resource ``worker_node``), each with ``num_cpus`` CPUs, and wait until both are up (and the dashboard lists
    them); stop both and remove Ray's current-cluster marker if it names this head. ``log_dir``: where the two
    `ray start` processes' output goes."""
    port = free_port()
    dash_port = free_port() if dashboard else None
    common = ["--block", f"--num-cpus={num_cpus}", f"--object-store-memory={object_store}", "--disable-usage-stats"]
    dash = (["--include-dashboard=true", f"--dashboard-host={HEAD_IP}", f"--dashboard-port={dash_port}",
             f"--dashboard-agent-listen-port={free_port()}"] if dashboard else ["--include-dashboard=false"])

    def out(name: str):
        return open(log_dir / f"{name}.log", "wb") if log_dir else subprocess.DEVNULL

    start = time.monotonic()
    head = subprocess.Popen([RAY, "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", *dash,
                             *common], env=node_env(HEAD_IP), start_new_session=True, stdout=out("head"),
                            stderr=subprocess.STDOUT)
    address, procs = f"{HEAD_IP}:{port}", [head]
    url = f"http://{HEAD_IP}:{dash_port}" if dashboard else None
    try:
        # the head first (a worker node or a driver that asks too early may give up), then both nodes: a busy
        # machine may take many seconds for either, so this polls with a generous deadline instead of sleeping
        _wait_until(lambda: HEAD_IP in _gcs_alive_nodes(address), "the head node", ready_timeout, procs)
        worker = subprocess.Popen([RAY, "start", f"--address={address}", f"--node-ip-address={WORKER_IP}",
                                   '--resources={"worker_node": 1}', *common], env=node_env(WORKER_IP),
                                  start_new_session=True, stdout=out("worker"), stderr=subprocess.STDOUT)
        procs.append(worker)
        nodes = (lambda: _alive_nodes(url)) if url else (lambda: _gcs_alive_nodes(address))
        both = [HEAD_IP, WORKER_IP]

        def up() -> bool:
            with contextlib.suppress(OSError, ValueError, KeyError):  # the dashboard may not answer yet
                return sorted(nodes()) == both
            return False

        _wait_until(up, "both nodes" + (" and the dashboard" if url else ""), ready_timeout, procs)
        yield Cluster(address, url, time.monotonic() - start, (head.pid, worker.pid))
    finally:
        for proc in reversed(procs):
            stop(proc)
        marker = Path("/tmp/ray/ray_current_cluster")  # `ray start --head` left it; `ray stop` would remove it
        if marker.exists() and address in marker.read_text():
            marker.unlink()
