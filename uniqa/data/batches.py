"""Decoding inside Ray Data jobs: :func:`decode_batch`, the ``map_batches`` step every image-reading stage uses
(never raises for a bad row: it becomes an ``error``)."""

from __future__ import annotations

import numpy as np

from uniqa.data.images import DECODE_SIZE_COLUMN, DecodeConfig, ImageError, load_image, row_decode
from uniqa.errors import UniqaError


def decode_batch(
    batch: dict[str, np.ndarray],
    cfg: DecodeConfig = DecodeConfig(),
    uri_column: str = "image_uri",
    failed_image: np.ndarray | None = None,
    size_column: str | None = None,
) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` UDF (numpy format): keeps every input column, adds ``image`` (object
    array of HxWx3 uint8 arrays, ``failed_image`` where decoding failed) and ``error`` (None or the
    message naming the file). ``uri_column`` entries may also be encoded bytes. With ``size_column``
    present in the batch, each row is decoded at its own size there (:func:`row_decode`).

    Pass ``failed_image=EMPTY_IMAGE`` when the ``image`` column leaves the UDF into Ray blocks: Ray
    cannot combine a block whose images hold a None (pickled objects) with an all-tensor block. A
    row that arrives with an ``error`` already set keeps it and is not decoded. Never raises for a
    bad row; a missing ``uri_column`` is a configuration error and raises :class:`UniqaError`."""
    if uri_column not in batch:
        raise UniqaError(f"decode_batch: missing column {uri_column!r}; found columns {sorted(batch)}")
    sources = batch[uri_column]
    previous = batch.get("error")
    sizes = batch.get(size_column) if size_column else None
    images = np.empty(len(sources), dtype=object)
    errors = np.empty(len(sources), dtype=object)
    for i, source in enumerate(sources):
        if previous is not None and previous[i]:
            images[i], errors[i] = failed_image, previous[i]
            continue
        images[i], errors[i] = _decode_row(source, cfg if sizes is None else row_decode(cfg, sizes[i]))
        if images[i] is None:
            images[i] = failed_image
    return {**batch, "image": images, "error": errors}


def decode_columns(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns of a batch that decoding reads: ``image_id``, ``image_uri`` and, when present, ``decode_size``."""
    return {k: batch[k] for k in ("image_id", "image_uri", DECODE_SIZE_COLUMN) if k in batch}


def _decode_row(source, cfg: DecodeConfig) -> tuple[np.ndarray | None, str | None]:
    if source is None or (isinstance(source, str) and not source.strip()):
        return None, "missing image URI (null or empty)"
    try:
        return load_image(source if isinstance(source, bytes) else str(source), cfg), None
    except ImageError as e:
        return None, str(e)
