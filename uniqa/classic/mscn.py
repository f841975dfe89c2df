"""Shared pieces of the classic metrics: input checks, parameter-file lookup, MSCN normalisation."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from uniqa.errors import UniqaError

if TYPE_CHECKING:
    import numpy as np

INSTALL_HINT = "pip install 'uniqa[classic]'"


def as_uint8_image(image: np.ndarray, metric: str, min_side: int) -> np.ndarray:
    """Check `image` is HxW or HxWx{3,4} uint8 with both sides >= `min_side`; return it without any alpha channel."""
    import numpy as np

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise UniqaError(f"{metric}: expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise UniqaError(f"{metric}: expected an HxW or HxWx3 image, got shape {image.shape}")
    h, w = image.shape[:2]
    if min(h, w) < min_side:
        raise UniqaError(
            f"{metric}: image {h}x{w} is too small for {metric.upper()} (needs both sides >= {min_side} px)"
        )
    return image


@lru_cache(maxsize=16)
def package_dir(package: str) -> Path:
    """Directory of the installed top-level `package`, found without importing (executing) it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UniqaError(f"package {package!r} (it ships the metric's parameters) is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def parameter_file(package: str, relative: str) -> Path:
    """Path of the parameter file `relative` inside the installed `package`; UniqaError if absent."""
    path = package_dir(package) / relative
    if not path.is_file():
        raise UniqaError(f"parameter file {relative!r} is missing from package {package!r}: {INSTALL_HINT}")
    return path


@lru_cache(maxsize=16)
def sha256_short(path: Path) -> str:
    """'sha256:' + the first 12 hex digits of the file's SHA-256."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def distribution_version(*names: str) -> str:
    """Version of the first installed distribution among `names` ('unknown' if none is)."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def blur(image: np.ndarray, window: np.ndarray, mode: str) -> np.ndarray:
    """Separable correlation with the 1-D `window` along rows then columns; intermediates keep ``image.dtype``."""
    from scipy.ndimage import correlate1d

    tmp = correlate1d(image, window, axis=0, output=image.dtype, mode=mode)
    return correlate1d(tmp, window, axis=1, output=image.dtype, mode=mode)


def mscn(image: np.ndarray, window: np.ndarray, c: float, mode: str) -> np.ndarray:
    """(x - mu) / (sigma + c), mu and E[x^2] from `blur`, sigma = sqrt(|E[x^2] - mu^2|), all in ``image.dtype``."""
    import numpy as np

    mu = blur(image, window, mode)
    sigma = np.sqrt(np.abs(blur(image * image, window, mode) - mu * mu))
    return (image - mu) / (sigma + image.dtype.type(c))
