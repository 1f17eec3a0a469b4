"""The admin's inline SVG charts: the values they draw, the hover text, gaps, escaping, and no markup
the pages' Content-Security-Policy would refuse (no script, no event handler, no style attribute)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from ccanalytics import svgcharts

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
