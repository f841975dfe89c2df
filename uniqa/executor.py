"""One executor for every stage: :func:`execute` runs a stage (:mod:`uniqa.stage`'s contract) the same way
whatever its work is, a Ray Data job, a Ray Train trainer, a Ray Tune tuner or local code:

1. the pre-flight (no Ray): every check, the stage's :class:`~uniqa.stage.Plan`;
2. the run identity, by the plan's ``resume``: pinned in ``OUT/_run.json`` and a rerun that differs refused
   (``parts``), or a complete earlier run of the same identity found and nothing run (``whole``, and ``parts``
   with ``final``);
3. the work, given a :class:`~uniqa.stage.Run`: the stage enters its Ray session (joined at ``address`` or
   started, Ray Data quiet) around its Ray part when it has work to do; a bad-input error raised in a Ray worker
   comes out as one line;
4. the :class:`~uniqa.stage.StageSummary` (the work's :class:`~uniqa.stage.Outcome` + stage, inputs, output,
   seconds, config fingerprint, identity), written as ``OUT/_summary.json`` and returned.

Underneath, each stage resumes natively (finished ids in part files, Ray Train's checkpoints, Tune's trials,
adapters' ``runs/``); the executor owns the decision whether a rerun may continue an output at all.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.stage import RUN_FILE, Run, StageSummary, config_fingerprint, finished_summary


def check_identity(out: str, identity: dict[str, Any]) -> None:
    """Refuse to mix outputs of different settings in one folder: ``identity`` is stored as ``OUT/_run.json`` by
    the first run and each of its keys must match on every rerun (a key the stored identity lacks reads None)."""
    uri = storage.join(out, RUN_FILE)
    if storage.exists(uri):
        before = json.loads(storage.read_bytes(uri))
        differ = {k: (before.get(k), v) for k, v in identity.items() if before.get(k) != v}
        if differ:
            key, (old, new) = next(iter(differ.items()))
            raise UniqaError(f"{out} holds output made with {key}={old!r}, this run has {key}={new!r}; "
                             "resume with the same settings or use another --out")
        return
    storage.write_bytes(uri, json.dumps(identity, indent=2, default=str).encode())


def finished(name: str, module: Any, out: str, identity: dict[str, Any]) -> StageSummary | None:
    """The summary of a complete earlier run of stage ``name`` into ``out`` with this ``identity`` whose output
    still holds its rows (the stage's ``output_rows``, when it has one), as this run's; None: run the stage."""
    done = finished_summary(out, name, identity)
    reader = getattr(module, "output_rows", None)
    if done is None or (reader is not None and reader(out) != done.rows_out):
        return None
    return done


def execute(name: str, inputs: list[Any], out: str, cfg: Any, *, progress: bool = True,
            address: str | None = None) -> StageSummary:
    """Run stage ``name`` (of :data:`uniqa.stages.STAGES`) on ``inputs`` (its run function's inputs, in order)
    into ``out`` with config ``cfg`` (see the module docstring); ``address``: the Ray cluster to join (default
    ``$RAY_ADDRESS``, else a local Ray)."""
    from uniqa.runtime import user_errors
    from uniqa.stages import load

    module = load(name)[1]
    plan = module.preflight(*inputs, out, cfg)
    identity = json.loads(json.dumps(plan.identity, default=str))  # as stored: tuples are lists
    if plan.resume == "parts":
        check_identity(out, identity)
    if (plan.resume == "whole" or plan.final) and (done := finished(name, module, out, identity)) is not None:
        return done.write()
    start = time.perf_counter()
    with user_errors():
        outcome = module.work(plan, out, cfg, Run(progress, address))
    counts = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)}
    counts["details"] = {**outcome.details, "identity": identity}
    return StageSummary(stage=name, inputs=plan.inputs, output=out, seconds=time.perf_counter() - start,
                        config_fingerprint=config_fingerprint(cfg), **counts).write()
