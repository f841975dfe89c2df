"""TID2013: ``mos_with_names.txt`` (lines ``<mos> <name>``, MOS 0-9, higher is better), images under
``distorted_images/``. Rows are grouped by reference (``i01_05_3.bmp`` -> ``i01``, case-insensitive).

Levels: TID2013's MOS fills only about 0-7.3 of its published 0-9 scale, so equal-width bins over 0-9 would
leave "perfect" nearly empty. Our choice (METHOD §6): ``mos_norm`` is min-max over the published 0-9 range,
and the level words are binned over the observed range of ``mos_norm`` (``level_range="observed"``; set
``--set level_range=published`` for the published range)."""

from __future__ import annotations

import posixpath

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    image_id,
    image_uri,
    read_columns,
    register_source,
    to_float,
)
from uniqa.data.sources.fields import distortion_attrs


def reference_of(name: str) -> str:
    """``i01_05_3.bmp`` / ``I01_05_3.BMP`` -> ``i01``; a name without ``_`` is its own reference."""
    ref, _ = distortion_attrs(name)
    return (ref or posixpath.splitext(posixpath.basename(name))[0].split("_")[0]).lower()


@register_source(
    name="tid2013",
    task="quality",
    mos_range=(0.0, 9.0),
    description="TID2013 synthetic distortions IQA (MOS 0-9; grouped by reference; levels over observed range)",
    level_range="observed",
    options={
        "scores_file": "text file relative to root",
        "image_dir": "image folder relative to root",
    },
)
def read_tid2013(root: str, scores_file: str = "mos_with_names.txt", image_dir: str = "distorted_images") -> Records:
    uri = storage.join(root, scores_file)
    rows = read_columns(uri, 2)
    names = [fields[1] for _, fields in rows]
    return Records(
        image_id=[image_id("tid2013", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=[to_float(fields[0], uri, "mos", line) for line, fields in rows],
        group=[reference_of(n) for n in names],
        attrs=[distortion_attrs(n)[1] for n in names],
        image_dir=image_dir,
    )
