"""The admin web app (Flask). Thin: every page calls ccanalytics and renders the result."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from flask.json.provider import DefaultJSONProvider

from ccanalytics.core.config import Settings


def create_app(config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """App factory. ``settings`` is the process's one ``Settings`` (``ccanalytics serve`` passes its
    own); without it they are read from the CCA_* environment here, once. The time zone, the engine,
    the session and login policy, Grafana's address and the judge's rubric all come from them.
    ``config`` overrides Flask keys (tests): ``ENGINE`` (a SQLAlchemy engine; without it the engine is
    built from the settings when first needed), ``TIMEZONE``, ``SECRET_KEY`` …"""
    settings = settings if settings is not None else Settings()
    app = Flask(__name__)
    app.extensions["cca"] = {"settings": settings}
    app.config.update(
        SECRET_KEY=None,
        JSON_AS_ASCII=False,
        TIMEZONE=settings.timezone,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if config:
        app.config.update(config)
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own, unless an app sets json_provider_class
    app.json.ensure_ascii = False

    # the views import polars, which is not fork-safe: gunicorn's arbiter imports this package but only
    # the workers it forked build the app (webapp.serving)
    from . import (  # lazy: polars
        abtests,
        api,
        auth,
        dashboard,
        db,
        errorpages,
        health,
        journal,
        overview,
        prom,
        prompts,
        requestlog,
        review,
        security,
        suggestions,
        tenancy,
        textformat,
        users,
    )

    db.init_app(app)  # the engine; a 503 page with a banner while the database is unreachable
    auth.init_app(app, config)  # secret key, session cookie, login required on every non-public route
    requestlog.init_app(app)  # request ids and one access-log line per request (runs first and last)
    tenancy.init_app(app)  # the tenants a request covers; the header's «Сеть» selector
    security.init_app(app)  # CSP and the other security headers on every response (after auth's settings)
    app.register_blueprint(health.bp)
    app.register_blueprint(overview.bp)
    app.register_blueprint(journal.bp)
    app.register_blueprint(prom.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(prompts.bp)
    app.register_blueprint(suggestions.bp)
    app.register_blueprint(abtests.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(users.bp)

    textformat.init_app(app)  # Russian numbers, dates, word forms and labels in the templates (rutext, labels)
    errorpages.init_app(app)  # errors: Russian pages in the site's layout, JSON under /api/; expired forms kept

    return app


def app_settings(app: Flask | None = None) -> Settings:
    """The ``Settings`` the app was created with (``app`` or the current one)."""
    return (app or current_app).extensions["cca"]["settings"]
