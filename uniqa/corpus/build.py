"""The unified corpus (METHOD §1.5): IQA captions + IAA captions + purified comments as (image, text) pairs.

Each pair carries ``source`` (``quality_caption`` | ``aesthetics_caption`` | ``comment``) and ``weight``:
the chance that pre-training picks this text when it samples one text per image per epoch, i.e. the
source's weight divided by the sum over the image's texts (an image's weights sum to 1).
Exact duplicates (same image, same text up to surrounding/repeated whitespace) are removed, keeping
the first in source order (captions before comments). Built with pyarrow on the driver: only the
needed columns are read (AVA-scale: a few million short texts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.schema import CAPTIONS, CORPUS, MANIFEST, PURIFIED
from uniqa.tables import read_table

SOURCES = ("quality_caption", "aesthetics_caption", "comment")


@dataclass(frozen=True)
class CorpusConfig:
    caption_weight: float = 1.0  # relative sampling weight of an MLLM caption
    comment_weight: float = 1.0  # relative sampling weight of a purified comment
    rows_per_shard: int = 100_000

    def __post_init__(self):
        if self.caption_weight < 0 or self.comment_weight < 0 or self.caption_weight + self.comment_weight <= 0:
            raise UniqaError(f"caption_weight and comment_weight must be >= 0 and not both 0, got "
                             f"{self.caption_weight}, {self.comment_weight}")
        if self.rows_per_shard < 1:
            raise UniqaError(f"rows_per_shard must be >= 1, got {self.rows_per_shard}")


def read_images(manifests: list[str]) -> pa.Table:
    """image_id -> image_uri of every manifest (ids must be unique across them)."""
    tables = [read_table(m, MANIFEST, columns=["image_id", "image_uri"]) for m in manifests]
    table = pa.concat_tables(tables)
    if pc.count_distinct(table["image_id"]).as_py() != len(table):
        counts = pc.value_counts(table["image_id"])
        dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        raise UniqaError(f"image_id {dup!r} appears more than once across the manifests {manifests}")
    return table


def caption_pairs(captions: pa.Table) -> pa.Table:
    """(image_id, text, source) of the error-free captions."""
    ok = pc.and_(pc.is_null(captions["error"]), pc.is_valid(captions["caption"]))
    captions = captions.filter(ok)
    source = pc.binary_join_element_wise(captions["task"], pa.scalar("caption"), "_")
    return pa.table({"image_id": captions["image_id"], "text": captions["caption"], "source": source})


def comment_pairs(purified: pa.Table) -> pa.Table:
    n = len(purified)
    return pa.table({"image_id": purified["image_id"], "text": purified["comment"],
                     "source": pa.array(["comment"] * n, pa.string())})


def tidy(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Strip and collapse whitespace (the duplicate key and the stored text)."""
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))


def build_pairs(images: pa.Table, parts: list[pa.Table], cfg: CorpusConfig = CorpusConfig()) -> tuple[pa.Table, int]:
    """(corpus table, pairs dropped because their image is in no manifest)."""
    pairs = pa.concat_tables([p.cast(pa.schema([("image_id", pa.string()), ("text", pa.string()),
                                                 ("source", pa.string())])) for p in parts])
    pairs = pairs.set_column(1, "text", tidy(pairs["text"]))
    pairs = pairs.filter(pc.greater(pc.utf8_length(pairs["text"]), 0))
    order = pc.index_in(pairs["source"], value_set=pa.array(SOURCES))
    pairs = pairs.append_column("order", order).append_column("row", pa.array(np.arange(len(pairs))))
    pairs = pairs.sort_by([("image_id", "ascending"), ("order", "ascending"), ("row", "ascending")])
    pairs = _first_of_each(pairs)
    joined = pairs.join(images, keys="image_id", join_type="inner")
    unknown = len(pairs) - len(joined)
    joined = joined.sort_by([("image_id", "ascending"), ("order", "ascending"), ("row", "ascending")])
    raw = np.where(pc.equal(joined["source"], "comment").to_numpy(zero_copy_only=False),
                   cfg.comment_weight, cfg.caption_weight)
    table = pa.table({"image_id": joined["image_id"], "image_uri": joined["image_uri"], "text": joined["text"],
                      "source": joined["source"], "weight": _normalise(joined["image_id"], raw)})
    return CORPUS.conform(table), unknown


def _first_of_each(pairs: pa.Table) -> pa.Table:
    """Keep the first row of each (image_id, text) (rows are already in priority order)."""
    firsts = pairs.group_by(["image_id", "text"], use_threads=False).aggregate([("row", "min")])
    keep = pc.is_in(pairs["row"], value_set=firsts["row_min"])
    return pairs.filter(keep)


def _normalise(image_ids: pa.ChunkedArray, raw: np.ndarray) -> pa.Array:
    """raw / (sum of raw over the image's rows); rows are grouped by image (sorted)."""
    ids = image_ids.to_numpy(zero_copy_only=False)
    if len(ids) == 0:
        return pa.array([], pa.float64())
    starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
    sums = np.add.reduceat(raw, starts)
    per_row = np.repeat(sums, np.diff(np.r_[starts, len(ids)]))
    return pa.array(np.where(per_row > 0, raw / np.where(per_row > 0, per_row, 1), 0.0))


def stats(table: pa.Table, unknown: int = 0) -> dict:
    """Pairs per source, texts per image, text length (words) distribution per source."""
    sources = table["source"].to_pylist()
    per_image = pc.value_counts(table["image_id"]).field("counts").to_numpy()
    words = np.array([len(t.split()) for t in table["text"].to_pylist()], dtype=np.int64)
    lengths = {}
    for source in SOURCES:
        w = words[np.asarray(sources, dtype=object) == source] if len(words) else words
        if len(w):
            q = np.percentile(w, [0, 10, 50, 90, 100])
            lengths[source] = {"min": int(q[0]), "p10": float(q[1]), "median": float(q[2]), "p90": float(q[3]),
                               "max": int(q[4]), "mean": round(float(w.mean()), 2)}
    hist = np.bincount(per_image) if len(per_image) else np.zeros(1, np.int64)
    return {
        "pairs": len(table),
        "images": len(per_image),
        "pairs_per_source": {s: sources.count(s) for s in SOURCES},
        "texts_per_image": {
            "min": int(per_image.min()) if len(per_image) else 0,
            "mean": round(float(per_image.mean()), 3) if len(per_image) else 0.0,
            "max": int(per_image.max()) if len(per_image) else 0,
            "histogram": {str(k): int(v) for k, v in enumerate(hist) if v},
        },
        "words_per_text": lengths,
        "dropped_unknown_image": unknown,
    }


def kept_folder(purified: str) -> str:
    """A ``uniqa purify`` output folder means its ``kept`` part (never its ``rejected`` one)."""
    kept = storage.join(purified, "kept")
    return kept if storage.is_dir(kept) else purified


def load_parts(captions: list[str], purified: list[str]) -> list[pa.Table]:
    parts = [caption_pairs(read_table(c, CAPTIONS, columns=["image_id", "task", "caption", "error"]))
             for c in captions]
    parts += [comment_pairs(read_table(kept_folder(p), PURIFIED, columns=["image_id", "comment"]))
              for p in purified]
    return parts
