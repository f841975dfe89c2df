"""Ray Data wiring of purification: the comments-captions join by image_id partition (uniqa.purification.join),
then actors that load the embedder once, purify a batch of images and commit its kept and rejected comments
(exactly-once files, uniqa.sink) under ``OUT/kept`` and ``OUT/rejected`` (sibling folders, so reading one never
picks up the other). Each batch carries its own captions: no actor holds the caption table."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from uniqa import sink, storage
from uniqa.partition import PARTITION, shuffle_strategy
from uniqa.purification.config import PurifyConfig
from uniqa.purification.embedders import create_embedder
from uniqa.purification.join import attach_captions, caption_side, comment_side
from uniqa.purification.purify import purify_batch
from uniqa.schema import PURIFIED, REJECTED
from uniqa.tables import ray_read

KEPT_DIR, REJECTED_DIR = "kept", "rejected"  # under the purify --out folder
COUNTS = pa.schema([("images", pa.int64()), ("comments", pa.int64()), ("kept", pa.int64()),
                    ("rejected", pa.map_(pa.string(), pa.int64()))])


class PurifyStage:
    def __init__(self, cfg: PurifyConfig, out: str):
        self.cfg = cfg
        self.kept_out, self.rejected_out = storage.join(out, KEPT_DIR), storage.join(out, REJECTED_DIR)
        self.embed = create_embedder(cfg.embedder)

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids, comments = batch["image_id"].to_pylist(), batch["comments"].to_pylist()
        kept, rejected = purify_batch(ids, comments, batch["caption"].to_pylist(), self.embed, self.cfg.keep,
                                      self.cfg.clean)
        sink.write_batch(kept, self.kept_out, PURIFIED)
        sink.write_batch(rejected, self.rejected_out, REJECTED)
        reasons = Counter(rejected["reason"].to_pylist())
        row = {"images": len(ids), "comments": sum(len(c or []) for c in comments), "kept": len(kept),
               "rejected": list(reasons.items())}
        return pa.Table.from_pylist([row], schema=COUNTS)


def purify_dataset(manifest_files: list[str], caption_files: list[str], out: str, cfg: PurifyConfig,
                   partitions: int):
    """The lazy Ray dataset of per-batch count rows (schema COUNTS)."""
    import ray

    comments = ray_read(manifest_files, columns=["image_id", "task", "comments"]).map_batches(
        comment_side, fn_kwargs={"partitions": partitions}, batch_format="pyarrow")
    captions = ray_read(caption_files, columns=["image_id", "task", "caption", "error"]).map_batches(
        caption_side, fn_kwargs={"partitions": partitions, "task": cfg.caption_task}, batch_format="pyarrow")
    rows = comments.union(captions)
    rows.context.shuffle_strategy = shuffle_strategy(cfg.shuffle, partitions)  # this dataset's own context copy
    images = rows.groupby(PARTITION, num_partitions=partitions).map_groups(
        attach_captions, batch_format="pyarrow")
    return images.map_batches(
        PurifyStage, fn_constructor_kwargs={"cfg": cfg, "out": out}, batch_size=cfg.images_per_batch,
        batch_format="pyarrow", num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
        compute=ray.data.ActorPoolStrategy(size=cfg.num_actors),
    )
