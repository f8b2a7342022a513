"""Self-contained HTML pages: tables and embedded PNG plots in one file.

Owns the page format shared by `compare.html` and the demo's `report.html`:
a heading, sections of tables (pandas DataFrames with per-column formats)
and images (PNG bytes embedded as base64, so the file opens anywhere without
its neighbours).
"""
from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1400px}"
         "table{border-collapse:collapse;font-size:13px;margin-bottom:1em}"
         "th,td{border:1px solid #ccc;padding:3px 7px}th{background:#f2f2f2}"
         "td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}"
         ".headline{font-size:1.2em;background:#eef6ee;padding:.6em 1em;border-radius:4px}")


def format_value(fmt: str, v) -> str:
    """`fmt` is a str.format pattern, or "pct" for a fraction shown in percent."""
    if fmt == "pct":
        return f"{100 * v:.1f}"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def html_table(df: pd.DataFrame, formats: dict | None = None) -> str:
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            txt = format_value(formats[c], v) if c in formats else str(v)
            cls = ' class="num"' if isinstance(v, (int, float, np.number)) else ""
            cells.append(f"<td{cls}>{html.escape(txt)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def html_page(title: str, parts: list[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>\n")
