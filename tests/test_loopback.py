"""Local Ray stays on loopback (issue 16): the session's nodes report 127.* and its processes listen on
nothing outside 127.0.0.0/8; a two-node cluster on one machine runs on two loopback addresses."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def listening_sockets(pids: set[int]) -> list[tuple[str, int, str]]:
    """(ip, port, process name) of every listening TCP socket of ``pids``."""
    import psutil

    out = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.NoSuchProcess:
                continue
            out.append((conn.laddr.ip, conn.laddr.port, name))
    return out


def test_loopback_check_itself():
    assert is_loopback("127.0.0.2") and is_loopback("::ffff:127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.2")


def test_opt_out_gives_rays_default(monkeypatch):
    from uniqa.runtime import local_ray_options

    monkeypatch.setenv("UNIQA_RAY_LOOPBACK", "0")
    assert "_node_ip_address" not in local_ray_options(2)
    monkeypatch.setenv("UNIQA_RAY_LOOPBACK", "1")
    assert local_ray_options(2)["_node_ip_address"] == "127.0.0.1"


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_local_session_is_on_loopback(ray_session):
    import psutil
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert nodes and all(n["NodeManagerAddress"].startswith("127.") for n in nodes), nodes

    @ray.remote(num_cpus=0)
    def where() -> str:
        return ray.util.get_node_ip_address()

    assert ray.get(where.remote()).startswith("127.")
    time.sleep(1)  # let the worker's servers come up
    me = psutil.Process()
    pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
    sockets = listening_sockets(pids)
    names = {name for _, _, name in sockets}
    assert "gcs_server" in names and "raylet" in names, sockets  # the check sees Ray's own servers
    outside = [s for s in sockets if not is_loopback(s[0])]
    assert not outside, f"listening outside 127.0.0.0/8: {outside}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


def _cluster_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory):
    """A real two-node Ray cluster on this machine: head on 127.0.0.2, a worker node on 127.0.0.3 with a custom
    resource ``worker_node`` (each `ray start --block` in its own process group). Yields the head address."""
    port, env = _free_port(), _cluster_env()
    common = ["--block", "--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]
    head = subprocess.Popen([RAY, "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}",
                             "--include-dashboard=false", *common], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address, procs = f"127.0.0.2:{port}", [head]
    try:
        time.sleep(3)  # the worker node retries until the head answers; this only saves it a retry
        worker = subprocess.Popen([RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.3",
                                   '--resources={"worker_node": 1}', *common], env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(worker)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        marker = Path("/tmp/ray/ray_current_cluster")  # `ray start --head` left it; `ray stop` would remove it
        if marker.exists() and address in marker.read_text():
            marker.unlink()


DRIVER = """
import json, sys, time, ray
ray.init(address=sys.argv[1], _node_ip_address="127.0.0.2", log_to_driver=False)
deadline = time.time() + 60
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
    time.sleep(0.5)
@ray.remote(num_cpus=0, resources={"worker_node": 0.1})
def on_worker():
    return ray.util.get_node_ip_address()
print(json.dumps({"nodes": [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]],
                  "worker_task": ray.get(on_worker.remote(), timeout=60)}))
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_node_cluster_on_loopback(two_node_cluster):
    out = subprocess.run([sys.executable, "-c", DRIVER, two_node_cluster], env=_cluster_env(), capture_output=True,
                         text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(result["nodes"]) == ["127.0.0.2", "127.0.0.3"], result
    assert result["worker_task"] == "127.0.0.3"
