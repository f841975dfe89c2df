"""The stage contract: every stage ends with one :class:`StageSummary`, written as ``OUT/_summary.json``.

A stage is ``run_<stage>(<inputs>, out, cfg, *, progress=True, address=None) -> StageSummary``, declared in its
package's ``cli.py`` and listed in :mod:`uniqa.stages` (whose ``load`` names where each run function and config
class live). It runs its storage/model checks (the pre-flight) before any Ray work, so bad input fails with one
``error:`` line; then it does the work (Ray through :func:`uniqa.runtime.ray_work`) and returns this summary. The
CLI prints :meth:`StageSummary.line` and exits with :attr:`StageSummary.exit_code` (0 complete, 1 rows missing;
2 is a bad invocation, raised as :class:`~uniqa.errors.UniqaError` before any work).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from uniqa import __version__, storage

SUMMARY_FILE = "_summary.json"


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
