"""Purification of human comments: clean, rank by relevance + informativeness, keep the best K."""

from uniqa.purification.clean import CleanConfig, clean
from uniqa.purification.config import PurifyConfig
from uniqa.purification.embedders import EMBEDDERS, EmbedderConfig, create_embedder
from uniqa.purification.purify import purify_batch
from uniqa.purification.ranking import min_ranks, rank_comments, select

__all__ = [
    "EMBEDDERS",
    "CleanConfig",
    "EmbedderConfig",
    "PurifyConfig",
    "clean",
    "create_embedder",
    "min_ranks",
    "purify_batch",
    "rank_comments",
    "select",
]
