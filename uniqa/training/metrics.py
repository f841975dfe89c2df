"""``RUN/metrics.jsonl``: a pre-training run's log, one JSON line per optimiser step (step, loss, lr, logit_scale,
images_per_s, epoch, torch threads). Rank 0 writes it (:class:`MetricsLog`); :func:`read_metrics` is the one
reader (the progress line, resume, pretrain sweeps, the report)."""

from __future__ import annotations

import json

from uniqa import storage
from uniqa.errors import UniqaError

METRICS = "metrics.jsonl"


def read_metrics(run: str) -> list[dict]:
    """The records of ``run``'s metrics log, in file order ([] when it has none yet); a line that is not JSON is
    an error naming the file."""
    uri = storage.join(run, METRICS)
    if not storage.exists(uri):
        return []
    lines = storage.read_bytes(uri).decode().splitlines()
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as e:
        raise UniqaError(f"{uri}: a line is not valid JSON ({e})") from None


class MetricsLog:
    """Rank 0's log, rewritten whole on flush so it works on S3 too; a resumed run keeps the lines up to the
    step it resumes from."""

    def __init__(self, run: str, resumed_step: int):
        self.uri = storage.join(run, METRICS)
        self.lines = [json.dumps(record) for record in read_metrics(run) if record["step"] <= resumed_step]

    def add(self, record: dict) -> None:
        self.lines.append(json.dumps(record))

    def flush(self) -> None:
        storage.write_bytes(self.uri, ("\n".join(self.lines) + "\n").encode())
