"""Results of the protocols: one row per run and selection, their aggregate (median, mean +- std), a printed
table, and the files (Parquet + CSV) they are written to. ``leaked``: a run's test images that are in the model's
pre-training corpus (:mod:`uniqa.provenance`; the summary: the most of any run; null: provenance unknown). A run's
rows are also saved as ``OUT/runs/<run>.json`` when it finishes (:func:`record_run`), so a rerun skips it."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.stage import json_value

if TYPE_CHECKING:
    from uniqa.adapters.config import AdaptConfig
    from uniqa.adapters.protocols import RunPlan

METRICS = ("srcc", "plcc", "krcc")
GROUP_KEYS = ("protocol", "labels", "prompt_set", "selection")
SELECTIONS = {
    "reference": "best epoch on the test split (as the reference code reports)",
    "clean": "epoch chosen on a validation part carved from train",
    "zero-shot": "no training",
}


def summarise(rows: list[dict]) -> list[dict]:
    """Median, mean and std (ddof 0) of each metric per (protocol, labels, prompt_set, selection); the
    ``labels`` of a full run are its whole train side, so full runs group under labels = "all"."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        labels = row["labels"] if row["protocol"] == "few-label" else "all"
        groups.setdefault((row["protocol"], str(labels), row["prompt_set"], row["selection"]), []).append(row)
    out = []
    for key, members in groups.items():
        record = dict(zip(GROUP_KEYS, key), runs=len(members), leaked=_most_leaked(members))
        for metric in METRICS:
            values = np.array([m[metric] for m in members], np.float64)
            values = values[~np.isnan(values)]
            stats = (np.median(values), values.mean(), values.std()) if len(values) else (np.nan,) * 3
            record.update({f"{metric}_median": stats[0], f"{metric}_mean": stats[1], f"{metric}_std": stats[2]})
        out.append(record)
    return out


def _most_leaked(members: list[dict]) -> int | None:
    """The most test images of one run found in the pre-training corpus (None: provenance unknown)."""
    known = [m["leaked"] for m in members if m.get("leaked") is not None]
    return max(known) if known else None


def format_table(summary: list[dict]) -> str:
    """The aggregate as a fixed-width text table; a closing ``LEAKED`` line when a run tested on images of the
    model's pre-training corpus."""
    head = f"{'protocol':<10} {'labels':>6} {'prompt_set':<20} {'selection':<10} {'runs':>4}"
    head += "".join(f"  {m.upper() + ' median':>11} {'mean +- std':>15}" for m in METRICS)
    lines = [head, "-" * len(head)]
    for r in summary:
        line = f"{r['protocol']:<10} {r['labels']:>6} {r['prompt_set']:<20} {r['selection']:<10} {r['runs']:>4}"
        for m in METRICS:
            line += f"  {r[m + '_median']:>11.4f} {r[m + '_mean']:>7.4f} +- {r[m + '_std']:.4f}"
        lines.append(line)
    most = _most_leaked(summary)
    if most:
        from uniqa.provenance import leak_note

        lines.append(leak_note(most, "test images of a run are"))
    return "\n".join(lines)


def write_rows(rows: list[dict], out: str, name: str) -> tuple[str, str]:
    """``OUT/<name>.parquet`` and ``OUT/<name>.csv``; returns their URIs."""
    table = pa.Table.from_pylist(rows)
    parquet_uri, csv_uri = storage.join(out, f"{name}.parquet"), storage.join(out, f"{name}.csv")
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(parquet_uri, buf.getvalue())
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    storage.write_bytes(csv_uri, buf.getvalue())
    return parquet_uri, csv_uri


RUNS_DIR = "runs"  # OUT/runs/<run>.json: one finished run's rows


def finished_runs(out: str, plans: list[RunPlan]) -> dict[str, tuple[list[dict], list[dict]]]:
    """run name -> (result rows, history rows) of the runs a previous call finished (a file cut short by a kill
    does not count: that run runs again)."""
    found = {}
    for plan in plans:
        uri = storage.join(out, RUNS_DIR, f"{plan.name}.json")
        if storage.exists(uri):
            try:
                data = json.loads(storage.read_bytes(uri))
                found[plan.name] = (data["rows"], data["history"])
            except (ValueError, KeyError, TypeError):
                continue
    return found


def record_run(out: str, plan: RunPlan, output: tuple, templates: dict, cfg: AdaptConfig) -> tuple[list, list]:
    """Save a finished run: its adapter first, then its rows (whose file marks the run as done)."""
    from uniqa.adapters.head import save_head

    rows, history, state = output
    if cfg.save_adapters and cfg.protocol != "zero-shot":
        head = templates[cfg.trained_prompt_set].head(adapter=True)
        head.load_state_dict(state)
        save_head(head, storage.join(out, "adapters", plan.name))
    text = json.dumps({"rows": rows, "history": history}, default=json_value)
    storage.write_bytes(storage.join(out, RUNS_DIR, f"{plan.name}.json"), text.encode())
    data = json.loads(text)  # exactly what a rerun will read back
    return data["rows"], data["history"]


def write_results(out: str, rows: list[dict], history: list[dict]) -> list[dict]:
    """OUT/results, OUT/summary (:func:`summarise`) and OUT/history (when there is one) -> the summary rows."""
    summary = summarise(rows)
    write_rows(rows, out, "results")
    write_rows(summary, out, "summary")
    if history:
        write_rows(history, out, "history")
    return summary
