"""Ray job entry point of scoring (same run function and flags as ``uniqa score``):

    ray job submit --working-dir . -- python pipelines/score.py --config cluster/score.yaml \
        [--input s3://bucket/manifests/koniq] [--out s3://bucket/scores/koniq] [--set num_actors=8]

Steps: config (checked before any Ray work) -> read the input -> skip finished ids -> decode + views
(CPU tasks) -> model actors (every head, one encoder pass) -> Parquet shards under --out (exactly-once).
"""

from __future__ import annotations

import argparse
import sys

from uniqa.errors import UniqaError
from uniqa.scoring.cli import add_arguments, config_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg, input_uri, out = config_from_args(args)
        from uniqa.scoring.run import run_score

        summary = run_score(input_uri, out, cfg, progress=not args.quiet, address=args.ray_address)
    except UniqaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0 if summary.complete or summary.input_rows is None else 1


if __name__ == "__main__":
    sys.exit(main())
