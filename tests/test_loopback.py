"""Local Ray stays on loopback (issue 16): the session's nodes report 127.* and its processes listen on
nothing outside 127.0.0.0/8; a two-node cluster on one machine runs on two loopback addresses."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time

import pytest
from cluster_fixtures import cluster_env
from cluster_fixtures import two_node_cluster as start_cluster


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


@pytest.fixture(scope="module")
def two_node_cluster():
    """A real two-node Ray cluster on this machine (tests/cluster_fixtures.py). Yields the head address."""
    with start_cluster(num_cpus=1) as cluster:
        yield cluster.address


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
@pytest.mark.timeout(400)
def test_two_node_cluster_on_loopback(two_node_cluster):
    for _ in range(2):  # a head just started on a loaded machine can miss the driver's first GCS deadline: once more
        out = subprocess.run([sys.executable, "-c", DRIVER, two_node_cluster], env=cluster_env(),
                             capture_output=True, text=True, timeout=150)
        if out.returncode == 0 or "ConnectionError" not in out.stderr:
            break
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(result["nodes"]) == ["127.0.0.2", "127.0.0.3"], result
    assert result["worker_task"] == "127.0.0.3"


def test_ray_address_local_means_the_private_loopback_session(monkeypatch):
    """RAY_ADDRESS=local (Ray's word for "start a new session") takes the same loopback branch as no address."""
    import ray

    from uniqa import runtime

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setenv("RAY_ADDRESS", "local")
    runtime.init_ray()
    assert calls[-1]["address"] == "local" and calls[-1]["_node_ip_address"] == "127.0.0.1"
    assert calls[-1]["include_dashboard"] is False
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6379")
    runtime.init_ray()
    assert calls[-1] == {"address": "127.0.0.2:6379", "log_to_driver": True}
