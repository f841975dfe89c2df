"""BRISQUE (Mittal et al. 2012) exactly as brisque 0.2.0 computes it, without OpenCV or libsvm.

Parameters come from the installed ``brisque`` package (``models/svm.txt``, ``models/normalize.pickle``),
located with ``importlib.util.find_spec`` so the package itself (which imports cv2) is never executed.
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from uniqa.classic.mscn import as_uint8_image, blur, distribution_version, parameter_file, sha256_short
from uniqa.errors import UniqaError

MIN_SIDE = 16
_CUBIC_HALF = np.array([-0.09375, 0.59375, 0.59375, -0.09375])  # OpenCV bicubic (A=-0.75) weights at t=0.5


class SvrModel(NamedTuple):
    gamma: float
    rho: float
    coef: np.ndarray  # (n_sv,)
    sv: np.ndarray  # (n_sv, n_features)
    feature_min: np.ndarray
    feature_max: np.ndarray


def parse_libsvm_model(text: str, n_features: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(gamma, rho, coef, support vectors) of a libsvm text model; only epsilon-SVR with an RBF kernel is accepted."""
    lines = [line.strip() for line in text.splitlines()]
    if "SV" not in lines:
        raise UniqaError("libsvm model has no 'SV' section")
    start = lines.index("SV")
    header = {key: value.strip() for key, _, value in (line.partition(" ") for line in lines[:start])}
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf" or "gamma" not in header:
        raise UniqaError(f"BRISQUE needs an epsilon_svr/rbf libsvm model, got {header.get('svm_type')}/"
                         f"{header.get('kernel_type')}")
    rows = [line.split() for line in lines[start + 1:] if line]
    if int(header.get("total_sv", -1)) != len(rows) or len(header.get("rho", "").split()) != 1:
        raise UniqaError(f"libsvm model: total_sv={header.get('total_sv')} rho={header.get('rho')!r} "
                         f"do not fit its {len(rows)} support vectors")
    coef = np.array([float(row[0]) for row in rows])
    sv = np.zeros((len(rows), n_features))
    for i, row in enumerate(rows):
        for item in row[1:]:
            index, value = item.split(":")
            if not 1 <= int(index) <= n_features:
                raise UniqaError(f"libsvm model: feature index {index} outside 1..{n_features}")
            sv[i, int(index) - 1] = float(value)
    return float(header["gamma"]), float(header["rho"]), coef, sv


@lru_cache(maxsize=1)
def load_model() -> SvrModel:
    """The published BRISQUE SVR and feature scaling, read from the installed brisque package."""
    with open(parameter_file("brisque", "models/normalize.pickle"), "rb") as f:
        scale = pickle.load(f)
    lo, hi = np.asarray(scale["min_"], float).ravel(), np.asarray(scale["max_"], float).ravel()
    gamma, rho, coef, sv = parse_libsvm_model(parameter_file("brisque", "models/svm.txt").read_text(), lo.size)
    return SvrModel(gamma, rho, coef, sv, lo, hi)


def implementation() -> str:
    svm, norm = parameter_file("brisque", "models/svm.txt"), parameter_file("brisque", "models/normalize.pickle")
    return (f"brisque: uniqa-classic/1 brisque {distribution_version('brisque')} "
            f"svm.txt {sha256_short(svm)} normalize.pickle {sha256_short(norm)}")


def half_scale(image: np.ndarray) -> np.ndarray:
    """``cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)`` for a 2-D float image.

    Output pixel d samples source 2d + 0.5: taps 2d-1..2d+2 with weights ``_CUBIC_HALF``, indices clamped
    (replicated border); output size round-half-even(n / 2) like OpenCV's cvRound. Rows first, then columns.
    """

    def along(x: np.ndarray, axis: int) -> np.ndarray:
        n = x.shape[axis]
        out_n = round(n * 0.5)
        idx = np.clip(2 * np.arange(out_n)[:, None] + np.arange(-1, 3)[None, :], 0, n - 1)  # (out_n, 4)
        taps = np.take(x, idx, axis=axis)  # axis replaced by (out_n, 4)
        t = [np.take(taps, k, axis=axis + 1) * _CUBIC_HALF[k] for k in range(4)]
        return ((t[0] + t[1]) + t[2]) + t[3]

    return along(along(image, 1), 0)


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """brisque 0.2.0's asymmetric generalised Gaussian fit: (alpha, mean, sigma_l^2, sigma_r^2)."""
    from scipy import optimize, special

    x = x.ravel()
    sq = x**2  # squaring then selecting == selecting then squaring, element for element
    neg, nonneg = x < 0, x >= 0
    left_ms = np.sum(sq[neg]) / np.count_nonzero(neg)
    right_ms = np.sum(sq[nonneg]) / np.count_nonzero(nonneg)
    r_hat = (np.sum(np.abs(x)) / x.size) ** 2 / (np.sum(sq) / x.size)
    g = np.sqrt(left_ms) / np.sqrt(right_ms)
    big_r = r_hat * ((g**3 + 1) * (g + 1)) / ((g**2 + 1) ** 2)

    def phi(a: np.ndarray) -> np.ndarray:
        return special.gamma(2 / a) ** 2 / (special.gamma(1 / a) * special.gamma(3 / a)) - big_r

    alpha = optimize.root(phi, [0.2]).x[0]
    sigma_l, sigma_r = np.sqrt(left_ms), np.sqrt(right_ms)
    const = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    mean = (sigma_r - sigma_l) * const * (special.gamma(2 / alpha) / special.gamma(1 / alpha))
    return alpha, mean, sigma_l**2, sigma_r**2


