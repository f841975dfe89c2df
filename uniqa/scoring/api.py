"""In-process scoring (no Ray): ``Scorer.from_pretrained(model).score(paths_or_images)``.

The Ray pipeline's model actors use the same :class:`Scorer` (``score_views``) and the same pure
decode + views function, so the API and ``uniqa score`` give the same scores for the same images.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.runtime import policy_threads, torch_threads
from uniqa.scoring.batches import classic_raw, classic_scores, row_errors, scores_table, views_batch
from uniqa.scoring.config import HeadSpec, ScoreConfig, preflight
from uniqa.scoring.fingerprint import fingerprint
from uniqa.scoring.inputs import uri_id


def build_heads(model, tokenizer, specs: Sequence[HeadSpec], device: str) -> dict:
    """Zero-shot prompt-set heads (adapter=False) and trained heads loaded from files, by column name."""
    from uniqa.adapters.head import LevelHead, load_head
    from uniqa.adapters.prompts import get_prompt_set

    heads = {}
    for spec in specs:
        if spec.trained:
            heads[spec.name] = load_head(spec.folder)
        else:
            heads[spec.name] = LevelHead.from_model(model, tokenizer, get_prompt_set(spec.source), adapter=False)
        heads[spec.name] = heads[spec.name].to(device).eval()
    return heads


class Scorer:
    """A model, its heads and the view protocol, loaded once; scores batches of views or raw inputs. Classic
    heads (NIQE, BRISQUE, PIQE) come from the decoded images; with only those, no model is loaded."""

    def __init__(self, cfg: ScoreConfig, device: str | None = None, checksum: str | None = None):
        """``checksum``: the pipeline's model actors pass the :func:`~uniqa.scoring.fingerprint.fingerprint` that
        ``run_score`` computed with the config it already pre-flighted, and that config, used as is. Without
        it (in-process use), ``cfg`` is pre-flighted here (:func:`~uniqa.scoring.config.preflight`)."""
        import torch

        from uniqa.models import create_model
        from uniqa.scoring.multihead import MultiHeadScorer

        if checksum is None:
            cfg = preflight(cfg)
            checksum = fingerprint(cfg)
        self.cfg = cfg
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if cfg.precision == "fp16" and not self.device.startswith("cuda"):
            raise UniqaError(f"precision fp16 needs a GPU (device is {self.device}); use fp32 or bf16")
        self.classic = [(s.name, s.source) for s in cfg.classic_heads]  # (column, metric)
        self.multihead, model_params = None, 0
        if cfg.model_heads:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)  # a random-init model (no weights) is the same in every actor
                model, _, tokenizer = create_model(cfg.model, cfg.pretrained, device=self.device,
                                                   precision=cfg.precision,
                                                   pos_embedding=cfg.pos_embedding is not False)
                heads = build_heads(model, tokenizer, cfg.model_heads, self.device)
            self.multihead = MultiHeadScorer(model, heads, chunk=cfg.views_per_pass)
            model_params = sum(p.numel() for p in model.parameters())
        # torch threads while scoring (uniqa.runtime's policy): a model actor's reserved CPUs; in a driver, 1 for a
        # small model; cfg.threads overrides. Restored after each batch, so the caller's setting survives.
        self.threads = policy_threads(cfg.threads, model_params=model_params)
        self.checksum = checksum
        self.decode = cfg.decode_config()

    @classmethod
    def from_pretrained(
        cls,
        model_or_checkpoint: str,
        heads: Sequence[str] = ("quality", "aesthetics"),
        *,
        pretrained: str | None = None,
        device: str | None = None,
        **options,
    ) -> Scorer:
        """``Scorer.from_pretrained("runs/pretrain/final", heads=("quality", "aesthetics=runs/adapt/aes"))``;
        ``options`` are :class:`ScoreConfig` fields (views, image_size, batch_size, embeddings, ...). The config
        is pre-flighted (model, weights, head folders, image size) before the model is loaded."""
        cfg = ScoreConfig(model=str(model_or_checkpoint), pretrained=pretrained, heads=tuple(heads), **options)
        return cls(cfg, device=device)

    @property
    def heads(self) -> list[str]:
        return self.cfg.head_names

    def score(self, images: Iterable, ids: Sequence[str] | None = None) -> list[dict]:
        """Score paths / URIs (decoded like the pipeline), PIL images or HxWx3 uint8 arrays -> one dict per
        input, in order: image_id, image_uri, one score per head, [embedding], error, model_checksum.

        A path that cannot be decoded gives a row with ``error`` set and null scores."""
        items = list(images)
        if ids is not None and len(ids) != len(items):
            raise UniqaError(f"score(): {len(ids)} ids for {len(items)} images")
        rows: list[dict] = []
        step = self.cfg.batch_size
        for start in range(0, len(items), step):
            chunk_ids = None if ids is None else ids[start : start + step]
            batch = self.views_for(items[start : start + step], start, chunk_ids)
            rows.extend(self.score_views(batch).to_pylist())
        return rows

    def views_for(self, items: list, offset: int = 0, ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """A views batch for mixed inputs, made by the pipeline's own decode + views function (in-memory
        images go through it as lossless TIFF bytes)."""
        sources = [_source(x) for x in items]
        uris = np.array([s if isinstance(s, str) else None for s in sources], dtype=object)
        image_ids = [uri_id(u) if u else str(offset + i) for i, u in enumerate(uris)] if ids is None else ids
        batch = {"image_id": np.array(image_ids, dtype=object), "image_uri": np.array(sources, dtype=object)}
        protocol = self.cfg.views if self.multihead is not None else None
        done = views_batch(batch, self.decode, protocol, self.cfg.image_size, self.cfg.seed,
                           classic=tuple(metric for _, metric in self.classic))
        return {**done, "image_uri": uris}

    def score_views(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """A views batch (``image_id, image_uri, views, error``, classic ``<metric>_raw``) -> output rows; rows
        with an error skip the model. Runs the encoder once per image and applies every model head."""
        import torch

        n = len(batch["image_id"])
        ok = np.flatnonzero([e is None for e in row_errors(batch["error"])])
        classic = classic_scores(batch, self.classic)
        scores = {h: classic[h] if h in classic else np.full(n, np.nan) for h in self.heads}
        model_heads = [h for h in self.heads if h not in classic]
        if self.multihead is None:
            ok = ok[:0]
        embeddings = None
        with torch_threads(self.threads), torch.inference_mode():
            for start in range(0, len(ok), self.cfg.batch_size):
                idx = ok[start : start + self.cfg.batch_size]
                views = torch.from_numpy(np.ascontiguousarray(batch["views"][idx])).to(self.device)
                out = self.multihead.forward(views, return_embeddings=self.cfg.embeddings)
                for h in model_heads:
                    scores[h][idx] = out[h].float().cpu().numpy()
                if self.cfg.embeddings:
                    emb = out["embedding"].float().cpu().numpy()
                    embeddings = np.zeros((n, emb.shape[1]), np.float32) if embeddings is None else embeddings
                    embeddings[idx] = emb
        if self.cfg.embeddings and embeddings is None:
            embeddings = np.zeros((n, 0), np.float32)
        return scores_table(batch, scores, self.checksum, embeddings, raw=classic_raw(batch, self.classic))


def _source(item) -> str | bytes:
    """A path / URI (made absolute) or encoded bytes for the decoder."""
    if isinstance(item, (str, os.PathLike)):
        return storage.absolute(item)
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    return _encode(item)


def _encode(image) -> bytes:
    """A PIL image or an HxW / HxWx3 / HxWx4 uint8 array -> lossless TIFF bytes."""
    import io

    from PIL import Image

    if isinstance(image, np.ndarray):
        ok = image.dtype == np.uint8 and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)))
        if not ok:
            raise UniqaError(f"cannot score an array of shape {image.shape} dtype {image.dtype}: "
                             "give an HxWx3 (or HxW, HxWx4) uint8 array")
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise UniqaError(f"cannot score a {type(image).__name__}: give a path, bytes, a PIL image or a uint8 array")
    buf = io.BytesIO()
    image.save(buf, "TIFF")
    return buf.getvalue()
