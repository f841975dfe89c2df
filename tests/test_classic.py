"""Classic IQA metrics (uniqa.classic) against their reference packages: brisque 0.2.0, scikit-video, pypiqe 1.2."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageFilter

from uniqa.classic import CLASSIC_METRICS, classic_score, implementation
from uniqa.classic import brisque as our_brisque
from uniqa.classic import mscn as our_mscn
from uniqa.classic import piqe as our_piqe
from uniqa.errors import UniqaError

TOL = 1e-4  # absolute, for all three metrics


def _synthetic(h: int = 256, w: int = 320) -> np.ndarray:
    """Deterministic natural-ish RGB image: 1/f^0.7 coloured noise + hard-edged checkerboard + ramp."""
    rng = np.random.default_rng(0)
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    f[0, 0] = 1
    mix = rng.normal(size=(3, 3)) * 0.3 + np.eye(3)
    chans = [np.fft.irfft2((rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**0.7, s=(h, w))
             for _ in range(3)]
    img = np.stack(chans, -1) @ mix
    img = (img - img.mean()) / img.std()
    yy, xx = np.mgrid[0:h, 0:w]
    img += 1.5 * ((yy // 64 + xx // 80) % 2)[..., None] * np.array([1.0, 0.6, 0.3])
    img += np.linspace(-1, 1, w)[None, :, None]
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 235 + 10).round().astype(np.uint8)


def _images() -> dict[str, np.ndarray]:
    base = _synthetic()
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "JPEG", quality=10)
    return {
        "synthetic": base,
        "blur": np.asarray(Image.fromarray(base).filter(ImageFilter.GaussianBlur(2))),
        "noise": np.clip(base + np.random.default_rng(1).normal(0, 20, base.shape), 0, 255).astype(np.uint8),
        "jpeg": np.asarray(Image.open(buf).convert("RGB")),
        "astronaut": np.ascontiguousarray(skimage.data.astronaut()[:257, :301]),
        "coffee": np.ascontiguousarray(skimage.data.coffee()[40:297, 150:451]),
    }


IMAGES = _images()


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, float]]:
    return {name: {m: classic_score(m, img) for m in CLASSIC_METRICS} for name, img in IMAGES.items()}


@pytest.mark.parametrize("name", list(IMAGES))
def test_brisque_matches_reference(name, scores):
    from brisque import BRISQUE

    class Brisque020(BRISQUE):
        # brisque 0.2.0 fails on NumPy 2 only because its features are shape-(1,) arrays (float() in
        # scale_features); flatten them to floats around the parent's result. Nothing else is patched.
        def calculate_brisque_features(self, *args, **kwargs):
            features = super().calculate_brisque_features(*args, **kwargs)
            return np.array([np.asarray(f).item() for f in features], float)

    assert scores[name]["brisque"] == pytest.approx(Brisque020(url=False).score(IMAGES[name]), abs=TOL)


@pytest.mark.parametrize("name", list(IMAGES))
def test_niqe_matches_scikit_video(name, scores):
    import skvideo.measure

    gray = np.asarray(Image.fromarray(IMAGES[name]).convert("L")).astype(float)
    assert min(gray.shape) > 193  # scikit-video's own limit
    assert scores[name]["niqe"] == pytest.approx(float(skvideo.measure.niqe(gray)[0]), abs=TOL)


@pytest.mark.parametrize("name", list(IMAGES))
def test_piqe_matches_pypiqe(name, scores):
    import cv2
    import pypiqe

    rgb = IMAGES[name]
    assert np.array_equal(our_piqe.opencv_gray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    # pypiqe applies COLOR_BGR2GRAY to its input: hand it BGR so its gray is the correct RGB luminance.
    assert scores[name]["piqe"] == pytest.approx(pypiqe.piqe(rgb[..., ::-1])[0], abs=TOL)


def test_opencv_gray_on_random_colours():
    import cv2

    rgb = np.random.default_rng(2).integers(0, 256, (512, 1024, 3), dtype=np.uint8)
    rgb[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3], [254, 1, 9], [7, 7, 7]]
    assert np.array_equal(our_piqe.opencv_gray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("shape", [(256, 320), (257, 301), (31, 17), (16, 16), (3, 5)])
def test_half_scale_matches_cv2_resize(shape):
    import cv2

    x = np.random.default_rng(3).random(shape)
    ref = cv2.resize(x, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    ours = our_brisque.half_scale(x)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_orientation(scores):
    base = scores["synthetic"]
    for metric in ("brisque", "niqe"):
        assert scores["blur"][metric] > base[metric], metric
        assert scores["jpeg"][metric] > base[metric], metric
    for metric in CLASSIC_METRICS:
        assert scores["noise"][metric] > base[metric], metric


def test_small_images():
    crop = IMAGES["synthetic"][:128, :128]
    for metric in CLASSIC_METRICS:
        assert np.isfinite(classic_score(metric, crop)), metric
    assert np.isfinite(classic_score("niqe", IMAGES["astronaut"][:40, :300]))  # patch 20 on a thin strip
    tiny = IMAGES["synthetic"][:10, :10]
    for metric in CLASSIC_METRICS:
        with pytest.raises(UniqaError, match="too small"):
            classic_score(metric, tiny)


def test_gray_and_rgba_inputs():
    rgb = IMAGES["astronaut"]
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    for metric in CLASSIC_METRICS:
        assert classic_score(metric, rgba) == classic_score(metric, rgb)
        assert np.isfinite(classic_score(metric, gray))
    with pytest.raises(UniqaError, match="uint8"):
        classic_score("piqe", rgb.astype(np.float32))


def test_unknown_metric():
    with pytest.raises(UniqaError, match="'nique'.*niqe, brisque, piqe"):
        classic_score("nique", IMAGES["synthetic"])
    with pytest.raises(UniqaError, match="valid"):
        implementation("ssim")


def test_implementation_strings():
    assert implementation("brisque").startswith("brisque: ")
    assert "brisque 0.2.0 svm.txt sha256:" in implementation("brisque")
    assert "normalize.pickle sha256:" in implementation("brisque")
    assert "niqe_image_params.mat sha256:" in implementation("niqe")
    assert implementation("piqe").startswith("piqe: ")
    assert implementation("niqe") == implementation("niqe")


def test_missing_parameter_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "brisque" else real(name, *a))
    our_mscn.package_dir.cache_clear()
    our_brisque.load_model.cache_clear()
    try:
        with pytest.raises(UniqaError, match=r"pip install 'uniqa\[classic\]'"):
            classic_score("brisque", IMAGES["synthetic"])
    finally:
        our_mscn.package_dir.cache_clear()
        our_brisque.load_model.cache_clear()


def test_libsvm_header_checked():
    with pytest.raises(UniqaError, match="epsilon_svr/rbf"):
        our_brisque.parse_libsvm_model("svm_type epsilon_svr\nkernel_type linear\nrho 0\ntotal_sv 0\nSV\n", 36)
    model = "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho 1.5\nSV\n"
    model += "2 1:1 3:-1\n-1 2:.5\n"
    gamma, rho, coef, sv = our_brisque.parse_libsvm_model(model, 3)
    assert (gamma, rho) == (0.5, 1.5)
    np.testing.assert_array_equal(coef, [2, -1])
    np.testing.assert_array_equal(sv, [[1, 0, -1], [0, 0.5, 0]])


def test_import_loads_no_reference_package():
    code = (
        "import sys, numpy as np\n"
        "from uniqa.classic import CLASSIC_METRICS, classic_score, implementation\n"
        "img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)\n"
        "for m in CLASSIC_METRICS: classic_score(m, img); implementation(m)\n"
        "print(sorted(m for m in ('cv2', 'brisque', 'pypiqe', 'skvideo', 'libsvm') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
