"""Views of one image (uint8 in, uint8 out; pixel normalisation happens in :mod:`uniqa.models.encoder`).

The one place views are cut, below scoring, features and training (METHOD §3). Test-time protocols:

- ``crops10``: 10 random ``size`` x ``size`` crops of the un-resized image, positions drawn from
  ``numpy.random.default_rng(seed)`` (the reference protocol, METHOD §3). Callers pass
  :func:`image_seed` ``(run seed, image_id)``, so every image gets its own positions and a rerun the same.
- ``five``: centre, top-left, top-right, bottom-left, bottom-right crops, in that order. The centre
  crop starts at ``((H - size) // 2, (W - size) // 2)``.
- ``full``: the whole image resized to ``size`` x ``size`` (aspect ratio not kept).

Rule for small images: before cropping, an image whose short side is below ``size`` is resized
(bicubic) so that its short side equals ``size``, keeping the aspect ratio (long side rounded).
Larger images are never resized here for the crop protocols (a decode size, e.g. SPAQ's 448, is applied
earlier, when the image is decoded: :mod:`uniqa.data.images`).

Training views (:func:`train_view`): view ``k`` of an image is a random ``size`` crop of the un-resized image,
mirrored with probability 1/2, drawn from ``default_rng([image_seed(seed, image_id), k])``: the cached
features (``uniqa features``) and the exact adapter mode (re-cropping every epoch) cut the same pixels.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from uniqa.errors import UniqaError

VIEW_PROTOCOLS = ("crops10", "five", "full")
VIEW_COUNTS = {"crops10": 10, "five": 5, "full": 1}
# How view positions are derived from (seed, image_id). Part of scoring's fingerprint and of the features' identity,
# so a folder cut with other positions is never resumed with these: change it whenever the crops change.
VIEW_SCHEME = "per-image-sha256-seed/1"


def image_seed(seed: int, image_id: str) -> int:
    """A 63-bit seed for one image: the run's ``seed`` combined with a stable hash of ``image_id``
    (sha256, so the same on every machine and Python process, unlike ``hash()``)."""
    digest = hashlib.sha256(f"{int(seed)}\0{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def image_views(image: np.ndarray, protocol: str, size: int, seed: int, image_id: str) -> np.ndarray:
    """:func:`make_views` with the per-image seed of ``image_id`` under the run's ``seed``."""
    return make_views(image, protocol, size, seed=image_seed(seed, image_id))


def train_view(image: np.ndarray, size: int, seed: int, image_id: str, index: int) -> np.ndarray:
    """Training view number ``index`` of an image (flip + random crop), the same in every run and process."""
    return random_view(image, size, np.random.default_rng([image_seed(seed, image_id), int(index)]))


def make_views(image: np.ndarray, protocol: str, size: int, seed: int = 0) -> np.ndarray:
    """HxWx3 uint8 image -> (V, size, size, 3) uint8 views; V is ``VIEW_COUNTS[protocol]``."""
    image = check_image(image)
    if protocol not in VIEW_COUNTS:
        raise UniqaError(f"unknown view protocol {protocol!r}; valid: {list(VIEW_PROTOCOLS)}")
    if size < 1:
        raise UniqaError(f"view size must be a positive number of pixels, got {size}")
    if protocol == "full":
        return resize(image, size, size)[None]
    image = upscale_to(image, size)
    boxes = random_corners(image.shape, size, 10, seed) if protocol == "crops10" else five_corners(image.shape, size)
    return np.stack([image[top : top + size, left : left + size] for top, left in boxes])


def random_view(image: np.ndarray, size: int, rng: np.random.Generator, flip: bool = True) -> np.ndarray:
    """One training view (METHOD §3): a random ``size`` crop of the un-resized image, randomly mirrored."""
    image = upscale_to(check_image(image), size)
    (top, left), = random_corners(image.shape, size, 1, rng)  # fmt: skip
    view = image[top : top + size, left : left + size]
    return np.ascontiguousarray(view[:, ::-1]) if flip and rng.random() < 0.5 else view


def check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
        raise UniqaError(f"expected an HxWx3 uint8 RGB image, got shape {shape} dtype {dtype}")
    if min(image.shape[:2]) < 1:
        raise UniqaError(f"empty image of shape {image.shape}")
    return image


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize (PIL) to exactly ``height`` x ``width``."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def upscale_to(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is at least ``size`` (aspect kept); images already that large are unchanged."""
    h, w = image.shape[:2]
    if min(h, w) >= size:
        return image
    scale = size / min(h, w)
    return resize(image, max(size, round(h * scale)), max(size, round(w * scale)))


def random_corners(shape: tuple, size: int, n: int, seed: int | np.random.Generator) -> list[tuple[int, int]]:
    """``n`` top-left corners of ``size`` crops drawn uniformly inside an image of ``shape``."""
    rng = np.random.default_rng(seed)
    tops = rng.integers(0, shape[0] - size + 1, size=n)
    lefts = rng.integers(0, shape[1] - size + 1, size=n)
    return [(int(t), int(left)) for t, left in zip(tops, lefts)]


def five_corners(shape: tuple, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the centre and the four corner crops."""
    bottom, right = shape[0] - size, shape[1] - size
    return [(bottom // 2, right // 2), (0, 0), (0, right), (bottom, 0), (bottom, right)]
