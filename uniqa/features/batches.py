"""Pure batch functions of the feature cache (no Ray, no torch): decode + views, and the output rows.

An image's views are, in order: its ``K`` training views (flip + random crop, :func:`uniqa.data.views.train_view`)
then its test views (:func:`uniqa.data.views.image_views`), all at the model's input size and seeded per image.
A row whose image cannot be decoded keeps going with its ``error`` set and all-zero views; it is written as one
row with a null feature. A batch with a ``decode_size`` column (the manifest's) decodes each row at its size
unless the run's ``DecodeConfig`` sets one (:func:`uniqa.data.images.row_decode`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from uniqa import sink
from uniqa.data.batches import decode_batch, decode_columns
from uniqa.data.images import DECODE_SIZE_COLUMN, DecodeConfig
from uniqa.schema import FEATURES


def view_layout(train_views: int, test_protocol: str) -> tuple[list[str], list[int]]:
    """(view kind, view index) of each view slot of an image: K ``train`` then the ``test`` views."""
    from uniqa.data.views import VIEW_COUNTS

    n_test = VIEW_COUNTS[test_protocol]
    return ["train"] * train_views + ["test"] * n_test, [*range(train_views), *range(n_test)]


def image_feature_views(image: np.ndarray, image_id: str, size: int, train_views: int, test_protocol: str,
                        seed: int) -> np.ndarray:
    """Every view of one image, uint8 [K + T, size, size, 3] (the layout of :func:`view_layout`)."""
    from uniqa.data.views import image_views, train_view

    train = [train_view(image, size, seed, image_id, k) for k in range(train_views)]
    test = image_views(image, test_protocol, size, seed, image_id)
    return np.concatenate([np.stack(train), test]) if train else test


def feature_views_batch(batch: dict[str, np.ndarray], decode: DecodeConfig, size: int, train_views: int,
                        test_protocol: str, seed: int) -> dict[str, np.ndarray]:
    """``image_id, image_uri`` [, ``decode_size``] -> ``image_id, views`` (uint8 [B, K + T, S, S, 3]), ``error``;
    never raises."""
    decoded = decode_batch(decode_columns(batch), decode, size_column=DECODE_SIZE_COLUMN)
    errors = np.asarray(decoded["error"], dtype=object)
    n_views = len(view_layout(train_views, test_protocol)[0])
    views = np.zeros((len(errors), n_views, size, size, 3), np.uint8)
    for i, image in enumerate(decoded["image"]):
        if errors[i] is not None and not _is_null(errors[i]):
            continue
        try:
            views[i] = image_feature_views(image, str(batch["image_id"][i]), size, train_views, test_protocol, seed)
        except Exception as e:  # a view failure is this row's error, not the batch's
            errors[i] = f"{batch['image_uri'][i]}: cannot make views ({type(e).__name__}: {e})"
    return {"image_id": batch["image_id"], "views": views, "error": errors}


def _is_null(value) -> bool:
    return value is None or isinstance(value, (float, np.floating)) or value == ""


def row_errors(values) -> list[str | None]:
    """The ``error`` column as str | None (Ray turns an all-null column into NaNs between stages)."""
    return [None if _is_null(e) else str(e) for e in values]


def features_table(batch: dict[str, np.ndarray], train_views: int, test_protocol: str, model_key: str,
                   protocol: str, seed: int) -> pa.Table:
    """Per-image ``image_id, features`` (float32 [B, V, D]), ``error`` -> FEATURES rows: one per view of an
    encoded image, one (null feature) per failed image."""
    kinds, indices = view_layout(train_views, test_protocol)
    errors = row_errors(batch["error"])
    features = np.asarray(batch["features"], np.float32)
    ok = np.array([e is None for e in errors], bool)
    n_views, dim = features.shape[1], features.shape[2]
    ids, kind_col, index_col, err_col = [], [], [], []
    for i, image_id in enumerate(batch["image_id"]):
        if ok[i]:
            ids += [str(image_id)] * n_views
            kind_col += kinds
            index_col += indices
            err_col += [None] * n_views
        else:
            ids.append(str(image_id))
            kind_col.append(None)
            index_col.append(None)
            err_col.append(errors[i])
    flat = pa.array(features[ok].reshape(-1), pa.float32())
    lengths = [dim if k is not None else None for k in kind_col]
    offsets = np.zeros(len(lengths) + 1, np.int32)
    offsets[1:] = np.cumsum([n or 0 for n in lengths])
    mask = pa.array([n is None for n in lengths])
    feature = pa.ListArray.from_arrays(pa.array(offsets), flat, mask=mask)
    n = len(ids)
    return pa.table({
        "image_id": pa.array(ids, pa.string()),
        "view_kind": pa.array(kind_col, pa.string()),
        "view_index": pa.array(index_col, pa.int32()),
        "feature": feature,
        "model_checksum": pa.array([model_key] * n, pa.string()),
        "protocol": pa.array([protocol] * n, pa.string()),
        "seed": pa.array([seed] * n, pa.int64()),
        "error": pa.array(err_col, pa.string()),
    })


def write_features(batch: dict[str, np.ndarray], out: str, train_views: int, test_protocol: str, model_key: str,
                   protocol: str, seed: int) -> pa.Table:
    """Explode one batch of images into view rows and commit it as one part file (:func:`uniqa.sink.write_batch`:
    all views of an image land in the same file, so resume works per image). Returns one row of counts in
    images: ``rows``, ``errors``, ``file``."""
    table = features_table(batch, train_views, test_protocol, model_key, protocol, seed)
    written = sink.write_batch(table, out, FEATURES)
    n_images = len(batch["image_id"])
    errors = sum(e is not None for e in row_errors(batch["error"]))
    return pa.table({"rows": [n_images], "errors": [errors], "file": written["file"].to_pylist()[:1] or [""]})
