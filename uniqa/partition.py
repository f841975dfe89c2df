"""Stable hash partitions of a key column, for joins and group-bys on Ray Data (purification, corpus, and the
manifest join of ``uniqa filter``, which writes both sides into per-partition folders instead of shuffling).

A stage that must see all rows of an image together (its comments and its caption; its texts and its manifest
row) tags every row with ``partition_of(image_id, n)`` and groups by that tag
(``ds.groupby("partition", num_partitions=n).map_groups(fn)``, with ``ds.context.shuffle_strategy`` set by
:func:`shuffle_strategy`): each call of ``fn`` then holds one partition,
about 1/n of the data, never the whole dataset. Grouping by the tag rather than by ``image_id`` itself keeps the
per-group overhead to n calls instead of one per image. The hash is CRC-32 of the UTF-8 key, the same in every
process (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

PARTITION = "partition"  # the tag column's name
# How Ray Data moves rows to their partition (a stage config's ``shuffle``): "hash" is Ray's hash shuffle on
# aggregator actors (the driver's memory stays flat as data grows; seconds to start its actors); "sort" is the
# sort-based shuffle in tasks (quick to start; its driver memory grows with the number of blocks: measured by
# benchmarks/corpus.py, +15% from 20k to 200k captions); "auto": sort for one partition, else hash.
SHUFFLES = {"sort": "sort_shuffle_pull_based", "hash": "shuffle_v2"}
SHUFFLE_CHOICES = ("auto", *SHUFFLES)


def shuffle_strategy(shuffle: str, partitions: int) -> str:
    """Ray Data's ``shuffle_strategy`` for a stage config's ``shuffle`` (one of :data:`SHUFFLE_CHOICES`)."""
    if shuffle == "auto":
        shuffle = "sort" if partitions <= 1 else "hash"
    return SHUFFLES[shuffle]


def partition_of(keys: pa.Array | pa.ChunkedArray, n: int) -> pa.Array:
    """The partition (0 .. n-1) of each key; a null key goes to partition 0."""
    values = keys.to_pylist()
    out = np.fromiter((zlib.crc32(k.encode()) % n if k is not None else 0 for k in values), np.int64, len(values))
    return pa.array(out, pa.int64())


def with_partition(table: pa.Table, n: int, key: str = "image_id") -> pa.Table:
    """``table`` with the :data:`PARTITION` column of its ``key`` column appended."""
    return table.append_column(PARTITION, partition_of(table[key], n))
