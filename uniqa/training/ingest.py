"""Pre-training input, as pure batch functions (Ray Data wiring: :mod:`uniqa.training.dataset`).

corpus rows (image, text, source, weight)
  -> :func:`group_texts`: one row per image with all its texts (a Ray Data ``groupby(image_id).map_groups``)
  -> :func:`check_images`: every image decoded once; broken or missing ones get an ``error`` and are skipped
  -> :func:`expand_epochs`: one row per (image, epoch) of one worker rank, with the text drawn for that epoch
     and an ``order`` key (each (image, epoch) goes to the rank :func:`rank_of` draws)
  -> sort by ``order`` (epoch, then a seeded hash: a fresh shuffle per epoch, the same in every run)
  -> :func:`make_views`: decode, a random crop at the model's input size (+ flip), tokenise.

Every random choice (text, crop, flip, order, rank) is a function of (seed, epoch, image_id), so each rank's
stream, and the rows of its k-th step, depend on the seed and the world size only (not on which worker asked
for data first); a run that resumes from a checkpoint sees exactly the streams an uninterrupted run would have
seen: each rank drops its rows up to its own ``order`` key in the checkpoint before decoding
(:func:`read_resume_keys`). :func:`rank_counts` counts every rank's rows without decoding, so that the run
can make the streams long enough for the unbalanced hashed split. :func:`rank_streams` gives each rank its stream
through a coordinator actor of its own, whose scheduling loop backs off while the stream is ahead
(:class:`IdleBackoff`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from functools import lru_cache

import numpy as np
import pyarrow as pa

from uniqa import storage
from uniqa.training.config import PretrainConfig

log = logging.getLogger(__name__)

INDEX_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("image_uri", pa.string()), ("texts", pa.list_(pa.string())),
    ("sources", pa.list_(pa.string())), ("weights", pa.list_(pa.float64())),
])
EPOCH_BITS = 44  # order = epoch << EPOCH_BITS | 44-bit hash of (seed, epoch, image_id)
RESUME_FILE = "_resume.json"


def stable_hash(*parts) -> int:
    """A 63-bit hash of ``parts`` that is the same in every process (Python's ``hash`` is salted)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def group_texts(rows: pa.Table) -> pa.Table:
    """All corpus rows of one image -> one index row (texts, sources and weights as lists)."""
    weights = [1.0 if w is None or w != w else float(w) for w in rows["weight"].to_pylist()]
    return pa.table({
        "image_id": [rows["image_id"][0].as_py()], "image_uri": [rows["image_uri"][0].as_py()],
        "texts": [rows["text"].to_pylist()], "sources": [rows["source"].to_pylist()], "weights": [weights],
    }, schema=INDEX_SCHEMA)


def check_images(batch: pa.Table, max_pixels: int) -> pa.Table:
    """Decode every image once; adds ``error`` (None when the image is usable)."""
    from uniqa.data.batches import decode_batch
    from uniqa.data.images import DecodeConfig

    uris = np.array(batch["image_uri"].to_pylist(), dtype=object)
    done = decode_batch({"image_uri": uris}, DecodeConfig(max_pixels=max_pixels))
    return batch.append_column("error", pa.array(list(done["error"]), pa.string()))


def pick_text(texts, sources, weights, source_weights: dict[str, float], rng: np.random.Generator,
              text_choice: str = "by_source") -> str | None:
    """One text: a source drawn by ``source_weights`` among the sources this image has, then a text of that
    source by its corpus ``weight`` (uniform when they are all 0); ``text_choice: uniform``: any of the image's
    texts of a source with a weight > 0, uniformly (the official code's choice). None when no source has a
    weight > 0."""
    present = sorted({s for s in sources if source_weights.get(s, 0.0) > 0}, key=list(source_weights).index)
    if not present:
        return None
    if text_choice == "uniform":
        on = [i for i, s in enumerate(sources) if s in present]
        return texts[on[rng.choice(len(on))]]
    p = np.array([source_weights[s] for s in present], dtype=np.float64)
    source = present[rng.choice(len(present), p=p / p.sum())]
    idx = [i for i, s in enumerate(sources) if s == source]
    w = np.array([max(float(weights[i]), 0.0) for i in idx])
    w = np.ones_like(w) if w.sum() <= 0 else w
    return texts[idx[rng.choice(len(idx), p=w / w.sum())]]


def rank_of(seed: int, epoch: int, image_id: str, world_size: int) -> int:
    """The worker rank that trains on ``image_id`` in ``epoch`` (0 for a single worker)."""
    return 0 if world_size == 1 else stable_hash(seed, epoch, image_id, "rank") % world_size


def has_text(sources, source_weights: dict[str, float]) -> bool:
    """Whether :func:`pick_text` finds a text (a source of this image with a weight > 0)."""
    return any(source_weights.get(s, 0.0) > 0 for s in sources)


def expand_epochs(batch: pa.Table, *, seed: int, epochs: int, source_weights: dict[str, float], resume_key: int = -1,
                  rank: int = 0, world_size: int = 1, text_choice: str = "by_source") -> pa.Table:
    """Index rows -> one row per (image, epoch < ``epochs``) of worker ``rank`` (of ``world_size``) whose
    ``order`` key is above ``resume_key``: ``image_uri, text, order, view_seed``."""
    first = max(0, (resume_key + 1) >> EPOCH_BITS) if resume_key >= 0 else 0
    out = {"image_uri": [], "text": [], "order": [], "view_seed": []}
    ids, uris = batch["image_id"].to_pylist(), batch["image_uri"].to_pylist()
    texts, sources, weights = (batch[c].to_pylist() for c in ("texts", "sources", "weights"))
    for i, image_id in enumerate(ids):
        for epoch in range(first, epochs):
            if rank_of(seed, epoch, image_id, world_size) != rank:
                continue
            order = (epoch << EPOCH_BITS) | (stable_hash(seed, epoch, image_id, "order") & ((1 << EPOCH_BITS) - 1))
            if order <= resume_key:
                continue
            rng = np.random.default_rng(stable_hash(seed, epoch, image_id, "text"))
            text = pick_text(texts[i], sources[i], weights[i], source_weights, rng, text_choice)
            if text is None:
                continue
            out["image_uri"].append(uris[i])
            out["text"].append(text)
            out["order"].append(order)
            out["view_seed"].append(stable_hash(seed, epoch, image_id, "view"))
    return pa.table(out, schema=pa.schema([("image_uri", pa.string()), ("text", pa.string()),
                                           ("order", pa.int64()), ("view_seed", pa.int64())]))


def rank_counts(batch: pa.Table, *, seed: int, first_epoch: int, epochs: int, world_size: int,
                source_weights: dict[str, float]) -> pa.Table:
    """Index rows -> how many rows :func:`expand_epochs` gives each rank in each epoch of
    ``[first_epoch, epochs)``: ``epoch, rank, rows`` (every pair, zeros included). Hashes only, no decoding."""
    counts = np.zeros((max(epochs - first_epoch, 0), world_size), np.int64)
    ids, sources = batch["image_id"].to_pylist(), batch["sources"].to_pylist()
    for image_id, image_sources in zip(ids, sources):
        if has_text(image_sources, source_weights):
            for epoch in range(first_epoch, epochs):
                counts[epoch - first_epoch, rank_of(seed, epoch, image_id, world_size)] += 1
    epoch, rank = np.meshgrid(np.arange(first_epoch, epochs), np.arange(world_size), indexing="ij")
    return pa.table({"epoch": epoch.ravel(), "rank": rank.ravel(), "rows": counts.ravel()})


def read_resume_keys(run: str) -> list[int]:
    """Per rank, the ``order`` key of the last row the restored checkpoint had trained on ([]: start from the
    top). A file from before per-rank streams holds one ``key``."""
    uri = storage.join(run, RESUME_FILE)
    if not storage.exists(uri):
        return []
    record = json.loads(storage.read_bytes(uri))
    return [int(k) for k in record["keys"]] if "keys" in record else [int(record["key"])]


def write_resume_keys(run: str, keys: list[int]) -> None:
    storage.write_bytes(storage.join(run, RESUME_FILE), json.dumps({"keys": [int(k) for k in keys]}).encode())


def resume_key_for(keys: list[int], rank: int, world_size: int) -> int:
    """This rank's key; keys of another world size (the run resumed with other workers) can only be approximate:
    every rank restarts after the smallest key (some rows are seen twice)."""
    if not keys:
        return -1
    return keys[rank] if len(keys) == world_size else min(keys)


def expand_from_run(batch: pa.Table, *, run: str, rank: int = 0, world_size: int = 1, **kwargs) -> pa.Table:
    """:func:`expand_epochs` with this rank's resume key read when the task runs (after the workers restored)."""
    key = resume_key_for(read_resume_keys(run), rank, world_size)
    return expand_epochs(batch, resume_key=key, rank=rank, world_size=world_size, **kwargs)


@lru_cache(maxsize=4)
def tokenizer_for(model: str):
    import open_clip

    from uniqa.models import resolve_model_name

    return open_clip.get_tokenizer(resolve_model_name(model))


def train_view(image: np.ndarray, size: int, view: str, flip: bool, seed: int) -> np.ndarray:
    """One training view: a random ``size`` crop of the un-resized image (``crop``) or of the image resized to
    a short side of ``size`` (``resize_crop``), or CLIP's preprocess (``clip_preprocess``: that resize, the long
    side ``int(size * long / short)`` as torchvision computes it, then the centre crop); mirrored with
    probability 1/2 when ``flip``."""
    from uniqa.data.views import random_view, resize

    rng = np.random.default_rng(seed)
    if view == "clip_preprocess":
        h, w = image.shape[:2]
        if (h, w) != (size, size):
            image = resize(image, size if h <= w else int(size * h / w), size if w <= h else int(size * w / h))
        top, left = int(round((image.shape[0] - size) / 2.0)), int(round((image.shape[1] - size) / 2.0))
        view_ = image[top : top + size, left : left + size]
        return np.ascontiguousarray(view_[:, ::-1] if flip and rng.random() < 0.5 else view_)
    if view == "resize_crop":
        h, w = image.shape[:2]
        scale = size / min(h, w)
        image = resize(image, max(size, round(h * scale)), max(size, round(w * scale)))
    return random_view(image, size, rng, flip=flip)


class DecodedCache:
    """Decoded images of one worker process, least recently used evicted past ``budget_mb``: a corpus that fits is
    decoded once per process instead of once per epoch (the CPU demo trains hundreds of epochs of a few hundred
    images); a corpus that does not fit just misses."""

    def __init__(self) -> None:
        from collections import OrderedDict

        self.images: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.bytes = 0

    def get(self, uri: str, max_pixels: int, budget_mb: float) -> np.ndarray:
        from uniqa.data.images import DecodeConfig, load_image

        key = (uri, max_pixels)
        image = self.images.get(key)
        if image is not None:
            self.images.move_to_end(key)
            return image
        image = load_image(uri, DecodeConfig(max_pixels=max_pixels))
        if image.nbytes <= budget_mb * 2**20:
            image.setflags(write=False)  # views crop and flip copies; the cached array stays as decoded
            self.images[key] = image
            self.bytes += image.nbytes
            while self.bytes > budget_mb * 2**20:
                _, old = self.images.popitem(last=False)
                self.bytes -= old.nbytes
        return image


_decoded = DecodedCache()


def make_views(batch: dict[str, np.ndarray], *, model: str, size: int, view: str, flip: bool,
               max_pixels: int, cache_mb: float = 0) -> dict[str, np.ndarray]:
    """Rows -> ``image`` (N, size, size, 3) uint8, ``tokens`` (N, context) int64, ``order``; a row whose image
    fails to decode now (it passed :func:`check_images`) is dropped with a warning. Decoded images are kept in
    this process's :class:`DecodedCache` up to ``cache_mb`` (0: none)."""
    from uniqa.data.images import DecodeConfig, ImageError, load_image

    decode = DecodeConfig(max_pixels=max_pixels)
    images, keep = [], []
    for i, uri in enumerate(batch["image_uri"]):
        try:
            image = _decoded.get(str(uri), max_pixels, cache_mb) if cache_mb > 0 else load_image(str(uri), decode)
            images.append(train_view(image, size, view, flip, int(batch["view_seed"][i])))
            keep.append(i)
        except ImageError as e:
            log.warning("skipping a training row: %s", e)
    tokens = tokenizer_for(model)([str(t) for t in batch["text"][keep]]).numpy().astype(np.int64)
    empty = np.zeros((0, size, size, 3), np.uint8)
    return {"image": np.stack(images) if images else empty, "tokens": tokens,
            "order": np.asarray(batch["order"])[keep].astype(np.int64)}


class IdleBackoff:
    """A Ray Data execution callback: a scheduling step that found no task running sleeps, 1 ms at first and twice
    as long each idle step after, up to ``IDLE_SLEEP_S``; a step with a task running resets it. Ray Data's loop only
    blocks (in ``ray.wait``, up to 0.1 s) while some task runs; when the stream is ahead of training and every
    operator is backpressured it spins: a whole core per stream on this CPU without a sleep, 0.2 of one with a fixed
    10 ms (its resource bookkeeping runs every step), which a training worker beside a busy neighbour pays for
    (Ray / plain beside a CPU burner: 1.42 at 10 ms, 1.04 and 1.16 with this; ``benchmarks/pretrain.py --busy 1``).
    Only a fully backpressured stream sleeps, so its queue holds blocks: the consumer waits for the loop only when
    it drains that queue in under ``IDLE_SLEEP_S``. Attached to the pre-training streams only."""

    IDLE_SLEEP_S = 0.1

    @staticmethod
    def make():
        from ray.data._internal.execution.execution_callback import ExecutionCallback

        class _IdleBackoff(ExecutionCallback):
            idle = 0.0  # the current sleep: doubles while the loop stays idle, from 1 ms up to IDLE_SLEEP_S

            def on_execution_step(self, executor) -> None:
                if any(op.num_active_tasks() for op in executor._topology):
                    self.idle = 0.0
                    return
                self.idle = min(max(2 * self.idle, 0.001), IdleBackoff.IDLE_SLEEP_S)
                time.sleep(self.idle)

        return _IdleBackoff


def rank_streams(datasets: list, cfg: PretrainConfig) -> list:
    """One iterator per rank over its own dataset, each executed by a coordinator actor of its own
    (``streaming_split(1)``): Ray Data's scheduling loop then runs beside the training workers, not in their
    processes, where it held the GIL against the training step (measured: ~75 vs ~120 img/s on 2 CPUs). Ray Data
    is told what the workers hold (``exclude_resources``), as Ray Train's own ``DataConfig`` would."""
    from ray.data import ExecutionOptions, ExecutionResources

    held = ExecutionResources(cpu=cfg.num_workers * cfg.cpus_per_worker,
                              gpu=cfg.num_workers * cfg.gpus_per_worker if cfg.use_gpu else 0)
    streams = []
    for ds in datasets:
        ds.context.execution_options = ExecutionOptions(preserve_order=True, exclude_resources=held)
        callbacks = ds.context.custom_execution_callback_classes
        ds.context.custom_execution_callback_classes = [*callbacks, IdleBackoff.make()]
        streams.append(ds.streaming_split(1)[0])
    return streams
