"""Comment cleaning before ranking (METHOD §1.4): drop empty, non-linguistic and duplicate comments,
each with its reason.

- ``empty``: nothing but whitespace.
- ``non_linguistic``: no word at all (emoji-only, punctuation-only, ":)"), only interjections
  ("oh!!!", "wow!!", "hmm...", "Oooh!"), or fewer letters than ``min_letter_ratio`` of its visible
  characters ("!!!! a !!!!").
- ``duplicate``: same text as an earlier comment of the image, up to case and whitespace.
- ``too_short``: fewer than ``min_words`` words (off by default: ``min_words=1``).
Words are runs of Unicode letters (with inner apostrophes); digits and symbols are not words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from uniqa.errors import UniqaError

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
INTERJECTION = re.compile(
    r"^(?:o+h+|o+o+h+|a+h+|a+w+|w+o+w+|w+o+a+h+|(?:h+a+)+h*|(?:h+e+)+|h+m+|m+h+m+|l+o+l+|o+m+g+|u+h+|u+m+|"
    r"e+h+|y+a+y+|o+p+s+|o+o+p+s+|w+o+o+t*|y+e+a+h+|y+e+s+|y+e+p+|n+o+p*e*|o+k+|o+k+a+y+|b+r+a+v+o+)$"
)
REASONS = ("empty", "non_linguistic", "duplicate", "too_short")


@dataclass(frozen=True)
class CleanConfig:
    min_words: int = 1  # fewer words -> too_short (1: off, as in the method)
    min_letter_ratio: float = 0.5  # letters / visible characters below this -> non_linguistic

    def __post_init__(self):
        if not isinstance(self.min_words, int) or self.min_words < 1:
            raise UniqaError(f"clean.min_words must be an int >= 1, got {self.min_words!r}")
        if not 0 <= self.min_letter_ratio <= 1:
            raise UniqaError(f"clean.min_letter_ratio must be in [0, 1], got {self.min_letter_ratio!r}")


def words(text: str) -> list[str]:
    return WORD.findall(text or "")


def dedup_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def linguistic_problem(text: str | None, cfg: CleanConfig = CleanConfig()) -> str | None:
    """``empty`` / ``non_linguistic`` / ``too_short`` for one comment, or None if it may be ranked."""
    if text is None or not text.strip():
        return "empty"
    tokens = words(text)
    if not tokens or all(INTERJECTION.match(t.casefold()) for t in tokens):
        return "non_linguistic"
    visible = sum(not c.isspace() for c in text)
    if sum(map(len, tokens)) < cfg.min_letter_ratio * visible:
        return "non_linguistic"
    if len(tokens) < cfg.min_words:
        return "too_short"
    return None


def clean(comments: list[str | None], cfg: CleanConfig = CleanConfig()) -> tuple[list[int], list[tuple[int, str]]]:
    """(indices of the comments to rank, [(index, reason)] of the rejected), in input order."""
    kept, rejected, seen = [], [], set()
    for i, text in enumerate(comments):
        reason = linguistic_problem(text, cfg)
        if reason is None:
            key = dedup_key(text)
            reason = "duplicate" if key in seen else None
            seen.add(key)
        if reason is None:
            kept.append(i)
        else:
            rejected.append((i, reason))
    return kept, rejected
