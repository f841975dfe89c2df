"""Ray job entry point of the feature cache: the same run function, flags and checks as ``uniqa features``.

    ray job submit --working-dir . -- python pipelines/features.py --manifest s3://bucket/manifests/koniq \
        --model ViT-B-16-quickgelu --pretrained s3://bucket/UniQA_weight.pt --out s3://bucket/features/koniq

Steps (uniqa.features.run): config + manifest + model checked before any Ray work -> read the manifest -> skip
finished images -> decode + K train views + test views (CPU tasks) -> frozen encoder (actors) -> Parquet under
--out (exactly-once).
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["features", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
