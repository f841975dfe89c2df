"""``run_filter``: scores (+ an optional manifest) -> ``OUT/kept/`` (a manifest other stages read),
``OUT/rejected/`` (with the ``reason`` each row failed), ``OUT/_summary.json`` and ``OUT/histograms.png``.

Steps: pre-flight (:func:`preflight`: columns, rule, groups; before any Ray work, nothing written) -> the work
(:func:`work`): [with a manifest: hash-partition both sides by image_id] -> pass 1: per-block KLL sketches merged
on the driver (score ranges; per-group thresholds for ``top_fraction``) -> pass 2: decide and write every block,
summing counts and binned histograms -> figure and summary. The driver holds sketches, thresholds and bin counts
only: nothing grows with the row count. The filter's rule for the workers is a :class:`~uniqa.curation.decide.Plan`
(``Rule`` here), the stage's pre-flight findings a :class:`FilterPlan`.
A filter run is recomputed whole (it is cheap next to scoring): old part files are removed first; a rerun with the
same config, the same input files (names and row counts) and its output intact is recognised as done and does
nothing (:func:`uniqa.executor.execute`, ``resume="whole"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from uniqa import storage
from uniqa.curation import quantiles
from uniqa.curation.config import FilterConfig
from uniqa.curation.decide import Plan as Rule
from uniqa.curation.expression import check_columns, number_text
from uniqa.errors import UniqaError
from uniqa.schema import TableSchema, score_columns
from uniqa.stage import Outcome, Plan, Run, StageSummary, config_fingerprint, input_identity
from uniqa.tables import count_rows, dataset_schema, parquet_files, remove_parts

KEPT_DIR, REJECTED_DIR, WORK_DIR, FIGURE = "kept", "rejected", "_work", "histograms.png"


@dataclass(kw_only=True)
class FilterPlan(Plan):
    """What the pre-flight found: the inputs' files, schemas and rows, and the score columns."""

    scores_files: list[str]
    scores_schema: pa.Schema
    heads: list[str]
    rows: int
    manifest_files: list[str] | None = None
    manifest_schema: pa.Schema | None = None
    manifest_rows: int = 0


def check_out(scores: str, out: str) -> None:
    """The output may not lie inside the scores folder: a later run would read its parts as scores."""
    a, b = (storage.resolve(u)[1].rstrip("/") if not storage.is_s3(u) else str(u).rstrip("/") for u in (scores, out))
    if b == a or b.startswith(a + "/"):
        raise UniqaError(f"--out {out} is inside --scores {scores}; write the curated output somewhere else")


def preflight(scores: str, manifest: str | None, out: str, cfg: FilterConfig) -> FilterPlan:
    """Every check that reads storage (footers only): the output's place, the scores' columns, the rule's columns,
    the group column, the manifest's id columns and name clashes. Raises one UniqaError; nothing starts Ray,
    nothing is written. The identity: the config and both inputs' files (names, rows)."""
    check_out(scores, out)
    files = parquet_files(scores)
    schema = dataset_schema(files)
    heads = score_columns(schema, scores)
    if not heads:
        raise UniqaError(f"scores {scores} have no score columns (found columns {schema.names})")
    if cfg.where is not None:
        check_columns(cfg.expression, heads, cfg.where)
    elif cfg.by not in heads:
        raise UniqaError(f"--by {cfg.by!r} is not a score column of {scores}; score columns are {heads}")
    plan = FilterPlan(inputs={"scores": scores, "manifest": manifest}, resume="whole", scores_files=files,
                      scores_schema=schema, heads=heads, rows=count_rows(files))
    if manifest is not None:
        mfiles = parquet_files(manifest)
        mschema = dataset_schema(mfiles)
        for column in ("image_id", "image_uri"):
            if column not in mschema.names:
                raise UniqaError(f"manifest {manifest}: missing column {column!r}; found columns {mschema.names}")
        clash = [h for h in heads if h in mschema.names]
        if clash:
            raise UniqaError(f"score column {clash[0]!r} of {scores} is also a column of manifest {manifest}; "
                             "rename the head (uniqa score --heads NEW_NAME=...)")
        plan = replace(plan, manifest_files=mfiles, manifest_schema=mschema, manifest_rows=count_rows(mfiles))
    check_group(cfg.group_by, plan, manifest)
    manifest_identity = None if manifest is None else input_identity(plan.manifest_files, plan.manifest_rows)
    return replace(plan, identity={"config": config_fingerprint(cfg), "scores": input_identity(files, plan.rows),
                                   "manifest": manifest_identity})


