"""LIVE In the Wild Image Quality Challenge: ``Data/AllImages_release.mat`` (cell array of names),
``Data/AllMOS_release.mat`` (1x1169, MOS 0-100), ``Data/AllStdDev_release.mat``; images under ``Images/``.
The first 7 entries are the study's training examples and are dropped by convention (1,162 remain)."""

from __future__ import annotations

import io

import numpy as np

from uniqa import storage
from uniqa.data.sources.base import Records, image_id, image_uri, opt_int, read_file, register_source
from uniqa.errors import UniqaError


def load_mat(uri: str) -> dict[str, np.ndarray]:
    """The variables of a MATLAB v5 file (scipy's ``__header__``-style entries left out)."""
    from scipy.io import loadmat

    data = read_file(uri)
    try:
        mat = loadmat(io.BytesIO(data))
    except Exception as e:  # scipy raises ValueError/TypeError/MatReadError/NotImplementedError on bad files
        raise UniqaError(f"{uri}: not a readable MATLAB .mat file: {e}") from e
    return {k: v for k, v in mat.items() if not k.startswith("__")}


def mat_variable(mat: dict[str, np.ndarray], uri: str, key: str, only_fallback: bool = True) -> np.ndarray:
    """Variable ``key`` of a loaded .mat (or, with ``only_fallback``, its only variable when ``key`` is absent)."""
    if key in mat:
        return mat[key]
    if only_fallback and len(mat) == 1:
        return next(iter(mat.values()))
    raise UniqaError(f"{uri}: expected variable {key!r}, found variables {sorted(mat)}")


def load_mat_variable(uri: str, key: str) -> np.ndarray:
    """Variable ``key`` of a MATLAB v5 file (or its only variable when ``key`` is absent)."""
    return mat_variable(load_mat(uri), uri, key)


def mat_strings(value: np.ndarray, uri: str) -> list[str]:
    """A cell array of strings (object array of char arrays) or a char matrix -> list of str."""
    if value.dtype.kind == "U":  # a char matrix, loaded as one string per row
        return [str(row).strip() for row in value.ravel()]
    out = []
    for cell in value.ravel():
        while isinstance(cell, np.ndarray):
            if cell.size != 1:
                raise UniqaError(f"{uri}: cell array entry {cell!r} is not a single string")
            cell = cell.ravel()[0]
        if not isinstance(cell, str):
            raise UniqaError(f"{uri}: cell array entry {cell!r} is not a string")
        out.append(cell.strip())
    return out


def mat_numbers(value: np.ndarray, uri: str) -> np.ndarray:
    try:
        out = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise UniqaError(f"{uri}: expected a numeric array: {e}") from e
    bad = ~np.isfinite(out)
    if bad.any():
        raise UniqaError(f"{uri}: entry {int(np.flatnonzero(bad)[0])} has non-numeric value {out[bad][0]}")
    return out


@register_source(
    name="livec",
    task="quality",
    mos_range=(0.0, 100.0),
    description="LIVE Challenge in-the-wild IQA (MOS 0-100; the 7 training examples dropped)",
    options={
        "images_file": "image names file relative to root (variable AllImages_release)",
        "mos_file": "MOS file relative to root (variable AllMOS_release)",
        "std_file": "MOS standard deviation file relative to root (variable AllStdDev_release; optional)",
        "image_dir": "image folder relative to root",
        "skip_first": "leading entries to drop (the 7 training examples)",
    },
)
def read_livec(
    root: str,
    images_file: str = "Data/AllImages_release.mat",
    mos_file: str = "Data/AllMOS_release.mat",
    std_file: str = "Data/AllStdDev_release.mat",
    image_dir: str = "Images",
    skip_first: str | int = 7,
) -> Records:
    skip = opt_int("skip_first", skip_first)
    if skip < 0:
        raise UniqaError(f"option skip_first={skip} must be >= 0")
    names_uri, mos_uri = storage.join(root, images_file), storage.join(root, mos_file)
    names = mat_strings(load_mat_variable(names_uri, "AllImages_release"), names_uri)
    mos = mat_numbers(load_mat_variable(mos_uri, "AllMOS_release"), mos_uri)
    _same_length(names_uri, len(names), mos_uri, len(mos))
    attrs = None
    std_uri = storage.join(root, std_file) if std_file else ""
    if std_uri and storage.exists(std_uri):
        std = mat_numbers(load_mat_variable(std_uri, "AllStdDev_release"), std_uri)
        _same_length(names_uri, len(names), std_uri, len(std))
        attrs = [{"mos_std": float(s)} for s in std[skip:]]
    dropped = min(skip, len(names))
    names, mos = names[skip:], mos[skip:]
    return Records(
        image_id=[image_id("livec", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=mos.tolist(),
        attrs=attrs,
        image_dir=image_dir,
        notes={"dropped_training_examples": dropped} if dropped else {},
    )


def _same_length(uri_a: str, n_a: int, uri_b: str, n_b: int) -> None:
    if n_a != n_b:
        raise UniqaError(f"{uri_b} has {n_b} entries but {uri_a} has {n_a}")
