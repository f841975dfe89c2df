"""Declared Parquet schemas of every stage hand-off, checked at each stage boundary.

Declarations and their checks only; reading and writing them is :mod:`uniqa.tables`. A missing or
mistyped column raises :class:`UniqaError` naming the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from uniqa.errors import UniqaError

LEVELS = ("bad", "poor", "fair", "good", "perfect")
TASKS = ("quality", "aesthetics")
SPLIT_VALUES = ("train", "val", "test")
NUM_SPLITS = 10
SPLIT_COLUMNS = tuple(f"split_{i}" for i in range(NUM_SPLITS))

# Safe widenings accepted on read (then cast to the declared type).
_WIDENINGS = {
    pa.float64(): (pa.float32(), pa.int64(), pa.int32(), pa.int16(), pa.int8(), pa.float16()),
    pa.string(): (pa.large_string(),),
    pa.int64(): (pa.int32(), pa.int16(), pa.int8()),
    pa.int32(): (pa.int16(), pa.int8()),
}


@dataclass(frozen=True)
class TableSchema:
    """A named Arrow schema; ``optional`` columns may be absent (filled with nulls on conform)."""

    name: str
    schema: pa.Schema
    optional: tuple[str, ...] = ()
    unique: str | None = None  # column whose values must be unique within a table

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def check_columns(self, schema: pa.Schema, where: str = "") -> None:
        where = f" in {where}" if where else ""
        for field in self.schema:
            if field.name not in schema.names:
                if field.name in self.optional:
                    continue
                raise UniqaError(
                    f"{self.name}{where}: missing column {field.name!r} (expected {field.type}); "
                    f"found columns {schema.names}"
                )
            got = schema.field(field.name).type
            if not _compatible(got, field.type):
                raise UniqaError(
                    f"{self.name}{where}: column {field.name!r} has type {got}, expected {field.type}"
                )

    def conform(self, table: pa.Table, where: str = "") -> pa.Table:
        """Check, cast to the declared types and order; extra columns are kept at the end."""
        self.check_columns(table.schema, where)
        arrays, fields = [], []
        for field in self.schema:
            if field.name in table.column_names:
                arrays.append(table[field.name].cast(field.type))
            else:
                arrays.append(pa.nulls(len(table), field.type))
            fields.append(field)
        for name in table.column_names:
            if name not in self.schema.names:
                arrays.append(table[name])
                fields.append(table.schema.field(name))
        out = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        if self.unique and len(out):
            check_unique(out[self.unique], f"{self.name}{' in ' + where if where else ''}", self.unique)
        return out


def _compatible(got: pa.DataType, want: pa.DataType) -> bool:
    if got == want or pa.types.is_null(got):
        return True
    if got in _WIDENINGS.get(want, ()):
        return True
    if pa.types.is_list(want) and (pa.types.is_list(got) or pa.types.is_large_list(got)):
        return _compatible(got.value_type, want.value_type)
    if pa.types.is_map(want) and pa.types.is_map(got):
        return _compatible(got.key_type, want.key_type) and _compatible(got.item_type, want.item_type)
    return False


def check_unique(column: pa.ChunkedArray | pa.Array, where: str, name: str = "image_id") -> None:
    """The one duplicate-id check: fails naming the first value that appears more than once."""
    if pc.count_distinct(column).as_py() + column.null_count == len(column):
        return
    counts = pc.value_counts(column)
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    raise UniqaError(f"{where}: column {name!r} has duplicate value {dup[0]['values'].as_py()!r}")


MANIFEST = TableSchema(
    name="manifest",
    schema=pa.schema([
        pa.field("image_id", pa.string(), nullable=False),  # stable, unique
        pa.field("image_uri", pa.string(), nullable=False),  # local path or s3://
        pa.field("dataset", pa.string()),
        pa.field("task", pa.string()),  # quality | aesthetics
        pa.field("mos", pa.float64()),  # raw score as published
        pa.field("mos_norm", pa.float64()),  # [0, 1], higher is better
        pa.field("level", pa.string()),  # bad | poor | fair | good | perfect
        pa.field("group", pa.string()),  # content group (reference image); splits never cut one
            *[pa.field(c, pa.string()) for c in SPLIT_COLUMNS],  # train | val | test
        pa.field("comments", pa.list_(pa.string())),  # human comments (aesthetics datasets)
        pa.field("attrs", pa.map_(pa.string(), pa.float64())),  # dataset-specific numbers
            # shorter side the image is resized to before its views (SPAQ: 448, as the reference); null: as stored
        pa.field("decode_size", pa.int32()),
    ]),
    optional=("comments", "attrs", "group", "decode_size"),
    unique="image_id",
)


def validate_manifest(table: pa.Table, where: str = "") -> pa.Table:
    """Conform + value checks (non-null ids/dataset/task, task, level, labels, mos_norm range, positive
    decode sizes); the first bad row is named.

    Unlabelled rows (a folder of images) have ``mos``, ``mos_norm`` and ``level`` all null; no score is NaN."""
    table = MANIFEST.conform(table, where)
    label = f"manifest{' in ' + where if where else ''}"

    def first(mask) -> int | None:  # the first row where mask holds
        mask = pc.fill_null(mask, False)
        return pc.index(mask, True).as_py() if pc.any(mask).as_py() else None

    def at(i: int, col: str):
        return table[col][i].as_py()

    for col in ("image_id", "image_uri", "dataset", "task"):
        if table[col].null_count:
            raise UniqaError(f"{label}: column {col!r} has {table[col].null_count} null values")
    for col, allowed in (("task", TASKS), ("level", LEVELS), *((c, SPLIT_VALUES) for c in SPLIT_COLUMNS)):
        wrong = [v for v in pc.unique(table[col].drop_null()).to_pylist() if v not in allowed]
        if wrong:
            raise UniqaError(f"{label}: column {col!r} has value {wrong[0]!r}; valid values are {list(allowed)}")
    for col in ("mos", "mos_norm"):
        if (i := first(pc.is_nan(table[col]))) is not None:
            raise UniqaError(f"{label}: column {col!r} is NaN for image {at(i, 'image_id')!r}; use null for "
                             "unlabelled rows")
    for col in ("mos_norm", "level"):
        if (i := first(pc.not_equal(pc.is_null(table["mos"]), pc.is_null(table[col])))) is not None:
            state = "null" if at(i, col) is None else "set"
            raise UniqaError(f"{label}: column {col!r} is {state} for image {at(i, 'image_id')!r} but 'mos' is "
                             f"{'set' if state == 'null' else 'null'}; labelled rows need mos, mos_norm and level")
    if (i := first(pc.or_(pc.less(table["mos_norm"], 0.0), pc.greater(table["mos_norm"], 1.0)))) is not None:
        raise UniqaError(f"{label}: mos_norm {at(i, 'mos_norm')} of image {at(i, 'image_id')!r} is outside [0, 1]")
    if (i := first(pc.less(table["decode_size"], 1))) is not None:
        raise UniqaError(f"{label}: decode_size {at(i, 'decode_size')} of image {at(i, 'image_id')!r} is not a "
                         "positive number of pixels (null: as stored)")
    return table


# ----------------------------------------------------------------------------- cached features

VIEW_KINDS = ("train", "test")

FEATURES = TableSchema(
    name="features",
    schema=pa.schema([
        pa.field("image_id", pa.string(), nullable=False),  # every view of an image sits in one file
        pa.field("view_kind", pa.string()),  # train (flip + random crop) | test (the test crops); null on error
        pa.field("view_index", pa.int32()),  # 0..K-1 per kind; null on error
        pa.field("feature", pa.list_(pa.float32())),  # un-normalised encode_image output; null on error
        pa.field("model_checksum", pa.string()),  # the frozen model's weights (see uniqa.features.config)
        pa.field("protocol", pa.string()),  # the view protocol, e.g. train20-flipcrop64+crops10-64
        pa.field("seed", pa.int64()),  # run seed (combined with image_id per image)
        pa.field("error", pa.string()),  # null when encoded; else why (one row for the image)
    ]),
)


# ------------------------------------------------------------------------------------- scores

# Fixed columns of a scoring run's output; each head adds one float64 column named after it (and a classic
# metric head a second one, RAW_SUFFIX, with its published value).
RAW_SUFFIX = "_raw"
SCORES = TableSchema(
    name="scores",
    schema=pa.schema([
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("image_uri", pa.string()),
        pa.field("embedding", pa.list_(pa.float32())),  # image embedding (only with --embeddings)
        pa.field("error", pa.string()),  # null when scored; else why (and every head score is null)
        pa.field("model_checksum", pa.string()),  # fingerprint of everything that determines the scores
    ]),
    optional=("embedding",),
    unique="image_id",
)


def scores_schema(
    heads: list[str] | tuple[str, ...], embedding: bool = False, raw: list[str] | tuple[str, ...] = ()
) -> TableSchema:
    """SCORES of one run, in output order: image_id, image_uri, one float64 per head, one ``<head>_raw`` float64
    per head in ``raw`` (a classic metric's published value beside its higher-is-better head), [embedding],
    error, model_checksum."""
    names = [*heads, *(raw_column(h) for h in raw)]
    clash = [h for h in names if h in SCORES.columns]
    if clash:
        raise UniqaError(f"head name {clash[0]!r} clashes with a fixed scores column; reserved: {SCORES.columns}")
    fixed = {f.name: f for f in SCORES.schema}
    fields = [fixed["image_id"], fixed["image_uri"], *[pa.field(h, pa.float64()) for h in names]]
    fields += [fixed["embedding"]] if embedding else []
    fields += [fixed["error"], fixed["model_checksum"]]
    return TableSchema("scores", pa.schema(fields), unique="image_id")


def raw_column(head: str) -> str:
    """The column of a classic head's raw (published, lower-is-better) value: ``niqe`` -> ``niqe_raw``."""
    return f"{head}{RAW_SUFFIX}"


def score_columns(schema: pa.Schema, where: str = "") -> list[str]:
    """The head columns of a scores table (every non-fixed column but a head's ``<head>_raw`` companion); each
    must be float64."""
    SCORES.check_columns(schema, where)
    names = [name for name in schema.names if name not in SCORES.columns]
    heads = [name for name in names if not (name.endswith(RAW_SUFFIX) and name[: -len(RAW_SUFFIX)] in names)]
    for name in heads:
        if not _compatible(schema.field(name).type, pa.float64()):
            where_ = f" in {where}" if where else ""
            raise UniqaError(
                f"scores{where_}: head column {name!r} has type {schema.field(name).type}, expected double"
            )
    return heads


# ------------------------------------------------------------- captions, purified comments, corpus

CAPTIONS = TableSchema(
    name="captions",
    schema=pa.schema([
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("task", pa.string()),  # quality | aesthetics (the prompt used)
        pa.field("caption", pa.string()),  # null when error is set
        pa.field("backend", pa.string()),  # attributes | openai | vllm
        pa.field("model", pa.string()),  # MLLM name / path, or the attributes rule version
        pa.field("prompt_version", pa.string()),  # version in the prompt file (uniqa/captioning/prompts.yaml)
        pa.field("error", pa.string()),  # null when captioned; else why
        pa.field("measures", pa.map_(pa.string(), pa.float64())),  # attributes backend: measured values
    ]),
    optional=("measures",),
    unique="image_id",
)

_RANKS = [
    pa.field("similarity", pa.float64()),  # cosine(comment embedding, caption embedding)
    pa.field("relevance_rank", pa.int64()),  # AR: 1 = most similar to the image's aesthetic caption
    pa.field("informativeness_rank", pa.int64()),  # IR: 1 = most words
    pa.field("words", pa.int64()),
    pa.field("score", pa.int64()),  # AR + IR, lower is better
]

PURIFIED = TableSchema(
    name="purified",
    schema=pa.schema([
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("comment", pa.string(), nullable=False),
        pa.field("rank", pa.int64()),  # 1..K: position among the kept comments of the image
            *_RANKS,
    ]),
)

REJECTED = TableSchema(
    name="rejected",
    schema=pa.schema([
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("comment", pa.string()),
        pa.field("reason", pa.string(), nullable=False),  # empty | duplicate | non_linguistic | no_caption | ...
            *_RANKS,  # null for comments dropped before ranking
    ]),
)

CORPUS = TableSchema(
    name="corpus",
    schema=pa.schema([
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("image_uri", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string()),  # quality_caption | aesthetics_caption | comment
        pa.field("weight", pa.float64()),  # sampling weight of this text among the image's texts
    ]),
)
