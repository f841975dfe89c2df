"""``run_corpus``: manifests + captions [+ purified comments] -> (image, text) pair shards + ``_summary.json``.

Steps: pre-flight (:func:`preflight`: every input exists and has its columns; no Ray, nothing written) -> the work
(:func:`work`): previous shards removed (a corpus is recomputed whole) -> Ray Data: read, tag rows with their
image_id's hash partition, group by partition, assemble + write each partition (uniqa.corpus.corpus_stage) ->
stats merged from per-partition partial aggregates. Nothing proportional to the corpus is held by the driver or by
one task (a task holds one partition, about ``rows_per_partition`` rows). A rerun with the same config and the
same input files (names, rows) into an output that still holds its shards is recognised as done and does nothing
(:func:`uniqa.executor.execute`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq

from uniqa import sink, storage
from uniqa.corpus.config import CorpusConfig
from uniqa.errors import UniqaError
from uniqa.schema import CAPTIONS, MANIFEST, PURIFIED, TableSchema
from uniqa.stage import Outcome, Plan, Run, StageSummary, config_fingerprint, input_identity
from uniqa.tables import dataset, parquet_files, remove_parts


@dataclass(kw_only=True)
class CorpusPlan(Plan):
    """The pre-flight's findings: each input's Parquet files and the total number of input rows (footers)."""

    manifests: list[list[str]]
    captions: list[list[str]]
    purified: list[list[str]]
    rows: int


def kept_folder(purified: str) -> str:
    """A ``uniqa purify`` output folder means its ``kept`` part (never its ``rejected`` one)."""
    kept = storage.join(purified, "kept")
    return kept if storage.is_dir(kept) else purified


def _files(uri: str, schema: TableSchema, what: str) -> tuple[list[str], int]:
    files = parquet_files(uri)
    ds = dataset(files)
    schema.check_columns(ds.schema, f"{what} {uri}")
    return files, ds.count_rows()


def preflight(manifests: list[str], captions: list[str], purified: list[str] | None, out: str,
              cfg: CorpusConfig) -> CorpusPlan:
    """Every input exists and has the columns the corpus reads (footers only; before any Ray work, changing
    nothing). The identity: the config and every input's files (names, rows), in order; a finished run of the
    same identity is not redone."""
    purified = list(purified or [])
    if not manifests or not captions:
        raise UniqaError(f"the corpus needs at least one manifest and one caption folder, got manifests "
                         f"{manifests} and captions {captions}")
    found = {"manifest": [], "captions": [], "purified": []}
    identity = {"config": config_fingerprint(cfg), "manifests": [], "captions": [], "purified": []}
    rows = 0
    for what, key, uris, schema in (("manifest", "manifests", manifests, MANIFEST),
                                    ("captions", "captions", captions, CAPTIONS),
                                    ("purified", "purified", [kept_folder(p) for p in purified], PURIFIED)):
        for uri in uris:
            files, n = _files(uri, schema, what)
            found[what].append(files)
            identity[key].append(input_identity(files, n))
            rows += n * (2 if what == "manifest" else 1)  # a manifest row may add a level-prompt text
    return CorpusPlan(inputs={"manifests": list(manifests), "captions": list(captions), "purified": purified},
                      identity=identity, resume="whole", manifests=found["manifest"], captions=found["captions"],
                      purified=found["purified"], rows=rows)


def output_rows(out: str) -> int:
    """Rows in the part files of ``out`` (footers only)."""
    fs, root = storage.resolve(out)
    return sum(pq.read_metadata(f"{root}/{name}", filesystem=fs).num_rows for name in sink.part_names(out))


def work(plan: CorpusPlan, out: str, cfg: CorpusConfig, run: Run) -> Outcome:
    """Build the corpus under ``out``: the previous shards removed, then the Ray Data job."""
    from uniqa.corpus.build import merge_stats
    from uniqa.corpus.corpus_stage import corpus_dataset, drain_stats

    partitions = cfg.num_partitions(plan.rows)
    remove_parts(out)
    with run.ray():
        results = corpus_dataset(plan.manifests, plan.captions, plan.purified, out, cfg, partitions)
        stats = merge_stats(drain_stats(results, partitions, run.progress))
    dropped = {k: stats.get(k, 0) for k in ("duplicates", "unknown_image", "empty")}
    details = {k: stats[k] for k in ("pairs_per_source", "images", "texts_per_image", "words_per_text")}
    details.update(files=stats.get("files", 0), dropped=dropped, partitions=partitions,
                   holdout={"splits": list(cfg.holdout_splits), "datasets": list(cfg.holdout_datasets)})
    return Outcome(rows_in=stats.get("candidates", 0), rows_out=output_rows(out), rows_written=stats["pairs"],
                   rows_dropped=sum(dropped.values()), unit="pairs", details=details)


def run_corpus(manifests: list[str], captions: list[str], purified: list[str] | None, out: str,
               cfg: CorpusConfig = CorpusConfig(), *, progress: bool = True,
               address: str | None = None) -> StageSummary:
    """Build the corpus under ``out`` (:func:`uniqa.executor.execute` of this stage; previous shards replaced)."""
    from uniqa.executor import execute

    return execute("corpus", [manifests, captions, purified], out, cfg, progress=progress, address=address)
