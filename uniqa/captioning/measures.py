"""Vectorised no-reference image measures for the offline ``attributes`` captioner.

Every function takes an HxWx3 uint8 RGB array (or its luminance) and returns plain floats. Luminance
is BT.601 luma in grey levels (0-255). The estimators (each a few numpy array operations):

- ``noise``: Gaussian noise sigma (grey levels), robust MAD of Immerkaer's Laplacian-difference
  residual ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` (which cancels smooth structure; its noise gain is 6):
  ``sigma = 1.4826 * median(|r|) / 6``.
- ``sharpness``: RMS second difference ``[1, -2, 1]`` along 0, 45, 90 and 135 degrees, in the weakest
  direction (motion blur flattens one direction only), with the noise's share removed
  (``sqrt(max(var(d) - 6 sigma^2, 0))``: i.i.d. noise of variance ``sigma^2`` adds ``6 sigma^2``), per 100
  grey levels of RMS contrast (``/ (std(luma) + 5) * 100``) so that dimming or flattening an image does
  not read as blur. Blur lowers it; noise alone does not raise it.
- ``brightness`` (mean luma / 255), ``dark_clip`` / ``bright_clip`` (fractions of pixels <= 5 or
  >= 250): exposure.
- ``contrast``: RMS contrast, the standard deviation of luma / 255.
- ``colourfulness``: Hasler & Suesstrunk (2003) ``sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2)``
  with ``rg = R - G`` and ``yb = (R + G) / 2 - B`` (0 = grey; ~15 slightly, ~59 quite, >80 highly colourful).
- ``blockiness``: JPEG 8x8 blocking, the mean absolute luma step across 8-pixel block boundaries over
  the mean step inside blocks (rows and columns averaged): ~1 without blocking, > 1.2 visible.
- ``pixelation``: the share of neighbouring pixel columns (and rows) that are identical in >= 90% of the
  rows (columns), axes averaged: ``(b - 1) / b`` for an image enlarged from ``b``-pixel blocks, ~0 for a
  photograph (noise, texture and gradients differ somewhere in almost every column pair).
Aesthetic cues, from a coarse saliency map (frequency-tuned: distance of each blurred pixel from
the image's mean colour in an opponent space) and the HSV hue histogram:
- the "subject" is the most salient 10% of a 32x32 grid of cells; from its weighted centroid:
  ``balance``: 1 - 2 * |horizontal centroid - 0.5| (1 = visual weight centred left-right);
  ``thirds``: 1 - distance to the nearest rule-of-thirds point / 0.471;
  ``centred``: 1 - distance to the centre / 0.707;
  ``edge``: the share of the subject's saliency on the outermost ring of cells (a cut-off subject).
- ``harmony``: largest share of saturation-weighted hue mass inside one 90-degree arc (analogous) or
  two opposite 30-degree arcs (complementary), Cohen-Or-style hue templates; ``saturation``: mean HSV S.
- ``isolation``: sharpest 4x4-grid cell's Laplacian RMS over the median cell's (shallow depth of field
  / subject isolation when high).
"""

from __future__ import annotations

import numpy as np

