"""The evaluation stage: scores + manifest -> SRCC / PLCC / KRCC per dataset, head and split, against ``mos_norm``.

``mos_norm`` is higher-is-better for every dataset (DMOS-style datasets are flipped when the manifest is
prepared), so a good predictor has positive correlations everywhere; raw ``mos`` is never used. Rows of the
evaluated side whose score row carries an ``error`` or a null score are excluded and counted (``excluded``), rows
with no score row at all are counted too (``missing``). SRCC and PLCC carry a cluster-bootstrap percentile
interval (95% by default; ``srcc_lo`` .. ``plcc_hi``, :mod:`uniqa.evaluation.bootstrap`): ``quality`` rows
resample whole reference groups, ``aesthetics`` rows single images; ``groups`` counts those units. No Ray: only
the needed columns are read, with pyarrow. ``leaked`` counts the correlated images that are in the pre-training
corpus of the model that scored them (:mod:`uniqa.provenance`: refused unless ``allow_leak``; null: no record).
``uniqa evaluate``, ``pipelines/evaluate.py`` and the demo all run it through :func:`uniqa.executor.execute`
(:func:`run_evaluate`): :func:`preflight` checks the columns (footers only, nothing written), :func:`work` reads,
correlates and writes. The metrics are recomputed whole; a rerun with the same config, the same input files
(names, rows), heads and scoring model into an output that still holds its metrics is recognised as done.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.evaluation.bootstrap import bootstrap_units, intervals
from uniqa.evaluation.config import EvaluateConfig
from uniqa.evaluation.metrics import METRICS, WITH_INTERVAL
from uniqa.evaluation.table import format_table, over_splits
from uniqa.provenance import UNKNOWN, in_corpus
from uniqa.schema import check_unique, score_columns
from uniqa.stage import Outcome, Plan, Run, StageSummary, config_fingerprint, input_identity
from uniqa.tables import count_rows, dataset_schema, parquet_files, read_columns

METRICS_FILE = "metrics.parquet"
METRICS_CSV = "metrics.csv"
METRICS_SCHEMA = pa.schema([
    pa.field("dataset", pa.string()),
    pa.field("head", pa.string()),  # the score column
    pa.field("split", pa.string()),  # split_0 .. split_9
    pa.field("side", pa.string()),  # the side of the split evaluated (test)
    pa.field("n", pa.int64()),  # rows correlated
    pa.field("groups", pa.int64()),  # bootstrap units among them: reference groups (quality), images (aesthetics)
    *[pa.field(name, pa.float64()) for name in METRICS],  # null when undefined (see note)
    *[pa.field(f"{name}_{end}", pa.float64()) for name in WITH_INTERVAL for end in ("lo", "hi")],  # the interval
    pa.field("excluded", pa.int64()),  # scored rows left out: an error or a null / NaN score
    pa.field("missing", pa.int64()),  # labelled rows of the side with no score row at all
    pa.field("note", pa.string()),  # why the metrics are null
    pa.field("leaked", pa.int64()),  # of the n, in the scoring model's pre-training corpus (null: unknown)
])
IN_CORPUS = "_in_corpus"  # labels column: the image is in the scoring model's pre-training corpus


@dataclass(kw_only=True)
class EvaluatePlan(Plan):
    """What the pre-flight found: the inputs' files, the heads evaluated and the model that scored them."""

    score_files: list[str]
    manifest_files: list[str]
    heads: list[str]
    scored_by: dict | None  # {"model", "pretrained"} of the scores' summary; None: no model scored them


def preflight(scores: str, manifest: str, out: str, cfg: EvaluateConfig) -> EvaluatePlan:
    """Every column the run needs exists (footers only, nothing written), or one error. The identity: the config,
    both inputs' files (names, rows), the heads and the scoring model (its pre-training corpus decides ``leaked``);
    a finished run of the same identity is not redone."""
    score_files = parquet_files(scores)
    available = score_columns(dataset_schema(score_files), scores)
    if not available:
        raise UniqaError(f"scores {scores} hold no score column (only {dataset_schema(score_files).names})")
    unknown = [h for h in cfg.heads if h not in available]
    if unknown:
        raise UniqaError(f"scores {scores} have no score column {unknown[0]!r}; score columns: {available}")
    manifest_files = parquet_files(manifest)
    found = dataset_schema(manifest_files).names
    if "mos_norm" not in found:
        raise UniqaError(f"manifest {manifest} has no column 'mos_norm' (the higher-is-better label evaluation "
                         f"correlates with; `uniqa data prepare` writes it); found columns {found}")
    for col in ("image_id", "dataset", *cfg.splits):
        if col not in found:
            splits = [c for c in found if c.startswith("split_")]
            kind = f"split column {col!r}; split columns: {splits}" if col in cfg.splits else f"column {col!r}"
            raise UniqaError(f"manifest {manifest} has no {kind}; found columns {found}")
    heads = list(cfg.heads) or available
    scored_by = scoring_model(scores)
    identity = {"config": config_fingerprint(cfg), "scores": input_identity(score_files, count_rows(score_files)),
                "manifest": input_identity(manifest_files, count_rows(manifest_files)), "heads": heads,
                "scored_by": scored_by}
    return EvaluatePlan(inputs={"scores": scores, "manifest": manifest}, identity=identity, resume="whole",
                        score_files=score_files, manifest_files=manifest_files, heads=heads, scored_by=scored_by)


