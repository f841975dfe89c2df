"""Records from a source -> a validated, sharded manifest, plus a summary.

Every image file is checked (one listing per directory, not one request per image); missing files
fail the run with their names unless ``allow_missing`` is set, in which case they are dropped and
listed in ``{out}/_missing.txt`` and in the summary — never silently.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from uniqa import storage
from uniqa.data import levels as L
from uniqa.data.sources import Records, get_source
from uniqa.errors import UniqaError
from uniqa.schema import LEVELS, MANIFEST, write_table


@dataclass(frozen=True)
class PrepareConfig:
    binning: str = "equal"  # level bins: equal width or quantile (METHOD §1)
    seed: int = 0  # split i uses seed + i
    train_fraction: float = 0.8
    check_files: bool = True  # verify every image file exists
    allow_missing: bool = False  # drop missing images (listed in _missing.txt) instead of failing
    rows_per_shard: int = 100_000

    def __post_init__(self):
        if self.binning not in L.BINNINGS:
            raise UniqaError(f"binning must be one of {list(L.BINNINGS)}, got {self.binning!r}")
        if not 0 < self.train_fraction < 1:
            raise UniqaError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.rows_per_shard < 1:
            raise UniqaError(f"rows_per_shard must be >= 1, got {self.rows_per_shard}")


def missing_files(uris: list[str]) -> list[str]:
    """The URIs that do not exist, checked with one listing per parent directory."""
    by_dir: dict[str, set[str]] = {}
    for uri in uris:
        parent = posixpath.dirname(uri) if storage.is_s3(uri) else uri.rsplit("/", 1)[0]
        by_dir.setdefault(parent, set())
    present: set[str] = set()
    for parent in by_dir:
        if storage.is_dir(parent):
            fs, path = storage.resolve(parent)
            from pyarrow.fs import FileSelector, FileType

            for info in fs.get_file_info(FileSelector(path, recursive=False)):
                if info.type == FileType.File:
                    present.add(("s3://" + info.path) if storage.is_s3(parent) else info.path)
    import os

    norm = (lambda u: u) if any(storage.is_s3(u) for u in uris) else os.path.abspath
    return [u for u in uris if norm(u) not in present]


def build_manifest(name: str, records: Records, cfg: PrepareConfig) -> pa.Table:
    """Normalise, bin, split and assemble a manifest table (validated)."""
    source = get_source(name)
    mos = np.asarray(records.mos, dtype=np.float64)
    if len(mos) == 0:
        raise UniqaError(f"dataset {name!r} produced no rows")
    lo, hi = source.mos_range if source.mos_range else (float(mos.min()), float(mos.max()))
    if source.mos_range is None and lo == hi:
        raise UniqaError(f"dataset {name!r}: every MOS equals {lo}; cannot normalise")
    mos_norm = L.normalise(mos, lo, hi, source.higher_is_better)
    groups = records.group or list(records.image_id)
    if records.split is not None:
        splits = L.official_splits(records.split)
    else:
        splits = L.seeded_splits(groups, cfg.train_fraction, cfg.seed)
    columns = {
        "image_id": records.image_id,
        "image_uri": records.image_uri,
        "dataset": [name] * len(mos),
        "task": [source.task] * len(mos),
        "mos": mos,
        "mos_norm": mos_norm,
        "level": L.levels(mos_norm, cfg.binning),
        "group": groups,
        **splits,
        "comments": records.comments or [None] * len(mos),
        "attrs": [list((a or {}).items()) for a in records.attrs] if records.attrs else [None] * len(mos),
    }
    table = pa.table({k: pa.array(v, type=MANIFEST.schema.field(k).type) for k, v in columns.items()})
    return MANIFEST.conform(table, f"dataset {name!r}")


def summarise(table: pa.Table, missing: list[str]) -> dict:
    mos = table["mos"].to_numpy()
    counts = Counter(table["level"].to_pylist())
    return {
        "rows": len(table),
        "datasets": sorted(set(table["dataset"].to_pylist())),
        "mos_range": [float(mos.min()), float(mos.max())] if len(mos) else None,
        "levels": {lv: counts.get(lv, 0) for lv in LEVELS},
        "split_0": dict(Counter(table["split_0"].to_pylist())),
        "missing_files": len(missing),
    }


def prepare(name: str, root: str, out: str, cfg: PrepareConfig = PrepareConfig(), **options) -> dict:
    """Read dataset ``name`` at ``root`` and write its manifest shards to ``out``; returns the summary."""
    source = get_source(name)
    unknown = sorted(set(options) - set(source.options))
    if unknown:
        raise UniqaError(f"dataset {name!r} has no option {unknown[0]!r}; options: {sorted(source.options)}")
    records = source.read(root, **options)
    missing = missing_files(records.image_uri) if cfg.check_files else []
    if missing and not cfg.allow_missing:
        shown = ", ".join(missing[:3])
        raise UniqaError(
            f"{len(missing)} of {len(records.image_uri)} image files listed by {name!r} are missing "
            f"(e.g. {shown}); fix the root/image_dir or pass --allow-missing to drop and list them"
        )
    table = build_manifest(name, records, cfg)
    if missing:
        keep = ~np.isin(np.asarray(table["image_uri"].to_pylist(), dtype=object), np.asarray(missing, dtype=object))
        table = table.filter(pa.array(keep))
        storage.write_bytes(storage.join(out, "_missing.txt"), ("\n".join(missing) + "\n").encode())
    write_table(table, out, MANIFEST, cfg.rows_per_shard)
    summary = summarise(table, missing)
    storage.write_bytes(storage.join(out, "_summary.json"), json.dumps(summary, indent=2).encode())
    return summary
