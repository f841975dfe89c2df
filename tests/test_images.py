"""Image decoding: every zoo kind decodes or fails with its own message, locally, from S3 and in Ray Data."""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import pytest
from PIL import Image
from zoo import ZooCase, build_zoo, good_images

from uniqa import storage
from uniqa.data import images as I
from uniqa.data.batches import decode_batch
from uniqa.data.images import EMPTY_IMAGE, DecodeConfig, ImageError, load_image, to_jpeg_bytes
from uniqa.errors import UniqaError

REQUIRED_KINDS = {
    "one_pixel", "huge_png_header", "wrong_extension", "text_named_jpg", "png_bad_crc", "unicode_space_path",
    "truncated_jpeg", "zero_byte", "missing_file", "cmyk_jpeg", "png_16bit", "palette_transparency",
    "exif_rotated_jpeg", "animated_gif", "one_bit",
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> list[ZooCase]:
    return build_zoo(tmp_path_factory.mktemp("zoo"))


def assert_case(case: ZooCase, image: np.ndarray | None, error: str | None) -> None:
    """The zoo's contract for one decoded row (used for direct calls and Ray output alike)."""
    if case.ok:
        assert error is None, f"{case.name}: unexpected error {error}"
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        case.check(image)
    else:
        assert error is not None, f"{case.name}: decoded but should fail with {case.expect}"
        assert case.uri in error and case.match in error, f"{case.name}: {error!r}"


def test_zoo_has_every_required_kind(zoo):
    names = {c.name for c in zoo}
    assert REQUIRED_KINDS <= names and len(names) >= 15
    assert {c.expect for c in zoo} >= {"ok", "too_large", "not_image", "corrupt", "truncated", "empty", "missing"}


def test_every_zoo_kind_decodes_or_gives_its_specific_error(zoo):
    for case in zoo:
        try:
            image, error = load_image(case.uri), None
        except ImageError as e:
            image, error = None, e
            assert e.kind == case.expect, f"{case.name}: kind {e.kind!r}, expected {case.expect!r}: {e}"
        assert_case(case, image, None if error is None else str(error))


def test_bytes_source_matches_path(zoo):
    cmyk = next(c for c in zoo if c.name == "cmyk_jpeg")
    with open(cmyk.uri, "rb") as f:
        assert np.array_equal(load_image(f.read()), load_image(cmyk.uri))
    with pytest.raises(ImageError, match="<bytes>: empty file"):
        load_image(b"")


def test_image_error_is_a_uniqa_error():
    assert issubclass(ImageError, UniqaError)


def _jpeg(w: int, h: int) -> bytes:
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_resize_sets_the_shorter_side():
    assert load_image(_jpeg(40, 20), DecodeConfig(size=10)).shape == (10, 20, 3)
    assert load_image(_jpeg(30, 90), DecodeConfig(size=12)).shape == (36, 12, 3)
    assert load_image(_jpeg(30, 90)).shape == (90, 30, 3)


def test_draft_decodes_large_jpeg_at_reduced_scale(monkeypatch):
    seen = []
    real = I._to_rgb
    monkeypatch.setattr(I, "_to_rgb", lambda im: (seen.append(im.size), real(im))[1])
    data = _jpeg(800, 600)
    drafted = load_image(data, DecodeConfig(size=100))
    full = load_image(data, DecodeConfig(size=100, draft=False))
    assert seen == [(200, 150), (800, 600)]  # 1/4 scale is the largest that still covers 133x100
    assert drafted.shape == full.shape == (100, 133, 3)
    assert np.abs(drafted.astype(int) - full.astype(int)).mean() < 3
    load_image(data, DecodeConfig(size=350))  # 600 < 2 * 350: no draft
    assert seen[-1] == (800, 600)


def test_bomb_limit_is_per_call_and_leaves_pillow_global_alone(monkeypatch):
    data = _jpeg(100, 100)
    global_limit = Image.MAX_IMAGE_PIXELS
    bomb = r"100x100 = 10000 pixels exceeds the decompression-bomb limit max_pixels=5000"
    with pytest.raises(ImageError, match=bomb):
        load_image(data, DecodeConfig(max_pixels=5000))
    assert load_image(data, DecodeConfig(max_pixels=10_000)).shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == global_limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse 10000 > 2 * 1000
    assert load_image(data, DecodeConfig(max_pixels=10_000)).shape == (100, 100, 3)


def test_decode_config_is_validated():
    with pytest.raises(UniqaError, match="size must be a positive int"):
        DecodeConfig(size=0)
    with pytest.raises(UniqaError, match="max_pixels"):
        DecodeConfig(max_pixels=-1)
    with pytest.raises(UniqaError, match=r"unknown format \['NOPE'\]"):
        DecodeConfig(formats=("JPEG", "NOPE"))
    assert DecodeConfig(formats=("jpeg",)).formats == ("JPEG",)


def test_formats_outside_the_allow_list_are_refused():
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    with pytest.raises(ImageError, match=r"unsupported image format PNG \(allowed: JPEG\)") as e:
        load_image(png.getvalue(), DecodeConfig(formats=("JPEG",)))
    assert e.value.kind == "unsupported"
    with pytest.raises(ImageError, match="unsupported image format EPS"):  # never handed to Ghostscript
        load_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")


def test_decode_batch_keeps_columns_and_reports_each_bad_row(zoo):
    cases = [c for c in zoo if c.name in ("rgb_jpeg", "truncated_jpeg", "missing_file", "png_16bit")]
    batch = {
        "image_id": np.array([c.name for c in cases] + ["null_uri", "failed_upstream"], dtype=object),
        "image_uri": np.array([c.uri for c in cases] + [None, cases[0].uri], dtype=object),
        "error": np.array([None] * len(cases) + [None, "caption stage: timeout"], dtype=object),
    }
    out = decode_batch(batch)
    assert list(out) == ["image_id", "image_uri", "error", "image"]
    assert list(out["image_id"]) == list(batch["image_id"])
    for i, case in enumerate(cases):
        assert_case(case, out["image"][i], out["error"][i])
    assert out["image"][4] is None and out["error"][4] == "missing image URI (null or empty)"
    assert out["image"][5] is None and out["error"][5] == "caption stage: timeout"
    safe = decode_batch(batch, failed_image=EMPTY_IMAGE)
    empty = (0, 0, 3)
    assert [img.shape for img in safe["image"]] == [(20, 40, 3), empty, empty, (8, 10, 3), empty, empty]


def test_decode_batch_names_a_missing_column():
    with pytest.raises(UniqaError, match=r"missing column 'path'; found columns \['image_uri'\]"):
        decode_batch({"image_uri": np.array(["x.jpg"])}, uri_column="path")


def test_to_jpeg_bytes_round_trip():
    arr = np.zeros((12, 20, 3), np.uint8)
    arr[:, 10:] = (0, 200, 0)
    back = load_image(to_jpeg_bytes(arr, quality=95))
    assert back.shape == (12, 20, 3) and np.abs(back.astype(int) - arr).max() < 40
    assert to_jpeg_bytes(arr).startswith(b"\xff\xd8\xff")
    with pytest.raises(ImageError, match="HxWx3 uint8"):
        to_jpeg_bytes(arr.astype(np.float32))


def test_s3_sources_and_errors(s3_bucket, zoo):
    by_name = {c.name: c for c in zoo}
    for name in ("rgb_jpeg", "truncated_jpeg", "exif_rotated_jpeg"):
        with open(by_name[name].uri, "rb") as f:
            storage.write_bytes(f"{s3_bucket}/zoo/{name}.jpg", f.read())
    by_name["exif_rotated_jpeg"].check(load_image(f"{s3_bucket}/zoo/exif_rotated_jpeg.jpg"))
    with pytest.raises(ImageError, match="truncated JPEG data") as e:
        load_image(f"{s3_bucket}/zoo/truncated_jpeg.jpg")
    assert f"{s3_bucket}/zoo/truncated_jpeg.jpg" in str(e.value)
    with pytest.raises(ImageError, match=f"{s3_bucket}/zoo/nope.jpg: file not found"):
        load_image(f"{s3_bucket}/zoo/nope.jpg")
    with pytest.raises(ImageError, match="s3://no-such-bucket-uniqa/a.jpg: ") as e:
        load_image("s3://no-such-bucket-uniqa/a.jpg")
    assert e.value.kind in ("missing", "storage")
    with pytest.raises(ImageError, match="unsupported URI scheme") as e:
        load_image("ftp://host/a.jpg")
    assert e.value.kind == "storage"


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_ray_job_over_zoo_returns_every_row(ray_session, zoo, tmp_path):
    import ray

    goods = good_images(tmp_path / "good", 12)
    rows = [{"image_id": f"good_{i}", "image_uri": u} for i, u in enumerate(goods)]
    rows += [{"image_id": c.name, "image_uri": c.uri} for c in zoo]
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]  # bad rows spread over batches
    ds = ray.data.from_items(rows, override_num_blocks=4)
    ds = ds.map_batches(partial(decode_batch, failed_image=EMPTY_IMAGE), batch_format="numpy", batch_size=5)
    out = {r["image_id"]: r for r in ds.take_all()}
    assert sorted(out) == sorted(r["image_id"] for r in rows)
    for i in range(len(goods)):
        assert out[f"good_{i}"]["error"] is None and out[f"good_{i}"]["image"].shape == (32, 48, 3)
    for case in zoo:
        row = out[case.name]
        assert_case(case, row["image"], row["error"])
        assert case.ok or row["image"].shape == (0, 0, 3)


def test_decode_benchmark_runs_both_modes(capsys):
    import runpy
    from pathlib import Path

    bench = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "decode.py"))
    result = bench["main"](["--n", "2", "--width", "640", "--height", "480", "--size", "64", "--rounds", "1"])
    assert set(result) == {"full", "draft", "ratio", "ratio_best"} and result["full"] > 0 and result["draft"] > 0
    assert result["ratio"] == pytest.approx(result["draft"] / result["full"])
    printed = capsys.readouterr().out
    assert "2 JPEGs 640x480" in printed and "output 85x64" in printed and "ratio" in printed