def read_labels(manifest_files: list[str], cfg: EvaluateConfig) -> pa.Table:
    """``image_id, dataset, mos_norm, <split columns>`` (and ``task``, ``group`` where the manifest has them: the
    bootstrap units) of the labelled rows on the evaluated side of a split."""
    on_side = [pc.field(s) == cfg.side for s in cfg.splits]
    keep = on_side[0]
    for expr in on_side[1:]:
        keep = keep | expr
    found = dataset_schema(manifest_files).names
    units = [c for c in ("task", "group") if c in found]
    return read_columns(manifest_files, ["image_id", "dataset", "mos_norm", *units, *cfg.splits],
                        filter=pc.field("mos_norm").is_valid() & keep)


def join_scores(labels: pa.Table, scores: pa.Table, where: str) -> pa.Table:
    """Labels with their score columns (null where an image has no score row) and ``_scored`` (true / null)."""
    check_unique(labels["image_id"], "manifest")
    check_unique(scores["image_id"], where)
    scores = scores.append_column("_scored", pa.array(np.ones(len(scores), dtype=bool)))
    return labels.join(scores, "image_id", join_type="left outer")


def correlate(pred: np.ndarray, mos: np.ndarray) -> tuple[dict[str, float | None], str | None]:
    """The metrics (None each, with the reason, when undefined: too few rows, a constant side)."""
    try:
        return {name: fn(pred, mos) for name, fn in METRICS.items()}, None
    except UniqaError as e:
        return dict.fromkeys(METRICS), str(e)


def metric_rows(joined: pa.Table, heads: list[str], cfg: EvaluateConfig) -> list[dict]:
    """One row per dataset, head and split (see :data:`METRICS_SCHEMA`), sorted in that order."""
    rows = []
    for dataset in sorted(pc.unique(joined["dataset"]).to_pylist()):
        part = joined.filter(pc.equal(joined["dataset"], dataset))
        for head in heads:
            for split in cfg.splits:
                rows.append(_metric_row(part.filter(pc.equal(part[split], cfg.side)), dataset, head, split, cfg))
    return rows


def _metric_row(side: pa.Table, dataset: str, head: str, split: str, cfg: EvaluateConfig) -> dict:
    scored = side["_scored"].is_valid()
    score = side[head]
    usable = pc.and_(pc.and_(scored, side["error"].is_null()), pc.and_(score.is_valid(), pc.invert(pc.is_nan(score))))
    usable = pc.fill_null(usable, False)
    used = side.filter(usable).sort_by("image_id")  # one row order, whatever the join's: reproducible intervals
    with_scores = pc.sum(scored).as_py() or 0
    pred, mos, units = used[head].to_numpy(), used["mos_norm"].to_numpy(), row_units(used)
    metrics, note = correlate(pred, mos)
    return {"dataset": dataset, "head": head, "split": split, "side": cfg.side, "n": len(used),
            "groups": len(set(units)), **metrics, **interval_columns(pred, mos, units, note is None, cfg),
            "excluded": with_scores - len(used), "missing": len(side) - with_scores, "note": note,
            "leaked": (pc.sum(used[IN_CORPUS]).as_py() or 0) if IN_CORPUS in used.column_names else None}


def row_units(rows: pa.Table) -> list[str]:
    """Each row's bootstrap unit (:func:`~uniqa.evaluation.bootstrap.bootstrap_units`)."""
    ids = rows["image_id"].to_pylist()
    if "task" not in rows.column_names or "group" not in rows.column_names:
        return ids
    return list(bootstrap_units(rows["task"].to_pylist(), rows["group"].to_pylist(), ids))


def interval_columns(pred: np.ndarray, mos: np.ndarray, units: list[str], defined: bool,
                     cfg: EvaluateConfig) -> dict[str, float | None]:
    """``srcc_lo, srcc_hi, plcc_lo, plcc_hi``: None each where the metrics are undefined."""
    found = intervals(pred, mos, units, cfg.bootstrap, WITH_INTERVAL) if defined else {}
    return {f"{name}_{end}": getattr(found[name], end) if name in found else None
            for name in WITH_INTERVAL for end in ("lo", "hi")}


