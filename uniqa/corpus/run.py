"""``run_corpus``: manifests + captions [+ purified comments] -> corpus shards + ``_stats.json``."""

from __future__ import annotations

import json

from uniqa import storage
from uniqa.corpus.build import CorpusConfig, build_pairs, load_parts, read_images, stats
from uniqa.schema import CORPUS
from uniqa.tables import write_table


def run_corpus(manifests: list[str], captions: list[str], purified: list[str], out: str,
               cfg: CorpusConfig = CorpusConfig()) -> dict:
    """Write the pair shards (previous shards replaced) and return the stats (also in out/_stats.json)."""
    images = read_images(manifests)
    table, unknown = build_pairs(images, load_parts(captions, purified), cfg)
    files = write_table(table, out, CORPUS, cfg.rows_per_shard)
    summary = {"out": out, "files": len(files), **stats(table, unknown)}
    storage.write_bytes(storage.join(out, "_stats.json"), json.dumps(summary, indent=2).encode())
    return summary


def summary_lines(s: dict) -> list[str]:
    per_source = ", ".join(f"{k} {v}" for k, v in s["pairs_per_source"].items())
    t = s["texts_per_image"]
    lines = [f"{s['pairs']} pairs for {s['images']} images ({per_source}); texts per image "
             f"min {t['min']} mean {t['mean']} max {t['max']} -> {s['out']}"]
    for source, q in s["words_per_text"].items():
        lines.append(f"  {source} words: min {q['min']} p10 {q['p10']:g} median {q['median']:g} "
                     f"p90 {q['p90']:g} max {q['max']} mean {q['mean']}")
    if s["dropped_unknown_image"]:
        lines.append(f"  dropped {s['dropped_unknown_image']} texts whose image_id is in no manifest")
    return lines
