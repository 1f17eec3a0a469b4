"""docs/metrics.md embeds the metric catalogue; it must match the code."""

from pathlib import Path

from ccanalytics.ops import telemetry

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def test_metric_catalogue_in_docs_is_current():
    text = DOC.read_text(encoding="utf-8")
    start = text.index("-->\n", text.index("<!-- metric catalogue")) + 4
    end = text.index("<!-- end of metric catalogue -->")
    assert text[start:end] == telemetry.reference_markdown(), "run: python -m ccanalytics.ops.telemetry"
