"""``uniqa`` console script: the local front door to every stage's run function.

Each stage's ``cli.py`` declares a ``COMMAND`` (:class:`uniqa.stagecli.StageCommand`: the same common flags,
config loading, summary line and exit code for every stage); other commands (``data``, ``report``, ``demo``) have
a ``register(subparsers)`` function. Heavy imports (torch, ray) happen inside the command, so ``uniqa --help``
is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from uniqa import __version__
from uniqa.errors import UniqaError
from uniqa.stagecli import register as register_stage

# Sub-command modules, in data-flow order.
COMMANDS = (
    "uniqa.data.cli",
    "uniqa.captioning.cli",
    "uniqa.purification.cli",
    "uniqa.corpus.cli",
    "uniqa.training.cli",
    "uniqa.features.cli",
    "uniqa.adapters.cli",
    "uniqa.tuning.cli",
    "uniqa.scoring.cli",
    "uniqa.curation.cli",
    "uniqa.evaluation.cli",
    "uniqa.report.cli",
    "uniqa.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uniqa",
        description="UniQA on Ray: manifests, captions, purification, corpus, pre-training, adapters, scoring.",
    )
    parser.add_argument("--version", action="version", version=f"uniqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        mod = importlib.import_module(module)
        if hasattr(mod, "COMMAND"):  # a stage: the shared stage command line (uniqa.stagecli)
            register_stage(sub, mod.COMMAND)
        else:
            mod.register(sub)
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
