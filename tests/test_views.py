"""Test-time views: shapes, seeded reproducibility, crops inside the image, exact five-crop content."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from uniqa.data.views import (
    VIEW_COUNTS,
    VIEW_PROTOCOLS,
    image_seed,
    image_views,
    make_views,
    random_view,
    train_view,
)
from uniqa.errors import UniqaError


def coded_image(h: int, w: int) -> np.ndarray:
    """Every pixel encodes its own (y, x), so a crop's position can be read off its first pixel."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y % 256, x % 256, (y // 256) * 16 + x // 256], axis=-1).astype(np.uint8)


def decode(pixel: np.ndarray) -> tuple[int, int]:
    r, g, b = (int(v) for v in pixel)
    return (b // 16) * 256 + r, (b % 16) * 256 + g


@pytest.mark.parametrize("protocol", VIEW_PROTOCOLS)
def test_shapes_and_dtype(protocol):
    views = make_views(coded_image(300, 400), protocol, 224)
    assert views.shape == (VIEW_COUNTS[protocol], 224, 224, 3)
    assert views.dtype == np.uint8
    assert VIEW_COUNTS == {"crops10": 10, "five": 5, "full": 1}


def test_crops10_are_seeded_and_inside_the_image():
    image = coded_image(300, 400)
    views = make_views(image, "crops10", 64, seed=3)
    assert np.array_equal(views, make_views(image, "crops10", 64, seed=3))
    assert not np.array_equal(views, make_views(image, "crops10", 64, seed=4))
    corners = [decode(v[0, 0]) for v in views]
    assert len(set(corners)) > 5  # positions really vary
    for view, (top, left) in zip(views, corners):
        assert 0 <= top <= 300 - 64 and 0 <= left <= 400 - 64
        assert np.array_equal(view, image[top : top + 64, left : left + 64])


def test_five_is_centre_and_corners_exactly():
    image = coded_image(100, 131)
    views = make_views(image, "five", 40)
    expected = [image[30:70, 45:85], image[:40, :40], image[:40, -40:], image[-40:, :40], image[-40:, -40:]]
    for view, crop in zip(views, expected):
        assert np.array_equal(view, crop)
    assert [decode(v[0, 0]) for v in views] == [(30, 45), (0, 0), (0, 91), (60, 0), (60, 91)]


def test_full_is_the_whole_image_resized():
    image = coded_image(90, 160)
    (view,) = make_views(image, "full", 64)
    assert np.array_equal(view, np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BICUBIC)))


def test_small_images_are_resized_up_keeping_aspect():
    image = coded_image(50, 100)  # short side 50 < 64 -> 64 x 128 before cropping
    resized = np.asarray(Image.fromarray(image).resize((128, 64), Image.Resampling.BICUBIC))
    views = make_views(image, "five", 64)
    assert np.array_equal(views[1], resized[:, :64]) and np.array_equal(views[2], resized[:, 64:])
    assert np.array_equal(make_views(coded_image(64, 64), "crops10", 64)[0], coded_image(64, 64))


def test_random_view_crops_and_flips():
    image = coded_image(120, 150)
    rng = np.random.default_rng(0)
    views = [random_view(image, 32, rng) for _ in range(20)]
    flipped = 0
    for view in views:
        assert view.shape == (32, 32, 3)
        unflipped = view if decode(view[0, 0])[1] < decode(view[0, -1])[1] else view[:, ::-1]
        flipped += unflipped is not view
        top, left = decode(unflipped[0, 0])
        assert np.array_equal(unflipped, image[top : top + 32, left : left + 32])
    assert 0 < flipped < 20


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32), [[0]]],
)
def test_bad_images_are_rejected(image):
    with pytest.raises(UniqaError, match="HxWx3 uint8"):
        make_views(image, "five", 8)


def test_unknown_protocol_lists_the_valid_ones():
    with pytest.raises(UniqaError, match="crops10"):
        make_views(coded_image(10, 10), "crops7", 8)


def test_test_crops_are_seeded_per_image():
    """METHOD §3: the run's seed combined with image_id: each image its own positions, a rerun the same."""
    image = coded_image(300, 400)
    corners = {i: [decode(v[0, 0]) for v in image_views(image, "crops10", 64, 0, i)] for i in ("a", "b", "c")}
    assert corners["a"] != corners["b"] != corners["c"] != corners["a"]  # same pixels, other ids: other crops
    assert [decode(v[0, 0]) for v in image_views(image, "crops10", 64, 0, "a")] == corners["a"]  # a rerun
    assert [decode(v[0, 0]) for v in image_views(image, "crops10", 64, 1, "a")] != corners["a"]  # another seed
    # the seed is a stable hash (sha256), not Python's salted hash(): a fixed value on every machine
    assert image_seed(0, "I01_01_01.png") == image_seed(0, "I01_01_01.png") == 5220901015780260314
    assert image_seed(0, "a") != image_seed(1, "a") and 0 <= image_seed(7, "x") < 2**63


def test_scoring_views_batch_uses_per_image_crops():
    import io

    from uniqa.data.images import DecodeConfig
    from uniqa.scoring.batches import views_batch

    buf = io.BytesIO()
    Image.fromarray(coded_image(120, 150)).save(buf, "PNG")
    batch = {"image_id": np.array(["x", "y"], dtype=object), "image_uri": np.array([buf.getvalue()] * 2, dtype=object)}
    views = views_batch(batch, DecodeConfig(), "crops10", 32, seed=5)["views"]
    assert not np.array_equal(views[0], views[1])  # identical images, different ids -> different crops
    assert np.array_equal(views[0], image_views(coded_image(120, 150), "crops10", 32, 5, "x"))


def test_train_views_are_seeded_per_image_and_index():
    image = coded_image(120, 150)
    first = train_view(image, 32, 0, "a", 0)
    assert np.array_equal(first, train_view(image, 32, 0, "a", 0))
    others = [train_view(image, 32, 0, "a", k) for k in range(1, 8)] + [train_view(image, 32, 0, "b", 0)]
    assert all(not np.array_equal(first, o) for o in others)