@lru_cache(maxsize=1)
def _kernel() -> np.ndarray:
    """brisque's normalised 7x7 Gaussian (sigma 7/6), computed as it does."""
    y, x = np.indices((7, 7)) - 3
    sigma = 7 / 6
    k = 1 / (2 * np.pi * sigma**2) * np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return k / np.sum(k)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """1-D factor of `_kernel` (its outer product with itself is the 2-D kernel, up to rounding)."""
    row = _kernel()[3]
    return row / row.sum()


def _local_mean(gray: np.ndarray) -> np.ndarray:
    """brisque's ``convolve2d(gray, kernel, 'same')``: fast separable pass, exact where it decides a sign.

    Where the 7x7 neighbourhood is (nearly) flat, x - mu is 0 or a rounding residue whose sign depends on the
    summation order and decides the AGGD side of the coefficient (and of its pair products). Those pixels are
    recomputed with convolve2d itself, on a stack of their (deduplicated) 7x7 neighbourhoods.
    """
    mu = blur(gray, _window(), "constant")
    ys, xs = np.nonzero(np.abs(gray - mu) < 1e-9)
    if ys.size:
        from scipy.signal import convolve2d  # ~0.8 s to import: only when needed

        hoods = np.lib.stride_tricks.sliding_window_view(np.pad(gray, 3), (7, 7))[ys, xs].reshape(ys.size, 49)
        flat = np.all(hoods == hoods[:, :1], axis=1)  # constant neighbourhoods: one cell per distinct value
        values, inverse = np.unique(hoods[flat, 0], return_inverse=True)
        cells = np.concatenate([np.repeat(values[:, None], 49, axis=1), hoods[~flat]])
        exact = convolve2d(cells.reshape(-1, 7), _kernel(), "same")[3::7, 3]  # a cell's centre sees only its cell
        mu[ys[flat], xs[flat]] = exact[inverse.ravel()]
        mu[ys[~flat], xs[~flat]] = exact[len(values):]
    return mu


def _mscn(gray: np.ndarray) -> np.ndarray:
    """brisque's MSCN: (x - mu) / (sqrt(|mu^2 - E[x^2]|) + 1/255), zero-padded 'same' 7x7 Gaussian."""
    mu = _local_mean(gray)
    sigma = np.sqrt(np.abs(mu**2 - blur(gray**2, _window(), "constant")))
    return (gray - mu) / (sigma + 1 / 255)


def features(gray: np.ndarray) -> np.ndarray:
    """18 BRISQUE features of a float gray image in [0, 1]: MSCN (alpha, var) then H, V, D1, D2 (alpha, mean, l, r)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m = _mscn(gray)
        alpha, _, var_l, var_r = _aggd_fit(m)
        out = [alpha, (var_l + var_r) / 2]
        for pair in (m[:, :-1] * m[:, 1:], m[:-1, :] * m[1:, :], m[:-1, :-1] * m[1:, 1:], m[1:, :-1] * m[:-1, 1:]):
            out.extend(_aggd_fit(pair))
    return np.array(out, float)


def to_gray(image: np.ndarray) -> np.ndarray:
    """skimage.color.rgb2gray of a uint8 image: x * (1/255) @ (0.2125, 0.7154, 0.0721); HxW input: x * (1/255)."""
    gray = np.multiply(image, 1.0 / 255, dtype=np.float64)
    return gray if gray.ndim == 2 else gray @ np.array([0.2125, 0.7154, 0.0721])


def score(image: np.ndarray) -> float:
    """BRISQUE score (lower is better) of an HxW or HxWx3 uint8 RGB image, as brisque 0.2.0 computes it."""
    gray = to_gray(as_uint8_image(image, "brisque", MIN_SIDE))
    feats = np.concatenate([features(gray), features(half_scale(gray))])
    if not np.all(np.isfinite(feats)):
        raise UniqaError("brisque: undefined for this image (a flat image or region gives non-finite statistics)")
    model = load_model()
    scaled = -1 + (2.0 / (model.feature_max - model.feature_min) * (feats - model.feature_min))
    kernel = np.exp(-model.gamma * np.sum((model.sv - scaled) ** 2, axis=1))
    return float(model.coef @ kernel - model.rho)
