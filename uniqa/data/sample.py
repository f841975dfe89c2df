"""``uniqa data sample``: the embedded sample corpus, built deterministically from a seed out of the
photos that ship inside scikit-image (no downloads), in the published file formats so it goes through
the same ``uniqa data prepare`` adapters as real data:

- ``OUT/iqa``: KADID-10k format. ``dmos.csv`` (``dist_img, ref_img, dmos, var``) and ``images/`` with
  references ``I01.png``.. and distorted ``I01_03_05.png`` (reference, distortion id, level 1..5).
  40 references x 12 distortions x 5 levels (2,400 images); DMOS from :func:`uniqa.data.distortions.dmos`.
  A reference is a 128 x 128 tile of a photo downscaled to a 256-px short side: the most textured
  non-overlapping tiles, three of each of 8 colour photos and two of each of 8 grayscale photos and textures
  (given a duotone so colour distortions act on them). Tiles of one photo are different references.
- ``OUT/iaa``: AVA format. ``AVA.txt`` (15 columns), ``images/<id>.jpg`` and the AVA-Captions-style
  ``CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json``. The same 40 contents (the region of each reference at
  1.25x) x 8 aesthetic treatments (320 images); votes from :func:`uniqa.data.treatments.vote_histogram` with
  mean = treatment score + a per-content appeal offset ~ U(-0.4, 0.4) + N(0, 0.15) noise, 80-220 voters;
  comments from :func:`uniqa.data.sample_comments.comment_thread`. The contents whose reference is on the
  test side of the IQA part's split_0 (8 of 40) are ``test`` with all their variants (64 images).

Every random draw comes from ``numpy.random.default_rng([seed, part, ...item indices])``, so output
does not depend on build order. Imports are deferred so ``uniqa --help`` stays fast.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from dataclasses import dataclass
from functools import lru_cache

IQA_SHORT_SIDE = 256  # photos are downscaled so their shorter side is this, then cut into reference tiles
TILE = 128  # a reference is a TILE x TILE tile of the downscaled photo (non-overlapping tiles of one photo)
IAA_SCALE = 1.25  # an IAA content is the same region at this scale (more pixels for the composition crops)
IAA_LONG_SIDE = 128  # stored IAA images have this longer side
TEST_FRACTION_SEED = 0  # the IQA part's split_0 (``uniqa data prepare`` defaults) decides the IAA test contents
COMMENTS_FILE = "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json"
TEXT_FILES = ("iqa/dmos.csv", "iaa/AVA.txt", f"iaa/{COMMENTS_FILE}")


@dataclass(frozen=True)
class Photo:
    name: str  # scikit-image loader (motorcycle_left: the left view of stereo_motorcycle)
    subject: str  # noun used in comments
    centre: tuple[float, float]  # subject position (x, y) as fractions of width and height
    tag: int  # semantic tag id written to AVA.txt (illustrative, not AVA's tag list)
    tiles: int  # how many reference tiles (contents) it gives
    tint: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None  # grayscale: duotone (shadow, light)


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "astronaut", (0.44, 0.2), 15, 3),
    Photo("coffee", "cup of coffee", (0.48, 0.3), 9, 3),
    Photo("chelsea", "cat", (0.5, 0.55), 2, 3),
    Photo("rocket", "rocket", (0.5, 0.55), 17, 3),
    Photo("motorcycle_left", "motorcycle", (0.45, 0.6), 23, 3),
    Photo("hubble_deep_field", "galaxy field", (0.5, 0.5), 19, 3),
    Photo("immunohistochemistry", "tissue sample", (0.5, 0.5), 13, 3),
    Photo("retina", "optic disc", (0.17, 0.47), 17, 3),
    # grayscale photos and textures, given a duotone so that colour distortions act on them too
    Photo("camera", "photographer", (0.45, 0.4), 15, 2, ((30, 20, 10), (250, 235, 200))),
    Photo("moon", "moon surface", (0.5, 0.5), 19, 2, ((10, 15, 35), (225, 230, 250))),
    Photo("coins", "coins", (0.5, 0.5), 7, 2, ((40, 25, 5), (255, 225, 150))),
    Photo("grass", "grass", (0.5, 0.5), 5, 2, ((10, 30, 5), (210, 250, 160))),
    Photo("gravel", "gravel", (0.5, 0.5), 5, 2, ((30, 25, 25), (240, 225, 215))),
    Photo("brick", "brick wall", (0.5, 0.5), 11, 2, ((45, 10, 5), (250, 190, 160))),
    Photo("clock", "clock", (0.5, 0.5), 21, 2, ((5, 20, 30), (190, 240, 250))),
    Photo("cell", "cell", (0.5, 0.5), 13, 2, ((20, 5, 30), (240, 200, 255))),
)


@dataclass(frozen=True)
class Content:
    """One reference content: a tile of a photo (the IQA reference; the IAA image's source region)."""

    photo: Photo
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) as fractions of the photo's width and height
    centre: tuple[float, float]  # the photo's subject inside the tile (fractions), or the tile's centre
    subject: str  # what comments call it: the photo's subject when the tile holds it, else "scene"


