"""Russian number, date and word formatting for everything a person reads: the admin's pages, the
reports, alert messages. The one formatter: the admin's Jinja filters (webapp/textformat.py), the
reports and the alerts all call it.

Babel's ``ru`` locale does the work (CLDR: decimal comma, grouping, plural categories, month names);
on top of it the house style keeps a narrow no-break space (U+202F) between thousands, a real minus
sign (U+2212), a plain space before units ("12,3 %", "4,9 с"), "p < 0,001" for p-values below what
three decimals show, and the Russian word form that goes with a number.

    num(1234.5, 1)            → "1 234,5"
    pvalue(0.00002)           → "p < 0,001"
    count(21, "звонок", "звонка", "звонков") → "21 звонок"
    date_(date(2026, 11, 24)) → "24.11.2026"
"""

from __future__ import annotations

import datetime as _dt
import math
from decimal import ROUND_HALF_UP, Decimal

from babel import Locale
from babel.dates import format_date
from babel.numbers import get_decimal_symbol

LOCALE = Locale("ru")
THIN = "\u202f"  # between thousands
MINUS = "\u2212"
DASH = "—"  # a missing value
# The ru locale's decimal symbol from Babel; its grouping (every 3 digits, from one thousand) is the
# house's with THIN instead of Babel's no-break space. A journal page formats ~90 numbers: Babel's
# format_decimal parses its pattern on every call (~40 µs), this does the same in ~3 µs;
# tests/test_rutext.py checks it equals format_decimal(…, "#,##0.00…", locale="ru") on a large sample.
_DECIMAL = get_decimal_symbol(LOCALE)
_DIGITS = str.maketrans({",": THIN, ".": _DECIMAL, "-": MINUS})


def _round(value: float | int | Decimal, digits: int) -> Decimal:
    """Half away from zero on the decimal the reader sees (0.125 → 0,13; 2.675 → 2,68), as people
    round; binary floating point does not leak in."""
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-max(digits, 0)), rounding=ROUND_HALF_UP)


def num(value: float | int | Decimal | None, digits: int = 0, *, suffix: str = "") -> str:
    """``1234.5`` → ``1 234,5`` (digits=1); ``—`` for missing values; ``−0,3`` with a real minus; a value
    that rounds to zero has no sign."""
    if value is None:
        return DASH
    if isinstance(value, float) and value != value:  # NaN
        return DASH
    rounded = _round(value, digits)
    if rounded == 0:
        rounded = abs(rounded)
    return format(rounded, ",f").translate(_DIGITS) + suffix


def signed(value: float, digits: int = 0) -> str:
    """A change with its sign: ``+1,5``, ``−0,03``, ``0`` (no sign when it rounds to zero)."""
    text = num(abs(value), digits)
    if _round(value, digits) == 0:
        return text
    return ("+" if value > 0 else MINUS) + text


def compact(value: float | int | None, digits: int = 1, *, suffix: str = "") -> str:
    """As ``num`` with at most ``digits`` decimals and no trailing zeros: ``84.26`` → ``84,3``,
    ``50.0`` → ``50``, ``1013`` → ``1 013``."""
    if value is None:
        return DASH
    text = num(value, digits)
    if "," in text:
        text = text.rstrip("0").rstrip(",")
    if text == MINUS + "0":
        text = "0"
    return text + suffix


def sig(value: float | int | None, figures: int = 3) -> str:
    """``figures`` significant digits, trailing zeros dropped: ``0.012345`` → ``0,0123``, ``1234.5`` →
    ``1 235``, ``0.25`` → ``0,25`` (thresholds and measured values of any size)."""
    if value is None or value != value:
        return DASH
    if value == 0:
        return "0"
    digits = max(0, figures - 1 - math.floor(math.log10(abs(value))))
    return compact(value, digits)


def pct(value: float | None, digits: int = 1) -> str:
    """A percentage already in percent: ``12.34`` → ``12,3 %``."""
    return num(value, digits, suffix=" %")


def share(fraction: float | None, digits: int = 1) -> str:
    """A fraction as a percentage, trailing zeros dropped: ``0.8426`` → ``84,3 %``, ``0.5`` → ``50 %``."""
    return DASH if fraction is None else compact(100 * fraction, digits, suffix=" %")


def usd(value: float | None, digits: int = 4) -> str:
    """Dollars: ``0.0123`` → ``$0,0123``, ``-1.5`` → ``−$1,5000``."""
    if value is None:
        return DASH
    sign = MINUS if value < 0 and _round(value, digits) != 0 else ""
    return f"{sign}${num(abs(value), digits)}"


