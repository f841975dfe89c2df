"""Pure batch functions of scoring (no Ray, no torch): decode + views, and the output rows.

A batch is a ``dict[str, np.ndarray]`` (Ray Data's numpy format). A row whose image cannot be decoded
or cut into views keeps going with its ``error`` set and all-zero views; the model skips it and its
scores come out null.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa

from uniqa.data.batches import decode_batch, decode_columns
from uniqa.data.images import DECODE_SIZE_COLUMN, DecodeConfig


@lru_cache(maxsize=16)
def view_shape(protocol: str, size: int) -> tuple[int, ...]:
    """(V, size, size, 3) of ``protocol`` (measured on a blank image)."""
    from uniqa.data.views import make_views

    return tuple(make_views(np.zeros((size, size, 3), np.uint8), protocol, size).shape)


def views_batch(
    batch: dict[str, np.ndarray], decode: DecodeConfig, protocol: str | None, size: int | None, seed: int = 0,
    classic: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """``image_id, image_uri`` [, ``decode_size``] -> ``image_id, image_uri, views`` (uint8 [B, V, S, S, 3]; none
    when ``protocol`` is None: no model head), ``error``, and ``<metric>_raw`` (float64) for each classic metric in
    ``classic``. A row's ``decode_size`` (the manifest's) sets its decode size unless ``decode`` sets one for all.

    Crop positions are seeded per image (``seed`` combined with the row's ``image_id``, see
    :func:`uniqa.data.views.image_seed`). Classic metrics see the whole decoded image; one that cannot be
    computed (e.g. an image too small for it) is NaN, a null in the output, and leaves the row's other heads alone.
    Never raises for a bad image: decoding and view errors become the row's ``error``."""
    from uniqa.classic import classic_score
    from uniqa.data.views import image_views
    from uniqa.errors import UniqaError
    from uniqa.schema import raw_column

    decoded = decode_batch(decode_columns(batch), decode, size_column=DECODE_SIZE_COLUMN)
    errors = np.asarray(decoded["error"], dtype=object)
    views = None if protocol is None else np.zeros((len(errors), *view_shape(protocol, size)), np.uint8)
    raw = {name: np.full(len(errors), np.nan) for name in classic}
    for i, image in enumerate(decoded["image"]):
        if image is None:
            continue
        try:
            if views is not None:
                views[i] = image_views(image, protocol, size, seed, str(batch["image_id"][i]))
        except Exception as e:  # a view failure is this row's error, not the batch's
            errors[i] = f"{_name(batch['image_uri'][i])}: cannot make {protocol!r} views ({type(e).__name__}: {e})"
            continue
        for name in classic:
            try:
                raw[name][i] = classic_score(name, image)
            except UniqaError:  # e.g. too small for the metric: this value is null, the row goes on
                pass
    out = {"image_id": batch["image_id"], "image_uri": batch["image_uri"], "error": errors}
    out.update({raw_column(name): values for name, values in raw.items()})
    return out if views is None else {**out, "views": views}


def classic_scores(batch: dict[str, np.ndarray], heads: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """{column: higher-is-better score} of classic ``heads`` ((column, metric) pairs) from a views batch's
    ``<metric>_raw`` values: the published values, negated (NIQE, BRISQUE and PIQE are lower-is-better)."""
    from uniqa.schema import raw_column

    return {name: -np.asarray(batch[raw_column(metric)], np.float64) for name, metric in heads}


def classic_table(batch: dict[str, np.ndarray], heads: list[tuple[str, str]], checksum: str) -> pa.Table:
    """Output rows when every head is classic (no model): ``views_batch`` output -> scores rows."""
    return scores_table(batch, classic_scores(batch, heads), checksum, raw=classic_raw(batch, heads))


def classic_raw(batch: dict[str, np.ndarray], heads: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """{``<column>_raw``: published value} of classic ``heads`` from a views batch."""
    from uniqa.schema import raw_column

    return {raw_column(name): np.asarray(batch[raw_column(metric)], np.float64) for name, metric in heads}


def row_errors(values) -> list[str | None]:
    """The ``error`` column as str | None. Ray turns an all-null column into float NaNs between stages."""
    return [None if e is None or isinstance(e, (float, np.floating)) or e == "" else str(e) for e in values]


def scores_table(
    batch: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    checksum: str,
    embeddings: np.ndarray | None = None,
    raw: dict[str, np.ndarray] | None = None,
) -> pa.Table:
    """Output rows of a views batch: ids, one float64 column per head and per ``raw`` column (null where
    ``error`` is set or the value is NaN), the optional embedding (list<float32>), ``error``, ``model_checksum``."""
    errors = row_errors(batch["error"])
    failed = np.array([e is not None for e in errors], dtype=bool)
    columns: dict[str, pa.Array] = {
        "image_id": pa.array([str(v) for v in batch["image_id"]], pa.string()),
        "image_uri": pa.array([None if v is None else str(v) for v in batch["image_uri"]], pa.string()),
    }
    for name, values in {**scores, **(raw or {})}.items():
        values = np.asarray(values, np.float64)
        columns[name] = pa.array(values, pa.float64(), mask=failed | np.isnan(values))
    if embeddings is not None:
        flat = pa.array(np.asarray(embeddings, np.float32).reshape(-1), pa.float32())
        dim = embeddings.shape[1] if embeddings.ndim == 2 else 0
        offsets = pa.array(np.arange(len(errors) + 1, dtype=np.int32) * dim)
        columns["embedding"] = pa.ListArray.from_arrays(offsets, flat, mask=pa.array(failed))
    columns["error"] = pa.array(errors, pa.string())
    columns["model_checksum"] = pa.array([checksum] * len(errors), pa.string())
    return pa.table(columns)


def _name(source) -> str:
    return source if isinstance(source, str) else "<image>"
