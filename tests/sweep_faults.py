"""Fault injection for sweep tests, never in production code or payloads: :func:`failing` wraps a sweep kind's
trial function so that the listed trials (Tune's 0-based numbering) raise before they train. A test installs it
with ``monkeypatch.setattr(uniqa.tuning.adapter, "adapter_trial", failing(adapter_trial, {3}))``."""

from __future__ import annotations

import sys

import ray.cloudpickle

MESSAGE = "injected failure in trial {}"


def failing(trial, numbers: set[int]):
    def failing_trial(config: dict, data) -> None:
        from ray import tune

        from uniqa.tuning.ledger import trial_number

        number = trial_number(tune.get_context().get_trial_id())
        if number in numbers:
            raise RuntimeError(MESSAGE.format(number))
        trial(config, data)

    return failing_trial


# the trial actors do not have tests/ on their path: ship this module's code with the function
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
