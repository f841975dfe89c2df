"""``uniqa data sample``: the embedded sample corpus, built deterministically from a seed out of the
photos that ship inside scikit-image (no downloads), in the published file formats so it goes through
the same ``uniqa data prepare`` adapters as real data:

- ``OUT/iqa``: KADID-10k format. ``dmos.csv`` (``dist_img, ref_img, dmos, var``) and ``images/`` with
  references ``I01.png``.. and distorted ``I01_03_05.png`` (reference, distortion id, level 1..5).
  Eight references x nine distortions x five levels; DMOS from :func:`uniqa.data.distortions.dmos`.
- ``OUT/iaa``: AVA format. ``AVA.txt`` (15 columns), ``images/<id>.jpg`` and the AVA-Captions-style
  ``CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json``. Eight photos x eight aesthetic treatments; votes
  from :func:`uniqa.data.treatments.vote_histogram` with mean = treatment score + a per-photo appeal
  offset ~ U(-0.4, 0.4) + N(0, 0.15) noise, 80-220 voters; comments from
  :func:`uniqa.data.sample_comments.comment_thread`. Two photos (all their variants) are ``test``.

Every random draw comes from ``numpy.random.default_rng([seed, part, ...item indices])``, so output
does not depend on build order. Imports are deferred so ``uniqa --help`` stays fast.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import time
from dataclasses import dataclass

IQA_SHORT_SIDE = 256  # references are downscaled so their shorter side is this
IAA_WORK_SIDE = 512  # treatments run on the photo downscaled to this longer side
IAA_LONG_SIDE = 320  # stored IAA images have this longer side
IAA_TEST_PHOTOS = 2
COMMENTS_FILE = "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json"
TEXT_FILES = ("iqa/dmos.csv", "iaa/AVA.txt", f"iaa/{COMMENTS_FILE}")


@dataclass(frozen=True)
class Photo:
    name: str  # scikit-image loader (motorcycle_left: the left view of stereo_motorcycle)
    subject: str  # noun used in comments
    centre: tuple[float, float]  # subject position (x, y) as fractions of width and height
    tag: int  # semantic tag id written to AVA.txt (illustrative, not AVA's tag list)


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "astronaut", (0.44, 0.2), 15),
    Photo("coffee", "cup of coffee", (0.48, 0.3), 9),
    Photo("chelsea", "cat", (0.5, 0.55), 2),
    Photo("rocket", "rocket", (0.5, 0.55), 17),
    Photo("motorcycle_left", "motorcycle", (0.45, 0.6), 23),
    Photo("hubble_deep_field", "galaxy field", (0.5, 0.5), 19),
    Photo("immunohistochemistry", "tissue sample", (0.5, 0.5), 13),
    Photo("retina", "optic disc", (0.17, 0.47), 17),
)


def load_photo(name: str):
    """A colour photo bundled with scikit-image as HxWx3 uint8."""
    import numpy as np
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _resize(img, scale_side: int, shorter: bool):
    """Lanczos resize so the shorter (or longer) side equals ``scale_side``."""
    import numpy as np
    from PIL import Image

    h, w = img.shape[:2]
    ref = min(h, w) if shorter else max(h, w)
    size = (max(1, round(w * scale_side / ref)), max(1, round(h * scale_side / ref)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def _encode(img, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **kw)
    return buf.getvalue()


def _rng(seed: int, *key: int):
    import numpy as np

    return np.random.default_rng([seed, *key])


# ------------------------------------------------------------------------------------------- IQA


def build_iqa(out: str, seed: int = 0) -> int:
    """KADID-10k-format part under ``out``; returns the number of distorted images."""
    from uniqa import storage
    from uniqa.data.distortions import DISTORTIONS, LEVELS, apply, dmos, rating_variance

    rows = ["dist_img,ref_img,dmos,var"]
    for r, photo in enumerate(PHOTOS, start=1):
        ref = _resize(load_photo(photo.name), IQA_SHORT_SIDE, shorter=True)
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


def held_out_photos(seed: int) -> set[str]:
    """The photos whose every variant goes to the ``test`` split."""
    chosen = _rng(seed, 3).choice(len(PHOTOS), size=IAA_TEST_PHOTOS, replace=False)
    return {PHOTOS[i].name for i in chosen}


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
    held_out = held_out_photos(seed)
    for p, photo in enumerate(PHOTOS, start=1):
        base = _resize(load_photo(photo.name), IAA_WORK_SIDE, shorter=False)
        appeal = float(_rng(seed, 4, p).uniform(-0.4, 0.4))
        split = "test" if photo.name in held_out else "train"
        for t in TREATMENTS:
            rng = _rng(seed, 5, p, t.id)
            img = _resize(t.apply(base, photo.centre, rng), IAA_LONG_SIDE, shorter=False)
            ident = str(900000 + 100 * p + t.id)
            storage.write_bytes(storage.join(out, "images", f"{ident}.jpg"), _encode(img, "JPEG", quality=90))
            mean = float(np.clip(t.score + appeal + rng.normal(0, 0.15), 1.5, 9.5))
            votes = vote_histogram(mean, t.spread, int(rng.integers(80, 221)), rng)
            tag2 = 4 if t.name == "mono_contrast" else 0
            lines.append(f"{len(lines) + 1} {ident} {' '.join(map(str, votes))} {photo.tag} {tag2} {1000 + t.id}")
            comments = comment_thread(t.name, photo.subject, rng)
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
        "iqa_references": len(PHOTOS),
        "iaa_images": iaa,
        "seconds": round(time.perf_counter() - start, 2),
        "sha256_text": checksum(out, TEXT_FILES),
        "sha256_all": checksum(out),
    }


def checksum(root: str, files: tuple[str, ...] | None = None) -> str:
    """sha256 over (relative path, bytes) of ``files`` (default: every file under ``root``), in sorted order."""
    from uniqa import storage

    if files is None:
        prefix = len(storage.resolve(root)[1].rstrip("/")) + 1
        files = tuple(storage.resolve(u)[1][prefix:] for u in storage.list_files(root))
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(storage.read_bytes(storage.join(root, rel))).digest())
    return digest.hexdigest()


def register_sample(dsub: argparse._SubParsersAction) -> None:
    """Add ``uniqa data sample`` to the ``data`` sub-command."""
    p = dsub.add_parser("sample", help="build the embedded sample corpus (KADID-10k and AVA formats, no downloads)")
    p.add_argument("--out", required=True, help="output folder (local or s3://); gets iqa/ and iaa/")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from uniqa import storage

    summary = build_sample(args.out, args.seed)
    print(json.dumps(summary, indent=2))
    print(f"prepare with: uniqa data prepare kadid10k --root {storage.join(args.out, 'iqa')} --out ...")
    print(f"              uniqa data prepare ava --root {storage.join(args.out, 'iaa')} --out ...")
    return 0
