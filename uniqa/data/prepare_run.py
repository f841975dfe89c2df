"""``uniqa data prepare`` as a stage: a dataset's official files (source ``name`` at ``root``, source options as
``-o key=value``) -> its manifest shards under ``out`` (:mod:`uniqa.data.prepare`), recomputed on every run (the
files it reads cannot be fingerprinted cheaply). Runs in this process and needs no Ray.

Every image file is checked (one listing per directory); missing files fail the run with their names unless
``allow_missing`` is set, in which case they are dropped and listed in ``OUT/_missing.txt`` and in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass

from uniqa import storage
from uniqa.data.prepare import (
    MISSING_SHOWN,
    PrepareConfig,
    drop_missing,
    format_summary,
    missing_files,
    read_dataset,
    split_source,
    summarise,
)
from uniqa.data.sources import get_source
from uniqa.errors import UniqaError
from uniqa.schema import MANIFEST
from uniqa.stage import Outcome, Plan, Run, StageSummary
from uniqa.tables import write_table


@dataclass(kw_only=True)
class PreparePlan(Plan):
    name: str
    root: str
    options: dict[str, str]


def parse_options(items: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict (values stay strings; each source parses its own)."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UniqaError(f"--option {item!r} is not of the form key=value")
        options[key.strip()] = value
    return options


def preflight(name: str, root: str, option: list[str] | None, out: str, cfg: PrepareConfig) -> PreparePlan:
    """The source exists and takes the options given (``-o key=value`` items)."""
    options = parse_options(list(option or []))
    source = get_source(name)
    unknown = sorted(set(options) - set(source.options))
    if unknown:
        raise UniqaError(f"dataset {name!r} has no option {unknown[0]!r}; options: {sorted(source.options)}")
    return PreparePlan(inputs={"name": name, "root": root, "options": options}, resume="never", name=name,
                       root=root, options=options)


def work(plan: PreparePlan, out: str, cfg: PrepareConfig, run: Run) -> Outcome:
    """Read the dataset, check its image files and write the manifest; prints its figures unless quiet.

    ``rows_in`` = records the source found, ``rows_out`` = manifest rows, ``rows_dropped`` = missing images
    dropped under ``allow_missing``; ``details`` holds the dataset, the image folder used, the split source and
    the figures of :func:`~uniqa.data.prepare.summarise`. Bad input raises one :class:`UniqaError` line (a
    source's multi-line message, a storage error) before anything is written."""
    import pyarrow as pa

    try:
        outcome = _write(plan.name, plan.root, plan.options, out, cfg)
    except UniqaError as e:
        raise UniqaError(" ".join(str(e).split())) from e
    except (OSError, pa.ArrowException) as e:
        raise UniqaError(" ".join(f"{type(e).__name__}: {e}".split())) from e
    if run.progress:
        print(format_summary(outcome.details, out))
    return outcome


def _write(name: str, root: str, options: dict[str, str], out: str, cfg: PrepareConfig) -> Outcome:
    table, records = read_dataset(name, root, cfg, **options)
    rows_in = len(table)
    uris = table["image_uri"].to_pylist()
    check = cfg.check_files and not (records is not None and records.files_listed)
    missing = missing_files(uris) if check else []
    if missing and not cfg.allow_missing:
        raise UniqaError(
            f"{len(missing)} of {len(uris)} image files listed by {name!r} are missing: "
            f"{', '.join(missing[:MISSING_SHOWN])}{' ...' if len(missing) > MISSING_SHOWN else ''}; "
            "fix --root / -o image_dir=..., or pass --allow-missing to drop them (listed in OUT/_missing.txt)"
        )
    if missing:
        if len(missing) == len(uris):
            raise UniqaError(f"every image file listed by {name!r} is missing (e.g. {missing[0]})")
        table = drop_missing(table, missing, out)
    elif storage.exists(storage.join(out, "_missing.txt")):  # a stale list from an earlier run
        fs, path = storage.resolve(storage.join(out, "_missing.txt"))
        fs.delete_file(path)
    write_table(table, out, MANIFEST, cfg.rows_per_shard)
    details = {
        "dataset": name,
        "image_dir": records.image_dir if records is not None else None,
        "split_source": split_source(records, cfg),
        **summarise(table, missing, records.notes if records is not None else None),
    }
    return Outcome(rows_in=rows_in, rows_out=len(table), rows_written=len(table), rows_dropped=len(missing),
                   unit="images", details=details)


def run_prepare(name: str, root: str, out: str, cfg: PrepareConfig = PrepareConfig(), *, progress: bool = True,
                address: str | None = None, options: dict[str, str] | None = None) -> StageSummary:
    """Prepare dataset ``name`` at ``root`` (source ``options``) into ``out`` (:func:`uniqa.executor.execute`)."""
    from uniqa.executor import execute

    items = [f"{k}={v}" for k, v in (options or {}).items()]
    return execute("prepare", [name, root, items], out, cfg, progress=progress, address=address)