def load_photo(name: str, tint=None):
    """A photo bundled with scikit-image as HxWx3 uint8 (a grayscale one mapped through the duotone ``tint``)."""
    import numpy as np
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    if img.ndim == 2:
        lum = img.astype(np.float64)[..., None] / 255.0
        dark, light = (np.array(c, np.float64) for c in (tint or ((0, 0, 0), (255, 255, 255))))
        return np.clip(np.round(dark + (light - dark) * lum), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _resize(img, scale_side: int, shorter: bool):
    """Lanczos resize so the shorter (or longer) side equals ``scale_side``."""
    import numpy as np
    from PIL import Image

    h, w = img.shape[:2]
    ref = min(h, w) if shorter else max(h, w)
    size = (max(1, round(w * scale_side / ref)), max(1, round(h * scale_side / ref)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


@lru_cache(maxsize=2)
def _photo_at(photo: Photo, short_side: int):
    """The photo (duotoned when grayscale) downscaled to ``short_side``; read-only (cached)."""
    img = _resize(load_photo(photo.name, photo.tint), short_side, shorter=True)
    img.setflags(write=False)
    return img


def _encode(img, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **kw)
    return buf.getvalue()


def _rng(seed: int, *key: int):
    import numpy as np

    return np.random.default_rng([seed, *key])


def _tile_boxes(img, count: int) -> list[tuple[int, int]]:
    """Top-left corners of the ``count`` most textured non-overlapping TILE x TILE grid tiles (luminance std;
    ties by position), in reading order."""
    import numpy as np

    h, w = img.shape[:2]
    ys, xs = range(0, h - TILE + 1, TILE), range(0, w - TILE + 1, TILE)
    lum = img.astype(np.float64).mean(axis=-1)
    scored = sorted((-round(float(lum[y:y + TILE, x:x + TILE].std()), 6), y, x) for y in ys for x in xs)
    return sorted((y, x) for _, y, x in scored[:count])


@lru_cache(maxsize=1)
def contents() -> tuple[Content, ...]:
    """Every reference content, in a fixed order (the I01, I02, ... of the IQA part; the IAA photos)."""
    out = []
    for photo in PHOTOS:
        img = _photo_at(photo, IQA_SHORT_SIDE)
        h, w = img.shape[:2]
        for y, x in _tile_boxes(img, photo.tiles):
            sx, sy = photo.centre[0] * w - x, photo.centre[1] * h - y
            inside = 0 <= sx < TILE and 0 <= sy < TILE
            out.append(Content(photo, (x / w, y / h, (x + TILE) / w, (y + TILE) / h),
                               (sx / TILE, sy / TILE) if inside else (0.5, 0.5), photo.subject if inside else "scene"))
    return tuple(out)


def content_image(content: Content, scale: float = 1.0):
    """The content's tile of its photo, ``scale`` x TILE pixels a side."""
    import numpy as np

    img = _photo_at(content.photo, round(IQA_SHORT_SIDE * scale))
    h, w = img.shape[:2]
    side = round(TILE * scale)
    x0, y0 = round(content.box[0] * w), round(content.box[1] * h)
    return np.ascontiguousarray(img[y0:y0 + side, x0:x0 + side])


# ------------------------------------------------------------------------------------------- IQA


def build_iqa(out: str, seed: int = 0) -> int:
    """KADID-10k-format part under ``out``; returns the number of distorted images."""
    from uniqa import storage
    from uniqa.data.distortions import DISTORTIONS, LEVELS, apply, dmos, rating_variance

    rows = ["dist_img,ref_img,dmos,var"]
    for r, content in enumerate(contents(), start=1):
        ref = content_image(content)
        ref_name = f"I{r:02d}.png"
        storage.write_bytes(storage.join(out, "images", ref_name), _encode(ref, "PNG", compress_level=1))
        for d in DISTORTIONS:
            for level in LEVELS:
                name = f"I{r:02d}_{d.id:02d}_{level:02d}.png"
                img = apply(d, ref, level, _rng(seed, 1, r, d.id, level))
                storage.write_bytes(storage.join(out, "images", name), _encode(img, "PNG", compress_level=1))
                score_rng = _rng(seed, 2, r, d.id, level)
                mos = dmos(d, level, jitter=float(score_rng.uniform(-0.08, 0.08)))
                var = rating_variance(d, level, extra=float(score_rng.uniform(0.0, 0.1)))
                rows.append(f"{name},{ref_name},{mos:.2f},{var:.3f}")
    storage.write_bytes(storage.join(out, "dmos.csv"), ("\n".join(rows) + "\n").encode())
    return len(rows) - 1


# ------------------------------------------------------------------------------------------- IAA


def held_out_contents() -> set[int]:
    """The contents (1-based, as I01 ...) whose every IAA variant goes to the ``test`` split: the references on
    the test side of the IQA part's split_0 as ``uniqa data prepare`` draws it (seed 0, 80/20 of references), so
    no held-out reference reaches pre-training through the IAA part either."""
    from uniqa.data.levels import seeded_splits

    refs = [f"I{r:02d}.png" for r in range(1, len(contents()) + 1)]
    sides = seeded_splits(refs, seed=TEST_FRACTION_SEED, num_splits=1)["split_0"]
    return {r for r, side in enumerate(sides, start=1) if side == "test"}


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _ava_entry(index: int, ident: str, split: str, comments: list[str], first_sentid: int) -> dict:
    ids = list(range(first_sentid, first_sentid + len(comments)))
    return {
        "filename": f"{ident}.jpg",
        "imgid": index,
        "split": split,
        "sentids": ids,
        "sentences": [{"raw": c, "tokens": _tokens(c), "imgid": index, "sentid": s} for c, s in zip(comments, ids)],
    }


def build_iaa(out: str, seed: int = 0) -> int:
    """AVA-format part under ``out``; returns the number of images."""
    import numpy as np

    from uniqa import storage
    from uniqa.data.sample_comments import comment_thread
    from uniqa.data.treatments import TREATMENTS, vote_histogram

    lines, entries, sentid = [], [], 0
    held_out = held_out_contents()
    for p, content in enumerate(contents(), start=1):
        base, photo = content_image(content, IAA_SCALE), content.photo
        appeal = float(_rng(seed, 4, p).uniform(-0.4, 0.4))
        split = "test" if p in held_out else "train"
        for t in TREATMENTS:
            rng = _rng(seed, 5, p, t.id)
            img = _resize(t.apply(base, content.centre, rng), IAA_LONG_SIDE, shorter=False)
            ident = str(900000 + 100 * p + t.id)
            storage.write_bytes(storage.join(out, "images", f"{ident}.jpg"), _encode(img, "JPEG", quality=90))
            mean = float(np.clip(t.score + appeal + rng.normal(0, 0.15), 1.5, 9.5))
            votes = vote_histogram(mean, t.spread, int(rng.integers(80, 221)), rng)
            tag2 = 4 if t.name == "mono_contrast" else 0
            lines.append(f"{len(lines) + 1} {ident} {' '.join(map(str, votes))} {photo.tag} {tag2} {1000 + t.id}")
            comments = comment_thread(t.name, content.subject, rng)
            entries.append(_ava_entry(len(entries), ident, split, comments, sentid))
            sentid += len(comments)
    storage.write_bytes(storage.join(out, "AVA.txt"), ("\n".join(lines) + "\n").encode())
    text = json.dumps({"images": entries}, ensure_ascii=False, indent=1)
    storage.write_bytes(storage.join(out, COMMENTS_FILE), text.encode("utf-8"))
    return len(lines)


# ---------------------------------------------------------------------------------------- corpus


def build_sample(out: str, seed: int = 0) -> dict:
    """Build ``out/iqa`` and ``out/iaa``; returns a summary (counts, seconds, checksums of ``out``)."""
    from uniqa import storage
    from uniqa.errors import UniqaError

    if not isinstance(seed, int) or seed < 0:
        raise UniqaError(f"sample seed must be a non-negative integer, got {seed!r}")
    start = time.perf_counter()
    iqa = build_iqa(storage.join(out, "iqa"), seed)
    iaa = build_iaa(storage.join(out, "iaa"), seed)
    return {
        "out": out,
        "seed": seed,
        "iqa_distorted_images": iqa,
        "iqa_references": len(contents()),
        "iaa_images": iaa,
        "seconds": round(time.perf_counter() - start, 2),
        "sha256_text": checksum(out, TEXT_FILES),
        "sha256_all": checksum(out),
    }


def checksum(root: str, files: tuple[str, ...] | None = None) -> str:
    """sha256 over (relative path, bytes) of ``files`` (default: every file under ``root`` but its stage summary),
    in sorted order."""
    from uniqa import storage
    from uniqa.stage import SUMMARY_FILE

    if files is None:
        prefix = len(storage.resolve(root)[1].rstrip("/")) + 1
        files = tuple(storage.resolve(u)[1][prefix:] for u in storage.list_files(root))
        files = tuple(f for f in files if f != SUMMARY_FILE)
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(storage.read_bytes(storage.join(root, rel))).digest())
    return digest.hexdigest()


