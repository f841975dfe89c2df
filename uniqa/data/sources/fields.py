"""Per-row fields that dataset files name in their own words: official split labels, and synthetic-distortion file
names (reference, distortion type and level)."""

from __future__ import annotations

import posixpath
import re

from uniqa.errors import UniqaError
from uniqa.schema import SPLIT_VALUES

_SPLIT_ALIASES = {"train": "train", "training": "train", "restval": "train", "val": "val", "valid": "val",
                  "validation": "val", "test": "test", "testing": "test"}


def split_name(value, where: str) -> str:
    """An official split label -> train | val | test; anything else names the value."""
    out = _SPLIT_ALIASES.get(str(value).strip().lower())
    if out is None:
        raise UniqaError(f"{where}: unknown split {value!r}; expected one of {list(SPLIT_VALUES)}")
    return out


_DISTORTION_NAME = re.compile(r"^([A-Za-z]*\d+)_(\d+)_(\d+)(\.[^.]*)?$")


def distortion_attrs(name: str) -> tuple[str | None, dict[str, float]]:
    """Synthetic-distortion file names ``I01_05_03.png`` -> (reference ``I01``, {dist_type: 5, dist_level: 3});
    (None, {}) when the name does not follow the pattern."""
    m = _DISTORTION_NAME.match(posixpath.basename(name))
    if not m:
        return None, {}
    return m.group(1), {"dist_type": float(m.group(2)), "dist_level": float(m.group(3))}
