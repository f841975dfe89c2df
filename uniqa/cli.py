"""``uniqa`` console script: the local front door to every stage's run function.

Every stage is a :class:`uniqa.stagecli.StageCommand` listed in :data:`uniqa.stages.STAGES` (the same common
flags, config loading, summary line and exit code for each); ``data list`` and ``demo`` have a
``register(subparsers)`` function. Heavy imports (torch, ray) happen inside the command, so ``uniqa --help``
is fast.
"""

from __future__ import annotations

import argparse
import sys

from uniqa import __version__
from uniqa.data.cli import register as register_data
from uniqa.demo import register as register_demo
from uniqa.errors import UniqaError
from uniqa.stagecli import register as register_stage
from uniqa.stages import STAGES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uniqa",
        description="UniQA on Ray: manifests, captions, purification, corpus, pre-training, adapters, scoring.",
    )
    parser.add_argument("--version", action="version", version=f"uniqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_data(sub, tuple(c for c in STAGES.values() if c.group == "data"))
    for command in STAGES.values():
        if command.group is None:
            register_stage(sub, command)
    register_demo(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UniqaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
