"""``uniqa data list | sample | prepare``.

``sample`` and ``prepare`` are stages on the stage contract (:mod:`uniqa.stagecli`: the common flags ``--out
--config --set --quiet --ray-address``, the config built as defaults <- ``--config`` <- ``--set`` <- the stage's
flags, the summary line and exit code). Both run in this process and need no Ray: ``--ray-address`` is accepted
for uniformity.
"""

from __future__ import annotations

import argparse

from uniqa.stagecli import Arg, StageCommand
from uniqa.stagecli import register as register_stage

SAMPLE = StageCommand(
    name="sample",
    help="build the embedded sample corpus (KADID-10k and AVA formats, no downloads)",
    description="Build the embedded sample corpus into OUT/iqa (KADID-10k format) and OUT/iaa (AVA format) and\n"
                "write OUT/_summary.json. The same seed gives the same files; a rerun finds them done. Prepare\n"
                "them with: uniqa data prepare kadid10k --root OUT/iqa ... and uniqa data prepare ava --root OUT/iaa.",
    options=(Arg("--seed", "random seed: same seed, same files", key="seed", type=int),),
    group="data",
    ray=False,
)

PREPARE = StageCommand(
    name="prepare",
    help="read a dataset's official files and write its manifest (Parquet)",
    description="Read a dataset's official files and write its manifest (Parquet shards) and OUT/_summary.json.\n"
                "Prepare runs in this process and needs no Ray; --ray-address is accepted for uniformity.",
    inputs=(
        Arg("--name", "dataset source name (see `uniqa data list`) (default: `name:` of --config)", positional=True),
        Arg("--root", "dataset root: local folder or s3://bucket/prefix (a file for `table`/`manifest`) "
            "(default: `root:` of --config)"),
        Arg("--option", "source option, e.g. -o mos_column=MOS (see `uniqa data list`)", short="-o", multiple=True,
            required=False, metavar="KEY=VALUE"),
    ),
    options=(
        Arg("--allow-missing", "drop rows whose image file is missing (listed in OUT/_missing.txt) instead of "
            "failing", key="allow_missing", store_true=True),
    ),
    group="data",
    ray=False,
)


def register(sub: argparse._SubParsersAction, stages: tuple[StageCommand, ...]) -> None:
    """``uniqa data``: ``list`` and the stages of the data group."""
    p = sub.add_parser("data", help="dataset manifests: list sources, prepare a manifest, build the sample")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    ls = dsub.add_parser("list", help="list the dataset sources and their options")
    ls.set_defaults(func=_list)
    for command in stages:
        register_stage(dsub, command)


def _list(args) -> int:
    from uniqa.data.sources import SOURCES

    for name in SOURCES.names():
        s = SOURCES.get(name)
        rng = f"{s.mos_range[0]:g}-{s.mos_range[1]:g}" if s.mos_range else "from data"
        print(f"{name:10s} {s.task or 'from data':10s} MOS {rng:9s} {s.description}")
        for opt in s.options:
            print(f"{'':10s}   -o {opt}=...  {s.option_help(opt)}")
    return 0
