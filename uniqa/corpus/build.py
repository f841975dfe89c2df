"""The unified corpus (METHOD §1.5), as pure functions over one partition of rows (no Ray here).

Texts: IQA captions + IAA captions + purified comments, plus one level-prompt text per labelled image
(``"{level} image"``, the adapter head's own prompt wording: a randomly initialised text tower must see those
words in pre-training, METHOD §2). Each pair carries ``source`` (:data:`SOURCES`) and ``weight``: the chance that
a text is picked when one text per image is sampled by these weights, i.e. the source's weight over the sum of
the image's (an image's weights sum to 1, or are all 0 when all its sources weigh 0).

Text is tidied (surrounding and repeated whitespace); empty texts are dropped; exact duplicates (same image, same
tidied text) are dropped keeping the first in source order (captions before comments before level prompts; then
input order, comment rank, text); texts whose image is in no manifest are dropped. All counted.

:func:`assemble` works on one hash partition by ``image_id`` (see :mod:`uniqa.partition`): every row of an
image is in the same partition, so a partition is assembled alone. Its rows (:data:`ROWS`) are manifest rows
(``source`` null: ``image_id, image_uri, level``) and candidate text rows (``text, source, input, rank``).
Stats are per-partition partial aggregates (:func:`partial_stats`) merged by :func:`merge_stats`: small
histograms, never the texts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uniqa.corpus.config import CorpusConfig
from uniqa.partition import with_partition
from uniqa.schema import CORPUS, TASKS, check_unique

SOURCES = ("quality_caption", "aesthetics_caption", "comment", "level_prompt")
ROWS = pa.schema([
    ("image_id", pa.string()),
    ("image_uri", pa.string()),  # manifest rows only
    ("level", pa.string()),  # manifest rows only
    ("text", pa.string()),  # text rows only
    ("source", pa.string()),  # text rows only: one of SOURCES
    ("input", pa.int64()),  # position of the text's input folder among those of its kind
    ("rank", pa.int64()),  # comments: rank among the image's kept comments
])
TEXT_COLUMNS = ["image_id", "text", "source", "input", "rank"]
TEXT_ROWS = pa.schema([ROWS.field(c) for c in TEXT_COLUMNS])


def _rows(n: int, partitions: int, **columns) -> pa.Table:
    """A :data:`ROWS` table (+ partition tag) from some of its columns; the others null."""
    table = pa.table({f.name: columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in ROWS},
                     schema=ROWS)
    return with_partition(table, partitions)


def image_rows(batch: pa.Table, partitions: int, splits: tuple[str, ...] = (),
               datasets: tuple[str, ...] = ()) -> pa.Table:
    """Manifest rows (``image_id, image_uri, level`` [+ ``dataset``, split columns]) as :data:`ROWS`, less the
    held-out ones: the test side of each of ``splits``, every image of ``datasets``."""
    for split in splits:
        batch = batch.filter(pc.fill_null(pc.not_equal(batch[split], "test"), True))
    if datasets:
        batch = batch.filter(pc.invert(pc.is_in(batch["dataset"], value_set=pa.array(list(datasets)))))
    return _rows(len(batch), partitions, image_id=batch["image_id"], image_uri=batch["image_uri"],
                 level=batch["level"])


def caption_rows(batch: pa.Table, partitions: int, input: int = 0) -> pa.Table:
    """The error-free captions of a known task (``image_id, task, caption, error``) as text rows."""
    ok = pc.and_(pc.and_(pc.is_null(batch["error"]), pc.is_valid(batch["caption"])),
                 pc.is_in(batch["task"], value_set=pa.array(TASKS)))
    batch = batch.filter(ok)
    source = pc.binary_join_element_wise(batch["task"], pa.scalar("caption"), "_")
    return _rows(len(batch), partitions, image_id=batch["image_id"], text=batch["caption"], source=source,
                 input=pa.array(np.full(len(batch), input, np.int64)), rank=pa.nulls(len(batch), pa.int64()))


def comment_rows(batch: pa.Table, partitions: int, input: int = 0) -> pa.Table:
    """Purified kept comments (``image_id, comment, rank``) as text rows."""
    n = len(batch)
    return _rows(n, partitions, image_id=batch["image_id"], text=batch["comment"],
                 source=pa.array(["comment"] * n, pa.string()), input=pa.array(np.full(n, input, np.int64)),
                 rank=batch["rank"])


def level_prompts(images: pa.Table, template: str = "{level} image") -> pa.Table:
    """One ``template.format(level=...)`` text per labelled image (level not null), as text rows."""
    labelled = images.filter(pc.is_valid(images["level"]))
    levels = labelled["level"].combine_chunks()
    uniques = pc.unique(levels)
    texts = pa.array([template.format(level=u) for u in uniques.to_pylist()], pa.string())
    n = len(labelled)
    return pa.table({"image_id": labelled["image_id"], "text": texts.take(pc.index_in(levels, value_set=uniques)),
                     "source": pa.array(["level_prompt"] * n, pa.string()), "input": pa.array(np.zeros(n, np.int64)),
                     "rank": pa.nulls(n, pa.int64())})


def tidy(text: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Strip and collapse whitespace (the duplicate key and the stored text)."""
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))


