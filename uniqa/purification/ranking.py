"""Ranking the cleaned comments of one image (METHOD §1.4, the paper's Eq. 5).

- AR, aesthetics relevance: rank by cosine(comment embedding, caption embedding), most similar = 1.
- IR, informativeness: rank by word count, most words = 1.
- score = AR + IR, lower is better; keep the best K.
Ties: equal values share the best rank of their group ("min" / competition ranking: 1, 2, 2, 4), so
no comment is favoured by its position in a rank; equal scores are then ordered by AR (the more
relevant first), then by the comment's position in the thread (earlier first). Deterministic.
"""

from __future__ import annotations

import numpy as np


def min_ranks(values: np.ndarray, descending: bool = True) -> np.ndarray:
    """1-based competition ranks (ties share the best rank) of ``values``, largest first by default."""
    v = -np.asarray(values, dtype=np.float64) if descending else np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    first = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(v)), 0))
    ranks = np.empty(len(v), np.int64)
    ranks[order] = group_start + 1
    return ranks


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` (n x d) with the vector ``b`` (d)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
    return (a @ b) / np.where(norms > 0, norms, 1.0)


def rank_comments(similarity: np.ndarray, word_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(AR, IR, score = AR + IR) of an image's comments."""
    ar = min_ranks(np.round(similarity, 6))  # rounding: float noise must not split true ties
    ir = min_ranks(word_counts)
    return ar, ir, ar + ir


def select(ar: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the best ``k`` comments, best first: by score, then AR, then thread position."""
    order = np.lexsort((np.arange(len(score)), ar, score))
    return order[:k]
