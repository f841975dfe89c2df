"""Each image's comments meet its caption: a join on ``image_id`` by hash partition (see :mod:`uniqa.partition`),
as pure functions over batches (the Ray wiring is in purify_stage).

Both sides become rows of :data:`JOIN_ROWS` tagged with their partition; a group-by on the tag brings an image's
comment row and caption row into one call of :func:`attach_captions`, which holds one partition only (never the
whole caption table, in the driver or in an actor).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from uniqa.partition import with_partition

JOIN_ROWS = pa.schema([("image_id", pa.string()), ("comments", pa.list_(pa.string())), ("caption", pa.string())])


def comment_side(batch: pa.Table, partitions: int) -> pa.Table:
    """The aesthetics rows that have comments (manifest ``image_id, task, comments``), caption null."""
    has = pc.and_(pc.equal(batch["task"], "aesthetics"),
                  pc.greater(pc.fill_null(pc.list_value_length(batch["comments"]), 0), 0))
    batch = batch.filter(has)
    table = pa.table({"image_id": batch["image_id"], "comments": batch["comments"].cast(JOIN_ROWS.field(1).type),
                      "caption": pa.nulls(len(batch), pa.string())}, schema=JOIN_ROWS)
    return with_partition(table, partitions)


def caption_side(batch: pa.Table, partitions: int, task: str = "aesthetics") -> pa.Table:
    """The error-free captions of ``task`` (captions ``image_id, task, caption, error``), comments null."""
    ok = pc.and_(pc.equal(batch["task"], task), pc.and_(pc.is_null(batch["error"]), pc.is_valid(batch["caption"])))
    batch = batch.filter(ok)
    table = pa.table({"image_id": batch["image_id"], "comments": pa.nulls(len(batch), JOIN_ROWS.field(1).type),
                      "caption": batch["caption"]}, schema=JOIN_ROWS)
    return with_partition(table, partitions)


def attach_captions(rows: pa.Table) -> pa.Table:
    """One partition's union of both sides -> one row per image with comments: ``image_id, comments, caption``
    (caption null when the image has none)."""
    has_comments = pc.is_valid(rows["comments"])
    images = rows.filter(has_comments)
    captions = rows.filter(pc.invert(has_comments))
    index = pc.index_in(images["image_id"], value_set=captions["image_id"].combine_chunks())
    caption = captions["caption"].combine_chunks().take(index) if len(captions) else pa.nulls(len(images), pa.string())
    return pa.table({"image_id": images["image_id"], "comments": images["comments"], "caption": caption},
                    schema=JOIN_ROWS)
