"""AVA: ``AVA.txt`` (15 space-separated columns: index, image id, vote counts for scores 1..10, semantic
tag 1, tag 2, challenge id); MOS = vote-weighted mean (1-10); images ``images/<id>.jpg``. Human comments
and the official split come from an optional AVA-Captions-style JSON
(``{"images": [{"filename": "<id>.jpg", "split": "train", "sentences": [{"raw": "..."}]}]}``)."""

from __future__ import annotations

import json
import posixpath

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    image_id,
    image_uri,
    read_columns,
    read_text,
    register_source,
    split_name,
    to_float,
)
from uniqa.errors import UniqaError

NUM_COLUMNS = 15
SCORES = range(1, 11)


def parse_ava_line(fields: list[str], uri: str, line: int) -> tuple[str, float, dict[str, float]]:
    """One AVA.txt line -> (image id, vote-weighted mean, attrs)."""
    if len(fields) != NUM_COLUMNS:
        raise UniqaError(f"{uri}: line {line} has {len(fields)} columns, expected {NUM_COLUMNS}")
    ident = fields[1]
    votes = [to_float(v, uri, f"votes_{s}", line) for s, v in zip(SCORES, fields[2:12])]
    total = sum(votes)
    if total <= 0:
        raise UniqaError(f"{uri}: line {line}: image {ident} has no votes; cannot compute its MOS")
    mos = sum(s * v for s, v in zip(SCORES, votes)) / total
    attrs = {f"votes_{s}": v for s, v in zip(SCORES, votes)}
    for key, value in zip(("tag_1", "tag_2", "challenge"), fields[12:15]):
        attrs[key] = to_float(value, uri, key, line)
    return ident, mos, attrs


def read_comments(uri: str) -> dict[str, tuple[str, list[str]]]:
    """AVA-Captions JSON -> {image file name: (split, [comment, ...])}."""
    try:
        data = json.loads(read_text(uri))
    except json.JSONDecodeError as e:
        raise UniqaError(f"{uri}: not valid JSON: {e}") from e
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise UniqaError(f"{uri}: expected a top-level object with an 'images' list")
    out = {}
    for i, item in enumerate(images):
        if not isinstance(item, dict) or "filename" not in item:
            raise UniqaError(f"{uri}: images[{i}] has no 'filename'")
        where = f"{uri}: images[{i}] ({item['filename']})"
        out[posixpath.basename(str(item["filename"]))] = (split_name(item.get("split"), where), _raws(item, where))
    return out


def _raws(item: dict, where: str) -> list[str]:
    """The ``raw`` text of each sentence, stripped; a null ``raw`` is an empty comment (purification rejects
    it as empty, with a reason), anything that is not a list of sentence objects is an error."""
    sentences = item.get("sentences")
    if sentences is None:
        return []
    if not isinstance(sentences, list) or not all(isinstance(s, dict) for s in sentences):
        raise UniqaError(f"{where}: 'sentences' must be a list of objects with a 'raw' text, got {sentences!r:.80}")
    raws = [s.get("raw") for s in sentences]
    bad = next((r for r in raws if r is not None and not isinstance(r, str)), None)
    if bad is not None:
        raise UniqaError(f"{where}: sentence 'raw' must be a string, got {bad!r:.80}")
    return [(r or "").strip() for r in raws]


@register_source(
    name="ava",
    task="aesthetics",
    mos_range=(1.0, 10.0),
    description="AVA aesthetics (vote-weighted mean 1-10; comments + official split from AVA-Captions JSON)",
    options={
        "scores_file": "text file relative to root (default AVA.txt)",
        "image_dir": "image folder relative to root (default images)",
        "image_ext": "image file extension (default .jpg)",
        "comments_file": "AVA-Captions JSON relative to root, used when present "
                         "(default CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json; empty: none)",
    },
)
def read_ava(
    root: str,
    scores_file: str = "AVA.txt",
    image_dir: str = "images",
    image_ext: str = ".jpg",
    comments_file: str = "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json",
) -> Records:
    uri = storage.join(root, scores_file)
    names, mos, attrs = [], [], []
    for line, fields in read_columns(uri, NUM_COLUMNS):
        ident, score, a = parse_ava_line(fields, uri, line)
        names.append(ident + image_ext)
        mos.append(score)
        attrs.append(a)
    records = Records(
        image_id=[image_id("ava", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=mos,
        attrs=attrs,
    )
    comments_uri = storage.join(root, comments_file) if comments_file else ""
    if comments_uri and storage.exists(comments_uri):
        _attach_comments(records, names, read_comments(comments_uri))
    return records


def _attach_comments(records: Records, names: list[str], by_name: dict[str, tuple[str, list[str]]]) -> None:
    """Official split + comments for the images the JSON covers; the others get neither (counted in notes)."""
    found = [by_name.get(n) for n in names]
    records.split = [f[0] if f else None for f in found]
    records.comments = [f[1] if f else None for f in found]
    uncovered = sum(f is None for f in found)
    unknown = len(set(by_name) - set(names))
    records.notes.update({k: v for k, v in {"without_official_split": uncovered,
                                            "comments_for_unknown_images": unknown}.items() if v})
