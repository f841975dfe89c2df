"""Pure batch functions of scoring (no Ray, no torch): decode + views, and the output rows.

A batch is a ``dict[str, np.ndarray]`` (Ray Data's numpy format). A row whose image cannot be decoded
or cut into views keeps going with its ``error`` set and all-zero views; the model skips it and its
scores come out null.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa

from uniqa.data.images import DecodeConfig, decode_batch


@lru_cache(maxsize=16)
def view_shape(protocol: str, size: int) -> tuple[int, ...]:
    """(V, size, size, 3) of ``protocol`` (measured on a blank image)."""
    from uniqa.data.views import make_views

    return tuple(make_views(np.zeros((size, size, 3), np.uint8), protocol, size).shape)


def views_batch(
    batch: dict[str, np.ndarray], decode: DecodeConfig, protocol: str, size: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """``image_id, image_uri`` -> ``image_id, image_uri, views`` (uint8 [B, V, S, S, 3]), ``error``.

    Crop positions are seeded per image (``seed`` combined with the row's ``image_id``, see
    :func:`uniqa.data.views.image_seed`). Never raises for a bad image: decoding and view errors become the
    row's ``error``."""
    from uniqa.data.views import image_views

    decoded = decode_batch({"image_id": batch["image_id"], "image_uri": batch["image_uri"]}, decode)
    errors = np.asarray(decoded["error"], dtype=object)
    views = np.zeros((len(errors), *view_shape(protocol, size)), np.uint8)
    for i, image in enumerate(decoded["image"]):
        if image is None:
            continue
        try:
            views[i] = image_views(image, protocol, size, seed, str(batch["image_id"][i]))
        except Exception as e:  # a view failure is this row's error, not the batch's
            errors[i] = f"{_name(batch['image_uri'][i])}: cannot make {protocol!r} views ({type(e).__name__}: {e})"
    return {"image_id": batch["image_id"], "image_uri": batch["image_uri"], "views": views, "error": errors}


def row_errors(values) -> list[str | None]:
    """The ``error`` column as str | None. Ray turns an all-null column into float NaNs between stages."""
    return [None if e is None or isinstance(e, (float, np.floating)) or e == "" else str(e) for e in values]


def scores_table(
    batch: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    checksum: str,
    embeddings: np.ndarray | None = None,
) -> pa.Table:
    """Output rows of a views batch: ids, one float64 column per head (null where ``error`` is set),
    the optional embedding (list<float32>), ``error``, ``model_checksum``."""
    errors = row_errors(batch["error"])
    failed = np.array([e is not None for e in errors], dtype=bool)
    columns: dict[str, pa.Array] = {
        "image_id": pa.array([str(v) for v in batch["image_id"]], pa.string()),
        "image_uri": pa.array([None if v is None else str(v) for v in batch["image_uri"]], pa.string()),
    }
    for name, values in scores.items():
        columns[name] = pa.array(np.asarray(values, np.float64), pa.float64(), mask=failed)
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
