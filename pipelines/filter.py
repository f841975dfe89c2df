"""Ray job entry point of curation: the same run function, flags and checks as ``uniqa filter``.

    ray job submit --working-dir . -- python pipelines/filter.py --scores s3://bucket/scores \
        [--manifest s3://bucket/manifests/koniq] --out s3://bucket/curated --top-fraction 0.3 --by quality

Steps (uniqa.curation.run): config + columns checked before any Ray work -> [hash-partition scores and
manifest by image_id] -> per-block KLL sketches merged on the driver (thresholds) -> decide + write kept /
rejected per block -> histograms.png + _summary.json.
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["filter", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
