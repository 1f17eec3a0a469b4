"""The admin's inline SVG charts: the values they draw, the hover text, gaps, escaping, and no markup
the pages' Content-Security-Policy would refuse (no script, no event handler, no style attribute)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from ccanalytics.reports import svgcharts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    for el in root.iter():
        assert el.tag.split("}")[1] not in ("script", "foreignObject", "image"), el.tag
        assert "style" not in el.attrib and not any(k.startswith("on") for k in el.attrib), el.attrib
    return root


def test_nice_ticks_cover_the_top_in_round_steps():
    assert svgcharts.nice_ticks(1590) == [0, 500, 1000, 1500, 2000]
    assert svgcharts.nice_ticks(0.043) == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    assert svgcharts.nice_ticks(10) == [0, 2, 4, 6, 8, 10]
    assert svgcharts.nice_ticks(0) == [0.0, 1.0]


def test_turn_latency_stacks_each_turns_components_with_their_values_on_hover():
    turns = [
        {"turn_number": 1, "stt_latency_ms": 300},
        {"turn_number": 2, "llm_latency_ms": 1200, "tts_latency_ms": 250},
        {"turn_number": 3, "stt_latency_ms": None},
    ]
    root = parse(svgcharts.turn_latency(turns))
    groups = [g for g in root.iter(f"{SVG}g")]
    tips = [g.find(f"{SVG}title").text for g in groups]
    assert tips == [
        "T1: распознавание (STT) 300 мс",
        "T2: LLM (первый токен) 1\u202f200 мс, синтез (TTS) 250 мс",
        "T3: нет данных",
    ]
    # bar heights are proportional to the values: 1,200 ms is four times 300 ms
    heights = {
        (i, r.get("fill")): float(r.get("height"))
        for i, g in enumerate(groups)
        for r in g.iter(f"{SVG}rect")
        if r.get("fill") != "transparent"
    }
    assert abs(heights[(1, svgcharts.YELLOW)] / heights[(0, svgcharts.BLUE)] - 4) < 0.02
    assert not any(i == 2 for i, _ in heights)  # nothing drawn for a turn without latencies
    assert "1\u202f500 мс" in ET.tostring(root, encoding="unicode")  # the axis goes to 1,500 (sum 1,450)
    assert "T2" in root.find(f"{SVG}desc").text and "1\u202f450" in root.find(f"{SVG}desc").text


def test_trend_leaves_gaps_and_escapes_every_text():
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(6)]
    svg = svgcharts.trend(
        days, {"<b>оценка</b>": [0.5, 0.6, None, 0.8, 0.9, None]}, title='Качество "&" <script>', ylim=(0, 1)
    )
    assert "<script>" not in svg and "<b>" not in svg
    root = parse(svg)
    lines = list(root.iter(f"{SVG}polyline"))
    assert [len(pl.get("points").split()) for pl in lines] == [2, 2]  # the gap splits the line
    points = [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")]
    assert points[0] == "01.03.2026: <b>оценка</b> 0,50" and len(points) == 4  # two digits, like scores
    assert root.get("aria-label") == 'Качество "&" <script>'
    assert re.search(r">0,2<", svg) and re.search(r">1,0<", svg)  # the y axis in Russian format


def test_trend_takes_decimals_and_says_the_unit():
    from decimal import Decimal

    days = [date(2026, 3, 1), date(2026, 3, 2)]
    svg = svgcharts.trend(days, {"на звонок": [Decimal("0.031"), Decimal("0.042")]}, title="Стоимость", unit="USD")
    root = parse(svg)
    assert [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")] == [
        "01.03.2026: на звонок 0,031 USD",
        "02.03.2026: на звонок 0,042 USD",
    ]
    assert "0,05 USD" in svg  # the top of the axis carries the unit


def test_range_ticks_frame_values_far_from_zero():
    assert svgcharts.range_ticks(0.79, 0.86) == [0.78, 0.8, 0.82, 0.84, 0.86]
    assert svgcharts.range_ticks(48.2, 71.9) == [40, 50, 60, 70, 80]
    assert svgcharts.range_ticks(0.7, 0.9) == [0.7, 0.75, 0.8, 0.85, 0.9]
    assert svgcharts.range_ticks(-3.0, 2.0) == [-4, -2, 0, 2]
    ticks = svgcharts.range_ticks(0.5, 0.5)  # one value: a small span around it
    assert ticks[0] < 0.5 < ticks[-1]


def test_variants_with_ci_draws_each_variants_point_and_interval():
    rows = [
        {"variant": "A", "value": 0.812, "low": 0.79, "high": 0.834},
        {"variant": "B", "value": 0.846, "low": 0.83, "high": 0.862},
        {"variant": "<C>", "value": 0.8, "low": 0.7, "high": 0.9},
    ]
    svg = svgcharts.variants_with_ci(rows, title="Оценка качества: среднее и 95 % ДИ", digits=3)
    root = parse(svg)
    assert root.find(f"{SVG}title").text == "Оценка качества: среднее и 95 % ДИ"
    groups = list(root.iter(f"{SVG}g"))
    assert [g.find(f"{SVG}title").text for g in groups] == [
        "A: 0,812 (95 % ДИ 0,790…0,834)",
        "B: 0,846 (95 % ДИ 0,830…0,862)",
        "<C>: 0,800 (95 % ДИ 0,700…0,900)",
    ]
    assert "<C>" not in svg and "&lt;C&gt;" in svg  # escaped
    assert "A: 0,812" in root.find(f"{SVG}desc").text
    # the interval runs from low to high on the value axis and the point sits at the value
    for g, row in zip(groups, rows, strict=True):
        circle = g.find(f"{SVG}circle")
        whisker = g.find(f"{SVG}line")
        y_value, y_high, y_low = float(circle.get("cy")), float(whisker.get("y1")), float(whisker.get("y2"))
        assert y_high < y_value < y_low  # SVG's y grows downwards
        ratio = (y_low - y_value) / (y_low - y_high)
        assert abs(ratio - (row["value"] - row["low"]) / (row["high"] - row["low"])) < 0.01
    assert len({g.find(f"{SVG}circle").get("cx") for g in groups}) == 3  # side by side
    assert re.search(r">0,70<", svg) and re.search(r">0,90<", svg)  # the axis frames the intervals


def test_variants_with_ci_says_the_unit():
    rows = [{"variant": "A", "value": 61.25, "low": 55.0, "high": 67.5}]
    root = parse(svgcharts.variants_with_ci(rows, title="Решено без оператора", unit="%", digits=1))
    assert [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g")] == ["A: 61,3 % (95 % ДИ 55,0…67,5 %)"]
    assert parse(svgcharts.variants_with_ci([], title="Пусто")).find(f"{SVG}desc").text == "нет данных."
