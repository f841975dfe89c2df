"""The stage contract: what a stage declares, and the one :class:`StageSummary` every run of it ends with
(``OUT/_summary.json``).

A stage is a module with two functions, found through :mod:`uniqa.stages` (``load``):

- ``preflight(*inputs, out, cfg) -> Plan``: every check that needs no Ray (storage, columns, models), failing
  with one :class:`~uniqa.errors.UniqaError` and changing nothing; it returns a :class:`Plan` (the stage's own
  subclass, with what its work needs): the inputs as the summary records them, the run's ``identity`` (what a
  rerun into the same ``out`` must share) and how a rerun resumes (``resume``);
- ``work(plan, out, cfg, run) -> Outcome``: the work itself (a Ray Data job, a Ray Train trainer, a Ray Tune
  tuner, or local code) and its counts. It enters ``run.ray()`` (a :class:`Run`) around its Ray part, only when
  there is work to do: a rerun that finds everything done starts no Ray session;

and may have ``output_rows(out) -> int``, the reader of its output's row count (a finished output is trusted
only while it still holds them). :func:`uniqa.executor.execute` runs every stage the same way: pre-flight, the
identity check (and the refusal of a rerun that does not match), the work, a worker's bad-input error out as one
line, the timing and the summary. The CLI prints :meth:`StageSummary.line` and exits with
:attr:`StageSummary.exit_code` (0 complete, 1 rows missing; 2 is a bad invocation, raised as
:class:`~uniqa.errors.UniqaError` before any work).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from uniqa import __version__, storage

SUMMARY_FILE = "_summary.json"
RUN_FILE = "_run.json"  # a resumable output's identity


@dataclass(kw_only=True)
class Plan:
    """What a stage's pre-flight found, before any work; a stage subclasses it with the findings its work needs.

    ``resume`` says how a rerun into the same ``out`` continues:

    - ``"parts"``: the output grows until complete (part files keyed by id, Train checkpoints, Tune's trials, an
      adapter per run); ``identity`` is pinned in ``OUT/_run.json`` by the first run, and a rerun whose identity
      differs is refused (mixed outputs) before any work;
    - ``"whole"``: the output is recomputed whole, unless ``out`` holds a complete run of this stage with the same
      ``identity`` (stored in its summary's ``details``) and still its rows: then nothing runs;
    - ``"never"``: recomputed every time (cheap, or its inputs cannot be fingerprinted)."""

    inputs: dict[str, Any]  # as the summary records them
    identity: dict[str, Any] = field(default_factory=dict)  # what a rerun must share with the run it continues
    resume: Literal["parts", "whole", "never"] = "parts"
    # parts only: the identity covers every input (pre-training: config and corpus), so a complete run of it whose
    # output still holds its rows (``output_rows``) is done as it is, found without any work (no Ray)
    final: bool = False


@dataclass(frozen=True)
class Run:
    """How this run's work is done, from the executor: ``progress`` (a bar, Ray Data's INFO lines) and
    :meth:`ray`, the Ray session of the work."""

    progress: bool = True
    address: str | None = None  # the Ray cluster to join (None: $RAY_ADDRESS, else a local Ray)

    def ray(self):
        """The Ray part of the work (:func:`uniqa.runtime.ray_work`): the cluster joined or a local Ray started,
        Ray Data quiet, a worker's bad-input error out as one line."""
        from uniqa.runtime import ray_work

        return ray_work(self.address, self.progress)


@dataclass
class Outcome:
    """What a stage's work did: the counts of a :class:`StageSummary` (see there) without what the executor
    knows (stage, inputs, output, seconds, config fingerprint, version)."""

    rows_in: int | None
    rows_out: int
    rows_written: int = 0
    rows_with_errors: int = 0
    rows_dropped: int = 0
    already_done: int = 0
    unit: str = "rows"
    details: dict[str, Any] = field(default_factory=dict)


class Stage(Protocol):
    """A stage module (see the module docstring); ``output_rows`` is optional."""

    def preflight(self, *args: Any) -> Plan: ...

    def work(self, plan: Any, out: str, cfg: Any, run: Run) -> Outcome: ...


