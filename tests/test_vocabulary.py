"""The domain vocabulary is defined once (ccanalytics.core.vocabulary): every code has a Russian label, the
Prometheus catalogue, the judge, the rules and the demo use the same codes, and no module lists a
whole set of them again."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ccanalytics.analytics import explore
from ccanalytics.core import labels, vocabulary
from ccanalytics.demo import generator
from ccanalytics.demo import phrases as P
from ccanalytics.ops import telemetry
from ccanalytics.quality import rubric, rules

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {
    "SCENARIOS": (vocabulary.SCENARIOS, labels.SCENARIOS),
    "TRANSFER_REASONS": (vocabulary.TRANSFER_REASONS, labels.TRANSFER_REASONS),
    "TOOLS": (vocabulary.TOOLS, labels.TOOLS),
    "CRITERIA": (vocabulary.CRITERIA, labels.CRITERIA),
}
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_code_has_a_russian_label(group):
    codes, mapping = GROUPS[group]
    assert codes and len(set(codes)) == len(codes), "codes are unique"
    for code in codes:
        text = mapping.get(code)
        assert text and CYRILLIC.search(text) and "_" not in text and text != code, (group, code, text)
    assert labels.scenario(" + ".join(vocabulary.SCENARIOS[:2])) == " + ".join(
        labels.SCENARIOS[c] for c in vocabulary.SCENARIOS[:2]
    )


def test_labelled_refuses_a_code_without_a_label_and_a_label_without_a_code():
    assert list(vocabulary.labelled(("b", "a"), {"a": "а", "b": "б"}, "x")) == ["b", "a"]
    with pytest.raises(ValueError, match=r"no label for \['c'\]"):
        vocabulary.labelled(("a", "c"), {"a": "а"}, "x")
    with pytest.raises(ValueError, match=r"label of no code \['z'\]"):
        vocabulary.labelled(("a",), {"a": "а", "z": "я"}, "x")


def test_the_catalogue_the_judge_the_rules_and_the_demo_share_the_codes():
    assert telemetry.SCENARIOS is vocabulary.SCENARIOS and telemetry.TOOLS is vocabulary.TOOLS
    assert telemetry.CRITERIA is vocabulary.CRITERIA and telemetry.TRANSFER_REASONS is vocabulary.TRANSFER_REASONS
    assert [telemetry.tool_label(t) for t in vocabulary.TOOLS] == list(vocabulary.TOOLS)
    assert telemetry.tool_label("made_up_tool") == "other" and telemetry.criterion_label("made_up") == "other"
    assert tuple(rubric.DESCRIPTIONS) == vocabulary.CRITERIA
    assert set(rules.SCENARIO_TOOLS) == set(vocabulary.SCENARIOS)
    assert {t for tools in rules.SCENARIO_TOOLS.values() for t in tools} <= set(vocabulary.TOOLS)
    assert set(rules.COMMITTING_TOOLS) <= set(vocabulary.ACTION_TOOLS) <= set(vocabulary.TOOLS)
    assert {spec[0] for spec in P.TOOL_SPECS} == set(vocabulary.TOOLS) == set(generator.TOOL_NAMES)
    assert generator.BASE_SCENARIOS == vocabulary.SCENARIOS
    assert generator.TRANSFER_REASONS == vocabulary.TRANSFER_REASONS
    assert not set(explore.SEARCH_TOOLS) & set(vocabulary.ACTION_TOOLS)
    assert set(explore.SEARCH_TOOLS) | set(vocabulary.ACTION_TOOLS) | {"transfer_to_operator"} == set(vocabulary.TOOLS)


def _listed_sets(path: Path):
    """The tuple, list and set literals of strings in a module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts:
            if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                yield node.lineno, {e.value for e in node.elts}


def test_no_module_lists_a_whole_set_of_codes_again():
    copies = []
    for path in sorted((ROOT / "ccanalytics").rglob("*.py")):
        if path.name == "vocabulary.py":
            continue
        for line, values in _listed_sets(path):
            for group, (codes, _labels) in GROUPS.items():
                if set(codes) <= values:
                    copies.append(f"{path.relative_to(ROOT)}:{line} lists {group}")
    assert not copies, "import them from ccanalytics.core.vocabulary: " + "; ".join(copies)
