"""Starting or joining Ray for the run functions (the only place ``ray.init`` is called outside tests), and the
thread policy of every stage.

Thread policy: torch's intra-op threads equal the CPUs Ray reserved for the task, actor, Train worker or Tune trial
(at least 1, rounded down: 0.5 CPU -> 1 thread, 2 CPUs -> 2); outside Ray (the driver's local paths) small models
run with 1 thread, large ones with every core. A stage's ``threads`` knob overrides it. OpenMP threads sleep
instead of spinning when idle (``OMP_WAIT_POLICY=PASSIVE`` unless set), so a waiting pool leaves a busy
neighbour's core alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Iterator

from uniqa.errors import UniqaError

# Safe defaults for local runs; a cluster's own environment wins (setdefault).
_ENV_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
    "TOKENIZERS_PARALLELISM": "false",
}
# Read by OpenMP when it loads (with torch); Ray's worker processes get it through the session's runtime env.
THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
SMALL_MODEL_PARAMS = 50_000_000  # a driver-side model below this runs with 1 thread (policy above)


LOOPBACK_ENV = "UNIQA_RAY_LOOPBACK"  # "0": a local Ray takes Ray's default node address (the machine's interface)


def loopback_enabled() -> bool:
    return os.environ.get(LOOPBACK_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def keep_local_ray_on_loopback() -> str:
    """Make the next local ``ray.init`` stay on 127.0.0.1 and return that address.

    Ray rewrites ``127.0.0.1`` (and ``localhost``, ``::1``) given as the node address into the machine's interface
    address, and its gRPC servers then listen on every interface. With ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the
    switch Ray itself uses for single-machine sessions) the address is kept, and GCS, raylet, object manager and
    workers listen on 127.0.0.1 only. The switch also forbids other nodes joining, so it is set for local sessions
    only, never when joining a cluster. Set ``UNIQA_RAY_LOOPBACK=0`` for Ray's default instead."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # inherited by Ray's own processes
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time; set here too in case Ray was imported before
    return "127.0.0.1"


def local_ray_options(num_cpus: int | None = None, **options) -> dict:
    """``ray.init`` arguments of a private local session (the run functions', the tests', the benchmarks')."""
    env_vars = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3") if k in os.environ}
    env_vars.update({k: os.environ.get(k, v) for k, v in THREAD_ENV.items()})
    # address="local": always a new private session, never a cluster some `ray start` left on this machine.
    # Ray kills idle task workers beyond one per CPU; a streaming job whose consumer (the trainers, actors) holds
    # most CPUs then starts a fresh process for nearly every decode task (torch import, cold decode cache: on
    # 2 CPUs, pre-training spent more time starting workers than decoding). Keep a few more idle ones.
    soft_limit = max(8, 2 * (num_cpus or os.cpu_count() or 1))
    out = dict(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
               runtime_env={"env_vars": env_vars},
               _system_config={"num_workers_soft_limit": soft_limit})
    if loopback_enabled():
        out["_node_ip_address"] = keep_local_ray_on_loopback()
    out.update(options)
    return out


def init_ray(address: str | None = None, num_cpus: int | None = None, **options) -> None:
    """Join the cluster at ``address`` / ``$RAY_ADDRESS``; otherwise start a local Ray sized to this machine, on
    loopback (see :func:`keep_local_ray_on_loopback`); ``options`` go to ``ray.init``.

    A no-op when Ray is already initialised (tests, notebooks, ``ray job submit``)."""
    import ray

    if ray.is_initialized():
        return
    for key, value in {**_ENV_DEFAULTS, **THREAD_ENV}.items():
        os.environ.setdefault(key, value)
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":  # "local" (Ray's word for a new private session) is the branch below
        ray.init(address=address, log_to_driver=True)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local session needs no token
    ray.init(**local_ray_options(num_cpus, **options))


def reserved_cpus() -> float | None:
    """The CPUs Ray reserved for the task, actor, Train worker or Tune trial running this code (0.0 when it
    reserved none); None in a driver or without Ray."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    return float(context.get_assigned_resources().get("CPU", 0.0))


def policy_threads(threads: int | None = None, *, cpus: float | None = None, model_params: int | None = None) -> int:
    """torch threads under the policy (module docstring): ``threads`` when given; else, for code Ray reserved
    ``cpus`` for (default: :func:`reserved_cpus` of the caller), ``max(1, floor(cpus))``; else (a driver) 1, or
    every core for a model of ``model_params`` >= :data:`SMALL_MODEL_PARAMS`."""
    if threads:
        return int(threads)
    cpus = reserved_cpus() if cpus is None else cpus
    if cpus is not None:
        return max(1, math.floor(cpus))
    if model_params is not None and model_params >= SMALL_MODEL_PARAMS:
        return os.cpu_count() or 1
    return 1


def use_policy_threads(threads: int | None = None, **kwargs) -> int:
    """Set torch's threads under the policy for the rest of this process (a model actor, a Train worker, a Ray
    task about to use torch) and return the count. Setting an unchanged count costs nothing."""
    import torch

    n = policy_threads(threads, **kwargs)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def torch_threads(threads: int | None = None, **kwargs) -> Iterator[int]:
    """Run the block with torch threads under the policy (``threads`` overrides), then restore the previous count,
    so that a driver (or a Ray worker that runs other tasks next) does not keep this block's setting."""
    import torch

    before = torch.get_num_threads()
    try:
        yield use_policy_threads(threads, **kwargs)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


