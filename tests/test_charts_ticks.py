"""The numeric axes of the report charts in Russian format: decimal comma, real minus, thin spaces."""

from __future__ import annotations

from datetime import date, timedelta

from ccanalytics.reports import charts


def _ticks(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def test_numeric_axes_have_decimal_commas_and_real_minus_signs():
    days = [date(2026, 11, 23) + timedelta(days=i) for i in range(7)]
    fig = charts.trend(days, {"на звонок": [0.05, 0.1, 0.125, None, 0.09, -0.02, 0.11]}, title="Стоимость")
    assert fig.to_html().startswith('<img alt="Стоимость"')  # drawn: the ticks are labelled now
    y = _ticks(fig.axes[0].yaxis)
    assert y and all("." not in t and "-" not in t for t in y), y
    assert "0,10" in y and any(t.startswith("\u2212") for t in y)  # one number of decimals for all, a real minus
    assert all(t.startswith("2026-11-") for t in _ticks(fig.axes[0].xaxis))  # a date axis keeps its own labels


def test_thousands_whole_steps_and_category_axes():
    fig = charts.bars(["23.11\nпн", "24.11\nвт"], {"решено ботом": [1200, 900], "переведено": [300, 250]}, title="т")
    fig.png()
    y = _ticks(fig.axes[0].yaxis)
    assert "1\u202f000" in y and "0" in y and not any("," in t for t in y)  # whole steps: no decimals
    assert _ticks(fig.axes[0].xaxis) == ["23.11\nпн", "24.11\nвт"]  # categories as given
    shares = charts.shares({"a": 3, "b": 5}, title="т")
    shares.png()
    assert _ticks(shares.axes[0].yaxis) == ["a", "b"]  # a category axis is not renumbered (smallest at the bottom)


def test_tick_digits_follow_the_step():
    assert charts.tick_digits([0.0, 0.25, 0.5]) == 2
    assert charts.tick_digits([0.0, 0.002, 0.004]) == 3
    assert charts.tick_digits([0, 500, 1000]) == 0
    assert charts.tick_digits([1.0]) == 0
