"""A sweep's ledger: ``RUN/_ledger/``, one empty file per trial start / completion / error, written by the driver
(a Tune callback), so that it survives a killed driver: how many times each trial started, and which finished
before this run (a restored sweep does not run them: the summary's ``already_done``)."""

from __future__ import annotations

import re
import time

from uniqa import storage

LEDGER = "_ledger"


TRIAL_ID = re.compile(r"([0-9a-f]{5}_(\d{5}))")


def trial_number(trial_id: str) -> int:
    """A trial's 0-based number in Tune's order, from its id (``abcde_00003`` -> 3)."""
    return int(trial_id.rsplit("_", 1)[1])


def ledger_callback(out: str):
    from ray import tune

    class Ledger(tune.Callback):
        """One empty file per trial event under RUN/_ledger (survives a killed driver; counts starts)."""

        def __init__(self, uri: str):
            self.uri = uri

        def _mark(self, trial, event: str) -> None:
            storage.write_bytes(storage.join(self.uri, f"{trial.trial_id}.{event}.{time.time_ns()}"), b"")

        def on_trial_start(self, iteration, trials, trial, **info):
            self._mark(trial, "start")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._mark(trial, "complete")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._mark(trial, "error")

    return Ledger(storage.join(out, LEDGER))


def read_ledger(out: str) -> dict[str, dict[str, int]]:
    """trial_id -> {event: count} from RUN/_ledger."""
    uri = storage.join(out, LEDGER)
    counts: dict[str, dict[str, int]] = {}
    if not storage.exists(uri) and not storage.is_dir(uri):
        return counts
    for path in storage.list_files(uri):
        parts = path.rstrip("/").rsplit("/", 1)[-1].split(".")
        if len(parts) == 3:
            counts.setdefault(parts[0], {}).setdefault(parts[1], 0)
            counts[parts[0]][parts[1]] += 1
    return counts


def finished_before(before: dict, after: dict) -> list[str]:
    """The trials that completed in an earlier run (ledger ``before`` this one) and did not start again in it
    (ledger ``after``): a restored sweep does not run them."""
    def starts(ledger: dict, trial: str) -> int:
        return ledger.get(trial, {}).get("start", 0)

    return sorted(t for t, events in before.items()
                  if events.get("complete") and starts(after, t) == starts(before, t))
