"""``uniqa data list | prepare`` (and, from the sample module, ``sample``).

``uniqa data prepare NAME --root PATH --out OUT`` is a stage on the stage contract (:data:`PREPARE`): the
common flags ``--out --config --set --quiet --ray-address`` of :mod:`uniqa.stagecli`, the config built as
``PrepareConfig`` defaults <- ``--config`` <- ``--set`` <- ``--allow-missing``, :func:`uniqa.data.prepare.run_prepare`
called, its summary printed and its exit code returned. The config file may also hold ``name:``, ``root:`` and
``out:``. Prepare runs in this process and needs no Ray: ``--ray-address`` is accepted for uniformity.
"""

from __future__ import annotations

import argparse

from uniqa.stagecli import Arg, StageCommand, add_common_arguments

PREPARE = StageCommand(
    name="prepare",
    help="read a dataset's official files and write its manifest (Parquet)",
    config="uniqa.data.prepare:PrepareConfig",
    run="uniqa.data.prepare:run_prepare",
    inputs=(
        Arg("--name", "dataset source name (see `uniqa data list`)"),  # given as the positional NAME
        Arg("--root", "dataset root: local folder or s3://bucket/prefix (a file for `table`/`manifest`) "
            "(default: `root:` of --config)"),
    ),
    options=(
        Arg("--allow-missing", "drop rows whose image file is missing (listed in OUT/_missing.txt) instead of "
            "failing", key="allow_missing", store_true=True),
    ),
    description="Read a dataset's official files and write its manifest (Parquet shards) and OUT/_summary.json.\n"
                "Prepare runs in this process and needs no Ray; --ray-address is accepted for uniformity.",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset manifests: list sources, prepare a manifest, build the sample")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    ls = dsub.add_parser("list", help="list the dataset sources and their options")
    ls.set_defaults(func=_list)

    pr = dsub.add_parser("prepare", help=PREPARE.help, description=PREPARE.description,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    name, root = PREPARE.inputs
    pr.add_argument("name", nargs="?", metavar="NAME", help=name.help)
    pr.add_argument(root.flag, help=root.help)
    pr.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                    help="source option, e.g. -o mos_column=MOS (see `uniqa data list`)")
    for arg in PREPARE.options:
        pr.add_argument(arg.flag, action="store_true", default=None, help=arg.help)
    add_common_arguments(pr, "PrepareConfig")
    pr.set_defaults(func=_prepare)

    from uniqa.data.sample import register_sample  # stdlib-only at import: `uniqa --help` stays fast

    register_sample(dsub)


def _list(args) -> int:
    from uniqa.data.sources import SOURCES

    for name in SOURCES.names():
        s = SOURCES.get(name)
        rng = f"{s.mos_range[0]:g}-{s.mos_range[1]:g}" if s.mos_range else "from data"
        print(f"{name:10s} {s.task or 'from data':10s} MOS {rng:9s} {s.description}")
        for opt in s.options:
            print(f"{'':10s}   -o {opt}=...  {s.option_help(opt)}")
    return 0


def parse_options(items: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict (values stay strings; each source parses its own)."""
    from uniqa.errors import UniqaError

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UniqaError(f"--option {item!r} is not of the form key=value")
        options[key.strip()] = value
    return options


def _prepare(args) -> int:
    import pyarrow as pa

    from uniqa.data.prepare import format_summary, run_prepare
    from uniqa.errors import UniqaError
    from uniqa.stagecli import resolve

    try:
        options = parse_options(args.option)
        (name, root), out, cfg = resolve(PREPARE, args)
        summary = run_prepare(name, root, out, cfg, progress=not args.quiet, address=args.ray_address,
                              options=options)
    except UniqaError as e:
        text = str(e)
        if text.startswith("no name: pass --name"):
            raise UniqaError("no dataset name: give NAME (see `uniqa data list`) or set `name:` in the --config "
                             "file") from e
        if "\n" in text:
            raise UniqaError(" ".join(text.split())) from e
        raise
    except (OSError, pa.ArrowException) as e:  # storage failures the sources did not name themselves
        raise UniqaError(" ".join(f"{type(e).__name__}: {e}".split())) from e
    if not args.quiet:
        print(format_summary(summary.details, out))
    print(summary.line())
    return summary.exit_code
