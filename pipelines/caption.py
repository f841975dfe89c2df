"""Ray job entry point of captioning: the same run function, flags and checks as ``uniqa caption``.

    ray job submit --working-dir . -- python pipelines/caption.py --config cluster/caption-vllm.yaml \
        [--manifest s3://bucket/manifests/ava] [--out s3://bucket/captions/ava] [--limit N]

Steps (uniqa.captioning.run): pre-flight checks before any Ray work -> read the manifest's id/uri/task/level
columns -> drop ids already captioned under --out -> small blocks -> captioner backend (attributes | openai |
vllm) -> Parquet files under --out, committed exactly once (rerun to resume).
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["caption", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
