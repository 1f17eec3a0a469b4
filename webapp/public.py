"""Which endpoints answer without a login: the login guard (webapp.auth) and the database gate
(webapp.db, which lets the login page render during an outage) both ask here."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

PUBLIC_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "prom.metrics", "static"})


def public(view: Callable) -> Callable:
    """No login needed. A public view that changes state checks CSRF itself (see ``auth.login``)."""
    view._cca_public = True  # type: ignore[attr-defined]
    return view


def is_public(endpoint: str | None, app: Flask | None = None) -> bool:
    app = app or current_app
    if endpoint is None:
        return False
    if endpoint in PUBLIC_ENDPOINTS or endpoint.endswith(".static"):
        return True
    if endpoint in app.config.get("AUTH_PUBLIC_ENDPOINTS", ()):
        return True
    return bool(getattr(app.view_functions.get(endpoint), "_cca_public", False))
