"""Builders of tiny datasets in each official file format (METHOD §6), with real image files.

Each ``make_*`` writes under ``root`` (a local folder) and returns the rows it wrote, so tests can
compare the parsed records exactly. Images are 8x8 Pillow files in the dataset's extension.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, 255 - value, 64)).save(path)


def write_images(folder: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        write_image(folder / name, 20 * i % 256)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# name, MOS (1-5), SD
KONIQ = [("100.jpg", 1.0, 0.3), ("101.jpg", 3.0, 0.5), ("102.jpg", 5.0, 0.2)]


def make_koniq(root: Path) -> list[tuple]:
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
    write_csv(root / "koniq10k_scores_and_distributions.csv", header,
              [[n, 1, 2, 3, 4, 5, 15, m, sd, 20 * m] for n, m, sd in KONIQ])
    write_images(root / "1024x768", [n for n, *_ in KONIQ])
    return KONIQ


# Image name, MOS (0-100), Brightness, Colorfulness, Contrast, Noisiness, Sharpness
SPAQ = [("00001.jpg", 0.0, 10, 20, 30, 40, 50), ("00002.jpg", 20.0, 11, 21, 31, 41, 51),
        ("00003.jpg", 80.0, 12, 22, 32, 42, 52), ("00004.jpg", 100.0, 13, 23, 33, 43, 53)]
SPAQ_HEADER = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]


def make_spaq(root: Path, header: list[str] = SPAQ_HEADER, rows: list[tuple] = SPAQ) -> list[tuple]:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(header)
    for row in rows:
        ws.append(list(row))
    ws.append([None] * len(header))  # trailing empty row, as spreadsheets often have
    path = root / "Annotations" / "MOS and Image attribute scores.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    write_images(root / "TestImage", [r[0] for r in rows])
    return rows


# 7 training examples first, then the test images: name, MOS (0-100), std
LIVEC = [(f"t{i}.bmp", 50.0, 1.0) for i in range(1, 8)] + [
    ("10.JPG", 0.0, 10.0), ("11.bmp", 40.0, 11.0), ("12.bmp", 60.0, 12.0), ("13.bmp", 100.0, 13.0)]


def make_livec(root: Path, rows: list[tuple] = LIVEC) -> list[tuple]:
    from scipy.io import savemat

    (root / "Data").mkdir(parents=True, exist_ok=True)
    names = np.empty((len(rows), 1), dtype=object)  # a MATLAB cell array (column)
    for i, (name, *_rest) in enumerate(rows):
        names[i, 0] = name
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[m for _, m, _ in rows]])})
    savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.array([[s for *_, s in rows]])})
    write_images(root / "Images", [r[0] for r in rows[7:]])
    return rows[7:]


# dist_img, ref_img, dmos (1-5, higher is better), var: 5 references x 2 distortions
KADID = [(f"I{r:02d}_{t:02d}_{lv:02d}.png", f"I{r:02d}.png", m, 0.1 * r)
         for r, (t, lv, m) in zip([1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
                                  [(1, 1, 5.0), (5, 3, 1.0), (2, 1, 1.8), (2, 5, 4.2), (3, 2, 3.0),
                                   (3, 4, 2.6), (4, 1, 3.4), (4, 3, 1.4), (6, 2, 4.6), (6, 5, 2.2)])]


def make_kadid(root: Path, rows: list[tuple] = KADID, images: bool = True) -> list[tuple]:
    write_csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], [list(r) for r in rows])
    if images:
        write_images(root / "images", [r[0] for r in rows])
    return rows


# MOS (0-9), name
TID = [(9.0, "i01_01_1.bmp"), (0.0, "i01_05_3.bmp"), (4.5, "I02_02_2.BMP"), (7.2, "i02_17_5.bmp"),
       (1.8, "i03_03_4.bmp")]


def make_tid(root: Path) -> list[tuple]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mos_with_names.txt").write_text("".join(f"{m} {n}\n" for m, n in TID) + "\n")
    write_images(root / "distorted_images", [n for _, n in TID])
    return TID


# image id, votes for 1..10, tag1, tag2, challenge
AVA = [("953619", [0, 1, 5, 17, 38, 36, 15, 6, 5, 1], 1, 22, 1396),
       ("953958", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0, 0, 1396),
       ("954184", [0, 0, 0, 0, 0, 0, 0, 0, 0, 4], 15, 0, 1397),
       ("954113", [0, 0, 0, 0, 2, 2, 0, 0, 0, 0], 21, 9, 1397)]
AVA_CAPTIONS = {"953619": ("train", ["Nice colours!", "the horizon is tilted"]),
                "953958": ("val", ["blurry"]),
                "954184": ("test", [])}


def make_ava(root: Path, rows=AVA, captions=AVA_CAPTIONS, comments: bool = True) -> list[tuple]:
    root.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(str(x) for x in [i + 1, ident, *votes, t1, t2, ch]) for i, (ident, votes, t1, t2, ch)
             in enumerate(rows)]
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    if comments:
        images = [{"filename": f"{ident}.jpg", "split": split, "sentences": [{"raw": c, "tokens": c.split()}
                                                                             for c in texts]}
                  for ident, (split, texts) in captions.items()]
        (root / "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json").write_text(json.dumps({"images": images}))
    for i, (ident, *_rest) in enumerate(rows):
        write_image(root / "images" / f"{ident}.jpg", 30 * i)
    return rows


# split file key -> [(name, score 0-1)]
AADB = {"Train": [("farm1_1.jpg", 0.0), ("farm1_2.jpg", 0.6)], "Validation": [("farm1_3.jpg", 0.2)],
        "Test": [("farm1_4.jpg", 1.0), ("farm1_5.jpg", 0.55)]}


def make_aadb(root: Path) -> dict:
    labels = root / "imgListFiles_label"
    labels.mkdir(parents=True, exist_ok=True)
    for split, rows in AADB.items():
        (labels / f"imgList{split}Regression_score.txt").write_text("".join(f"{n} {s}\n" for n, s in rows))
    write_images(root / "datasetImages_warp256", [n for rows in AADB.values() for n, _ in rows])
    return AADB


# name (with sub-folders, as in FLIVE), mos (0-100)
FLIVE = [("AVA__149.jpg", 72.5), ("blur_dataset/motion0037.jpg", 18.0), ("EE371R/cm_1.jpg", 100.0)]


def make_flive(root: Path) -> list[tuple]:
    write_csv(root / "labels_image.csv", ["name", "mos", "height", "width"], [[n, m, 8, 8] for n, m in FLIVE])
    write_images(root / "database", [n for n, _ in FLIVE])
    return FLIVE


def make_folder(root: Path) -> list[str]:
    """Images in nested folders plus a non-image file that must be ignored; returns relative paths."""
    names = ["a.jpg", "sub/b.png", "sub/deeper/c.JPEG"]
    write_images(root, names)
    (root / "notes.txt").write_text("not an image")
    return sorted(names)


def upload_tree(local: Path, s3_prefix: str) -> None:
    """Copy a local folder to ``s3://bucket/prefix`` through uniqa.storage."""
    from uniqa import storage

    for dirpath, _, files in os.walk(local):
        for f in files:
            path = Path(dirpath) / f
            storage.write_bytes(storage.join(s3_prefix, str(path.relative_to(local))), path.read_bytes())
