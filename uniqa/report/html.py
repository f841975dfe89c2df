"""The report's markup: escaping, number formatting, tables, machine-checkable metric elements and the page
itself (one inline stylesheet; no script, font or link leaves the file)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d232a;
background:#f4f6f8}
header{background:#1f3a5f;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85}nav{padding:8px 32px;background:#e3e8ee;font-size:13px}
nav a{margin-right:14px;color:#1f3a5f;text-decoration:none}
main{padding:8px 32px 40px;max-width:1400px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:18px;margin:4px 0 10px;color:#1f3a5f}h3{font-size:15px;margin:14px 0 6px}
.intro{color:#55606b;margin:0 0 10px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #dde3ea;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#eef2f6}td.l,th.l{text-align:left}tr.best td{background:#e7f5e9;font-weight:600}
.neg{color:#b3261e}.pos{color:#1b7a35}
p.leak{color:#b3261e;font-weight:700;border-left:4px solid #b3261e;padding:4px 10px;background:#fbe9e9}
.check{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px}
.check.pass{background:#d8f0dc;color:#1b5e20}.check.fail{background:#fbdcdc;color:#8e1b1b}
img.plot{max-width:100%;height:auto;display:block;margin:6px 0}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.cell{border:1px solid #dde3ea;border-radius:5px;padding:6px;font-size:12px;background:#fafbfc}
.cell img{display:block;margin:0 auto 4px;max-width:100%;height:auto}
.cell .id{font-weight:600;word-break:break-all}.cell dl{margin:2px 0;display:grid;
grid-template-columns:auto 1fr;gap:0 6px}.cell dt{color:#55606b}.cell dd{margin:0}
.cell .text{margin:3px 0;color:#333}.cell ul{margin:2px 0;padding-left:16px}
.placeholder{height:120px;display:flex;align-items:center;justify-content:center;text-align:center;
background:#f1e4e4;color:#8e1b1b;font-size:11px;padding:4px;word-break:break-all}
pre{background:#f4f6f8;border:1px solid #dde3ea;padding:8px;overflow:auto;font-size:12px;max-height:420px}
.note{color:#8e1b1b}
"""


@dataclass(frozen=True)
class Section:
    """One titled part of the page; ``key`` is its anchor."""

    key: str
    title: str
    body: str
    intro: str = ""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def plain(value: object) -> object:
    """numpy scalars as the Python value they hold."""
    return value.item() if isinstance(value, np.generic) else value


def is_missing(value: object) -> bool:
    """None, NaN, or pandas' NA."""
    value = plain(value)
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def fmt(value: object, spec: str = ".3f") -> str:
    """A value for a table cell: floats formatted with ``spec``, missing as an en dash, the rest as escaped text."""
    value = plain(value)
    if is_missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return esc(value)


def metric(key: str, value: float | int | None, signed: bool = False) -> str:
    """A machine-checkable number: ``<span data-metric="key">`` with the value as ``{:.3f}`` (integers as
    themselves, a missing value as ``nan``); ``signed`` colours it by sign."""
    value = plain(value)
    if is_missing(value):
        text, cls = "nan", "metric"
    elif isinstance(value, int) and not isinstance(value, bool):
        text, cls = str(value), "metric"
    else:
        text = f"{float(value):.3f}"
        cls = "metric" + ((" pos" if value > 0 else " neg" if value < 0 else "") if signed else "")
    return f'<span class="{cls}" data-metric="{esc(key)}">{text}</span>'


def interval(lo_key: str, hi_key: str, ci: object) -> str:
    """``[lo, hi]`` as two machine-checkable numbers (:func:`metric`), an en dash without an interval (a run from
    before intervals, an undefined one)."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or any(is_missing(v) for v in ci):
        return "–"
    return f"[{metric(lo_key, ci[0])}, {metric(hi_key, ci[1])}]"


def fmt_interval(ci: object, spec: str = ".3f") -> str:
    """``[lo, hi]`` as plain text (:func:`fmt`), an en dash without an interval."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or any(is_missing(v) for v in ci):
        return "–"
    return f"[{fmt(float(ci[0]), spec)}, {fmt(float(ci[1]), spec)}]"


def check(name: str, passed: bool) -> str:
    """A pass/fail badge carrying ``data-check="name"`` and ``data-value="true|false"``."""
    word, value = ("pass", "true") if passed else ("fail", "false")
    return f'<span class="check {word}" data-check="{esc(name)}" data-value="{value}">{word}</span>'


def table(header: Iterable[str], rows: Iterable[Iterable[str]], left: int = 1,
          row_classes: Iterable[str] | None = None) -> str:
    """A table of already-escaped cells; the first ``left`` columns are left-aligned."""
    def cells(values, tag):
        return "".join(f'<{tag}{" class=l" if i < left else ""}>{v}</{tag}>' for i, v in enumerate(values))

    classes = list(row_classes) if row_classes is not None else None
    body = "".join(f'<tr{f" class={classes[i]}" if classes and classes[i] else ""}>{cells(r, "td")}</tr>'
                   for i, r in enumerate(rows))
    return f"<table><thead><tr>{cells(header, 'th')}</tr></thead><tbody>{body}</tbody></table>"


def data_uri(data: bytes, mime: str) -> str:
    """``data:{mime};base64,...``: a file embedded in the page (it opens from disk with no network)."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def image(data_uri: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{data_uri}" alt="{esc(alt)}">'


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole document: header, a contents bar linking each section, the sections."""
    nav = "".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>'
        + (f'<p class="intro">{s.intro}</p>' if s.intro else "") + s.body + "</section>"
        for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{_CSS}</style></head><body><header><h1>{esc(title)}</h1><p>{subtitle}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main></body></html>\n")
