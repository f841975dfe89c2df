"""Local Ray stays on loopback (issue 16): the session's nodes report 127.* and its processes listen on
nothing outside 127.0.0.0/8; a two-node cluster on one machine runs on two loopback addresses, and no process of
either node (nor the driver) listens outside 127.0.0.0/8."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time

import pytest
from cluster_fixtures import HEAD_IP, WORKER_IP, node_env
from cluster_fixtures import two_node_cluster as start_cluster


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def plain_ip(ip: str) -> str:
    """``::ffff:127.0.0.2`` (a dual-stack socket bound to an IPv4 address) -> ``127.0.0.2``."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    return str(addr.ipv4_mapped or addr) if isinstance(addr, ipaddress.IPv6Address) else str(addr)


def session_processes(leaders: set[int]) -> set[int]:
    """Every process in the sessions that ``leaders`` lead (a `ray start` started with start_new_session) or below
    them: a node's processes, including any that left the tree."""
    import psutil

    pids = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) in leaders:
                pids.add(proc.pid)
    for leader in leaders:
        with contextlib.suppress(psutil.Error):
            pids |= {leader} | {p.pid for p in psutil.Process(leader).children(recursive=True)}
    return pids


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
    assert plain_ip("::ffff:127.0.0.3") == "127.0.0.3" and plain_ip("::") == "::" and plain_ip("127.0.0.2") == HEAD_IP


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
    """A real two-node Ray cluster on this machine (tests/cluster_fixtures.py)."""
    with start_cluster(num_cpus=1) as cluster:
        yield cluster


# Runs until its stdin closes, so that its own server and its actor on the worker node are up while the test looks.
DRIVER = """
import json, sys, time, ray
ray.init(address=sys.argv[1], _node_ip_address="127.0.0.2", log_to_driver=False)
deadline = time.time() + 60
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
    time.sleep(0.5)
@ray.remote(num_cpus=0, resources={"worker_node": 0.1})
class OnWorker:
    def ip(self):
        return ray.util.get_node_ip_address()
actor = OnWorker.remote()
print(json.dumps({"nodes": [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]],
                  "worker_actor": ray.get(actor.ip.remote(), timeout=60)}), flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_node_cluster_on_loopback(two_node_cluster, tmp_path):
    # the fixture waited until the GCS listed both nodes: the driver's first connection is a real test, no retry
    stderr = tmp_path / "driver.err"
    with open(stderr, "w") as err:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, two_node_cluster.address], env=node_env(HEAD_IP),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    head, worker = two_node_cluster.pids
    expected = {HEAD_IP: {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"},
                WORKER_IP: {"raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent", "ray::OnWorker"}}

    def look() -> dict[str, list]:
        return {HEAD_IP: listening_sockets(session_processes({head})), "driver": listening_sockets({driver.pid}),
                WORKER_IP: listening_sockets(session_processes({worker}))}

    try:
        line = next((out for out in driver.stdout if out.startswith("{")), "")  # its result, or "": it exited
        assert line, stderr.read_text()[-2000:]
        result = json.loads(line)
        assert sorted(result["nodes"]) == [HEAD_IP, WORKER_IP], result
        assert result["worker_actor"] == WORKER_IP
        # servers that start late (agents, the actor's worker) may not listen yet on a busy machine: poll
        deadline = time.monotonic() + 60
        sockets = look()
        while not all(names <= {n for _, _, n in sockets[ip]} for ip, names in expected.items()):
            if time.monotonic() > deadline:
                break  # the asserts below say what is missing
            time.sleep(0.5)
            sockets = look()
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)
    outside = [(where, s) for where, found in sockets.items() for s in found if not is_loopback(s[0])]
    assert not outside, f"listening outside 127.0.0.0/8: {outside}"
    # the check sees each node's servers: GCS (head), raylet, agents, the actor's worker, the driver's own server
    names = {where: {name for _, _, name in found} for where, found in sockets.items()}
    assert expected[HEAD_IP] <= names[HEAD_IP] and expected[WORKER_IP] <= names[WORKER_IP], sockets
    assert sockets["driver"], sockets
    for ip in (HEAD_IP, WORKER_IP):  # and each node's raylet serves on that node's own address
        assert {plain_ip(a) for a, _, name in sockets[ip] if name == "raylet"} == {ip}, sockets[ip]


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
