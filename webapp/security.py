"""Security headers on every response of the app: Content-Security-Policy, X-Content-Type-Options,
Referrer-Policy, X-Frame-Options, Permissions-Policy, and Strict-Transport-Security behind https.

Pages run no inline script (``script-src 'self'``: the admin's little JavaScript is webapp/static/app.js)
and load nothing from other sites except the configured Grafana in the dashboard's frame. Inline
``style`` attributes are allowed (``style-src 'self' 'unsafe-inline'``): the HTML blocks that reports
share with the admin carry their styles inline, and a style cannot run code. Charts are inline SVG
without scripts or event handlers (ccanalytics.reports.svgcharts: the call page's latencies, the A/B page's
intervals), so images come from the site only (``img-src 'self'``, no ``data:``).
JSON answers under /api/ get ``default-src 'none'``.

HSTS is sent only on requests that arrived over https (directly, or through a trusted proxy's
``X-Forwarded-Proto``, see CCA_TRUSTED_PROXIES) and only when ``HSTS_SECONDS`` is above zero: by
default a year when the session cookie is https-only (CCA_COOKIE_SECURE=true), else 0 (off).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, request

HSTS_DEFAULT_SECONDS = 365 * 24 * 3600
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def page_policy(grafana_url: str | None) -> str:
    """The Content-Security-Policy of the admin's pages; the Grafana origin may be framed."""
    frame = "'none'"
    parts = urlsplit((grafana_url or "").strip())
    if parts.scheme in ("http", "https") and parts.netloc and not any(c in parts.netloc for c in "\"';, <>\\"):
        frame = f"{parts.scheme}://{parts.netloc}"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self'",
            "font-src 'self'",
            "connect-src 'self'",
            f"frame-src {frame}",
            "frame-ancestors 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )


def init_app(app: Flask) -> None:
    if "HSTS_SECONDS" not in app.config:
        app.config["HSTS_SECONDS"] = HSTS_DEFAULT_SECONDS if app.config.get("SESSION_COOKIE_SECURE") else 0
    app.after_request(_headers)


def _headers(response):
    headers = response.headers
    api = request.path.startswith("/api/")
    headers.setdefault(
        "Content-Security-Policy", API_POLICY if api else page_policy(current_app.config.get("GRAFANA_URL"))
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY" if api else "SAMEORIGIN")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    seconds = int(current_app.config.get("HSTS_SECONDS") or 0)
    if seconds > 0 and request.is_secure:
        headers.setdefault("Strict-Transport-Security", f"max-age={seconds}; includeSubDomains")
    return response
