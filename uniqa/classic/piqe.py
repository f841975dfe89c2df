"""PIQE (Venkatanath et al. 2015), MATLAB's algorithm as pypiqe 1.2 implements it, vectorised over 16x16 blocks.

No parameter file: the constants (block 16, activity and impairment thresholds 0.1, edge segments of 6 px)
are the algorithm's. Gray is OpenCV's 8-bit ITU-R 601 luminance of the RGB image (fixed point, rounded).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from uniqa.classic.mscn import as_uint8_image, mscn

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
WINDOW = 6
MIN_SIDE = BLOCK


def implementation() -> str:
    return "piqe: uniqa-classic/1 MATLAB piqe as in pypiqe 1.2 (block 16, thresholds 0.1, window 6), no parameter file"


def opencv_gray(image: np.ndarray) -> np.ndarray:
    """OpenCV's ``COLOR_BGR2GRAY`` of the BGR view of uint8 RGB: (9798 R + 19235 G + 3735 B + 2^14) >> 15."""
    if image.ndim == 2:
        return image
    rgb = image.astype(np.int32)
    y = (rgb[..., 0] * 9798 + rgb[..., 1] * 19235 + rgb[..., 2] * 3735 + (1 << 14)) >> 15
    return y.astype(np.uint8)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """Normalised 7-tap Gaussian, sigma 7/6: ``cv2.getGaussianKernel(7, 7/6, CV_64F)`` to within 1 ulp."""
    x = np.arange(7) - 3
    g = np.exp(-(x * x) / (2 * (7 / 6) ** 2))
    return g / g.sum()


def _std(x: np.ndarray) -> np.ndarray:
    """Sample standard deviation (ddof=1) along the last axis."""
    return np.std(x, axis=-1, ddof=1)


def score(image: np.ndarray) -> float:
    """PIQE score in [0, 100] (lower is better) of an HxW or HxWx3 uint8 RGB image."""
    gray = opencv_gray(as_uint8_image(image, "piqe", MIN_SIDE))
    h, w = gray.shape
    gray = np.pad(gray, ((0, -h % BLOCK), (0, -w % BLOCK)), mode="symmetric")
    peak = int(gray.max())
    if peak == 0:
        return 100.0  # pypiqe: 0/0 makes every block inactive, so the score is (0 + 1) / (1 + 0) * 100
    img = np.round(255 * (gray / peak))
    norm = mscn(img, _window(), 1.0, "nearest")  # OpenCV GaussianBlur with BORDER_REPLICATE

    rows, cols = norm.shape[0] // BLOCK, norm.shape[1] // BLOCK
    blocks = norm.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    var = np.var(blocks.reshape(len(blocks), -1), axis=1, ddof=1)
    active = var > ACTIVITY_THRESHOLD
    blocks, var = blocks[active], var[active]
    if not len(blocks):
        return 100.0

    # Noticeable distortion: any 6-px segment of any block edge with std < 0.1.
    edges = np.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], axis=1)
    segments = np.lib.stride_tricks.sliding_window_view(edges, WINDOW, axis=-1)  # (n, 4, 11, 6)
    impaired = (_std(segments) < IMPAIRED_THRESHOLD).any(axis=(1, 2))

    # Noise: center (columns 7, 8) vs surround std; pypiqe's second np.delete removes original column 9, not 8.
    sigma = np.sqrt(var)
    center = np.concatenate([blocks[:, :, 7], blocks[:, :, 8]], axis=1)
    surround = np.delete(blocks, [7, 9], axis=2).reshape(len(blocks), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _std(center) / _std(surround)
        ratio = np.where(np.isnan(ratio), 0.0, ratio)
        beta = np.abs(sigma - ratio) / np.maximum(sigma, ratio)
    noisy = sigma > 2 * beta

    distortion = np.sum(np.where(impaired, 1 - var, 0.0) + np.where(noisy, var, 0.0))
    return float((distortion + 1) / (1 + len(blocks)) * 100)
