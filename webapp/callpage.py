"""What the call page adds to the call's data: how its quality score is composed (weights × scores,
ccanalytics.quality.composition) and tool arguments and results as readable JSON.

The weights are those the score was computed with, stored with it by ccanalytics's judge; a score
stored before they were kept falls back to the current rubric's (``QUALITY_RUBRIC`` in the app's config,
else the CCA_QUALITY_* settings, read once per process), and the page says when the call was scored
with another rubric."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app

from ccanalytics.quality import Rubric, composition, rubric_from_settings

from . import app_settings

# where the weights come from, for people
WEIGHTS_SOURCE = {
    "stored": "веса, с которыми звонок оценён",
    "rubric": "веса текущей рубрики (звонок оценён по ней)",
    "rubric_changed": "веса текущей рубрики; звонок оценён по прежней рубрике, поэтому сумма может "
    "не совпасть с оценкой до переоценки звонка",
    "equal": "процессор считает простое среднее критериев: у каждого вес 1",
}


def rubric() -> Rubric:
    """The rubric the judge scores with now."""
    config = current_app.config
    if config.get("QUALITY_RUBRIC") is None:
        config["QUALITY_RUBRIC"] = rubric_from_settings(app_settings())
    return config["QUALITY_RUBRIC"]


def score_composition(call: dict[str, Any]) -> composition.Composition | None:
    """The composition of the call's shown score (ccanalytics's, or the processor's when not scored)."""
    return composition.compose(call.get("quality_details"), rubric(), call.get("quality_score"))


def parsed(value: Any) -> Any:
    """A tool's arguments or result as JSON: a string holding a JSON object or array (a processor that
    stored it encoded twice) is decoded, anything else is kept."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, dict | list):
            return decoded
    return value


def readable_tools(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns with their tools' arguments and results decoded (before masking, so masking sees the
    fields)."""
    return [
        {
            **t,
            "tools": [
                {**x, "tool_args": parsed(x.get("tool_args")), "tool_result": parsed(x.get("tool_result"))}
                for x in t.get("tools", [])
            ],
        }
        for t in turns
    ]


def pretty_json(value: Any) -> str:
    """Indented JSON with the text as written (``Мар'яна``, not ``Мар\\u0027яна``); the template escapes
    it. A plain string is shown as it is."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
