"""Ray Data wiring of the corpus: read every input as rows tagged with their image_id's hash partition, union
them, group by partition, assemble and write each partition in one task (uniqa.corpus.build, uniqa.sink), and
return one row of partial stats per partition. The driver holds only those rows (one per partition)."""

from __future__ import annotations

import json

import pyarrow as pa

from uniqa import sink
from uniqa.corpus.build import assemble, caption_rows, comment_rows, image_rows, partial_stats, shard_bounds
from uniqa.corpus.config import CorpusConfig
from uniqa.partition import PARTITION, shuffle_strategy
from uniqa.schema import CORPUS
from uniqa.tables import ray_read


def write_partition(rows: pa.Table, cfg: CorpusConfig, out: str) -> pa.Table:
    """``map_groups`` UDF: assemble one partition, write it as shards of at most ``cfg.rows_per_shard`` pairs cut
    between images (atomic files named by their ids, uniqa.sink) and return one row: its partial stats as JSON."""
    table, counts = assemble(rows.drop_columns([PARTITION]), cfg)
    bounds = shard_bounds(table["image_id"], cfg.rows_per_shard)
    for start, length in bounds:
        sink.write_batch(table.slice(start, length), out, CORPUS)
    return pa.table({"stats": [json.dumps({**partial_stats(table, counts), "files": len(bounds)})]})


def corpus_dataset(manifests: list[list[str]], captions: list[list[str]], purified: list[list[str]], out: str,
                   cfg: CorpusConfig, partitions: int):
    """The lazy Ray dataset of per-partition stats rows; each input is a list of Parquet files."""
    kw = dict(batch_format="pyarrow", zero_copy_batch=True)
    splits, datasets = cfg.holdout_splits, cfg.holdout_datasets  # every manifest has every split column
    columns = ["image_id", "image_uri", "level", *(["dataset"] if datasets else []), *splits]
    parts = [ray_read(files, columns=columns)
             .map_batches(image_rows, fn_kwargs={"partitions": partitions, "splits": splits, "datasets": datasets},
                          **kw)
             for files in manifests]
    parts += [ray_read(files, columns=["image_id", "task", "caption", "error"])
              .map_batches(caption_rows, fn_kwargs={"partitions": partitions, "input": i}, **kw)
              for i, files in enumerate(captions)]
    parts += [ray_read(files, columns=["image_id", "comment", "rank"])
              .map_batches(comment_rows, fn_kwargs={"partitions": partitions, "input": i}, **kw)
              for i, files in enumerate(purified)]
    rows = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    rows.context.shuffle_strategy = shuffle_strategy(cfg.shuffle, partitions)  # this dataset's own context copy
    return rows.groupby(PARTITION, num_partitions=partitions).map_groups(
        write_partition, fn_kwargs={"cfg": cfg, "out": out}, batch_format="pyarrow")


def drain_stats(results, partitions: int, progress: bool = True) -> list[dict]:
    """The partitions' partial stats, with a progress bar over partitions."""
    from tqdm import tqdm

    partials = []
    with tqdm(total=partitions, desc="corpus", unit="partition", disable=not progress) as bar:
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            partials += [json.loads(s) for s in batch["stats"].to_pylist()]
            bar.update(len(batch))
    return partials
