"""What a pre-trained checkpoint saw: the image ids of its corpus, and the leak check against evaluated images.

``uniqa pretrain`` writes ``RUN/final/corpus_ids.parquet`` beside the weights (and ``openai.pt``): the sorted,
unique 64-bit hashes of every corpus image id it trained on (blake2b of the id, 8 bytes; exact up to hash
collisions, ~1e-9 for a million ids against a million), merged with the record of the weights it started from
when those have one. 8 bytes an image: a million images is 8 MB, read in one pass.

:func:`check_leak` compares a run's test-side images with the record of the model it evaluates: any overlap
means the scores of those images were measured on images whose MOS-guided captions the model was trained on. It
fails with one line naming the count and a few ids, unless ``allow_leak``; then the overlap is recorded. Weights
without a record (an architecture name, open_clip's tags, foreign files such as ``UniQA_weight.pt``) are
"provenance unknown".
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.errors import UniqaError

RECORD_FILE = "corpus_ids.parquet"
UNKNOWN = "provenance unknown"
EXAMPLES = 3  # ids named in the error and the summary


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """uint64 hash of each image id (blake2b, 8 bytes, little endian)."""
    return np.array([int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little")
                     for i in ids], dtype=np.uint64)


def write_record(folder: str, hashes: np.ndarray, source: str, parent: str | None = None) -> str:
    """``folder/corpus_ids.parquet``: the sorted unique ``hashes`` (merged with the record at ``parent``, a record
    file, when given); ``source`` (the corpus) and the parent go into the file's metadata. Returns its uri."""
    previous = read_hashes(parent) if parent else np.zeros(0, np.uint64)  # uint64 both: no float round trip
    merged = np.unique(np.concatenate([np.asarray(hashes, np.uint64), previous]))
    meta = {"corpus": source, "parent": parent or "", "images": str(len(merged))}
    table = pa.table({"id_hash": pa.array(merged, pa.uint64())}).replace_schema_metadata(meta)
    uri = storage.join(folder, RECORD_FILE)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    storage.write_bytes(uri, buffer.getvalue().to_pybytes())  # makes the folder when needed
    return uri


def read_hashes(uri: str) -> np.ndarray:
    fs, path = storage.resolve(uri)
    return pq.read_table(path, filesystem=fs, columns=["id_hash"])["id_hash"].to_numpy().astype(np.uint64)


def find_record(model: str, pretrained: str | None = None) -> str | None:
    """The record of the weights ``model`` / ``pretrained`` name: beside the weights in their checkpoint folder
    (``RUN/final/`` for both ``--model RUN/final`` and ``--pretrained RUN/final/openai.pt``); None without one."""
    for ref in (pretrained, model):
        if not ref or not storage.looks_like_path(ref) or not storage.exists(ref):
            continue
        folder = ref if storage.is_dir(ref) else posixpath.dirname(ref.rstrip("/"))
        uri = storage.join(folder, RECORD_FILE)
        if storage.exists(uri):
            return uri
    return None


def in_corpus(record: str, ids: Sequence[str]) -> np.ndarray:
    """Whether each of ``ids`` is in the record at ``record`` (a bool array aligned with ``ids``)."""
    return np.isin(id_hashes(ids), read_hashes(record))


def corpus_mask(model: str, pretrained: str | None, ids: Sequence[str]) -> np.ndarray | None:
    """:func:`in_corpus` against the record of ``model`` / ``pretrained``; None when they have none (provenance
    unknown). What the results tables' ``leaked`` columns count."""
    record = find_record(model, pretrained)
    return None if record is None else in_corpus(record, ids)


def check_leak(model: str, pretrained: str | None, test_ids: Iterable[str], *, allow_leak: bool, where: str) -> dict:
    """The overlap of ``test_ids`` (the images a run evaluates) with the model's pre-training corpus:
    ``{"provenance": record uri | "provenance unknown", "leaked": n, "examples": [...]}``. Raises
    :class:`UniqaError` on an overlap unless ``allow_leak``."""
    record = find_record(model, pretrained)
    if record is None:
        return {"provenance": UNKNOWN, "leaked": None, "examples": []}
    ids = sorted(set(test_ids))
    leaked = [i for i, hit in zip(ids, in_corpus(record, ids)) if hit]
    found = {"provenance": record, "leaked": len(leaked), "examples": leaked[:EXAMPLES]}
    if leaked and not allow_leak:
        raise UniqaError(
            f"{len(leaked)} of the {len(ids)} test-side images of {where} (e.g. {', '.join(leaked[:EXAMPLES])}) are "
            f"in the pre-training corpus of {pretrained or model} ({record}): their numbers would be inflated. "
            "Build the corpus with those images held out (uniqa corpus --set holdout=split_0), or pass --allow-leak "
            "to go on with the overlap recorded")
    return found


def leak_note(leaked: int, what: str) -> str:
    """The line a results table ends with when ``leaked`` > 0 (printed, and red in the report)."""
    return (f"LEAKED: {leaked} {what} in the pre-training corpus of the model (allowed by --allow-leak): "
            "these numbers are inflated")
