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


def make_koniq(root: Path, image_dirs: tuple[str, ...] = ("1024x768",)) -> list[tuple]:
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
    write_csv(root / "koniq10k_scores_and_distributions.csv", header,
              [[n, 1, 2, 3, 4, 5, 15, m, sd, 20 * m] for n, m, sd in KONIQ])
    for folder in image_dirs:
        write_images(root / folder, [n for n, *_ in KONIQ])
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


def make_spaq_photos(root: Path, size: tuple[int, int] = (60, 90)) -> str:
    """A SPAQ root (:func:`make_spaq`) whose photos are random (h, w) JPEGs instead of 8x8 swatches, prepared into
    ``root/manifest`` (decode_size 448, the reference's); returns the manifest's path."""
    from uniqa.data.prepare import prepare

    make_spaq(root / "spaq")
    rng = np.random.default_rng(0)
    for name, *_ in SPAQ:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "spaq" / "TestImage" / name)
    prepare("spaq", str(root / "spaq"), str(root / "manifest"))
    return str(root / "manifest")


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
# as in the published data: MOS within about 0.2-7.3 of the 0-9 scale
TID_OBSERVED = [(7.1, "i01_01_1.bmp"), (0.3, "i01_05_3.bmp"), (3.8, "I02_02_2.BMP"), (5.9, "i02_17_5.bmp"),
                (1.7, "i03_03_4.bmp")]


def make_tid(root: Path, rows: list[tuple] = TID) -> list[tuple]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mos_with_names.txt").write_text("".join(f"{m} {n}\n" for m, n in rows) + "\n")
    write_images(root / "distorted_images", [n for _, n in rows])
    return rows


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


def make_aadb(root: Path, image_dirs: tuple[str, ...] = ("datasetImages_warp256",)) -> dict:
    labels = root / "imgListFiles_label"
    labels.mkdir(parents=True, exist_ok=True)
    for split, rows in AADB.items():
        (labels / f"imgList{split}Regression_score.txt").write_text("".join(f"{n} {s}\n" for n, s in rows))
    for folder in image_dirs:
        write_images(root / folder, [n for rows in AADB.values() for n, _ in rows])
    return AADB


def make_ava_test_list(root: Path, ids: list[str], name: str = "test_ids.txt", column: str = "") -> Path:
    """The standard AVA test list: ids one a line (``.txt``), or a CSV with ``column`` and a second column."""
    path = root / name
    if column:
        write_csv(path, [column, "other"], [[i, 0] for i in ids])
    else:
        path.write_text("".join(f"{i}\n" for i in ids))
    return path


# image, dst_idx, dst_type, dst_lev, dmos_std, dmos (0-1, lower is better); a numeric name as in the sheet
CSIQ = [(1600, 1, "noise", 1, 0.061, 0.062), (1600, 5, "blur", 3, 0.1, 0.5),
        ("aerial_city", 3, "jpeg 2000", 2, 0.05, 1.0), ("aerial_city", 6, "contrast", 4, 0.09, 0.0),
        ("boston", 2, "jpeg", 5, 0.1, 0.3),
        ("boston", 4, "fnoise", 2, 0.08, 0.2)]
CSIQ_FILES = ["awgn/1600.AWGN.1.png", "blur/1600.BLUR.3.png", "jpeg2000/aerial_city.jpeg2000.2.png",
              "contrast/aerial_city.contrast.4.png", "jpeg/boston.JPEG.5.png", "fnoise/boston.fnoise.2.png"]
CSIQ_HEADER = ["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]


def make_csiq(root: Path, rows: list[tuple] = CSIQ, header: list[str] = CSIQ_HEADER) -> list[tuple]:
    """``csiq.DMOS.xlsx`` with a notes sheet first and title rows above the header (as the published one),
    and the distorted images under ``dst_imgs/<type>/``."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "notes"
    wb.active.append(["CSIQ image quality database"])
    ws = wb.create_sheet("all_by_image")
    ws.append(["DMOS of all distorted images"])
    ws.append([])
    ws.append(header)
    for row in rows:
        ws.append(list(row))
    root.mkdir(parents=True, exist_ok=True)
    wb.save(root / "csiq.DMOS.xlsx")
    write_images(root / "dst_imgs", CSIQ_FILES[: len(rows)])
    return rows


# LIVE release 2: folder -> [(image, reference, DMOS 0-100 lower is better, orgs, parameter)], in dmos.mat order
LIVE = {"jp2k": [("img1.bmp", "bikes.bmp", 30.0, 0, 0.4), ("img2.bmp", "bikes.bmp", 0.0, 1, 0.0),
                 ("img3.bmp", "house.bmp", 80.0, 0, 2.0)],
        "jpeg": [("img1.bmp", "house.bmp", 10.0, 0, 15.0), ("img2.bmp", "parrots.bmp", 100.0, 0, 5.0)],
        "wn": [("img1.bmp", "parrots.bmp", 50.0, 0, 0.1)],
        "gblur": [("img1.bmp", "bikes.bmp", 20.5, 0, 1.2)],
        "fastfading": [("img1.bmp", "house.bmp", 0.0, 1, 0.0)]}


def make_live(root: Path, folders: dict = LIVE) -> dict:
    """``dmos.mat`` (dmos, orgs), ``refnames_all.mat`` (a cell array), the folders with ``info.txt`` (written in
    reverse order: entries follow the image number, not the line order) and the images."""
    from scipy.io import savemat

    entries = [e for rows in folders.values() for e in rows]
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / "dmos.mat", {"dmos": np.array([[e[2] for e in entries]]),
                                "orgs": np.array([[e[3] for e in entries]], dtype=float)})
    refs = np.empty((1, len(entries)), dtype=object)
    for i, e in enumerate(entries):
        refs[0, i] = e[1]
    savemat(root / "refnames_all.mat", {"refnames_all": refs})
    for folder, rows in folders.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "info.txt").write_text("".join(f"{r[1]} {r[0]} {r[4]}\n" for r in reversed(rows)))
        write_images(root / folder, [r[0] for r in rows])
    return folders


# name (with sub-folders, as in FLIVE), mos (0-100)
FLIVE = [("AVA__149.jpg", 72.5), ("blur_dataset/motion0037.jpg", 18.0), ("EE371R/cm_1.jpg", 100.0)]


# name, mos_quality, mos_align (AGIQA-3K's data.csv, images beside it)
AGIQA3K = [("AttnGAN_normal_000.jpg", 0.5, 1.2), ("midjourney_lowstep_001.png", 2.75, 3.0),
           ("sd1.5_highcorr_002.jpg", 5.0, 2.0)]


def make_agiqa3k(root: Path) -> list[tuple]:
    header = ["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align"]
    write_csv(root / "data.csv", header, [[n, "a cat on a mat", "", "", "", q, 0.5, a, 0.4] for n, q, a in AGIQA3K])
    write_images(root, [n for n, *_ in AGIQA3K])
    return AGIQA3K


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