def assemble(rows: pa.Table, cfg: CorpusConfig = CorpusConfig()) -> tuple[pa.Table, dict[str, int]]:
    """(corpus table of one partition, sorted by image; counts: candidates, empty, duplicates, unknown_image).

    ``candidates == pairs + empty + duplicates + unknown_image``. Fails if an image_id is on two manifest rows."""
    is_image = pc.is_null(rows["source"])
    images = rows.filter(is_image).select(["image_id", "image_uri", "level"])
    check_unique(images["image_id"], "manifests")
    texts = pa.concat_tables([rows.filter(pc.invert(is_image)).select(TEXT_COLUMNS).cast(TEXT_ROWS),
                              level_prompts(images, cfg.level_prompt).cast(TEXT_ROWS)])
    candidates = len(texts)
    texts = texts.set_column(1, "text", tidy(pc.fill_null(texts["text"], "")))
    texts = texts.filter(pc.greater(pc.utf8_length(texts["text"]), 0))
    empty = candidates - len(texts)
    order = [("image_id", "ascending"), ("order", "ascending"), ("input", "ascending"), ("rank", "ascending"),
             ("text", "ascending")]
    texts = texts.append_column("order", pc.index_in(texts["source"], value_set=pa.array(SOURCES)))
    texts = _first_of_each(texts.sort_by(order))
    duplicates = candidates - empty - len(texts)
    joined = texts.join(images.select(["image_id", "image_uri"]), keys="image_id", join_type="inner")
    unknown = len(texts) - len(joined)
    joined = joined.sort_by(order)
    table = pa.table({"image_id": joined["image_id"], "image_uri": joined["image_uri"], "text": joined["text"],
                      "source": joined["source"], "weight": _normalise(joined["image_id"], source_weights(
                          joined["source"], cfg))})
    counts = {"candidates": candidates, "empty": empty, "duplicates": duplicates, "unknown_image": unknown}
    return CORPUS.conform(table), counts


def source_weights(source: pa.ChunkedArray | pa.Array, cfg: CorpusConfig) -> np.ndarray:
    """Each row's raw (un-normalised) weight from its source."""
    s = np.asarray(source.to_pylist() if len(source) else [], dtype=object)
    comment, level = s == "comment", s == "level_prompt"
    return np.where(comment, cfg.comment_weight, np.where(level, cfg.level_prompt_weight, cfg.caption_weight)
                    ).astype(np.float64)


def _first_of_each(texts: pa.Table) -> pa.Table:
    """Keep the first row of each (image_id, text) (rows are already in priority order)."""
    texts = texts.append_column("row", pa.array(np.arange(len(texts), dtype=np.int64)))
    firsts = texts.group_by(["image_id", "text"], use_threads=False).aggregate([("row", "min")])
    return texts.filter(pc.is_in(texts["row"], value_set=firsts["row_min"])).drop_columns(["row"])


def _normalise(image_ids: pa.ChunkedArray, raw: np.ndarray) -> pa.Array:
    """raw / (sum of raw over the image's rows); rows are grouped by image (sorted); 0 where that sum is 0."""
    ids = image_ids.to_numpy(zero_copy_only=False)
    if len(ids) == 0:
        return pa.array([], pa.float64())
    starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
    sums = np.add.reduceat(raw, starts)
    per_row = np.repeat(sums, np.diff(np.r_[starts, len(ids)]))
    return pa.array(np.where(per_row > 0, raw / np.where(per_row > 0, per_row, 1), 0.0))


