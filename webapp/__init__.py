"""The admin web app (Flask). Thin: every page calls ccanalytics and renders the result."""

from __future__ import annotations

from typing import Any

from flask import Flask

from ccanalytics.errors import CCAError


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """App factory. ``config`` may carry ``ENGINE`` (a SQLAlchemy engine); without it the engine is
    built from the CCA_* settings when first needed."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=None,
        JSON_AS_ASCII=False,
        TIMEZONE="Europe/Kyiv",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if config:
        app.config.update(config)
    app.json.ensure_ascii = False

    from . import api, auth, db, health, journal, overview, prom

    db.init_app(app)
    auth.init_app(app, config)  # secret key, session cookie, login required on every non-public route
    app.register_blueprint(health.bp)
    app.register_blueprint(overview.bp)
    app.register_blueprint(journal.bp)
    app.register_blueprint(prom.bp)
    app.register_blueprint(api.bp)

    @app.errorhandler(CCAError)
    def _cca_error(exc: CCAError):
        return {"error": exc.to_dict()}, exc.http_status

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
