"""Ray Data stage of purification: loads the embedder and the images' aesthetic captions once per worker,
purifies a batch of images and commits its kept and rejected comments (exactly-once files, uniqa.sink)
under ``OUT/kept`` and ``OUT/rejected`` (sibling folders, so reading one never picks up the other)."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from uniqa import sink, storage
from uniqa.purification.embedders import create_embedder
from uniqa.purification.purify import PurifyConfig, purify_batch
from uniqa.schema import CAPTIONS, PURIFIED, REJECTED
from uniqa.tables import read_table

KEPT_DIR, REJECTED_DIR = "kept", "rejected"  # under the purify --out folder
COUNTS = pa.schema([("images", pa.int64()), ("comments", pa.int64()), ("kept", pa.int64()),
                    ("rejected", pa.map_(pa.string(), pa.int64()))])


def caption_lookup(captions: str, task: str) -> dict[str, str]:
    """{image_id: caption} of the captioned (error-free) images of ``task``."""
    table = read_table(captions, CAPTIONS, columns=["image_id", "task", "caption", "error"])
    ok = pc.and_(pc.equal(table["task"], task), pc.and_(pc.is_null(table["error"]), pc.is_valid(table["caption"])))
    table = table.filter(ok)
    return dict(zip(table["image_id"].to_pylist(), table["caption"].to_pylist()))


def comment_rows(batch: pa.Table) -> pa.Table:
    """The aesthetics rows that have comments (``map_batches`` UDF, pyarrow)."""
    has = pc.and_(pc.equal(batch["task"], "aesthetics"), pc.greater(pc.fill_null(pc.list_value_length(
        batch["comments"]), 0), 0))
    return batch.filter(has).select(["image_id", "comments"])


class PurifyStage:
    def __init__(self, cfg: PurifyConfig, captions: str, out: str):
        self.cfg = cfg
        self.kept_out, self.rejected_out = storage.join(out, KEPT_DIR), storage.join(out, REJECTED_DIR)
        self.embed = create_embedder(cfg.embedder)
        self.captions = caption_lookup(captions, cfg.caption_task)

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids = batch["image_id"].to_pylist()
        comments = batch["comments"].to_pylist()
        kept, rejected = purify_batch(ids, comments, [self.captions.get(i) for i in ids], self.embed,
                                      self.cfg.keep, self.cfg.clean)
        sink.write_batch(kept, self.kept_out, PURIFIED)
        sink.write_batch(rejected, self.rejected_out, REJECTED)
        reasons = Counter(rejected["reason"].to_pylist())
        row = {"images": len(ids), "comments": sum(len(c or []) for c in comments), "kept": len(kept),
               "rejected": list(reasons.items())}
        return pa.Table.from_pylist([row], schema=COUNTS)
