"""The app's database engine: given in config (tests, ``ccanalytics serve``) or built from settings."""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy.engine import Engine


def init_app(app: Flask) -> None:
    app.extensions.setdefault("cca", {})
    if app.config.get("ENGINE") is not None:
        app.extensions["cca"]["engine"] = app.config["ENGINE"]


def get_engine() -> Engine:
    ext = current_app.extensions["cca"]
    if "engine" not in ext:
        from ccanalytics.config import Settings
        from ccanalytics.database import create_engine, resolve_url

        settings = Settings()
        ext["engine"] = create_engine(
            resolve_url(settings),
            pool_size=settings.db_pool_size,
            statement_timeout_ms=settings.statement_timeout_ms,
            application_name="ccanalytics-admin",
        )
    return ext["engine"]
