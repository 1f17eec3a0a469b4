"""Configuration, read once at the edges (CLI, web app, scheduler, notebooks' ``connect()``).

Every setting is an environment variable with the ``CCA_`` prefix. Library functions never read the
environment themselves: they take explicit arguments, and the edges pass values from ``Settings``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_MARKERS = (".ccanalytics", "pyproject.toml")


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding a ``.ccanalytics`` folder or a
    ``pyproject.toml`` of this project; ``start`` itself when there is none.

    Notebooks run from ``notebooks/`` and reports from elsewhere, yet all of them must find the same
    embedded database as ``make demo``.
    """
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / ".ccanalytics").is_dir():
            return directory
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and 'name = "ccanalytics"' in pyproject.read_text(errors="ignore"):
            return directory
    return start


class Settings(BaseSettings):
    """All settings of ccanalytics. See docs/configuration.md for the reference."""

    model_config = SettingsConfigDict(env_prefix="CCA_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host/db). Empty: the embedded server.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Working directory for local state; default <project root>/.ccanalytics.",
    )
    pg_data: Path | None = Field(
        default=None,
        description="Data directory of the embedded PostgreSQL; default <data_dir>/pg.",
    )
    embedded_database: str = Field(default="ccanalytics", description="Database name inside the embedded server.")
    timezone: str = Field(default="Europe/Kyiv", description="Business time zone: days, hours and reports use it.")
    db_pool_size: int = Field(default=5, ge=1, le=100, description="Connections per process.")
    statement_timeout_ms: int = Field(
        default=60_000, ge=0, description="Per-statement timeout for library queries (0: none)."
    )
    partitions_ahead_months: int = Field(
        default=3, ge=1, le=24, description="Monthly partitions created ahead of the current month."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def resolved_data_dir(self) -> Path:
        return (self.data_dir or find_project_root() / ".ccanalytics").resolve()

    def resolved_pg_data(self) -> Path:
        return (self.pg_data or self.resolved_data_dir() / "pg").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()


def reference_markdown() -> str:
    """docs/configuration.md, generated from ``Settings`` (a test keeps the file in sync)."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `ccanalytics/config.py` by `python -m ccanalytics.config > docs/configuration.md`;",
        "a test fails when this file and the code disagree. Every setting is an environment variable;",
        "secrets come only from the environment.",
        "",
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        default = "—" if info.default is None else f"`{info.default}`"
        lines.append(f"| `CCA_{name.upper()}` | {default} | {info.description or ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