MAX_BLOCKS = 2000  # Ray Data keeps ~8 KB of stats per block in the driver, for the whole run: 2,000 blocks ~ 16 MB


def block_rows(rows_per_block: int, total: int | None) -> int:
    """``rows_per_block``, raised so that ``total`` rows make at most :data:`MAX_BLOCKS` blocks: the driver's
    memory stays flat from a thousand rows to tens of millions (measured: +13 MB for 1,600 blocks)."""
    return max(rows_per_block, -(-total // MAX_BLOCKS)) if total else rows_per_block


VIEWS_BLOCK_BYTES = 64 * 2**20  # uint8 views per decode task of a model stage (see views_block_rows)
VIEWS_BLOCK_ROWS = (16, 1024)  # ... and the bounds of its row count


def views_block_rows(image_bytes: int, total: int | None = None, actors: int = 1) -> int:
    """Images per decode task of a model stage (scoring, features): as many as fill :data:`VIEWS_BLOCK_BYTES` with
    their uint8 views (``image_bytes`` an image), within :data:`VIEWS_BLOCK_ROWS`. Big blocks amortise Ray's
    per-task cost (it dominates for small models); the byte cap keeps the views of large models from flooding the
    object store. With ``total`` rows to do, blocks are also small enough to give each of ``actors`` two, and large
    enough that there are at most :data:`MAX_BLOCKS` (the driver's memory; this bound wins over the byte budget,
    e.g. a million images of 30 views of 64 px take 500 rows a block, 176 MiB, not 182)."""
    low, high = VIEWS_BLOCK_ROWS
    rows = VIEWS_BLOCK_BYTES // max(image_bytes, 1)
    if total:
        rows = max(min(rows, -(-total // (2 * actors))), -(-total // MAX_BLOCKS))
    return max(low, min(high, rows))


def gpus_per_actor(num_gpus: float | None) -> float:
    """GPUs for each model actor: ``num_gpus`` as configured, or 1 when the cluster has GPUs and 0 when it has
    none."""
    import ray

    if num_gpus is not None:
        return float(num_gpus)
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def quiet_ray_data(quiet: bool = False) -> None:
    """No Ray Data progress bars (our own bar, :func:`uniqa.sink.drain`, counts rows); ``quiet`` also drops Ray
    Data's INFO log lines (execution plan, "execution finished")."""
    import logging

    import ray
    from ray.util.debug import log_once

    ray.data.DataContext.get_current().enable_progress_bars = False
    log_once("ray_data_progress_manager_disabled")  # ... so Ray need not warn that its own bars are off
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)


def user_error_in(exc: BaseException) -> str | None:
    """The message of a :class:`UniqaError` a Ray worker raised, found through Ray's wrappers (``cause``,
    ``__cause__``) or, when Ray kept only the text (an actor that died in ``__init__``), in the message."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, UniqaError) and type(e).__module__.startswith("uniqa"):
            return str(e).splitlines()[0]
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    found = re.findall(r"uniqa\.errors\.UniqaError: (.+)", str(exc))
    return found[-1].strip() if found else None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A :class:`UniqaError` a Ray worker raised in the block (Ray wraps it) comes out as that one-line error."""
    try:
        yield
    except UniqaError:
        raise
    except Exception as e:
        message = user_error_in(e)
        if message is None:
            raise
        raise UniqaError(message) from None


@contextlib.contextmanager
def ray_work(address: str | None = None, progress: bool = True) -> Iterator[None]:
    """The Ray part of a stage, after its pre-flight: join the cluster at ``address`` or start a local Ray
    (:func:`init_ray`), Ray Data without its own progress bars (and, unless ``progress``, without its INFO lines:
    :func:`quiet_ray_data`), and a bad-input error raised in a worker out as one line (:func:`user_errors`)."""
    init_ray(address)
    quiet_ray_data(quiet=not progress)
    with user_errors():
        yield
