"""The ``model_checksum`` of a scoring run: a hash of everything that determines its scores, so that a resume
never mixes scores of two configurations (:func:`fingerprint`)."""

from __future__ import annotations

import hashlib
import json

from uniqa import storage
from uniqa.scoring.config import HeadSpec, ScoreConfig


def _weights_checksum(pretrained: str | None) -> str | None:
    """sha256 of a weights file / our checkpoint folder; ``open_clip:<tag>`` for a tag; None for random init."""
    from uniqa.models import file_checksum

    if not pretrained:
        return None
    return file_checksum(pretrained) if storage.looks_like_path(pretrained) else f"open_clip:{pretrained}"


def head_checksum(spec: HeadSpec) -> str:
    """sha256 of a trained head's config and weights."""
    from uniqa.adapters.head import HEAD_CONFIG, HEAD_WEIGHTS

    digest = hashlib.sha256()
    for file in (HEAD_CONFIG, HEAD_WEIGHTS):
        digest.update(storage.read_bytes(storage.join(spec.folder, file)))
    return digest.hexdigest()


def fingerprint(cfg: ScoreConfig, row_sizes=()) -> str:
    """sha256 of everything that determines the scores (model + weights checksum, heads + head file
    checksums, views and how their positions are drawn, sizes, decoding, precision, seed, embeddings, the
    positional-embedding switch) - the ``model_checksum`` column. ``row_sizes``: the input manifest's decode sizes
    (:func:`uniqa.data.images.manifest_decode_sizes`), used when ``cfg.decode_size`` is None. The per-row decode
    sizes and the switch count only when they differ from the defaults (some row resized; the embedding left out),
    so outputs written before they existed keep their checksum.
    ``cfg`` is a :func:`~uniqa.scoring.config.preflight` result (its image size filled in).

    Batch size and actor counts are left out on purpose: they do not change the scores."""
    from uniqa.classic import implementation
    from uniqa.data.images import decode_key
    from uniqa.data.views import VIEW_SCHEME

    if cfg.image_size is None and cfg.model_heads:
        raise ValueError("fingerprint() takes a pre-flighted config (see preflight)")
    parts = {
        "model": cfg.model,
        "weights": _weights_checksum(cfg.pretrained),
        "heads": [
            [s.name, "trained" if s.trained else s.source,
             head_checksum(s) if s.trained else implementation(s.source) if s.classic else None]
            for s in cfg.head_specs
        ],
        "views": cfg.views,
        "view_scheme": VIEW_SCHEME,
        "image_size": cfg.image_size,
        "seed": cfg.seed,
        "decode": [cfg.decode_size, cfg.max_pixels],
        "precision": cfg.precision,
        "embeddings": cfg.embeddings,
    }
    if cfg.decode_size is None and decode_key(None, row_sizes) is not None:
        parts["row_decode"] = decode_key(None, row_sizes)
    if cfg.pos_embedding is False:
        parts["pos_embedding"] = False
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