def check_group(group_by: str | None, inp: FilterPlan, manifest: str | None) -> None:
    if group_by in (None, "folder"):
        return
    in_manifest = inp.manifest_schema is not None and group_by in inp.manifest_schema.names
    if not in_manifest and group_by not in inp.scores_schema.names:
        where = f"the manifest {manifest} ({inp.manifest_schema.names}) or " if manifest else ""
        need = " (pass --manifest to group by a manifest column such as dataset)" if not manifest else ""
        raise UniqaError(f"--group-by {group_by!r}: no such column in {where}the scores {inp.scores_schema.names}; "
                         f"use folder or a column name{need}")


def output_schemas(inp: FilterPlan) -> tuple[TableSchema, TableSchema]:
    """kept: the manifest's columns + score columns (or the scores' columns without ``error``); rejected: the
    same + ``error`` + ``reason``."""
    nullable = [f.with_nullable(True) for f in inp.scores_schema]
    by_name = {f.name: f for f in nullable}
    if inp.manifest_schema is None:
        kept = [f for f in nullable if f.name != "error"]
    else:
        kept = [f.with_nullable(True) for f in inp.manifest_schema] + [by_name[h] for h in inp.heads]
    rejected = kept + [by_name["error"], pa.field("reason", pa.string())]
    return (TableSchema("kept", pa.schema(kept), unique="image_id"),
            TableSchema("rejected", pa.schema(rejected), unique="image_id"))


def _columns(inp: FilterPlan, rule: Rule, full: bool) -> tuple[list[str], list[str]]:
    """(scores columns, manifest columns) a pass reads: everything for pass 2, the few pass 1 needs otherwise."""
    group = rule.group_by if rule.group_by not in (None, "folder") else None
    in_manifest = inp.manifest_schema is not None and group in inp.manifest_schema.names
    if full:
        scores = inp.scores_schema.names
        manifest = inp.manifest_schema.names if inp.manifest_schema is not None else []
    else:
        scores = ["image_id", "image_uri", "error", *rule.score_columns, *([group] if group and not in_manifest
                                                                          else [])]
        manifest = ["image_id", *([group] if in_manifest else [])] if inp.manifest_schema is not None else []
    return scores, manifest


def _clear(folder: str) -> None:
    if storage.exists(folder):
        fs, root = storage.resolve(folder)
        fs.delete_dir(root)


def _thresholds(sketches: dict, cfg: FilterConfig) -> dict[str, float]:
    groups = {g: s for (g, c), s in sketches.items() if c == cfg.by and (g is not None) == (cfg.group_by is not None)}
    return {"" if g is None else g: quantiles.top_threshold(s, cfg.top_fraction) for g, s in groups.items()}


def _edges(sketches: dict, rule: Rule, bins: int) -> dict[str, list[float]]:
    edges = {}
    for column in rule.score_columns:
        s = sketches.get((None, column))
        if s is None:
            continue
        low, high = s.get_min_value(), s.get_max_value()
        if high <= low:
            low, high = low - 0.5, high + 0.5
        edges[column] = np.linspace(low, high, bins + 1).tolist()
    return edges


def _lines(rule: Rule, cfg: FilterConfig) -> dict[str, list[tuple[str, float]]]:
    if cfg.where is not None:
        lines: dict[str, list] = {}
        for column, op, value in cfg.expression.thresholds():
            lines.setdefault(column, []).append((f"{column} {op} {number_text(value)}", value))
        return lines
    marks = sorted(rule.thresholds.items())
    return {cfg.by: [(f"{g or 'threshold'}: {number_text(round(t, 4))}", t) for g, t in marks]}


def output_rows(out: str) -> int:
    """Rows under ``OUT/kept`` and ``OUT/rejected`` (footers): the rows_out of a run."""
    return sum(_folder_rows(storage.join(out, d)) for d in (KEPT_DIR, REJECTED_DIR))


def _folder_rows(folder: str) -> int:
    return count_rows(folder) if storage.exists(folder) and any(storage.iter_files(folder, (".parquet",))) else 0


def work(plan: FilterPlan, out: str, cfg: FilterConfig, run: Run) -> Outcome:
    """Filter the rows of the scores by ``cfg``'s rule into ``out``: the previous part files removed, the two
    passes (Ray Data), the figure."""
    kept_out, rejected_out, work_dir = (storage.join(out, d) for d in (KEPT_DIR, REJECTED_DIR, WORK_DIR))
    schemas = output_schemas(plan)
    rule = Rule(score_columns=tuple(plan.heads), where=cfg.where, by=cfg.by, fraction=cfg.top_fraction,
                group_by=cfg.group_by, sketch_k=cfg.sketch_k, kept_columns=tuple(schemas[0].columns),
                rejected_columns=tuple(schemas[1].columns))
    for folder in (kept_out, rejected_out):
        remove_parts(folder)
    _clear(work_dir)
    with run.ray():
        passes = _passes(plan, cfg, rule, out, schemas, run.progress)
    title = f"{cfg.where}" if cfg.where else f"top {cfg.top_fraction:g} by {cfg.by}" + (
        f" per {cfg.group_by}" if cfg.group_by else "")
    storage.write_bytes(storage.join(out, FIGURE),
                        _figure(passes.rule, passes.totals, _lines(passes.rule, cfg), title))
    _clear(work_dir)
    return _outcome(out, cfg, plan, passes)