def input_identity(files: list[str], rows: int | None = None) -> dict[str, Any]:
    """An input's part of a run identity: its files' names (part names are content hashes of their ids, or a
    prepare run's numbered shards) and, when known, its rows (footers)."""
    names = sorted(f.rsplit("/", 1)[-1] for f in files)
    return {"files": hashlib.sha1("\n".join(names).encode()).hexdigest()[:16], "rows": rows}


def config_fingerprint(cfg: Any) -> str:
    """A short stable hash of a (dataclass) config's values: two runs with equal configs share it."""
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def json_value(value: Any) -> Any:
    """A ``json.dumps`` default: numpy scalars as the Python value they hold, anything else as its text."""
    return value.item() if hasattr(value, "item") else str(value)


@dataclass
class StageSummary:
    """What a stage run did, in one shape for every stage.

    ``rows_in`` is what the output should hold when the stage is complete (None: not knowable, e.g. an
    unlisted S3 prefix); ``rows_out`` what it holds after this run (earlier runs' rows included);
    ``rows_dropped`` rows the stage leaves out by design (duplicates, rows of another task, ...), counted so
    that ``rows_out + rows_dropped == rows_in`` when nothing is missing."""

    stage: str
    inputs: dict[str, Any]
    output: str
    rows_in: int | None
    rows_out: int
    rows_written: int = 0  # by this run
    rows_with_errors: int = 0  # of the rows written by this run, those with an ``error``
    rows_dropped: int = 0
    already_done: int = 0  # rows the output held before this run (resume)
    seconds: float = 0.0
    unit: str = "rows"  # what a row is: images, comments, pairs, ...
    config_fingerprint: str = ""
    version: str = __version__
    details: dict[str, Any] = field(default_factory=dict)  # stage-specific figures

    @property
    def rows_missing(self) -> int:
        return 0 if self.rows_in is None else max(self.rows_in - self.rows_out - self.rows_dropped, 0)

    @property
    def complete(self) -> bool:
        return self.rows_missing == 0

    @property
    def rate(self) -> float:
        """Rows written per second of this run."""
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.complete else 1

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record.update(rows_missing=self.rows_missing, complete=self.complete,
                      rate=round(self.rate, 3), seconds=round(self.seconds, 3))
        return record

    def line(self) -> str:
        rows_in = "?" if self.rows_in is None else self.rows_in
        state = "complete" if self.complete else f"INCOMPLETE: {self.rows_missing} missing, rerun to continue"
        dropped = f", {self.rows_dropped} dropped" if self.rows_dropped else ""
        return (f"{self.stage}: {self.rows_written} {self.unit} written ({self.rows_with_errors} with errors) in "
                f"{self.seconds:.1f} s = {self.rate:.1f}/s; {self.already_done} already done; rows out "
                f"{self.rows_out}{dropped} / rows in {rows_in} ({state}) -> {self.output}")

    def write(self) -> StageSummary:
        """Write ``OUT/_summary.json`` (the output folder is created if needed); returns self."""
        storage.write_bytes(storage.join(self.output, SUMMARY_FILE), json.dumps(self.to_dict(), indent=2).encode())
        return self


def read_summary(out: str) -> dict[str, Any]:
    """The ``_summary.json`` a stage wrote under ``out``."""
    return json.loads(storage.read_bytes(storage.join(out, SUMMARY_FILE)))


def finished_summary(out: str, stage: str, identity: dict[str, Any]) -> StageSummary | None:
    """For a stage that recomputes its output whole: the summary of a complete earlier run of ``stage`` into ``out``
    whose ``details["identity"]`` equals ``identity``, as this run's (nothing written, all already done); None
    when there is none or it differs, and the stage runs."""
    if not storage.exists(storage.join(out, SUMMARY_FILE)):
        return None
    record = read_summary(out)
    if record.get("stage") != stage or not record.get("complete") or record["details"].get("identity") != identity:
        return None
    names = {f.name for f in dataclasses.fields(StageSummary)}
    summary = StageSummary(**{k: v for k, v in record.items() if k in names})
    return dataclasses.replace(summary, rows_written=0, rows_with_errors=0, already_done=summary.rows_out,
                               seconds=0.0)


class Timer:
    """``with Timer() as t: ...; t.seconds``"""

    def __enter__(self) -> Timer:
        self.start, self.seconds = time.perf_counter(), 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
