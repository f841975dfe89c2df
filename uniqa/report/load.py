"""What a run folder holds, read lazily: every accessor returns None (or an empty container) when its input is
absent, so each report section can ask for what it needs and be left out when it is not there.

What a folder is comes from its ``_summary.json``'s ``stage``, never from which files it holds: a ``uniqa demo``
run (stage ``demo``: its ``details.steps`` names each step's folder and stage, so the manifests are its ``prepare``
steps, the scores of a phase its ``score`` steps under ``scores/<phase>/``, the sweeps its ``tune`` steps, ...; and
``metrics.json``, ``configs.json``, ``demo_summary.json``), a ``uniqa score`` output (Parquet parts), a ``uniqa
filter`` output (``histograms.png``; the scores it filtered are read from the summary's ``inputs.scores``) or a
``uniqa pretrain`` run (``metrics.jsonl``). Local or ``s3://``.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from uniqa import storage
from uniqa.demo.results import SCORED
from uniqa.errors import UniqaError
from uniqa.schema import RAW_SUFFIX, SCORES
from uniqa.tables import dataset, parquet_files
from uniqa.training.metrics import METRICS, read_metrics

DEFAULT_SPLIT, DEFAULT_SIDE = "split_0", "test"
MANIFEST_COLUMNS = ["image_id", "image_uri", "dataset", "task", "mos", "mos_norm"]


@dataclass(frozen=True)
class Sweep:
    """One ``uniqa tune`` output folder."""

    name: str
    results: pd.DataFrame
    best: dict | None  # best.yaml
    test: dict | None  # test.json (adapter sweeps)
    summary: dict | None  # _summary.json


def read_parquet(uri: str, columns: list[str] | None = None) -> pd.DataFrame | None:
    """The Parquet files under ``uri`` as a frame (only those of ``columns`` that exist), None when there are none."""
    if not storage.exists(uri):
        return None
    try:
        files = parquet_files(uri)
    except UniqaError:  # a folder without Parquet files
        return None
    ds = dataset(files)
    wanted = None if columns is None else [c for c in columns if c in ds.schema.names]
    return ds.to_table(columns=wanted).to_pandas()


def _local(uri: str) -> str:
    return storage.absolute(uri)


class RunFolder:
    """A run folder's inputs to the report; each property is read once, on first use."""

    def __init__(self, root: str):
        self.root = root

    def path(self, *parts: str) -> str:
        """A path under the root ("" parts, e.g. :meth:`folders`' root itself, are left out)."""
        return storage.join(self.root, *[p for p in parts if p])

    def json(self, *parts: str) -> Any:
        """A JSON file of the run, or None when absent; malformed JSON is a :class:`UniqaError` naming the file."""
        return self._parsed(parts, "JSON", json.loads, json.JSONDecodeError)

    def yaml(self, *parts: str) -> Any:
        """A YAML file of the run, or None when absent; malformed YAML is a :class:`UniqaError` naming the file."""
        import yaml

        return self._parsed(parts, "YAML", yaml.safe_load, yaml.YAMLError)

    def _parsed(self, parts: tuple[str, ...], kind: str, loads: Callable[[bytes], Any],
                error: type[Exception]) -> Any:
        uri = self.path(*parts)
        if not storage.exists(uri):
            return None
        try:
            return loads(storage.read_bytes(uri))
        except error as e:
            raise UniqaError(f"{uri}: not valid {kind} ({e})") from None

    # ------------------------------------------------------------------------------------ run-level files

    @cached_property
    def summary(self) -> dict | None:
        """The root ``_summary.json`` (a single stage's output folder)."""
        return self.json("_summary.json")

    @property
    def stage(self) -> str | None:
        return (self.summary or {}).get("stage")

    @cached_property
    def steps(self) -> dict[str, str]:
        """A demo run's step folders and the stage that wrote each ({} for another folder)."""
        return dict((self.summary or {}).get("details", {}).get("steps") or {}) if self.stage == "demo" else {}

    def folders(self, stage: str) -> list[str]:
        """The folders ``stage`` wrote, relative to the root: the root itself ("") for that stage's own output,
        a demo run's steps of that stage, in recipe order."""
        return [""] if self.stage == stage else [name for name, s in self.steps.items() if s == stage]

    @cached_property
    def metrics(self) -> dict | None:
        """A demo run's ``metrics.json``."""
        return self.json("metrics.json") if self.stage == "demo" else None

    @cached_property
    def configs(self) -> dict | None:
        return self.json("configs.json") if self.stage == "demo" else None

    @cached_property
    def demo_summary(self) -> dict | None:
        return self.json("demo_summary.json") if self.stage == "demo" else None

    @property
    def split(self) -> tuple[str, str]:
        """(split column, side) the demo evaluated: from metrics.json, else split_0 / test."""
        m = self.metrics or {}
        return m.get("split", DEFAULT_SPLIT), m.get("side", DEFAULT_SIDE)

    # ------------------------------------------------------------------------------------------ pretrain

    @cached_property
    def pretrain_folder(self) -> str | None:
        """The pre-training run: the root itself (a ``uniqa pretrain`` output) or a demo's ``pretrain`` step."""
        for name in self.folders("pretrain"):
            if storage.exists(self.path(name, METRICS)):
                return self.path(name)
        return None

    @cached_property
    def pretrain_steps(self) -> pd.DataFrame | None:
        """One row per logged optimiser step (step, loss, lr, ...), sorted by step."""
        if self.pretrain_folder is None:
            return None
        frame = pd.DataFrame.from_records(read_metrics(self.pretrain_folder))
        if frame.empty or not {"step", "loss"} <= set(frame.columns):
            return None
        return frame.sort_values("step").reset_index(drop=True)

    @cached_property
    def pretrain_summary(self) -> dict | None:
        if self.pretrain_folder is None:
            return None
        found = RunFolder(self.pretrain_folder).summary
        return found if found and found.get("stage") == "pretrain" else None

    # ------------------------------------------------------------------------------------ manifest, text

    @cached_property
    def manifest(self) -> pd.DataFrame | None:
        """Every manifest under ``manifests/`` with the evaluated split column and, where the rows carry them,
        ``dist_type`` / ``dist_level`` from ``attrs``, each image once (a demo also keeps its test side's rows in a
        manifest of their own); None when there is none."""
        parts = self.folders("prepare")
        if not parts:
            return None
        split, _ = self.split
        frames = []
        for part in parts:
            try:
                ds = dataset(self.path(part))
            except UniqaError:
                continue
            names = ds.schema.names
            table = ds.to_table(columns=[c for c in [*MANIFEST_COLUMNS, "group", split, "attrs"] if c in names])
            frame = table.drop_columns(["attrs"]).to_pandas() if "attrs" in names else table.to_pandas()
            if "attrs" in names:
                for key in ("dist_type", "dist_level"):
                    frame[key] = pc.map_lookup(table["attrs"], key, "first").to_numpy(zero_copy_only=False)
            frames.append(frame)
        if not frames:
            return None
        return pd.concat(frames, ignore_index=True).drop_duplicates("image_id", ignore_index=True)

    @cached_property
    def test_side(self) -> pd.DataFrame | None:
        """Labelled manifest rows of the evaluated side of the split."""
        m = self.manifest
        if m is None:
            return None
        split, side = self.split
        if split not in m.columns:
            return None
        rows = m[(m[split] == side) & m["mos_norm"].notna()]
        return rows.reset_index(drop=True) if len(rows) else None

    def from_sample(self, dataset_name: str) -> bool:
        """True when every image of ``dataset_name`` lies in the run's embedded sample corpus (``sample/``)."""
        m = self.manifest
        if m is None:
            return False
        uris = m.loc[m["dataset"] == dataset_name, "image_uri"].dropna()
        prefixes = tuple(_local(self.path(name)).rstrip("/") + "/" for name in self.folders("sample"))
        return len(uris) > 0 and bool(prefixes) and all(_local(u).startswith(prefixes) for u in uris)

    @cached_property
    def captions(self) -> pd.DataFrame | None:
        folders = self.folders("caption")
        return read_parquet(self.path(folders[0]), ["image_id", "task", "caption", "error"]) if folders else None

    @cached_property
    def comments(self) -> pd.DataFrame | None:
        """Purified comments kept per image (image_id, comment, rank)."""
        folders = self.folders("purify")
        return read_parquet(self.path(folders[0], "kept"), ["image_id", "comment", "rank"]) if folders else None

    # -------------------------------------------------------------------------------------------- scores

    @cached_property
    def phase_scores(self) -> dict[str, pd.DataFrame]:
        """A demo's scores per phase (its ``score`` steps under ``scores/<phase>/``, parts concatenated), the demo
        phases first."""
        folders = {posixpath.basename(posixpath.dirname(name)): posixpath.dirname(name)
                   for name in self.folders("score") if posixpath.dirname(name)}
        ordered = [p for p in SCORED if p in folders] + [p for p in folders if p not in SCORED]
        found = {}
        for phase in ordered:
            frame = read_parquet(self.path(folders[phase]))
            if frame is not None:
                found[phase] = frame
        return found

    def scored(self, phase: str) -> pd.DataFrame | None:
        """The evaluated side of the manifest joined with ``phase``'s scores (rows with an error left out)."""
        test, scores = self.test_side, self.phase_scores.get(phase)
        if test is None or scores is None or "image_id" not in scores.columns:
            return None
        usable = scores[scores["error"].isna()] if "error" in scores.columns else scores
        joined = test.merge(usable[["image_id", *head_columns(usable)]], on="image_id", how="inner")
        return joined if len(joined) else None

    @cached_property
    def scores_folder(self) -> RunFolder | None:
        """The ``uniqa score`` output this folder is about: the root itself, or the scores a ``uniqa filter`` output
        filtered (None when that folder is gone)."""
        if self.stage == "score":
            return self
        if self.stage == "filter":
            scores = (self.summary.get("inputs") or {}).get("scores")
            folder = RunFolder(scores) if scores and storage.exists(scores) else None
            if folder is not None and folder.stage == "score":
                return folder
        return None

    @cached_property
    def score_run(self) -> pd.DataFrame | None:
        """The scores of :attr:`scores_folder`."""
        return None if self.scores_folder is None else read_parquet(self.scores_folder.root)

    @property
    def score_summary(self) -> dict | None:
        return None if self.scores_folder is None else self.scores_folder.summary

    @property
    def curation(self) -> dict | None:
        """The ``_summary.json`` of a ``uniqa filter`` output."""
        return self.summary if self.stage == "filter" else None

    # -------------------------------------------------------------------------------------------- sweeps

    @cached_property
    def sweeps(self) -> list[Sweep]:
        out = []
        for step in self.folders("tune"):
            folder = RunFolder(self.path(step))
            results = read_parquet(folder.path("results.parquet"))
            if results is None:
                continue
            out.append(Sweep(posixpath.basename(step) or "sweep", results, folder.yaml("best.yaml"),
                             folder.json("test.json"), folder.summary))
        return out



def head_columns(frame: pd.DataFrame) -> list[str]:
    """The score (head) columns of a scores frame: the numeric columns that are not fixed SCORES columns or a classic
    head's ``<head>_raw`` companion."""
    names = [c for c in frame.columns if c not in SCORES.columns and pd.api.types.is_numeric_dtype(frame[c])]
    return [c for c in names if not (c.endswith(RAW_SUFFIX) and c[: -len(RAW_SUFFIX)] in names)]
