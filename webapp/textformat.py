"""Numbers, dates, word forms and the data's keys in the admin's templates: Jinja filters and globals
over :mod:`ccanalytics.core.rutext` and :mod:`ccanalytics.core.labels` — the same formatter and vocabulary as
the reports and the alert messages. A template never formats a number with ``"%.2f"|format``:

    {{ score|num(2) }}            0,42          {{ p|pvalue }}              p < 0,001
    {{ fraction|share }}          84,3 %        {{ cost|usd }}              $0,0123
    {{ n|plural('звонок', 'звонка', 'звонков') }}                          21 звонок
    {{ day|rudate }}              24.11.2026    {{ day|daymonth }}          24 ноября
    {{ c.scenario|scenario }}     подбор шин    {{ reasons|labels('REVIEW_REASONS') }}
    {{ judge(kind, model) }}      правила, версия 2
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime

from flask import Flask, current_app

from ccanalytics.core import labels, rutext, timeutil


def _vocabulary(name: str) -> Mapping[str, str]:
    found = getattr(labels, name.upper(), None)
    if not isinstance(found, Mapping):
        raise KeyError(f"no vocabulary {name!r} in ccanalytics.core.labels")
    return found


def label_of(key: str | None, vocabulary: str) -> str:
    """``{{ key|label('REVIEW_STATUSES') }}``: the Russian label of a key of a labels.py vocabulary."""
    return labels.label(_vocabulary(vocabulary), key)


def labels_of(keys: Iterable[str] | None, vocabulary: str, sep: str = ", ") -> str:
    """Several keys joined: ``{{ review.reasons|labels('REVIEW_REASONS') }}``."""
    return sep.join(label_of(k, vocabulary) for k in (keys or ()))


def local(value: datetime | date | None) -> datetime | date | None:
    """A moment in the business time zone (``TIMEZONE``); a date stays as it is."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timeutil.zone(current_app.config["TIMEZONE"]))
    return value


def rudatetime(value: datetime | None, seconds: bool = False) -> str:
    return rutext.datetime_(local(value), seconds=seconds)  # type: ignore[arg-type]


def plural(n: float | int | None, one: str, few: str, many: str) -> str:
    return rutext.DASH if n is None else rutext.count(n, one, few, many)


FILTERS = {
    "num": rutext.num,
    "signed": rutext.signed,
    "compact": rutext.compact,
    "sig": rutext.sig,
    "pct": rutext.pct,
    "share": rutext.share,
    "usd": rutext.usd,
    "seconds": rutext.seconds,
    "ms": rutext.ms,
    "pvalue": rutext.pvalue,
    "plural": plural,
    "word": rutext.word,
    "rudate": rutext.date_,
    "rudatetime": rudatetime,
    "daymonth": rutext.day_month,
    "scenario": labels.scenario,
    "reason": labels.reason,
    "criterion": labels.criterion,
    "flag": labels.flag,
    "role": labels.role,
    "label": label_of,
    "labels": labels_of,
}
GLOBALS = {
    "num": rutext.num,
    "signed": rutext.signed,
    "share": rutext.share,
    "usd": rutext.usd,
    "pvalue": rutext.pvalue,
    "plural": plural,
    "judge": labels.judge,
}


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals.update(GLOBALS)