def write_metrics(rows: list[dict], out: str) -> pa.Table:
    """``OUT/metrics.parquet`` and ``OUT/metrics.csv`` (replaced on every run)."""
    table = pa.Table.from_pylist(rows, schema=METRICS_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_bytes(storage.join(out, METRICS_FILE), buffer.getvalue())
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    storage.write_bytes(storage.join(out, METRICS_CSV), buffer.getvalue())
    return table


def scoring_model(scores: str) -> dict | None:
    """The model that scored ``scores`` (``{"model", "pretrained"}``, named in their ``_summary.json``, which
    ``uniqa score`` writes); None when no model scored them (classic heads) or the scores have no summary."""
    from uniqa.stage import SUMMARY_FILE, read_summary

    if not storage.exists(storage.join(scores, SUMMARY_FILE)):
        return None
    details = read_summary(scores).get("details") or {}
    if not details.get("model"):
        return None
    return {"model": details["model"], "pretrained": details.get("pretrained")}


def scores_leak(scored_by: dict | None, ids: list[str], cfg: EvaluateConfig, manifest: str) -> dict | None:
    """The evaluated images against the pre-training corpus of the model that scored them (``scored_by``, see
    :func:`scoring_model`; :func:`uniqa.provenance.check_leak`); None when no model scored them."""
    from uniqa.provenance import check_leak

    if scored_by is None:
        return None
    return check_leak(scored_by["model"], scored_by["pretrained"], ids, allow_leak=cfg.allow_leak,
                      where=f"manifest {manifest} ({cfg.side} side of {', '.join(cfg.splits)})")


def output_rows(out: str) -> int:
    """The rows of ``OUT/metrics.parquet`` (its footer), 0 when it or ``OUT/metrics.csv`` is missing: the rows_out
    of a run."""
    if not all(storage.exists(storage.join(out, name)) for name in (METRICS_FILE, METRICS_CSV)):
        return 0
    fs, path = storage.resolve(storage.join(out, METRICS_FILE))
    return pq.read_metadata(path, filesystem=fs).num_rows


def work(plan: EvaluatePlan, out: str, cfg: EvaluateConfig, run: Run) -> Outcome:
    """Correlate every head with ``mos_norm`` on the side of each split, in this process (no Ray); writes
    ``OUT/metrics.parquet`` (+ CSV) and prints the table when ``run.progress``."""
    manifest, scores, heads = plan.inputs["manifest"], plan.inputs["scores"], plan.heads
    labels = read_labels(plan.manifest_files, cfg)
    if not len(labels):
        raise UniqaError(f"manifest {manifest} has no labelled rows (mos_norm set) on the {cfg.side} side of "
                         f"{', '.join(cfg.splits)}")
    leak = scores_leak(plan.scored_by, labels["image_id"].to_pylist(), cfg, manifest)
    if leak and leak["provenance"] != UNKNOWN:
        labels = labels.append_column(IN_CORPUS, pa.array(in_corpus(leak["provenance"],
                                                                     labels["image_id"].to_pylist())))
    score_table = read_columns(plan.score_files, ["image_id", "error", *heads])
    shared = pc.sum(pc.is_in(labels["image_id"], value_set=score_table["image_id"])).as_py() or 0
    if not shared:
        raise UniqaError(
            f"scores {scores} share no image_id with the labelled {cfg.side} rows of manifest {manifest} (e.g. "
            f"{score_table['image_id'][0].as_py() if len(score_table) else 'none'!r} vs "
            f"{labels['image_id'][0].as_py()!r}): score the manifest the evaluation uses"
        )
    rows = metric_rows(join_scores(labels, score_table, f"scores {scores}"), heads, cfg)
    write_metrics(rows, out)
    if run.progress:
        print(format_table(rows, cfg.bootstrap.level))
    return Outcome(
        rows_in=len(rows), rows_out=len(rows), rows_written=len(rows),
        rows_with_errors=sum(r["note"] is not None for r in rows), unit="rows",
        details={"heads": heads, "splits": list(cfg.splits), "side": cfg.side, "score_rows": len(score_table),
                 "bootstrap": dataclasses.asdict(cfg.bootstrap),
                 "labelled_rows": len(labels), "shared_ids": shared, "leak": leak, "table": rows,
                 "over_splits": over_splits(rows) if len(cfg.splits) > 1 else []},
    )


def run_evaluate(
    scores: str, manifest: str, out: str, cfg: EvaluateConfig, *, progress: bool = True, address: str | None = None
) -> StageSummary:
    """Correlate every head of ``scores`` with ``mos_norm`` of ``manifest`` into ``out``, without Ray (``address``
    is unused; :func:`uniqa.executor.execute` of this stage); prints the table if ``progress``."""
    from uniqa.executor import execute

    return execute("evaluate", [scores, manifest], out, cfg, progress=progress, address=address)
