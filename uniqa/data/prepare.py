"""Records from a source -> a validated, sharded manifest: what ``uniqa data prepare`` (the stage,
:mod:`uniqa.data.prepare_run`) reads, checks and writes. :func:`prepare` runs the stage and returns its summary's
``details`` dict (rows, levels, split counts, ...).

Every image file is checked (one listing per directory, not one request per image); missing files
fail the run with their names unless ``allow_missing`` is set, in which case they are dropped and
listed in ``{out}/_missing.txt`` and in the summary — never silently.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from uniqa import storage
from uniqa.data import levels as L
from uniqa.data.sources import Records, Source, get_source
from uniqa.data.sources.base import LEVEL_RANGES
from uniqa.errors import UniqaError
from uniqa.schema import LEVELS, MANIFEST, TASKS, validate_manifest

SPLIT_MODES = ("auto", "seeded")
LEVEL_RANGE_MODES = ("auto", *LEVEL_RANGES)
MISSING_SHOWN = 5  # missing files named in the error message / summary


@dataclass(frozen=True)
class PrepareConfig:
    binning: str = "equal"  # level bins: equal width or quantile (METHOD §1)
    splits: str = "auto"  # auto: the dataset's official split where it has one, else seeded; seeded: always seeded
    seed: int = 0  # split i uses seed + i
    train_fraction: float = 0.8  # fraction of content groups in train
    # range the level words are binned over: auto = the source's choice (observed for TID2013, METHOD §6;
    # published elsewhere), published = the dataset's published score range, observed = the data's min-max
    level_range: str = "auto"
    check_files: bool = True  # verify every image file exists
    allow_missing: bool = False  # drop missing images (listed in _missing.txt) instead of failing
    rows_per_shard: int = 100_000

    def __post_init__(self):
        if self.binning not in L.BINNINGS:
            raise UniqaError(f"binning must be one of {list(L.BINNINGS)}, got {self.binning!r}")
        if self.splits not in SPLIT_MODES:
            raise UniqaError(f"splits must be one of {list(SPLIT_MODES)}, got {self.splits!r}")
        if self.level_range not in LEVEL_RANGE_MODES:
            raise UniqaError(f"level_range must be one of {list(LEVEL_RANGE_MODES)}, got {self.level_range!r}")
        if not 0 < self.train_fraction < 1:
            raise UniqaError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.rows_per_shard < 1:
            raise UniqaError(f"rows_per_shard must be >= 1, got {self.rows_per_shard}")


def _listing_key(uri: str) -> str:
    return storage.absolute(uri)


def missing_files(uris: list[str]) -> list[str]:
    """The URIs that do not exist, checked with one listing per parent directory."""
    parents = sorted({posixpath.dirname(_listing_key(u)) for u in uris})
    present: set[str] = set()
    for folder in parents:
        if not storage.is_dir(folder):
            continue
        fs, path = storage.resolve(folder)
        for info in fs.get_file_info(pafs.FileSelector(path, recursive=False)):
            if info.type == pafs.FileType.File:
                present.add(("s3://" + info.path) if storage.is_s3(folder) else info.path)
    return [u for u in uris if _listing_key(u) not in present]


def _score_spec(source: Source, records: Records) -> tuple[str, str, tuple[float, float] | None, bool]:
    """(dataset, task, published range or None, higher_is_better): the records' overrides, else the source's."""
    task = records.task or source.task
    if task not in TASKS:
        raise UniqaError(f"dataset {source.name!r}: task {task!r} is not one of {list(TASKS)}")
    better = source.higher_is_better if records.higher_is_better is None else records.higher_is_better
    return records.dataset or source.name, task, records.mos_range or source.mos_range, better


def normalise_records(dataset: str, records: Records, mos_range, higher_is_better: bool, hint: str = "") -> np.ndarray:
    """``mos_norm`` for the records (NaN where unlabelled); no published range: the data's min-max. ``hint``
    is added to an out-of-range error (how to give another range)."""
    mos = np.array([np.nan if m is None else m for m in records.mos], dtype=np.float64)
    labelled = mos[~np.isnan(mos)]
    if labelled.size == 0:
        return mos
    if mos_range is None:
        mos_range = (float(labelled.min()), float(labelled.max()))
        if mos_range[0] == mos_range[1]:
            raise UniqaError(
                f"dataset {dataset!r}: every MOS equals {mos_range[0]:g} and no range was given; cannot normalise "
                "(give the published range with -o mos_min=... -o mos_max=...)"
            )
    try:
        return L.normalise(mos, *mos_range, higher_is_better, names=records.image_id)
    except UniqaError as e:
        if not hint:
            raise
        raise UniqaError(f"{e}; {hint}") from e


def build_manifest(name: str, records: Records, cfg: PrepareConfig) -> pa.Table:
    """Normalise, bin, split and assemble a manifest table (validated)."""
    source = get_source(name)
    n = len(records.image_id)
    if n == 0:
        raise UniqaError(f"dataset {name!r} produced no rows")
    dataset, task, mos_range, better = _score_spec(source, records)
    hint = "give the range with -o mos_min=... -o mos_max=..." if "mos_max" in source.options else ""
    mos_norm = normalise_records(dataset, records, mos_range, better, hint)
    level_range = source.level_range if cfg.level_range == "auto" else cfg.level_range
    span = L.observed_span(mos_norm) if level_range == "observed" else None
    groups = records.group or list(records.image_id)
    if records.split is not None and cfg.splits == "auto":
        splits = L.official_splits(records.split)
    else:
        splits = L.seeded_splits(groups, cfg.train_fraction, cfg.seed)
    columns = {
        "image_id": records.image_id,
        "image_uri": records.image_uri,
        "dataset": [dataset] * n,
        "task": [task] * n,
        "mos": [None if m is None else float(m) for m in records.mos],
        "mos_norm": [None if np.isnan(v) else float(v) for v in mos_norm],
        "level": L.levels(mos_norm, cfg.binning, span),
        "group": groups,
        **splits,
        "comments": records.comments or [None] * n,
        "attrs": [list((a or {}).items()) for a in records.attrs] if records.attrs else [None] * n,
        "decode_size": [records.decode_size] * n,
    }
    table = pa.table({k: pa.array(v, type=MANIFEST.schema.field(k).type) for k, v in columns.items()})
    return validate_manifest(table, f"dataset {name!r}")


def split_source(records: Records | None, cfg: PrepareConfig) -> str:
    """Where the manifest's split columns came from, in words (the summary's ``split_source``)."""
    if records is None:
        return "the input manifest's split columns"
    if records.split is not None and cfg.splits == "auto":
        return records.split_source or "official"
    unit = "reference groups" if records.group else "images"
    return f"seeded (split_i: seed {cfg.seed} + i, {cfg.train_fraction:g} of the {unit} in train)"


def summarise(table: pa.Table, missing: list[str], notes: dict[str, int] | None = None) -> dict:
    """Rows, labelled count, MOS range, level histogram, split_0 counts, decode sizes (None: as stored), missing
    files, protocol notes."""
    from uniqa.data.images import table_decode_sizes

    mos = table["mos"].drop_null().to_numpy()
    counts = Counter(table["level"].drop_null().to_pylist())
    split0 = Counter("none" if s is None else s for s in table["split_0"].to_pylist())
    return {
        "rows": len(table),
        "labelled": len(mos),
        "datasets": sorted(set(table["dataset"].to_pylist())),
        "tasks": sorted(set(table["task"].to_pylist())),
        "mos_range": [float(mos.min()), float(mos.max())] if len(mos) else None,
        "levels": {lv: counts.get(lv, 0) for lv in LEVELS},
        "split_0": dict(sorted(split0.items())),
        "decode_sizes": table_decode_sizes(table),
        "missing_files": len(missing),
        "missing_examples": missing[:MISSING_SHOWN],
        "notes": dict(notes or {}),
    }


def format_summary(details: dict, out: str) -> str:
    """A prepare summary's details as a few human-readable lines."""
    rng = details["mos_range"]
    lines = [
        f"{', '.join(details['datasets'])} ({', '.join(details['tasks'])}): {details['rows']} rows, "
        f"{details['labelled']} labelled -> {out}",
        "MOS range: " + (f"{rng[0]:g} .. {rng[1]:g}" if rng else "none (unlabelled)"),
        "levels: " + ", ".join(f"{k} {v}" for k, v in details["levels"].items()),
        "split_0: " + ", ".join(f"{k} {v}" for k, v in details["split_0"].items()),
    ]
    if details.get("split_source"):
        lines.append(f"splits: {details['split_source']}")
    if any(details.get("decode_sizes") or []):
        sizes = ", ".join("as stored" if s is None else f"{s} px" for s in details["decode_sizes"])
        lines.append(f"decoded to (shorter side): {sizes}")
    if details.get("image_dir") is not None:
        lines.append(f"image folder: {details['image_dir'] or '(the root)'}")
    lines.append(f"missing files: {details['missing_files']}"
                 + (f" (dropped, listed in {storage.join(out, '_missing.txt')})" if details["missing_files"] else ""))
    lines += [f"note: {k} = {v}" for k, v in details["notes"].items()]
    return "\n".join(lines)


