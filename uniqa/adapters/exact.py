"""The exact mode: features re-encoded from images every epoch (what the reference code does), through the same
seeded views, decode sizes and encoder pass as the cache, so training on either gives the same adapter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from uniqa.data.images import DecodeConfig, load_image, row_decode
from uniqa.models.encoder import ImageEncoder

IMAGES_PER_PASS = 64  # images decoded and encoded at a time (memory bound, not a result)


def manifest_row_sizes(manifest: str, ids: Sequence[str]) -> list[int | None]:
    """The manifest's ``decode_size`` of each of ``ids``, in that order (None: as stored, or no such column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from uniqa.data.images import DECODE_SIZE_COLUMN, row_size
    from uniqa.tables import dataset_schema, parquet_files, read_columns

    files = parquet_files(manifest)
    if DECODE_SIZE_COLUMN not in dataset_schema(files).names:
        return [None] * len(ids)
    table = read_columns(files, ["image_id", DECODE_SIZE_COLUMN],
                         filter=pc.field("image_id").isin(pa.array(list(ids), pa.string())))
    sizes = dict(zip(table["image_id"].to_pylist(), table[DECODE_SIZE_COLUMN].to_pylist()))
    return [row_size(sizes.get(i)) for i in ids]


class ExactSource:
    """Decode -> view -> encode on demand for the images ``uris`` / ``ids`` (positions index them). ``row_sizes``:
    each image's ``decode_size`` from the manifest (:func:`manifest_row_sizes`), used unless ``decode`` sets a size
    for all (:func:`uniqa.data.images.row_decode`), as the feature cache decodes them."""

    def __init__(self, uris: list[str], ids: list[str], encoder: ImageEncoder, seed: int, train_views: int,
                 test_protocol: str = "crops10", decode: DecodeConfig = DecodeConfig(),
                 row_sizes: Sequence[int | None] | None = None):
        self.uris, self.ids, self.encoder, self.seed = uris, ids, encoder, seed
        self.train_views, self.test_protocol, self.decode = train_views, test_protocol, decode
        self.row_sizes = list(row_sizes) if row_sizes is not None else [None] * len(ids)
        self.size = encoder.image_size[0]

    def image(self, p: int) -> np.ndarray:
        """The decoded image at position ``p``, at its decode size."""
        return load_image(self.uris[p], row_decode(self.decode, self.row_sizes[p]))

    def __call__(self, epoch: int, positions: np.ndarray) -> torch.Tensor:
        """Training view ``epoch % K`` of each image, re-cropped and re-encoded: [len(positions), D]."""
        from uniqa.data.views import train_view

        def views(p: int) -> np.ndarray:
            return train_view(self.image(p), self.size, self.seed, self.ids[p], epoch % self.train_views)[None]

        return self._encode(positions, views)[:, 0]

    def test(self, positions: np.ndarray) -> torch.Tensor:
        """The test views of each image, encoded: [len(positions), T, D]."""
        from uniqa.data.views import image_views

        def views(p: int) -> np.ndarray:
            return image_views(self.image(p), self.test_protocol, self.size, self.seed, self.ids[p])

        return self._encode(positions, views)

    def _encode(self, positions: np.ndarray, views) -> torch.Tensor:
        parts = []
        for start in range(0, len(positions), IMAGES_PER_PASS):
            batch = np.stack([views(int(p)) for p in positions[start : start + IMAGES_PER_PASS]])
            flat = torch.from_numpy(batch.reshape(-1, *batch.shape[2:])).to(self.encoder.mean.device)
            parts.append(self.encoder(flat).cpu().reshape(len(batch), batch.shape[1], -1))
        return torch.cat(parts)