THIRDS = np.array([(x, y) for x in (1 / 3, 2 / 3) for y in (1 / 3, 2 / 3)])
_THIRDS_MAX = float(np.hypot(1 / 3, 1 / 3) * np.sqrt(2))  # farthest a point can be from its nearest third (~0.471)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, float32 grey levels (0-255)."""
    rgb = rgb.astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def laplacian(y: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of the interior pixels."""
    return y[1:-1, :-2] + y[1:-1, 2:] + y[:-2, 1:-1] + y[2:, 1:-1] - 4.0 * y[1:-1, 1:-1]


def noise_sigma(y: np.ndarray) -> float:
    """Gaussian noise sigma in grey levels (robust MAD of Immerkaer's residual)."""
    if min(y.shape) < 3:
        return 0.0
    r = (y[:-2, :-2] + y[:-2, 2:] + y[2:, :-2] + y[2:, 2:]
         - 2.0 * (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]) + 4.0 * y[1:-1, 1:-1])
    return float(1.4826 * np.median(np.abs(r)) / 6.0)


def second_differences(y: np.ndarray) -> list[np.ndarray]:
    """Second differences of the interior pixels along 0, 90, 45 and 135 degrees."""
    c = y[1:-1, 1:-1]
    return [y[1:-1, :-2] - 2 * c + y[1:-1, 2:], y[:-2, 1:-1] - 2 * c + y[2:, 1:-1],
            y[:-2, :-2] - 2 * c + y[2:, 2:], y[:-2, 2:] - 2 * c + y[2:, :-2]]


def sharpness(y: np.ndarray, sigma: float) -> float:
    """Weakest direction's noise-corrected RMS second difference, per 100 grey levels of RMS contrast."""
    if min(y.shape) < 3:
        return 0.0
    weakest = min(float(d.var()) for d in second_differences(y))
    return float(100.0 * np.sqrt(max(weakest - 6.0 * sigma**2, 0.0)) / (float(y.std()) + 5.0))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk colourfulness M (0 for grey images)."""
    rgb = rgb.astype(np.float32)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def blockiness(y: np.ndarray, block: int = 8) -> float:
    """Mean |luma step| across block boundaries / mean step inside blocks (1 = no blocking)."""
    ratios = []
    for d in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):
        if d.shape[1] < 2 * block:
            continue
        at_boundary = (np.arange(d.shape[1]) % block) == block - 1
        inside = d[:, ~at_boundary].mean()
        ratios.append(float(d[:, at_boundary].mean() / (inside + 1e-3)))
    return float(np.mean(ratios)) if ratios else 1.0


def pixelation(rgb: np.ndarray, rate: float = 0.9) -> float:
    """Share of adjacent column pairs (and row pairs) that are identical in at least ``rate`` of the rows
    (columns), averaged over the two axes: (b - 1) / b for b-pixel blocks, ~0 for photographs."""
    shares = []
    for a in (rgb, rgb.transpose(1, 0, 2)):
        if a.shape[1] < 2:
            continue
        same = np.all(a[:, 1:] == a[:, :-1], axis=-1)  # rows x (columns - 1)
        shares.append(float((same.mean(axis=0) >= rate).mean()))
    return float(np.mean(shares)) if shares else 0.0


def block_mean(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean of ``a`` (HxW[xC]) over a rows x cols grid of cells (edges trimmed to fit)."""
    h, w = a.shape[0] // rows * rows, a.shape[1] // cols * cols
    a = a[:h, :w]
    return a.reshape(rows, h // rows, cols, w // cols, *a.shape[2:]).mean(axis=(1, 3))


def opponent(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB -> (..., 3) opponent space: luma, R - G, (R + G) / 2 - B (linear)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([0.299 * r + 0.587 * g + 0.114 * b, r - g, 0.5 * (r + g) - b], -1)


def saliency(rgb: np.ndarray, grid: int = 32) -> np.ndarray:
    """grid x grid frequency-tuned saliency: opponent-colour distance of each cell from the mean colour
    (the opponent transform is linear, so cells are averaged in RGB first)."""
    cells = block_mean(rgb.astype(np.float32), min(grid, rgb.shape[0]), min(grid, rgb.shape[1]))
    mean = rgb.reshape(-1, 3).mean(0, dtype=np.float64)
    return np.linalg.norm(opponent(cells) - opponent(mean), axis=-1)


def composition(sal: np.ndarray, top: float = 0.1) -> dict[str, float]:
    """Balance, rule-of-thirds and centredness of the centroid of the most salient ``top`` share of cells,
    and ``edge``: the share of that salient mass on the outermost ring of cells (each in [0, 1])."""
    weights = np.where(sal >= np.quantile(sal, 1.0 - top), sal, 0.0)
    total = float(weights.sum())
    if total <= 1e-6:
        return {"balance": 1.0, "thirds": 0.0, "centred": 1.0, "edge": 0.0}
    ys, xs = (np.arange(n, dtype=np.float64) + 0.5 for n in sal.shape)
    cx = float((weights.sum(0) * xs).sum() / total / sal.shape[1])
    cy = float((weights.sum(1) * ys).sum() / total / sal.shape[0])
    d_third = float(np.min(np.hypot(THIRDS[:, 0] - cx, THIRDS[:, 1] - cy)))
    inner = weights[1:-1, 1:-1].sum() if min(sal.shape) > 2 else 0.0
    return {
        "balance": 1.0 - 2.0 * abs(cx - 0.5),
        "thirds": max(0.0, 1.0 - d_third / _THIRDS_MAX),
        "centred": max(0.0, 1.0 - float(np.hypot(cx - 0.5, cy - 0.5)) / float(np.sqrt(0.5))),
        "edge": float((total - inner) / total),
    }


def hue_saturation(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HSV hue (degrees) and saturation (0-1) per pixel, vectorised."""
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)  # faster than max(-1) on axis 3
    delta = mx - mn
    safe = np.maximum(delta, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return hue * 60.0, delta / np.maximum(mx, 1e-6)


def harmony(rgb: np.ndarray, bins: int = 72) -> tuple[float, float]:
    """(harmony, mean saturation): best hue-template share of the saturation-weighted hue mass."""
    hue, sat = hue_saturation(rgb)
    hist = np.bincount((hue.ravel() / (360 / bins)).astype(int) % bins, weights=sat.ravel(), minlength=bins)
    mean_sat = float(sat.mean())
    if hist.sum() <= 1e-6:
        return 1.0, mean_sat
    hist = hist / hist.sum()
    cum = np.r_[0.0, np.cumsum(np.concatenate([hist, hist]))]
    arc = lambda width: cum[width:width + bins] - cum[:bins]  # noqa: E731  mass of [i, i + width) for each i
    analogous = arc(bins // 4)  # 90 degrees
    narrow = arc(bins // 12)  # 30 degrees
    complementary = narrow + np.roll(narrow, -bins // 2)
    return float(max(analogous.max(), complementary.max())), mean_sat


def isolation(y: np.ndarray, grid: int = 4) -> float:
    """Sharpest grid cell's RMS Laplacian over the median cell's (>= 1)."""
    if min(y.shape) < 3 * grid:
        return 1.0
    lap2 = block_mean(laplacian(y) ** 2, grid, grid).ravel()
    rms = np.sqrt(lap2)
    return float(rms.max() / (np.median(rms) + 1.0))


def measure(rgb: np.ndarray) -> dict[str, float]:
    """All measures of one RGB image (see the module docstring for each)."""
    y = luma(rgb)
    sigma = noise_sigma(y)
    harm, sat = harmony(rgb)
    return {
        "sharpness": sharpness(y, sigma),
        "noise": sigma,
        "brightness": float(y.mean() / 255.0),
        "dark_clip": float((y <= 5).mean()),
        "bright_clip": float((y >= 250).mean()),
        "contrast": float(y.std() / 255.0),
        "colourfulness": colourfulness(rgb),
        "blockiness": blockiness(y),
        "pixelation": pixelation(rgb),
        "harmony": harm,
        "saturation": sat,
        "isolation": isolation(y),
        **composition(saliency(rgb)),
    }