def run_filter(scores: str, manifest: str | None, out: str, cfg: FilterConfig, *, progress: bool = True,
               address: str | None = None) -> StageSummary:
    """Filter the rows of ``scores`` (a scoring run's output) by ``cfg``'s rule into ``out`` (see the module
    docstring; :func:`uniqa.executor.execute` of this stage)."""
    from uniqa.executor import execute

    return execute("filter", [scores, manifest], out, cfg, progress=progress, address=address)


def _figure(rule: Rule, totals: dict, lines: dict, title: str) -> bytes:
    from uniqa.curation.plot import histogram_png

    return histogram_png(rule.edges, totals["hist"], lines, title)


@dataclass
class Passes:
    """What the two passes found: the summed counts (kept, rejected, errors, by_reason, hist), the merged
    sketches, the rule with its thresholds and histogram edges decided, and the manifest join's bucket count."""

    totals: dict
    sketches: dict
    rule: Rule
    buckets: int | None  # None: no manifest


def _passes(inp: FilterPlan, cfg: FilterConfig, rule: Rule, out: str, schemas, progress: bool) -> Passes:
    from uniqa.curation.filter_stage import Join, filter_pass, partition, sketch_pass, source

    join = None
    if inp.manifest_files is not None:
        join = Join(storage.join(out, WORK_DIR), max(1, math.ceil(max(inp.rows, inp.manifest_rows) / cfg.bucket_rows)),
                    inp.scores_schema, inp.manifest_schema)
        partition(inp.scores_files, storage.join(join.work, "scores"), join.buckets, inp.scores_schema)
        partition(inp.manifest_files, storage.join(join.work, "manifest"), join.buckets, inp.manifest_schema)

    def rows(full: bool):
        score_cols, manifest_cols = _columns(inp, rule, full)
        return source(inp.scores_files, score_cols, join, manifest_cols)

    sketches = sketch_pass(rows(False), rule, cfg.max_groups)
    thresholds = _thresholds(sketches, cfg) if cfg.top_fraction is not None else {}
    decided = replace(rule, thresholds=thresholds, edges=_edges(sketches, rule, cfg.bins))
    totals = filter_pass(rows(True), decided, storage.join(out, KEPT_DIR), storage.join(out, REJECTED_DIR),
                         schemas, inp.rows, progress)
    return Passes(totals, sketches, decided, None if join is None else join.buckets)


def _outcome(out: str, cfg: FilterConfig, inp: FilterPlan, passes: Passes) -> Outcome:
    decided, totals, sketches, k = passes.rule, passes.totals, passes.sketches, cfg.sketch_k
    if cfg.where is not None:
        rule = {"where": str(cfg.expression)}
        thresholds = {"*": [[c, op, v] for c, op, v in cfg.expression.thresholds()]}
    else:
        rule = {"top_fraction": cfg.top_fraction, "by": cfg.by, "group_by": cfg.group_by}
        thresholds = {}
        for g, t in sorted(decided.thresholds.items()):
            key = g if cfg.group_by is not None else None
            s = sketches[(key, cfg.by)]
            thresholds["*" if key is None else key] = {cfg.by: t, "rows": int(s.n),
                                                       "exact": not s.is_estimation_mode()}
    written = totals["kept"] + totals["rejected"]
    details = {
        "kept": totals["kept"], "rejected": totals["rejected"], "rejected_by_reason": totals["by_reason"],
        "kept_out": storage.join(out, KEPT_DIR), "rejected_out": storage.join(out, REJECTED_DIR),
        "rule": rule, "thresholds": thresholds,
        "quantiles": {"method": "KLL sketch (Apache DataSketches), per block, merged", "k": k,
                      "rank_error": quantiles.rank_error(k), "confidence": quantiles.CONFIDENCE},
        "scores": {c: quantiles.describe(sketches[(None, c)]) for c in decided.score_columns if (None, c) in sketches},
        "histograms": storage.join(out, FIGURE),
        "manifest_rows": inp.manifest_rows if inp.manifest_files is not None else None,
        "join": None if passes.buckets is None else {"buckets": passes.buckets},
    }
    details = {k_: v for k_, v in details.items() if v is not None}
    return Outcome(rows_in=inp.rows, rows_out=written, rows_written=written, rows_with_errors=totals["errors"],
                   unit="images", details=details)

