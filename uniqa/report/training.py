"""Sections about training: the pre-training loss curve with its summary, and the adapter / pre-training sweep
tables (``tune/<name>/results.parquet`` with the best trial marked and its test numbers)."""

from __future__ import annotations

from uniqa.report import plots
from uniqa.report.html import esc, fmt, image, table
from uniqa.report.load import RunFolder, Sweep


def _facts(pairs: list[tuple[str, object]], spec: str = ".4g") -> str:
    """A two-column table of (label, value), the missing values left out."""
    rows = [[esc(k), fmt(v, spec)] for k, v in pairs if v is not None]
    return table(["", "value"], rows, left=2) if rows else ""


def pretraining(run: RunFolder) -> str | None:
    """Loss (and learning rate) against step from ``metrics.jsonl``, with the run's summary figures."""
    steps = run.pretrain_steps
    if steps is None:
        return None
    summary = run.pretrain_summary or {}
    details = summary.get("details", {})
    loss = steps["loss"].astype(float)
    lr = steps["lr"].to_numpy(float) if "lr" in steps.columns else None
    figure = plots.loss_curve(steps["step"].to_numpy(float), loss.to_numpy(), lr)

    def last(col):
        return float(steps[col].iloc[-1]) if col in steps.columns else None

    facts = [
        ("steps logged", len(steps)),
        ("steps done / planned", f"{summary['rows_out']} / {summary['rows_in']}" if summary else None),
        ("loss at first step", float(loss.iloc[0])), ("loss at last step", float(loss.iloc[-1])),
        ("lowest loss", float(loss.min())), ("last learning rate", last("lr")),
        ("last logit scale", last("logit_scale")), ("epochs", last("epoch")),
        ("mean images / s", float(steps["images_per_s"].mean()) if "images_per_s" in steps.columns else None),
        ("model", details.get("model")), ("corpus rows", details.get("corpus_rows")),
        ("images", details.get("images")), ("images skipped", details.get("images_skipped")),
        ("seconds (this call)", summary.get("seconds")),
    ]
    return (f'<p class="intro">From <code>{esc(run.pretrain_folder)}/metrics.jsonl</code>: the contrastive loss '
            "averaged over workers at every optimiser step; dashed: the learning rate.</p>"
            + image(figure, "pre-training loss curve") + _facts(facts))


def _sweep(sweep: Sweep) -> str:
    frame = sweep.results.drop(columns=[c for c in ("trial_id",) if c in sweep.results.columns])
    columns = list(frame.columns)
    best_trial = (sweep.best or {}).get("trial")
    classes = ["best" if best_trial is not None and r.get("trial") == best_trial else ""
               for r in frame.to_dict("records")]
    body = [[fmt(v, ".4g") for v in r.values()] for r in frame.to_dict("records")]
    header = [esc(c.removeprefix("config_")) for c in columns]
    html = f"<h3>{esc(sweep.name)}</h3>" + table(header, body, row_classes=classes)
    if sweep.best:
        config = ", ".join(f"{k}={fmt(v, '.4g')}" for k, v in (sweep.best.get("config") or {}).items())
        html += (f"<p>Best trial <b>{esc(best_trial)}</b> (highlighted): {esc(sweep.best.get('metric'))} = "
                 f"{fmt(sweep.best.get('value'), '.4f')} after {esc(sweep.best.get('epochs_run'))} epochs; "
                 f"config <code>{config}</code>.</p>")
    if sweep.test:
        t = sweep.test
        split = f"split_{t['split']}" if isinstance(t.get("split"), int) else t.get("split")
        html += (f"<p>Its head retrained and measured once on the test side of {esc(split)}: "
                 f"SRCC {fmt(t.get('srcc'))}, PLCC {fmt(t.get('plcc'))} (n = {esc(t.get('n_test'))}).</p>")
    return html


def sweeps(run: RunFolder) -> str | None:
    """One table per sweep: a row per trial (sampled config, best metric, epochs, early stop, seconds, error)."""
    if not run.sweeps:
        return None
    return ('<p class="intro">One row per trial of each <code>uniqa tune</code> sweep; the metric is measured on '
            "a validation part carved from the train side.</p>" + "".join(_sweep(s) for s in run.sweeps))
