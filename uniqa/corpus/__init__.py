"""The unified corpus: (image, text) pairs from captions, purified comments and level prompts, with weights."""

from uniqa.corpus.build import SOURCES, assemble, merge_stats, partial_stats
from uniqa.corpus.config import CorpusConfig
from uniqa.corpus.run import run_corpus

__all__ = ["SOURCES", "CorpusConfig", "assemble", "merge_stats", "partial_stats", "run_corpus"]
