"""The exact mode: features re-encoded from images every epoch (what the reference code does), through the same
seeded views and the same encoder pass as the cache, so training on either gives the same adapter."""

from __future__ import annotations

import numpy as np
import torch

from uniqa.data.images import DecodeConfig, load_image
from uniqa.models.encoder import ImageEncoder

IMAGES_PER_PASS = 64  # images decoded and encoded at a time (memory bound, not a result)


class ExactSource:
    """Decode -> view -> encode on demand for the images ``uris`` / ``ids`` (positions index them)."""

    def __init__(self, uris: list[str], ids: list[str], encoder: ImageEncoder, seed: int, train_views: int,
                 test_protocol: str = "crops10", decode: DecodeConfig = DecodeConfig()):
        self.uris, self.ids, self.encoder, self.seed = uris, ids, encoder, seed
        self.train_views, self.test_protocol, self.decode = train_views, test_protocol, decode
        self.size = encoder.image_size[0]

    def __call__(self, epoch: int, positions: np.ndarray) -> torch.Tensor:
        """Training view ``epoch % K`` of each image, re-cropped and re-encoded: [len(positions), D]."""
        from uniqa.data.views import train_view

        def views(p: int) -> np.ndarray:
            image = load_image(self.uris[p], self.decode)
            return train_view(image, self.size, self.seed, self.ids[p], epoch % self.train_views)[None]

        return self._encode(positions, views)[:, 0]

    def test(self, positions: np.ndarray) -> torch.Tensor:
        """The test views of each image, encoded: [len(positions), T, D]."""
        from uniqa.data.views import image_views

        def views(p: int) -> np.ndarray:
            image = load_image(self.uris[p], self.decode)
            return image_views(image, self.test_protocol, self.size, self.seed, self.ids[p])

        return self._encode(positions, views)

    def _encode(self, positions: np.ndarray, views) -> torch.Tensor:
        parts = []
        for start in range(0, len(positions), IMAGES_PER_PASS):
            batch = np.stack([views(int(p)) for p in positions[start : start + IMAGES_PER_PASS]])
            flat = torch.from_numpy(batch.reshape(-1, *batch.shape[2:])).to(self.encoder.mean.device)
            parts.append(self.encoder(flat).cpu().reshape(len(batch), batch.shape[1], -1))
        return torch.cat(parts)
