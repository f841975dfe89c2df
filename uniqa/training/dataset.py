"""The corpus as Ray Data for pre-training: the index of usable images (every image decoded once, its texts
grouped), the epochs to stream so that every rank has its steps' rows, and one dataset per rank (views and tokens
made in Ray Data; the pure batch functions are :mod:`uniqa.training.ingest`'s)."""

from __future__ import annotations

from uniqa.errors import UniqaError
from uniqa.tables import ray_read
from uniqa.training.config import PretrainConfig
from uniqa.training.ingest import check_images, expand_from_run, group_texts, make_views, rank_counts
from uniqa.training.loop import Plan as LoopPlan

CORPUS_COLUMNS = ["image_id", "image_uri", "text", "source", "weight"]


ROWS_PER_PARTITION = 50_000  # corpus rows per groupby partition when the index is built


VIEW_BLOCK_ROWS = 256  # rows per decode task (smaller: more per-block overhead in the split coordinator)


def build_index(files: list[str], cfg: PretrainConfig, rows: int):
    """One row per image with its texts, every image decoded once -> (materialised usable index, skipped list,
    how many were skipped)."""
    ds = ray_read(files, columns=CORPUS_COLUMNS)
    partitions = max(1, min(200, rows // ROWS_PER_PARTITION))  # Ray's default of 200 is slow for a small corpus
    ds = ds.groupby("image_id", num_partitions=partitions).map_groups(group_texts, batch_format="pyarrow",
                                                                      num_cpus=cfg.decode_cpus)
    ds = ds.map_batches(check_images, fn_kwargs={"max_pixels": cfg.max_pixels}, batch_format="pyarrow",
                        batch_size=64, num_cpus=cfg.decode_cpus).materialize()
    bad = ds.map_batches(_rows_with_error, fn_kwargs={"error": True}, batch_format="pyarrow", batch_size=None,
                         num_cpus=0).materialize()
    skipped = [{"image_id": r["image_id"], "error": r["error"]} for r in bad.take(1000)]
    good = ds.map_batches(_rows_with_error, fn_kwargs={"error": False}, batch_format="pyarrow", batch_size=None,
                          num_cpus=0).materialize()
    return good, skipped, bad.count()


def _rows_with_error(batch, error: bool):
    """The index rows whose image failed to decode (``error``), or the usable ones without the error column."""
    import pyarrow.compute as pc

    if error:
        return batch.filter(pc.is_valid(batch["error"])).select(["image_id", "error"])
    return batch.filter(pc.is_null(batch["error"])).drop_columns(["error"])


def stream_epochs(index, cfg: PretrainConfig, total_steps: int, images: int) -> int:
    """Epochs of (image, epoch) rows that give every rank the ``total_steps x batch_size / num_workers`` rows it
    trains on: the hashed rank split is not exactly balanced (nor is an epoch complete when an image has no text
    of a weighted source), so epochs are added past ``total x batch / images`` until the shortest rank has
    enough. Counted in Ray Data without decoding."""
    need, world = total_steps * cfg.batch_size // cfg.num_workers, cfg.num_workers
    epochs, have = 0, [0] * world
    add = -(-total_steps * cfg.batch_size // images)
    while min(have) < need:
        kwargs = {"seed": cfg.seed, "first_epoch": epochs, "epochs": epochs + add, "world_size": world,
                  "source_weights": cfg.sources.as_dict()}
        rows = index.map_batches(rank_counts, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=4096,
                                 num_cpus=cfg.decode_cpus).take_all()
        if not any(row["rows"] for row in rows):
            raise UniqaError(f"no corpus image has a text of a source with a weight > 0 (sources: "
                             f"{cfg.sources.as_dict()}): nothing to train on")
        for row in rows:
            have[row["rank"]] += row["rows"]
        epochs += add
        add = max(1, -(-(need - min(have)) * world // images))
    return epochs


def training_dataset(index, cfg: PretrainConfig, plan: LoopPlan, epochs: int, size: int, rank: int = 0):
    """Worker ``rank``'s stream (of ``cfg.num_workers``): its (image, epoch) rows in ``order``, views and tokens
    made in Ray Data. Rank ``r``'s k-th micro-batch is rows ``[k m, (k+1) m)`` of this stream (m: micro batch)."""
    kwargs = {"run": plan.run, "rank": rank, "world_size": cfg.num_workers, "seed": cfg.seed, "epochs": epochs,
              "source_weights": cfg.sources.as_dict(), "text_choice": cfg.text_choice}
    ds = index.map_batches(expand_from_run, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=16,
                           num_cpus=cfg.decode_cpus)
    # the sort yields a few large blocks: cut them (streaming, order kept) so that decode runs in parallel tasks
    # and the first batch comes after one small block, not after a whole sorted partition is decoded
    ds = ds.sort("order").repartition(target_num_rows_per_block=max(cfg.micro_batch, VIEW_BLOCK_ROWS))
    return ds.map_batches(make_views, fn_kwargs={"model": plan.model_name, "size": size, "view": cfg.view,
                                                "flip": cfg.flip, "max_pixels": cfg.max_pixels,
                                                "cache_mb": cfg.decode_cache_mb},
                          batch_format="numpy", batch_size=max(cfg.micro_batch, 16), num_cpus=cfg.decode_cpus)
