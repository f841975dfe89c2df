"""The unified corpus: (image, text) pairs from captions and purified comments, with sampling weights."""

from uniqa.corpus.build import SOURCES, CorpusConfig, build_pairs, stats
from uniqa.corpus.run import run_corpus

__all__ = ["SOURCES", "CorpusConfig", "build_pairs", "run_corpus", "stats"]
