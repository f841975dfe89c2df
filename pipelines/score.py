"""Ray job entry point of scoring: the same run function, flags and checks as ``uniqa score``.

    ray job submit --working-dir . -- python pipelines/score.py --config cluster/score.yaml \
        [--input s3://bucket/manifests/koniq] [--out s3://bucket/scores/koniq] [--set num_actors=8]

Steps (uniqa.scoring.run): config (checked before any Ray work) -> read the input -> skip finished ids ->
decode + views (CPU tasks) -> model actors (every head, one encoder pass) -> Parquet shards under --out
(exactly-once).
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["score", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
