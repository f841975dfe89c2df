"""Ray job entry point of captioning (same run function and flags as ``uniqa caption``):

    ray job submit --working-dir . -- python pipelines/caption.py \
        --manifest s3://bucket/manifests/ava --out s3://bucket/captions/ava --config cluster/caption-vllm.yaml
"""

from __future__ import annotations

import argparse
import sys

from uniqa.captioning.cli import add_arguments, load
from uniqa.errors import UniqaError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load(args)  # config errors before any Ray work
        from uniqa.captioning.run import run_caption, summary_lines

        for line in summary_lines(run_caption(args.manifest, args.out, cfg)):
            print(line)
    except UniqaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
