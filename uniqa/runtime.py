"""Starting or joining Ray for the run functions (the only place ``ray.init`` is called outside tests)."""

from __future__ import annotations

import os
import re

from uniqa.errors import UniqaError

# Safe defaults for local runs; a cluster's own environment wins (setdefault).
_ENV_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
    "TOKENIZERS_PARALLELISM": "false",
}


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` / ``$RAY_ADDRESS``; otherwise start a local Ray sized to this machine.

    A no-op when Ray is already initialised (tests, notebooks, ``ray job submit``)."""
    import ray

    if ray.is_initialized():
        return
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local session needs no token
    env_vars = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3") if k in os.environ}
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": env_vars} if env_vars else None,
    )


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


def drain_user_errors(fn, *args, **kwargs):
    """Run ``fn`` (which drives a Ray job); a UniqaError raised in a worker comes out as that one-line error."""
    try:
        return fn(*args, **kwargs)
    except UniqaError:
        raise
    except Exception as e:  # Ray wraps worker exceptions; surface bad input as the one-line error it is
        message = user_error_in(e)
        if message is None:
            raise
        raise UniqaError(message) from None
