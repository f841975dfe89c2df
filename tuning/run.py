"""Sweep runner for ``ray job submit`` (forwards to ``uniqa tune``; the Tune code is in ``uniqa/tuning``).

    ray job submit --working-dir . -- python tuning/run.py --config tuning/adapter-quality.yaml \
        --manifest s3://bucket/manifests/koniq --out s3://bucket/sweeps/koniq-quality
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["tune", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
