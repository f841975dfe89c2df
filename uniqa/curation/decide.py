"""Pure batch functions of curation (no Ray): group keys, per-block sketches, keep/reject decisions with their
reason, per-block histogram counts, and the hash-partitioned join of scores with a manifest.

A batch is a pyarrow table of scores (``image_id, image_uri, <score columns>, error, ...``), joined with the
manifest's columns when one is given (then ``_in_manifest`` says whether the image_id was found there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uniqa.curation import quantiles
from uniqa.curation.expression import conjuncts, number_text, parse

IN_MANIFEST = "_in_manifest"
GLOBAL = ""  # the group of every row when there is no group_by


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to decide a block (small: thresholds per group, bin edges per column)."""

    score_columns: tuple[str, ...]  # every score column (sketched, histogrammed)
    where: str | None = None
    by: str | None = None
    fraction: float | None = None
    group_by: str | None = None  # "folder" (parent of image_uri) or a column name; None: one group
    sketch_k: int = 400
    thresholds: dict[str, float] = field(default_factory=dict)  # group -> min `by` score kept (top_fraction)
    edges: dict[str, list[float]] = field(default_factory=dict)  # column -> histogram bin edges
    kept_columns: tuple[str, ...] = ()
    rejected_columns: tuple[str, ...] = ()

    @property
    def rule_columns(self) -> list[str]:
        return sorted(parse(self.where).columns()) if self.where is not None else [self.by]


def group_codes(batch: pa.Table, group_by: str | None) -> tuple[np.ndarray, list[str]]:
    """(group index per row, group names): the parent folder of ``image_uri`` for ``folder``, else the column's
    value as text (null -> ``""``); one group ``""`` without ``group_by``."""
    if group_by is None:
        return np.zeros(len(batch), dtype=np.int64), [GLOBAL]
    if group_by == "folder":
        keys = pc.replace_substring_regex(batch["image_uri"], pattern=r"(^|/)[^/]*$", replacement="")
    else:
        keys = batch[group_by].cast(pa.string())
    encoded = pc.dictionary_encode(pc.fill_null(keys, "")).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


def floats(batch: pa.Table, column: str) -> np.ndarray:
    """A score column as float64 with NaN for null."""
    return pc.fill_null(batch[column].cast(pa.float64()), np.nan).to_numpy()


def usable(batch: pa.Table) -> np.ndarray:
    """Rows that may be kept at all: no scoring error and (when joined) found in the manifest."""
    ok = pc.is_null(batch["error"]).to_numpy(zero_copy_only=False)
    if IN_MANIFEST in batch.column_names:
        ok &= pc.fill_null(batch[IN_MANIFEST], False).to_numpy(zero_copy_only=False)
    return ok


def block_sketches(batch: pa.Table, plan: Plan) -> pa.Table:
    """Serialised KLL sketches of one block: every score column over the whole set (group null), and the
    ``by`` column per group. Only usable rows with a value count."""
    ok = usable(batch)
    groups, columns, blobs = [], [], []
    for column in plan.score_columns:
        values = floats(batch, column)
        valid = ok & ~np.isnan(values)
        if valid.any():
            groups.append(None), columns.append(column), blobs.append(quantiles.sketch(values[valid],
                                                                                      plan.sketch_k).serialize())
        if column == plan.by and plan.group_by is not None:
            codes, names = group_codes(batch, plan.group_by)
            for name, blob in quantiles.grouped_sketches(values[valid], codes[valid], names, plan.sketch_k).items():
                groups.append(name), columns.append(column), blobs.append(blob)
    return pa.table({"group": pa.array(groups, pa.string()), "column": pa.array(columns, pa.string()),
                     "sketch": pa.array(blobs, pa.binary())})


def _where_decision(batch: pa.Table, plan: Plan, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keep, reason) for ``where``: the reason lists the top-level ``and`` parts the row failed."""
    parts = conjuncts(parse(plan.where))
    values = {c: floats(batch, c) for c in parse(plan.where).columns()}
    code = np.zeros(len(batch), dtype=np.int64)
    for i, part in enumerate(parts):
        code |= (~part.mask(values)).astype(np.int64) << i
    reason = np.full(len(batch), None, dtype=object)
    for c in np.unique(code[ok & (code != 0)]):
        text = "failed: " + "; ".join(str(p) for i, p in enumerate(parts) if c >> i & 1)
        reason[ok & (code == c)] = text
    return ok & (code == 0), reason


def _top_decision(batch: pa.Table, plan: Plan, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keep, reason) for ``top_fraction``: a row is kept when its ``by`` score reaches its group's threshold."""
    codes, names = group_codes(batch, plan.group_by)
    threshold = np.array([plan.thresholds.get(n, np.inf) for n in names], dtype=np.float64)[codes]
    values = floats(batch, plan.by)
    keep = ok & (values >= threshold)
    reason = np.full(len(batch), None, dtype=object)
    share = f"top {plan.fraction:.4g}"
    for i, name in enumerate(names):
        rows = ok & ~keep & (codes == i)
        if rows.any():
            of = f" of {plan.group_by}={name!r}" if plan.group_by is not None else ""
            reason[rows] = f"failed: {plan.by} >= {number_text(threshold[codes == i][0])} ({share}{of})"
    return keep, reason


