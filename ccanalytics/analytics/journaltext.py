"""The journal's search text: its terms as tsqueries (``parse_query``), its words marked in a turn (``highlight``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from markupsafe import Markup, escape

_WORD_OR = {"or", "или", "або"}
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class Query:
    """A transcript search as tsqueries (their text): ``terms`` each in some turn of the call,
    ``excluded`` in none."""

    terms: list[str]
    excluded: list[str]

    @property
    def any(self) -> str:
        """A turn matching any term (the snippet)."""
        return " | ".join(f"( {t} )" for t in self.terms)


def parse_query(conn: sa.Connection, text: str) -> Query:
    """The search text as terms: words (every inflected form), "a phrase" (its words in this order in
    one turn), prefix* (every word starting with it), ``-word`` / ``-"phrase"`` (no turn of the call has
    it), terms joined by «or» / «или» / «або» (either). Terms that hold no searchable word are dropped."""
    groups: list[tuple[bool, list[tuple[str, str]]]] = []  # (excluded, alternatives (kind, text))
    join_next = False
    for m in _TOKEN.finditer(text):
        minus, phrase, word = m.groups()
        if word is not None and word.lower() in _WORD_OR and groups and not groups[-1][0]:
            join_next = True
            continue
        if phrase is not None:
            alt = ("phrase", f'"{phrase}"')
        else:
            minus = "-" if word.startswith("-") and len(word) > 1 else ""
            word = word[1:] if minus else word
            if word.endswith("*") and len(word.rstrip("*")) >= 2:
                alt = ("prefix", word.rstrip("*"))
            else:
                alt = ("word", word.replace('"', " "))
        if join_next and not minus:
            groups[-1][1].append(alt)
        else:
            groups.append((bool(minus), [alt]))
        join_next = False
    if not groups:
        return Query([], [])
    params: dict[str, str] = {}
    exprs = []
    for g, (_, alts) in enumerate(groups):
        parts = []
        for a, (kind, value) in enumerate(alts):
            params[f"t{g}_{a}"] = value
            fn = "cca_prefix_query" if kind == "prefix" else "cca_search_query"
            parts.append(f"{fn}(:t{g}_{a})")
        exprs.append(f"CAST({' || '.join(parts)} AS text)")
    texts = conn.execute(sa.text(f"SELECT {', '.join(exprs)}"), params).one()
    terms = [t for (excluded, _), t in zip(groups, texts, strict=True) if t and not excluded]
    excluded = [t for (excluded, _), t in zip(groups, texts, strict=True) if t and excluded]
    return Query(terms, excluded)


def highlight(text: str | None, query: str | None, *, width: int = 220) -> Markup:
    """The text, HTML-escaped, shortened around the first match, with the query's words in <mark>."""
    if not text:
        return Markup("")
    words = [w for w in re.findall(r"[\w'’ʼ-]{3,}", query or "") if not w.startswith("-")]
    stems = [re.escape(w[: max(3, len(w) - 2)]) for w in words]
    pattern = re.compile("(" + "|".join(stems) + r")[\w'’ʼ-]*", re.IGNORECASE) if stems else None
    start = 0
    if pattern and (m := pattern.search(text)) and m.start() > width // 2:
        start = m.start() - width // 3
    part = text[start : start + width]
    prefix, suffix = ("…" if start else ""), ("…" if start + width < len(text) else "")
    if pattern is None:
        return Markup(escape(prefix + part + suffix))
    out, pos = [], 0
    for m in pattern.finditer(part):
        out.append(escape(part[pos : m.start()]))
        out.append(Markup("<mark>") + escape(m.group()) + Markup("</mark>"))
        pos = m.end()
    out.append(escape(part[pos:]))
    return Markup(escape(prefix)) + Markup("").join(out) + Markup(escape(suffix))
