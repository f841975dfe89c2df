"""AVA-like comment threads for the sample corpus: remarks about an image's actual treatment mixed
with the noise real AVA threads carry, so comment purification has real work to do.

:func:`comment_thread` draws 5-15 comments for one image by this rule: 2 to half of them (at least
2) are distinct relevant remarks for its treatment; every other one is noise drawn uniformly from
exclamations ("oh!!!"), emoji-only, off-topic chatter, one-word praise, empty, and exact duplicates
of a comment already in the thread; the thread is then shuffled.
"""

from __future__ import annotations

import numpy as np

RELEVANT: dict[str, tuple[str, ...]] = {
    "thirds": (
        "Placing the {s} on a third line gives the frame room to breathe.",
        "Nice use of the rule of thirds, the {s} sits exactly where my eye wants to land.",
        "Balanced composition: the {s} is off-centre and the negative space works for it.",
        "Good framing, the {s} leads the eye across the whole picture.",
        "The off-centre placement of the {s} makes this feel deliberate and calm.",
        "Strong composition, I like how much space you left around the {s}.",
    ),
    "centred_tilted": (
        "The horizon is tilted, it makes the whole shot feel like an accident.",
        "Why is this crooked? Straighten it and the {s} would look much better.",
        "Dead centre {s} and a slanted frame, the composition feels static and off balance.",
        "The black corners from the rotation are distracting.",
        "Too centred, and the tilt does not look intentional.",
        "Level the camera next time, the slant pulls attention away from the {s}.",
    ),
    "edge_cut": (
        "The {s} is cut off at the edge, I want to see the whole thing.",
        "Cropped far too tight, half of the {s} is missing.",
        "The crop chops the {s} in a really awkward place.",
        "Subject jammed into the corner, there is no breathing room at all.",
        "Give the {s} some space, the framing feels cramped and careless.",
        "Bad crop, the interesting part of the {s} is outside the frame.",
    ),
    "harmonious": (
        "Lovely colour palette, the warm and cool tones complement each other.",
        "The teal and orange grading really suits the {s}.",
        "Beautiful, harmonious colours and gentle contrast.",
        "The colour treatment is subtle and makes the {s} glow.",
        "Warm highlights against cool shadows, very pleasing to look at.",
        "Great colour harmony, nothing fights for attention.",
    ),
    "clashing": (
        "The colours clash badly, that green and magenta are hard to look at.",
        "Way oversaturated, the {s} looks radioactive.",
        "The colour grading is garish and fights with the subject.",
        "Something went wrong with the white balance, the tints are ugly.",
        "Too much saturation and a weird colour cast all over the {s}.",
        "The neon colours ruin what could have been a nice shot of the {s}.",
    ),
    "muddy": (
        "Very muddy and dark, the {s} gets lost in the murk.",
        "Underexposed and flat, it needs more contrast.",
        "The blacks are washed out and everything looks grey and dull.",
        "Dull lighting and a brown cast, the {s} has no life.",
        "Try lifting the exposure, the shadows swallow all the detail.",
        "Flat, murky tones, nothing pops.",
    ),
    "well_exposed": (
        "Well exposed, good detail in both the shadows and the highlights.",
        "Crisp contrast and clean colours, the {s} really pops.",
        "Excellent exposure, nothing blown out and nothing blocked up.",
        "The lighting on the {s} is spot on.",
        "Good tonal range, it looks bright and natural.",
        "Punchy but natural, the {s} is beautifully lit.",
    ),
    "mono_contrast": (
        "The black and white conversion adds a lot of drama.",
        "Strong contrast in mono, the textures of the {s} stand out.",
        "I like the monochrome treatment but the highlights are a bit harsh.",
        "Nice tonal range for a black and white image of the {s}.",
        "Going mono was a good call, the shapes read much better without colour.",
        "The contrast is heavy handed, some of the detail is lost in pure black.",
    ),
}

EXCLAMATIONS = ("oh!!!", "wow!!", "!!!!!", "hmm...", "Oooh!", "ha!")
EMOJI = ("😍😍😍", "👍", "🔥🔥", "👏👏👏", "❤️", ":)", "😮")
OFF_TOPIC = (
    "Congrats on the ribbon!",
    "Good luck to everyone in this challenge.",
    "What camera did you use? I am thinking of upgrading.",
    "I voted earlier but the site crashed, so voting again.",
    "Thanks for commenting on my shot last week!",
    "First time entering a challenge here, hello all.",
    "Is anyone going to the meetup on Saturday?",
)
PRAISE = ("nice", "Beautiful", "great", "Wow", "lovely", "cool", "awesome")
EMPTY = ("", "   ")
NOISE_KINDS = ("exclamation", "emoji", "off_topic", "praise", "empty", "duplicate")


def _pick(pool: tuple[str, ...], rng: np.random.Generator) -> str:
    return pool[int(rng.integers(len(pool)))]


def _noise(kind: str, thread: list[str], rng: np.random.Generator) -> str:
    pools = {"exclamation": EXCLAMATIONS, "emoji": EMOJI, "off_topic": OFF_TOPIC, "praise": PRAISE, "empty": EMPTY}
    if kind == "duplicate":
        return _pick(tuple(thread), rng) if thread else _pick(PRAISE, rng)
    return _pick(pools[kind], rng)


def comment_thread(treatment: str, subject: str, rng: np.random.Generator) -> list[str]:
    """5-15 comments for an image of ``subject`` given ``treatment`` (rule in the module docstring)."""
    n = int(rng.integers(5, 16))
    templates = RELEVANT[treatment]
    n_relevant = int(rng.integers(2, max(2, n // 2) + 1))
    chosen = rng.choice(len(templates), size=min(n_relevant, len(templates)), replace=False)
    thread = [templates[i].format(s=subject) for i in chosen]
    while len(thread) < n:
        thread.append(_noise(_pick(NOISE_KINDS, rng), thread, rng))
    order = rng.permutation(len(thread))
    return [thread[i] for i in order]
