"""Ray job entry point for pre-training: ``ray job submit --working-dir . -- python pipelines/pretrain.py
--config cluster/pretrain.yaml``. Same flags as ``uniqa pretrain``."""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["pretrain", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
