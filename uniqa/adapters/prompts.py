"""Level prompt sets as data: each group holds five prompts ordered worst -> best (METHOD §3).

``QUALITY`` and ``QUALITY_ENSEMBLE`` are the paper's prompts (METHOD §3.3 and §3.6). The official code's head
uses the "{level} image" wording for aesthetics datasets too: ``IMAGE`` (name ``image``) is that set under its own
name, for reproducing the paper's IAA numbers (``--set prompt_set=image`` with ``head: aesthetics``); ``CONTENT``
(``content``) is the reference head's "{level} content" variant. The paper gives no aesthetics prompts;
``AESTHETICS`` / ``AESTHETICS_ENSEMBLE`` are our analogous choice, built the same way: the first group swaps
"image" for "aesthetics" on the same five level words, the others name the aesthetic facets the IAA captions
describe (METHOD §1.3): beauty, composition and lighting, each from "extremely <bad>" through "fair" to
"extremely <good>".
"""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.errors import UniqaError

N_LEVELS = 5


@dataclass(frozen=True)
class PromptSet:
    name: str  # registry key, recorded with every head
    groups: tuple[tuple[str, ...], ...]  # G groups of 5 prompts, each ordered worst -> best

    def __post_init__(self):
        if not self.groups:
            raise UniqaError(f"prompt set {self.name!r} has no groups")
        for group in self.groups:
            if len(group) != N_LEVELS or not all(isinstance(p, str) and p.strip() for p in group):
                raise UniqaError(
                    f"prompt set {self.name!r}: each group needs {N_LEVELS} non-empty prompts ordered "
                    f"worst -> best, got {group!r}"
                )

    @property
    def prompts(self) -> list[str]:
        """All prompts, group after group (G * 5)."""
        return [p for group in self.groups for p in group]


def _graded(bad_good: tuple[str, str], noun: str = "image") -> tuple[str, ...]:
    """extremely <bad>, <bad>, fair, <good>, extremely <good> <noun>."""
    bad, good = bad_good
    return tuple(f"{w} {noun}" for w in (f"extremely {bad}", bad, "fair", good, f"extremely {good}"))


QUALITY = PromptSet("quality", (("bad image", "poor image", "fair image", "good image", "perfect image"),))
QUALITY_ENSEMBLE = PromptSet(
    "quality-ensemble",
    (
        QUALITY.groups[0],
        _graded(("blurry", "sharp")),
        _graded(("noisy", "noise-free")),
        _graded(("low-quality", "high-quality")),
    ),
)
IMAGE = PromptSet("image", QUALITY.groups)  # the official head's prompts, for IQA and IAA alike
CONTENT = PromptSet("content", (tuple(f"{w} content" for w in ("bad", "poor", "fair", "good", "perfect")),))
AESTHETICS = PromptSet(
    "aesthetics",
    (("bad aesthetics", "poor aesthetics", "fair aesthetics", "good aesthetics", "perfect aesthetics"),),
)
AESTHETICS_ENSEMBLE = PromptSet(
    "aesthetics-ensemble",
    (
        AESTHETICS.groups[0],
        _graded(("ugly", "beautiful")),
        _graded(("badly composed", "well composed")),
        _graded(("badly lit", "well lit")),
    ),
)

PROMPT_SETS: dict[str, PromptSet] = {}


def register_prompt_set(prompt_set: PromptSet) -> PromptSet:
    """Add a prompt set to the registry (its ``name`` is the key); returns it."""
    if prompt_set.name in PROMPT_SETS and PROMPT_SETS[prompt_set.name] != prompt_set:
        raise UniqaError(f"prompt set {prompt_set.name!r} is already registered with other prompts")
    PROMPT_SETS[prompt_set.name] = prompt_set
    return prompt_set


for _ps in (QUALITY, QUALITY_ENSEMBLE, IMAGE, CONTENT, AESTHETICS, AESTHETICS_ENSEMBLE):
    register_prompt_set(_ps)


def get_prompt_set(name: str) -> PromptSet:
    """Registered prompt set by name; an unknown name lists the known ones."""
    try:
        return PROMPT_SETS[name]
    except KeyError:
        raise UniqaError(f"unknown prompt set {name!r}; known: {sorted(PROMPT_SETS)}") from None
