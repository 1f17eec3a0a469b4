"""Russian number and word formatting for everything a person reads: reports, alert messages.

Decimal comma, thin-space thousands, a real minus sign, and the word forms that go with numbers."""

from __future__ import annotations


def num(value: float | int | None, digits: int = 0, *, suffix: str = "") -> str:
    """``1234.5`` → ``1 234,5``; ``—`` for missing values."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",").replace("-", "−")
    return text + suffix


def signed(value: float, digits: int = 0) -> str:
    """A change with its sign: ``+1,5``, ``−0,03``, ``0`` (no sign when it rounds to zero)."""
    text = num(abs(value), digits)
    if float(f"{value:.{digits}f}") == 0:
        return text
    return ("+" if value > 0 else "−") + text


def pct(value: float | None, digits: int = 1) -> str:
    """A percentage already in percent: ``12.34`` → ``12,3 %``."""
    return num(value, digits, suffix=" %")


def usd(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    sign = "−" if value < 0 and num(abs(value), digits) != num(0, digits) else ""
    return f"{sign}${num(abs(value), digits)}"


def plural(n: int, one: str, few: str, many: str) -> str:
    """``n`` with the Russian word form for it: plural(21, "звонок", "звонка", "звонков") → "21 звонок"."""
    n10, n100 = abs(n) % 10, abs(n) % 100
    word = one if n10 == 1 and n100 != 11 else few if 2 <= n10 <= 4 and not 12 <= n100 <= 14 else many
    return f"{n} {word}"


def calls_acc(n: int) -> str:  # "оценить 21 звонок"
    return plural(n, "звонок", "звонка", "звонков")


def calls_gen(n: int) -> str:  # "из 21 звонка"
    return plural(n, "звонка", "звонков", "звонков")


def calls_loc(n: int) -> str:  # "в 21 звонке"
    return plural(n, "звонке", "звонках", "звонках")


def compact(value: float | int | None, digits: int = 1, *, suffix: str = "") -> str:
    """As ``num`` with at most ``digits`` decimals and no trailing zeros: ``84.26`` → ``84,3``,
    ``50.0`` → ``50``, ``1013`` → ``1 013``."""
    if value is None:
        return "—"
    text = num(value, digits)
    if "," in text:
        text = text.rstrip("0").rstrip(",")
    if text == "−0":
        text = "0"
    return text + suffix


def share(fraction: float | None, digits: int = 1) -> str:
    """A fraction as a percentage, trailing zeros dropped: ``0.8426`` → ``84,3 %``, ``0.5`` → ``50 %``."""
    return "—" if fraction is None else compact(100 * fraction, digits, suffix=" %")


def seconds(value: float | None, digits: int = 1) -> str:
    """A duration in seconds: ``4.93`` → ``4,9 с``, ``0.7`` → ``0,7 с``, ``3.0`` → ``3 с``."""
    return compact(value, digits, suffix=" с")


def count(n: int, one: str, few: str, many: str) -> str:
    """As ``plural`` with the number in Russian format: count(1013, "вызов", "вызова", "вызовов") →
    "1 013 вызовов"."""
    return num(n) + plural(n, one, few, many)[len(str(n)) :]
