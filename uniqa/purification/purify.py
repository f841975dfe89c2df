"""Purify the human comments of aesthetics images (METHOD §1.4): clean, rank by AR + IR, keep the best K.

:func:`purify_batch` is the pure core: a batch of images (id, comments, aesthetic caption) and a text
embedder in, a table of kept comments and a table of rejected comments (with the reason) out. All
of a batch's texts go through the embedder in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from uniqa.purification.clean import CleanConfig, clean, words
from uniqa.purification.config import PurifyConfig
from uniqa.purification.embedders import Embedder
from uniqa.purification.ranking import cosine, rank_comments, select
from uniqa.schema import PURIFIED, REJECTED

__all__ = ["PurifyConfig", "purify_batch"]  # PurifyConfig lives in uniqa.purification.config (re-exported)


@dataclass
class _Rows:
    """Column lists of one output table."""

    columns: dict[str, list]

    @classmethod
    def of(cls, schema) -> _Rows:
        return cls({name: [] for name in schema.columns})

    def add(self, **values) -> None:
        for name, column in self.columns.items():
            column.append(values.get(name))

    def table(self, schema) -> pa.Table:
        return pa.Table.from_pydict(self.columns, schema=schema.schema)


def purify_batch(image_ids: list[str], comments: list[list[str] | None], captions: list[str | None],
                 embed: Embedder, keep: int = 5, clean_cfg: CleanConfig = CleanConfig()
                 ) -> tuple[pa.Table, pa.Table]:
    """(kept, rejected) comment tables (schemas PURIFIED, REJECTED) of a batch of images."""
    kept, rejected = _Rows.of(PURIFIED), _Rows.of(REJECTED)
    plans = []  # (image_id, texts, candidate indices, caption)
    for image_id, texts, caption in zip(image_ids, comments, captions):
        texts = list(texts or [])
        candidates, dropped = clean(texts, clean_cfg)
        for i, reason in dropped:
            rejected.add(image_id=image_id, comment=texts[i], reason=reason)
        if candidates and not (caption and caption.strip()):
            for i in candidates:
                rejected.add(image_id=image_id, comment=texts[i], reason="no_caption", words=len(words(texts[i])))
        elif candidates:
            plans.append((image_id, texts, candidates, caption))
    if not plans:
        return kept.table(PURIFIED), rejected.table(REJECTED)
    all_texts = [t for _, texts, cand, caption in plans for t in [caption, *(texts[i] for i in cand)]]
    vectors = embed(all_texts)
    offset = 0
    for image_id, texts, cand, _ in plans:
        cap_vec, com_vecs = vectors[offset], vectors[offset + 1: offset + 1 + len(cand)]
        offset += 1 + len(cand)
        _rank_image(image_id, [texts[i] for i in cand], cosine(com_vecs, cap_vec), keep, kept, rejected)
    return kept.table(PURIFIED), rejected.table(REJECTED)


def _rank_image(image_id: str, texts: list[str], similarity: np.ndarray, keep: int, kept: _Rows,
                rejected: _Rows) -> None:
    counts = np.array([len(words(t)) for t in texts], np.int64)
    ar, ir, score = rank_comments(similarity, counts)
    best = select(ar, score, keep)
    position = {int(i): p for p, i in enumerate(best, start=1)}
    for i, text in enumerate(texts):
        values = dict(image_id=image_id, comment=text, similarity=float(similarity[i]), relevance_rank=int(ar[i]),
                      informativeness_rank=int(ir[i]), words=int(counts[i]), score=int(score[i]))
        if i in position:
            kept.add(rank=position[i], **values)
        else:
            rejected.add(reason="not_top_k", **values)
