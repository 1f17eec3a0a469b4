"""Small escaped HTML blocks for notebooks and reports: tables, headline cards, notes.

Every value is escaped here; callers never build HTML from data themselves. A block renders in
Jupyter (``_repr_html_``) and survives nbconvert into the e-mailed report as plain inline-styled
HTML (no scripts, no external CSS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

from ccanalytics.core.rutext import num, pct, usd  # noqa: F401  (re-exported for the views)

CELL = "padding:3px 8px;border-bottom:1px solid #e0e0e0;text-align:left;vertical-align:top"
HEAD = "padding:3px 8px;border-bottom:2px solid #9e9e9e;text-align:left;background:#f5f5f5"


@dataclass(frozen=True)
class Block:
    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


Format = Callable[[Any], str]


def _cell(value: Any, fmt: Format | None) -> str:
    if isinstance(value, Markup):
        return str(value)
    if fmt is not None:
        return escape(fmt(value))
    if value is None:
        return "—"
    if isinstance(value, float):
        return escape(num(value, 3))
    if isinstance(value, int) and not isinstance(value, bool):
        return escape(num(value))
    return escape(str(value))


def table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[tuple[str, str] | tuple[str, str, Format]],
    *,
    caption: str | None = None,
    empty: str = "нет данных",
) -> Block:
    """An HTML table of ``rows`` with ``columns`` = (key, Russian title[, formatter]).

    Values are escaped; a ``markupsafe.Markup`` value (e.g. a link built with :func:`link`) is kept."""
    rows = list(rows)
    head = "".join(f'<th style="{HEAD}">{escape(c[1])}</th>' for c in columns)
    parts = ['<table style="border-collapse:collapse;font-size:13px;margin:6px 0">']
    if caption:
        parts.append(f'<caption style="text-align:left;font-weight:bold;padding:4px 0">{escape(caption)}</caption>')
    parts.append(f"<thead><tr>{head}</tr></thead><tbody>")
    if not rows:
        parts.append(f'<tr><td style="{CELL}" colspan="{len(columns)}">{escape(empty)}</td></tr>')
    for row in rows:
        cells = "".join(
            f'<td style="{CELL}">{_cell(row.get(c[0]), c[2] if len(c) > 2 else None)}</td>' for c in columns
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    return Block("".join(parts))


def link(url: str, text: str) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url, text)


def note(text: str, *, tone: str = "info") -> Block:
    colours = {"info": "#e3f2fd", "warn": "#fff8e1", "bad": "#ffebee", "good": "#e8f5e9"}
    return Block(
        f'<div style="background:{colours.get(tone, colours["info"])};padding:6px 10px;margin:6px 0;'
        f'border-radius:4px">{escape(text)}</div>'
    )


def cards(items: Iterable[Mapping[str, Any]]) -> Block:
    """Headline cards: ``title``, ``value`` (formatted text), ``delta`` (text) and ``tone``
    (good/bad/neutral) of the change."""
    tones = {"good": "#2e7d32", "bad": "#c62828", "neutral": "#616161"}
    out = ['<table style="border-collapse:separate;border-spacing:6px"><tr>']
    for i, item in enumerate(items):
        if i and i % 4 == 0:
            out.append("</tr><tr>")
        colour = tones.get(item.get("tone", "neutral"), tones["neutral"])
        out.append(
            '<td style="border:1px solid #e0e0e0;border-radius:6px;padding:8px 12px;min-width:150px;'
            'vertical-align:top">'
            f'<div style="font-size:12px;color:#616161">{escape(str(item["title"]))}</div>'
            f'<div style="font-size:22px;font-weight:bold">{escape(str(item["value"]))}</div>'
            f'<div style="font-size:12px;color:{colour}">{escape(str(item.get("delta", "")))}</div></td>'
        )
    out.append("</tr></table>")
    return Block("".join(out))
