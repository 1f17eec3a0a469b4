"""Configuration: the reference document cannot drift from the code; project root discovery."""

from __future__ import annotations

from pathlib import Path

from ccanalytics.core.config import Settings, find_project_root, reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_current():
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == reference_markdown(), (
        "run: python -m ccanalytics.core.config > docs/configuration.md"
    )


def test_project_root_is_found_from_subdirectories(tmp_path):
    assert find_project_root(ROOT / "notebooks") == ROOT
    assert find_project_root(ROOT / "ccanalytics" / "demo") == ROOT
    (tmp_path / ".ccanalytics").mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_project_root(tmp_path / "a" / "b") == tmp_path


def test_paths_derive_from_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CCA_DATA_DIR", str(tmp_path / "state"))
    settings = Settings()
    assert settings.resolved_pg_data() == tmp_path / "state" / "pg"
    monkeypatch.setenv("CCA_PG_DATA", str(tmp_path / "elsewhere"))
    assert Settings().resolved_pg_data() == tmp_path / "elsewhere"


def test_unknown_time_zone_is_refused(monkeypatch):
    import pytest
    from pydantic import ValidationError

    monkeypatch.setenv("CCA_TIMEZONE", "Europe/Atlantis")
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings()
