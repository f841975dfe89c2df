"""Ray job entry point of evaluation: the same run function, flags and checks as ``uniqa evaluate``.

    ray job submit --working-dir . -- python pipelines/evaluate.py --scores s3://bucket/scores/koniq \
        --manifest s3://bucket/manifests/koniq --out s3://bucket/eval/koniq [--split all]

Steps (uniqa.evaluation.run): pre-flight (columns exist) -> read mos_norm + split columns and the score columns
-> join on image_id -> SRCC / PLCC / KRCC per dataset, head and split -> OUT/metrics.parquet (+ CSV).
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
