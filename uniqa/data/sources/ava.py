"""AVA: ``AVA.txt`` (15 space-separated columns: index, image id, vote counts for scores 1..10, semantic
tag 1, tag 2, challenge id); MOS = vote-weighted mean (1-10); images ``images/<id>.jpg``. Human comments
and the official split come from an optional AVA-Captions-style JSON
(``{"images": [{"filename": "<id>.jpg", "split": "train", "sentences": [{"raw": "..."}]}]}``).

Split source: the standard test list of most AVA papers (about 20k image ids; the official UniQA code's
``process_ava.py`` reads it) when the dataset has it, ``aesthetics_image_lists/generic_test.jpgl`` or
``generic_test.jpgl`` under the root (``-o test_list=FILE`` names another: a text file of ids, one a line, the first
field of each line, or a CSV whose ``test_list_column`` holds the ids, default its first column); else the
AVA-Captions JSON's split (``-o test_list=none`` prefers it). Listed images are ``test``, the others ``train``;
comments still come from the JSON. The summary says which split source was used."""

from __future__ import annotations

import json
import posixpath

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    image_id,
    image_uri,
    read_columns,
    read_csv_rows,
    read_text,
    register_source,
    to_float,
)
from uniqa.data.sources.fields import split_name
from uniqa.errors import UniqaError

NUM_COLUMNS = 15
SCORES = range(1, 11)


def parse_ava_line(fields: list[str], uri: str, line: int) -> tuple[str, float, dict[str, float]]:
    """One AVA.txt line -> (image id, vote-weighted mean, attrs)."""
    if len(fields) != NUM_COLUMNS:
        raise UniqaError(f"{uri}: line {line} has {len(fields)} columns, expected {NUM_COLUMNS}")
    ident = fields[1]
    votes = [to_float(v, uri, f"votes_{s}", line) for s, v in zip(SCORES, fields[2:12])]
    total = sum(votes)
    if total <= 0:
        raise UniqaError(f"{uri}: line {line}: image {ident} has no votes; cannot compute its MOS")
    mos = sum(s * v for s, v in zip(SCORES, votes)) / total
    attrs = {f"votes_{s}": v for s, v in zip(SCORES, votes)}
    for key, value in zip(("tag_1", "tag_2", "challenge"), fields[12:15]):
        attrs[key] = to_float(value, uri, key, line)
    return ident, mos, attrs


def read_comments(uri: str) -> dict[str, tuple[str, list[str]]]:
    """AVA-Captions JSON -> {image file name: (split, [comment, ...])}."""
    try:
        data = json.loads(read_text(uri))
    except json.JSONDecodeError as e:
        raise UniqaError(f"{uri}: not valid JSON: {e}") from e
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise UniqaError(f"{uri}: expected a top-level object with an 'images' list")
    out = {}
    for i, item in enumerate(images):
        if not isinstance(item, dict) or "filename" not in item:
            raise UniqaError(f"{uri}: images[{i}] has no 'filename'")
        where = f"{uri}: images[{i}] ({item['filename']})"
        out[posixpath.basename(str(item["filename"]))] = (split_name(item.get("split"), where), _raws(item, where))
    return out


def _raws(item: dict, where: str) -> list[str]:
    """The ``raw`` text of each sentence, stripped; a null ``raw`` is an empty comment (purification rejects
    it as empty, with a reason), anything that is not a list of sentence objects is an error."""
    sentences = item.get("sentences")
    if sentences is None:
        return []
    if not isinstance(sentences, list) or not all(isinstance(s, dict) for s in sentences):
        raise UniqaError(f"{where}: 'sentences' must be a list of objects with a 'raw' text, got {sentences!r:.80}")
    raws = [s.get("raw") for s in sentences]
    bad = next((r for r in raws if r is not None and not isinstance(r, str)), None)
    if bad is not None:
        raise UniqaError(f"{where}: sentence 'raw' must be a string, got {bad!r:.80}")
    return [(r or "").strip() for r in raws]