def shard_bounds(image_ids: pa.ChunkedArray | pa.Array, rows_per_shard: int) -> list[tuple[int, int]]:
    """(start, length) of each shard of a table sorted by image: at most ``rows_per_shard`` rows, cut only between
    images (an image with more texts gets a shard of its own), so no two shards hold the same images and their
    id-hash file names (uniqa.sink) never collide."""
    ids = np.asarray(image_ids.to_pylist(), dtype=object)
    if not len(ids):
        return []
    ends = np.r_[np.flatnonzero(ids[1:] != ids[:-1]) + 1, len(ids)].tolist()  # where each image's rows end
    bounds, first, prev = [], 0, 0
    for end in ends:
        if end - first > rows_per_shard and prev > first:  # this image would overflow the shard: cut before it
            bounds.append((first, prev - first))
            first = prev
        prev = end
    bounds.append((first, len(ids) - first))
    return bounds


# ------------------------------------------------------------------------- stats from partial aggregates


def partial_stats(table: pa.Table, counts: dict[str, int] | None = None) -> dict:
    """One partition's share of the stats: counts, pairs per source, a histogram of texts per image and, per
    source, a histogram of words per text. Histogram keys are strings (the dict goes through JSON)."""
    words = pc.list_value_length(pc.utf8_split_whitespace(table["text"])).to_numpy(zero_copy_only=False)
    sources = np.asarray(table["source"].to_pylist(), dtype=object)
    per_image = pc.value_counts(table["image_id"]).field("counts").to_numpy(zero_copy_only=False)
    return {
        **(counts or {}),
        "pairs": len(table),
        "images": len(per_image),
        "pairs_per_source": {s: int((sources == s).sum()) for s in SOURCES},
        "texts_per_image": _histogram(per_image),
        "words_per_text": {s: _histogram(words[sources == s]) for s in SOURCES if (sources == s).any()},
    }


def _histogram(values: np.ndarray) -> dict[str, int]:
    keys, counts = np.unique(np.asarray(values, dtype=np.int64), return_counts=True)
    return {str(int(k)): int(c) for k, c in zip(keys, counts)}


def _add(a: dict, b: dict) -> dict:
    """Sum of two (nested) dicts of counts."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _add(out.get(k, {}), v) if isinstance(v, dict) else out.get(k, 0) + v
    return out


def merge_stats(partials: list[dict]) -> dict:
    """The corpus stats from the partitions' :func:`partial_stats`: counts, pairs per source, texts per image
    (min, mean, max, histogram) and words per text per source (min, p10, median, p90, max, mean)."""
    total: dict = {}
    for p in partials:
        total = _add(total, p)
    per_image = {int(k): v for k, v in total.get("texts_per_image", {}).items()}
    return {
        **{k: v for k, v in total.items() if not isinstance(v, dict)},
        "pairs": total.get("pairs", 0),
        "images": total.get("images", 0),
        "pairs_per_source": {s: total.get("pairs_per_source", {}).get(s, 0) for s in SOURCES},
        "texts_per_image": {**_summary(per_image, ("min", "mean", "max"), digits=3),
                            "histogram": {str(k): per_image[k] for k in sorted(per_image)}},
        "words_per_text": {s: _summary({int(k): v for k, v in hist.items()})
                           for s, hist in total.get("words_per_text", {}).items() if hist},
    }


def _summary(hist: dict[int, int], keys=("min", "p10", "median", "p90", "max", "mean"), digits: int = 2) -> dict:
    """Order statistics of a histogram {value: count}: exact, as ``np.percentile`` (linear) gives them."""
    if not hist:
        return {k: 0 for k in keys}
    values = np.array(sorted(hist), np.float64)
    counts = np.array([hist[int(v)] for v in values], np.int64)
    n, ends = int(counts.sum()), np.cumsum(counts)

    def at(k: int) -> float:  # the k-th smallest value (0-based)
        return float(values[np.searchsorted(ends, k, side="right")])

    def percentile(q: float) -> float:
        pos = q / 100 * (n - 1)
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        return at(lo) + (at(hi) - at(lo)) * (pos - lo)

    stats = {"min": int(values[0]), "p10": percentile(10), "median": percentile(50), "p90": percentile(90),
             "max": int(values[-1]), "mean": round(float((values * counts).sum() / n), digits)}
    return {k: stats[k] for k in keys}
