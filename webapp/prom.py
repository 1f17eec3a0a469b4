"""GET /metrics: the Prometheus exposition of the database exporter (ccanalytics.ops.exporter)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ccanalytics.ops import exporter

from .db import get_engine

bp = Blueprint("prom", __name__)


def _registry():
    registry = current_app.extensions.get("cca_metrics_registry")
    if registry is None:
        registry = exporter.make_registry(
            get_engine(),
            derive=current_app.config.get("METRICS_DERIVE", True),
            lag_seconds=current_app.config.get("METRICS_LAG_SECONDS", 10.0),
            tz=current_app.config["TIMEZONE"],
        )
        current_app.extensions["cca_metrics_registry"] = registry
    return registry


@bp.get("/metrics")
def metrics():
    return Response(exporter.render(_registry()), mimetype=exporter.CONTENT_TYPE)
