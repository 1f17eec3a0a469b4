"""docs/definitions.md embeds the catalogue of figures and thresholds; it must match the code."""

from pathlib import Path

from ccanalytics.core import definitions

DOC = Path(__file__).resolve().parent.parent / "docs" / "definitions.md"


def test_definitions_catalogue_in_docs_is_current():
    text = DOC.read_text(encoding="utf-8")
    start = text.index("-->\n", text.index("<!-- definitions catalogue")) + 4
    end = text.index("<!-- end of definitions catalogue -->")
    assert text[start:end] == definitions.reference_markdown(), "run: python -m ccanalytics.core.definitions"


def test_every_figure_has_a_definition():
    assert set(definitions.DEFINITIONS) == set(definitions.FIGURES_BY_KEY)
