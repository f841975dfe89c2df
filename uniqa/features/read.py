"""Reading a feature cache back (for ``uniqa adapt``): its key, and the features of chosen images as arrays."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uniqa import sink, storage
from uniqa.errors import UniqaError
from uniqa.schema import FEATURES
from uniqa.tables import dataset_schema, parquet_files, read_columns

RUN_FILE = "_run.json"


def read_identity(uri: str) -> dict:
    """The key a feature cache was written with (``_run.json``: model_checksum, protocol, seed, ...)."""
    path = storage.join(uri, RUN_FILE)
    if not storage.exists(path):
        raise UniqaError(f"{uri} is not a feature cache (no {RUN_FILE}); make one with `uniqa features`")
    return json.loads(storage.read_bytes(path))


def check_identity(uri: str, expected: dict) -> dict:
    """The cache's identity; every key of ``expected`` must match (else one :class:`UniqaError` naming it)."""
    found = read_identity(uri)
    for key, want in expected.items():
        if found.get(key) != want:
            what = {"model_checksum": "model", "decode": "decode size"}.get(key, key)
            raise UniqaError(f"features {uri} were made with {key} {found.get(key)!r}, this run's {what} gives "
                             f"{want!r}: features from another {what} do not fit; pass the matching --features or "
                             "none (adapt then computes them)")
    return found


def missing_ids(uri: str, ids: list[str]) -> list[str]:
    """The ``ids`` with no row in the cache (only the id column is read)."""
    done = sink.output_state(uri).id_set()
    return [i for i in ids if i not in done]


@dataclass
class CachedFeatures:
    """Features of ``ids`` in that order: ``train`` [N, K, D] and ``test`` [N, T, D] (float32); ``failed`` maps
    an image that could not be encoded to its error (its rows stay zero)."""

    ids: list[str]
    train: np.ndarray
    test: np.ndarray
    failed: dict[str, str]


def load_features(uri: str, ids: list[str], train_views: int, test_views: int) -> CachedFeatures:
    """The features of ``ids`` (every one must be in the cache: see :func:`missing_ids`)."""
    files = parquet_files(uri)
    FEATURES.check_columns(dataset_schema(files), uri)
    wanted = pa.array(ids, pa.string())
    table = read_columns(files, ["image_id", "view_kind", "view_index", "feature", "error"],
                         filter=pc.field("image_id").isin(wanted))
    position = {image_id: i for i, image_id in enumerate(ids)}
    pos = np.array([position[i] for i in table["image_id"].to_pylist()], np.int64)
    errors = table["error"].to_pylist()
    failed = {ids[p]: e for p, e in zip(pos, errors) if e is not None}
    good = table.filter(pc.is_null(table["error"]))
    gpos = pos[np.array([e is None for e in errors], bool)]
    flat = good["feature"].combine_chunks()
    dim = int(pc.list_value_length(flat)[0].as_py()) if len(flat) else 0
    values = flat.flatten().to_numpy(zero_copy_only=False).reshape(len(good), dim).astype(np.float32, copy=False)
    kinds = good["view_kind"].to_numpy(zero_copy_only=False)
    index = good["view_index"].to_numpy(zero_copy_only=False).astype(np.int64)
    train = np.zeros((len(ids), train_views, dim), np.float32)
    test = np.zeros((len(ids), test_views, dim), np.float32)
    for kind, out in (("train", train), ("test", test)):
        rows = kinds == kind
        if rows.any() and index[rows].max() >= out.shape[1]:
            raise UniqaError(f"features {uri} hold {kind} view {index[rows].max()}, more than the {out.shape[1]} "
                             "its _run.json declares")
        out[gpos[rows], index[rows]] = values[rows]
    return CachedFeatures(list(ids), train, test, failed)
