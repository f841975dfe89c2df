"""Fault injection for pre-training tests, never in production code or configs: :func:`failing_at` is a Ray Train
``train_loop_per_worker`` that runs the real one, except that rank 0 raises once when it has finished ``step``
steps (before the next step is logged or checkpointed; a marker file in the run remembers that it did). A test
installs it with ``monkeypatch.setattr(uniqa.training.run, "train_worker", failing_at(5))``."""

from __future__ import annotations

import sys

import ray.cloudpickle

MARKER = "_fault_injected"  # in the run folder: the step the fault was injected at


def failing_at(step: int):
    def train_worker(config: dict) -> None:
        from uniqa import storage
        from uniqa.training import loop, run

        marker = storage.join(config["plan"].run, MARKER)
        real = loop.MetricsLog  # rank 0's metrics log sees every step: the hook

        class FailingLog(real):
            def add(self, metrics: dict) -> None:
                if metrics["step"] == step + 1 and not storage.exists(marker):
                    storage.write_bytes(marker, str(step).encode())
                    raise RuntimeError(f"injected fault at step {step} (a test aid)")
                super().add(metrics)

        loop.MetricsLog = FailingLog
        try:
            run.train_worker(config)
        finally:
            loop.MetricsLog = real

    return train_worker


# Ray Train workers do not have tests/ on their path: ship this module's code with the function
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
