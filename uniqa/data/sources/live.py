"""LIVE IQA release 2: ``dmos.mat`` (``dmos`` 1x982, about 0-100, lower is better, flipped into ``mos_norm``;
``orgs`` 1 for the reference copies among the distorted images), ``refnames_all.mat`` (``refnames_all``, the
reference of each entry), folders ``jp2k/ jpeg/ wn/ gblur/ fastfading/``, each with ``info.txt`` (lines
``<reference> <image> [<parameter>]``).

The entries of ``dmos.mat`` run over the folders in that order; within a folder, entry ``k`` (from 1) is
``img<k>.bmp``, and the folder holds as many entries as its ``info.txt`` has lines (227, 233, 174, 174, 174 in
the release). Reference copies (``orgs == 1``, DMOS 0) are left out by convention (``-o keep_references=true``
keeps them). Rows are grouped by reference image."""

from __future__ import annotations

import posixpath

import numpy as np

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    image_id,
    image_uri,
    opt_bool,
    opt_range,
    read_columns,
    register_source,
    to_float,
)
from uniqa.data.sources.livec import load_mat, mat_numbers, mat_strings, mat_variable
from uniqa.errors import UniqaError

FOLDERS = "jp2k,jpeg,wn,gblur,fastfading"


def _reference(name: str) -> str:
    return posixpath.splitext(posixpath.basename(name.strip()))[0].lower()


def read_info(uri: str) -> dict[str, tuple[str, float | None]]:
    """``info.txt`` -> {image name: (reference, parameter or None)}."""
    out = {}
    for line, fields in read_columns(uri, 2):
        param = to_float(fields[2], uri, "parameter", line) if len(fields) > 2 else None
        out[fields[1]] = (fields[0], param)
    return out


@register_source(
    name="live",
    task="quality",
    mos_range=(0.0, 100.0),
    higher_is_better=False,
    description="LIVE IQA release 2, synthetic distortions (DMOS ~0-100, lower is better; reference copies "
                "dropped; grouped by reference)",
    options={
        "dmos_file": "DMOS file relative to root (variables dmos and orgs)",
        "refnames_file": "reference names file relative to root (variable refnames_all)",
        "folders": "comma-separated distortion folders in dmos.mat order",
        "info_file": "per-folder list of images",
        "keep_references": "keep the reference copies (orgs == 1)",
        "mos_min": "lower end of the DMOS range (default 0)",
        "mos_max": "upper end of the DMOS range (default 100)",
    },
)
def read_live(
    root: str,
    dmos_file: str = "dmos.mat",
    refnames_file: str = "refnames_all.mat",
    folders: str = FOLDERS,
    info_file: str = "info.txt",
    keep_references: str | bool = False,
    mos_min: str | float | None = None,
    mos_max: str | float | None = None,
) -> Records:
    keep = opt_bool("keep_references", keep_references)
    folder_list = [f.strip().strip("/") for f in folders.split(",") if f.strip()]
    if not folder_list:
        raise UniqaError(f"option folders={folders!r} names no folder")
    dmos_uri, refs_uri = storage.join(root, dmos_file), storage.join(root, refnames_file)
    mat = load_mat(dmos_uri)
    dmos = mat_numbers(mat_variable(mat, dmos_uri, "dmos", only_fallback=False), dmos_uri)
    orgs = mat_numbers(mat_variable(mat, dmos_uri, "orgs", only_fallback=False), dmos_uri)
    refs = mat_strings(mat_variable(load_mat(refs_uri), refs_uri, "refnames_all"), refs_uri)
    if not len(dmos) == len(orgs) == len(refs):
        raise UniqaError(f"{dmos_uri} has {len(dmos)} dmos and {len(orgs)} orgs entries but {refs_uri} has "
                         f"{len(refs)} reference names")
    names, params, types, counts = [], [], [], []
    for index, folder in enumerate(folder_list, start=1):
        info_uri = storage.join(root, folder, info_file)
        info = read_info(info_uri)
        counts.append(f"{folder} {len(info)}")
        for k in range(1, len(info) + 1):
            name = f"img{k}.bmp"
            if name not in info:
                raise UniqaError(f"{info_uri}: lists {len(info)} images but not {name} "
                                 f"(a folder's entries run img1..img{len(info)})")
            names.append(f"{folder}/{name}")
            params.append(info[name][1])
            types.append(index)
    if len(names) != len(dmos):
        raise UniqaError(f"the info files list {len(names)} images ({', '.join(counts)}) but {dmos_uri} has "
                         f"{len(dmos)} entries")
    kept = np.flatnonzero(np.ones(len(dmos), bool) if keep else orgs != 1)
    attrs = [{"dist_type": float(types[i]), **({"dist_param": params[i]} if params[i] is not None else {}),
              **({"reference_copy": 1.0} if orgs[i] == 1 else {})} for i in kept]
    dropped = len(dmos) - len(kept)
    return Records(
        image_id=[image_id("live", names[i]) for i in kept],
        image_uri=[image_uri(root, "", names[i]) for i in kept],
        mos=[float(dmos[i]) for i in kept],
        group=[_reference(refs[i]) for i in kept],
        attrs=attrs,
        mos_range=opt_range(mos_min, mos_max),
        image_dir=",".join(folder_list),
        notes={"dropped_reference_copies": dropped} if dropped else {},
    )
