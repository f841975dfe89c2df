"""AADB: ``imgListFiles_label/imgList{Train,Validation,Test}Regression_score.txt`` (lines ``<name> <score>``,
0-1) with the official train/val/test split; images under ``datasetImages_originalSize/`` (full size) or
``datasetImages_warp256/`` (the 256x256 copy), whichever is there, full size first. ``-o image_dir=...``
overrides; the summary says which folder was used."""

from __future__ import annotations

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    find_image_dir,
    image_id,
    image_uri,
    read_columns,
    register_source,
    to_float,
)

SPLITS = ("train", "val", "test")
IMAGE_DIRS = ("datasetImages_originalSize", "datasetImages_warp256")  # published folders, preferred first


@register_source(
    name="aadb",
    task="aesthetics",
    mos_range=(0.0, 1.0),
    description="AADB aesthetics (score 0-1; official train/val/test split; full-size images first)",
    options={
        "label_dir": "label folder relative to root",
        "train_file": "training list (image name, score) in the label folder",
        "val_file": "validation list (image name, score) in the label folder",
        "test_file": "test list (image name, score) in the label folder",
        "image_dir": "image folder relative to root (default: datasetImages_originalSize if present, "
                     "else datasetImages_warp256)",
    },
)
def read_aadb(
    root: str,
    label_dir: str = "imgListFiles_label",
    train_file: str = "imgListTrainRegression_score.txt",
    val_file: str = "imgListValidationRegression_score.txt",
    test_file: str = "imgListTestRegression_score.txt",
    image_dir: str = "",
) -> Records:
    files = {"train": train_file, "val": val_file, "test": test_file}
    names, mos, split = [], [], []
    for name in SPLITS:
        uri = storage.join(root, label_dir, files[name])
        for line, fields in read_columns(uri, 2):
            names.append(fields[0])
            mos.append(to_float(fields[1], uri, "score", line))
            split.append(name)
    folder = find_image_dir("aadb", root, IMAGE_DIRS, image_dir)
    return Records(
        image_id=[image_id("aadb", n) for n in names],
        image_uri=[image_uri(root, folder, n) for n in names],
        mos=mos,
        split=split,
        image_dir=folder,
        split_source=f"official (AADB {label_dir}/ lists)",
    )