def seconds(value: float | None, digits: int = 1) -> str:
    """A duration in seconds: ``4.93`` → ``4,9 с``, ``0.7`` → ``0,7 с``, ``3.0`` → ``3 с``."""
    return compact(value, digits, suffix=" с")


def ms(value: float | None) -> str:
    """Milliseconds, whole: ``1234`` → ``1 234 мс``."""
    return num(value, 0, suffix=" мс") if value is not None else DASH


def pvalue(p: float | None, digits: int = 3, *, prefix: bool = True) -> str:
    """A p-value as a reader takes it: ``p = 0,122``, ``p < 0,001`` (never ``0,000``), ``p > 0,999``.
    ``prefix=False`` drops the ``p``: ``0,122``, ``< 0,001``."""
    if p is None or p != p:
        return DASH
    floor = Decimal(1).scaleb(-digits)
    if p < floor:
        text = f"< {num(floor, digits)}"
    elif p > 1 - floor:
        text = f"> {num(1 - floor, digits)}"
    else:
        text = num(p, digits)
        if not prefix:
            return text
        return f"p = {text}"
    return f"p {text}" if prefix else text


# ------------------------------------------------------------------------------------- word forms
def _form(n: float | int | Decimal, one: str, few: str, many: str) -> str:
    category = LOCALE.plural_form(-n if n < 0 else n)
    # CLDR's "other" is a fraction: «1,5 звонка» takes the genitive singular, the "few" form
    return {"one": one, "few": few, "many": many}.get(category, few)


def word(n: float | int, one: str, few: str, many: str) -> str:
    """Only the word form for ``n``: word(4, "звонок", "звонка", "звонков") → "звонка"."""
    return _form(n, one, few, many)


def count(n: float | int, one: str, few: str, many: str, *, digits: int = 1) -> str:
    """``n`` in Russian format with its word form: count(1013, "вызов", "вызова", "вызовов") →
    "1 013 вызовов"; a fraction keeps up to ``digits`` decimals: "1,5 звонка"."""
    text = num(n) if float(n).is_integer() else compact(n, digits)
    shown = Decimal(text.replace(THIN, "").replace(",", ".").replace(MINUS, "-"))
    return f"{text} {_form(shown, one, few, many)}"


def plural(n: float | int, one: str, few: str, many: str) -> str:
    """``n`` with the Russian word form for it: plural(21, "звонок", "звонка", "звонков") → "21 звонок"
    (the same as ``count``)."""
    return count(n, one, few, many)


def calls_acc(n: int) -> str:  # "оценить 21 звонок"
    return count(n, "звонок", "звонка", "звонков")


def calls_gen(n: int) -> str:  # "из 21 звонка"
    return count(n, "звонка", "звонков", "звонков")


def calls_loc(n: int) -> str:  # "в 21 звонке"
    return count(n, "звонке", "звонках", "звонках")


def days(n: float | int) -> str:
    """A number of days: ``1`` → ``1 день``, ``13.6`` → ``13,6 дня``."""
    return count(n, "день", "дня", "дней")


# ------------------------------------------------------------------------------------------ dates
def _as_date(value: _dt.date | _dt.datetime | str) -> _dt.date:
    return _dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value


def date_(value: _dt.date | _dt.datetime | str | None) -> str:
    """``24.11.2026`` (a date, a datetime or an ISO date string)."""
    return DASH if value is None else format_date(_as_date(value), "dd.MM.yyyy", locale=LOCALE)


def datetime_(value: _dt.datetime | None, *, seconds: bool = False) -> str:
    """``24.11.2026 14:05`` (``14:05:09`` with seconds), in the datetime's own zone."""
    if value is None:
        return DASH
    return f"{date_(value)} {value.strftime('%H:%M:%S' if seconds else '%H:%M')}"


def day_month(value: _dt.date | str | None, *, year: bool = False) -> str:
    """``24 ноября`` (``24 ноября 2026 г.`` with the year)."""
    if value is None:
        return DASH
    return format_date(_as_date(value), "d MMMM y 'г'." if year else "d MMMM", locale=LOCALE)


def weekday(value: _dt.date) -> str:
    """``вторник``."""
    return format_date(value, "EEEE", locale=LOCALE)


def period(first: _dt.date | str, last: _dt.date | str) -> str:
    """``15.11.2026 — 24.11.2026`` (one date when they are the same day)."""
    return date_(first) if first == last else f"{date_(first)} — {date_(last)}"