def drop_missing(table: pa.Table, missing: list[str], out: str) -> pa.Table:
    storage.write_bytes(storage.join(out, "_missing.txt"), ("\n".join(missing) + "\n").encode())
    return table.filter(pc.invert(pc.is_in(table["image_uri"], value_set=pa.array(missing, pa.string()))))


def _absolute(root: str) -> str:
    """``s3://`` roots lose a trailing slash, local ones become absolute; other schemes are refused."""
    if storage.is_s3(root):
        return root.rstrip("/")
    return storage.resolve(root)[1]


def read_dataset(name: str, root: str, cfg: PrepareConfig, **options) -> tuple[pa.Table, Records | None]:
    """Run source ``name`` on ``root`` -> (validated manifest table, its records or None for manifests).

    (Not :func:`uniqa.data.images.read_source`, which reads one image's bytes.)"""
    source = get_source(name)
    unknown = sorted(set(options) - set(source.options))
    if unknown:
        raise UniqaError(f"dataset {name!r} has no option {unknown[0]!r}; options: {sorted(source.options)}")
    root = _absolute(root)
    records = source.read(root, **options)
    if isinstance(records, pa.Table):
        return records, None
    if not records.image_id:
        raise UniqaError(f"dataset {name!r} at {root} lists no images")
    return build_manifest(name, records, cfg), records


def prepare(name: str, root: str, out: str, cfg: PrepareConfig = PrepareConfig(), **options) -> dict:
    """The ``prepare`` stage (:func:`uniqa.data.prepare_run.run_prepare`) with source options as keywords; returns
    the summary's ``details`` (``rows``, ``levels``, ``split_0``, ``image_dir``, ``split_source``, ...)."""
    from uniqa.data.prepare_run import run_prepare

    return run_prepare(name, root, out, cfg, progress=False, options=options).details
