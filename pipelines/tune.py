"""Ray job entry point of sweeps: the same run function, flags and checks as ``uniqa tune``.

    ray job submit --working-dir . -- python pipelines/tune.py --config tuning/adapter-quality.yaml \
        --manifest s3://bucket/manifests/koniq --out s3://bucket/sweeps/koniq-quality [--set num_samples=32]

Steps (uniqa.tuning.sweep): sweep file (checked before any trial) -> features (cached) -> Tune trials (ASHA on
validation SRCC) -> results table, best config, best adapter, the best trial's test numbers.
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["tune", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