def decide(batch: pa.Table, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, reason per row; None where kept). Rows with a scoring error, a null score the rule reads, or
    (when joined) no manifest row are rejected first, whatever the rule says."""
    ok = usable(batch)
    reason = np.full(len(batch), None, dtype=object)
    errors = pc.is_valid(batch["error"]).to_numpy(zero_copy_only=False)
    reason[errors] = "scoring error"
    if IN_MANIFEST in batch.column_names:
        missing = ~errors & ~pc.fill_null(batch[IN_MANIFEST], False).to_numpy(zero_copy_only=False)
        reason[missing] = "not in manifest"
    for column in plan.rule_columns:
        null = ok & np.isnan(floats(batch, column))
        reason[null & np.equal(reason, None)] = f"no {column} score"
        ok &= ~null
    keep, rule_reason = (_where_decision if plan.where is not None else _top_decision)(batch, plan, ok)
    reason[ok & ~keep] = rule_reason[ok & ~keep]
    return keep, reason


def histograms(batch: pa.Table, plan: Plan, keep: np.ndarray) -> dict[str, list[list[int]]]:
    """Per score column: [counts of usable rows, counts of kept rows] over ``plan.edges``."""
    ok = usable(batch)
    out = {}
    for column, edges in plan.edges.items():
        values = floats(batch, column)
        valid = ok & ~np.isnan(values)
        out[column] = [np.histogram(values[valid], bins=edges)[0].tolist(),
                       np.histogram(values[valid & keep], bins=edges)[0].tolist()]
    return out


def split(batch: pa.Table, plan: Plan) -> tuple[pa.Table, pa.Table, dict]:
    """(kept rows, rejected rows with ``reason``, counts of this block: kept, rejected, errors, by_reason,
    hist)."""
    keep, reason = decide(batch, plan)
    kept = batch.filter(pa.array(keep)).select(list(plan.kept_columns))
    rejected = batch.append_column("reason", pa.array(reason, pa.string())).filter(pa.array(~keep))
    rejected = rejected.select(list(plan.rejected_columns))
    by_reason = {}
    if len(rejected):
        counts = pc.value_counts(rejected["reason"] if plan.where is not None else _reason_kind(rejected, plan))
        by_reason = {d["values"]: d["counts"] for d in counts.to_pylist()}
    errors = int(pc.sum(pc.is_valid(batch["error"])).as_py() or 0)
    stats = {"kept": len(kept), "rejected": len(rejected), "errors": errors, "by_reason": by_reason,
             "hist": histograms(batch, plan, keep)}
    return kept, rejected, stats


def _reason_kind(rejected: pa.Table, plan: Plan) -> pa.Array:
    """Top-fraction reasons without their per-group numbers (the summary counts kinds, not groups)."""
    return pc.if_else(pc.starts_with(rejected["reason"], "failed:"),
                      f"failed: {plan.by} below its group threshold" if plan.group_by else
                      f"failed: {plan.by} below the threshold", rejected["reason"])


# ---------------------------------------------------------------------- the join with a manifest


def left_join(scores: pa.Table, manifest: pa.Table, manifest_columns: list[str]) -> pa.Table:
    """Every scores row with the manifest's columns of its image_id (first match; nulls where missing) and
    ``_in_manifest``. ``image_id`` is the scores'; ``image_uri`` the manifest's when found, else the scores'."""
    index = pc.index_in(scores["image_id"], value_set=manifest["image_id"].combine_chunks())
    taken = manifest.take(index)
    out = scores
    for name in manifest_columns:
        if name == "image_id":
            continue
        column = taken[name]
        if name == "image_uri" and "image_uri" in scores.column_names:
            column = pc.coalesce(column, scores["image_uri"])
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, column)
        else:
            out = out.append_column(name, column)
    return out.append_column(IN_MANIFEST, pc.is_valid(index))