@register_source(
    name="ava",
    task="aesthetics",
    mos_range=(1.0, 10.0),
    description="AVA aesthetics (vote-weighted mean 1-10; comments + official split from AVA-Captions JSON)",
    options={
        "scores_file": "text file relative to root",
        "image_dir": "image folder relative to root",
        "image_ext": "image file extension",
        "comments_file": "AVA-Captions JSON relative to root, used when present (empty: none)",
        "test_list": "standard test list relative to root: image ids one a line, or a .csv; it replaces the "
                     "JSON's split (listed ids test, the rest train). auto: aesthetics_image_lists/generic_test.jpgl "
                     "or generic_test.jpgl when present; none: the JSON's split",
        "test_list_column": "the id column when test_list is a .csv (default: its first column)",
    },
)
def read_ava(
    root: str,
    scores_file: str = "AVA.txt",
    image_dir: str = "images",
    image_ext: str = ".jpg",
    comments_file: str = "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json",
    test_list: str = "auto",
    test_list_column: str = "",
) -> Records:
    uri = storage.join(root, scores_file)
    names, mos, attrs = [], [], []
    for line, fields in read_columns(uri, NUM_COLUMNS):
        ident, score, a = parse_ava_line(fields, uri, line)
        names.append(ident + image_ext)
        mos.append(score)
        attrs.append(a)
    records = Records(
        image_id=[image_id("ava", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=mos,
        attrs=attrs,
        image_dir=image_dir,
    )
    comments_uri = storage.join(root, comments_file) if comments_file else ""
    if comments_uri and storage.exists(comments_uri):
        _attach_comments(records, names, read_comments(comments_uri))
        records.split_source = f"AVA-Captions JSON {comments_file}"
    if test_list == "auto":
        test_list = next((f for f in STANDARD_TEST_LISTS if storage.exists(storage.join(root, f))), "")
    elif test_list == "none":
        test_list = ""
    if test_list:
        list_uri = storage.join(root, test_list)
        _apply_test_list(records, names, image_ext, read_test_list(list_uri, test_list_column), list_uri)
        records.split_source = f"standard test list {test_list}"
    elif test_list_column:
        raise UniqaError("option test_list_column needs test_list (the file that holds the column)")
    return records


STANDARD_TEST_LISTS = ("aesthetics_image_lists/generic_test.jpgl", "generic_test.jpgl")  # as AVA ships it


def _id_of(text: str, image_ext: str) -> str:
    """``"953619"``, ``"953619.jpg"`` or ``"images/953619.jpg"`` -> ``"953619"``."""
    name = posixpath.basename(text.strip())
    return name[: -len(image_ext)] if image_ext and name.lower().endswith(image_ext.lower()) else name


def read_test_list(uri: str, column: str = "") -> list[str]:
    """The ids of a test list: a .csv's ``column`` (default its first), else the first field of each line.
    Ids are returned as written (extension and folder stripped by the caller)."""
    if uri.lower().endswith(".csv"):
        rows = read_csv_rows(uri, [column] if column else [])
        if not rows:
            raise UniqaError(f"{uri}: the test list has no rows")
        key = column or next(iter(rows[0]))
        return [str(row[key] or "").strip() for row in rows if str(row[key] or "").strip()]
    if column:
        raise UniqaError(f"option test_list_column={column!r} applies to a .csv test list, not {uri}")
    return [fields[0] for _, fields in read_columns(uri, 1)]


def _apply_test_list(records: Records, names: list[str], image_ext: str, ids: list[str], uri: str) -> None:
    """Listed images -> test, the others -> train; a list that matches no AVA image is an error (wrong file)."""
    listed = {_id_of(i, image_ext) for i in ids}
    if not listed:
        raise UniqaError(f"{uri}: the test list holds no image ids")
    ours = [_id_of(n, image_ext) for n in names]
    records.split = ["test" if i in listed else "train" for i in ours]
    matched = len(listed & set(ours))
    if not matched:
        raise UniqaError(f"{uri}: none of its {len(listed)} ids (e.g. {sorted(listed)[0]!r}) is an image of AVA.txt")
    records.notes.pop("without_official_split", None)
    if len(listed) > matched:
        records.notes["test_list_ids_not_in_ava"] = len(listed) - matched


def _attach_comments(records: Records, names: list[str], by_name: dict[str, tuple[str, list[str]]]) -> None:
    """Official split + comments for the images the JSON covers; the others get neither (counted in notes)."""
    found = [by_name.get(n) for n in names]
    records.split = [f[0] if f else None for f in found]
    records.comments = [f[1] if f else None for f in found]
    uncovered = sum(f is None for f in found)
    unknown = len(set(by_name) - set(names))
    records.notes.update({k: v for k, v in {"without_official_split": uncovered,
                                            "comments_for_unknown_images": unknown}.items() if v})
