"""``uniqa data list | prepare`` (and, from the sample module, ``sample``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset manifests: list sources, prepare a manifest, build the sample")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    ls = dsub.add_parser("list", help="list the dataset sources and their options")
    ls.set_defaults(func=_list)

    pr = dsub.add_parser("prepare", help="read a dataset's official files and write its manifest (Parquet)")
    pr.add_argument("name", help="dataset source name (see `uniqa data list`)")
    pr.add_argument("--root", required=True, help="dataset root: local folder or s3://bucket/prefix")
    pr.add_argument("--out", required=True, help="output folder for manifest shards (local or s3://)")
    pr.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                    help="source option, e.g. -o mos_column=MOS (see `uniqa data list`)")
    pr.add_argument("--config", help="YAML/JSON PrepareConfig file")
    pr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="PrepareConfig override, e.g. --set binning=quantile")
    pr.add_argument("--allow-missing", action="store_true",
                    help="drop rows whose image file is missing (listed in OUT/_missing.txt) instead of failing")
    pr.set_defaults(func=_prepare)

    from uniqa.data.sample import register_sample  # stdlib-only at import: `uniqa --help` stays fast

    register_sample(dsub)


def _list(args) -> int:
    from uniqa.data.sources import SOURCES

    for name in SOURCES.names():
        s = SOURCES.get(name)
        rng = f"{s.mos_range[0]:g}-{s.mos_range[1]:g}" if s.mos_range else "from data"
        print(f"{name:10s} {s.task or 'from data':10s} MOS {rng:9s} {s.description}")
        for opt, text in s.options.items():
            print(f"{'':10s}   -o {opt}=...  {text}")
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

    from uniqa.config import load_config
    from uniqa.data.prepare import PrepareConfig, format_summary, prepare
    from uniqa.errors import UniqaError

    overrides = list(args.set) + (["allow_missing=true"] if args.allow_missing else [])
    try:
        cfg = load_config(PrepareConfig, args.config, overrides)
        summary = prepare(args.name, args.root, args.out, cfg, **parse_options(args.option))
    except UniqaError as e:
        if "\n" in str(e):
            raise UniqaError(" ".join(str(e).split())) from e
        raise
    except (OSError, pa.ArrowException) as e:  # storage failures the sources did not name themselves
        raise UniqaError(" ".join(f"{type(e).__name__}: {e}".split())) from e
    print(format_summary(summary, args.out))
    return 0
