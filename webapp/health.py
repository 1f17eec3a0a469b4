"""Liveness and readiness for process supervisors and load balancers."""

from __future__ import annotations

from flask import Blueprint

from ccanalytics.core.errors import CCAError
from ccanalytics.db.engine import check_connection

from .db import SCHEMA_MESSAGE, get_engine, schema_ready

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    try:
        check_connection(get_engine())
    except CCAError as exc:
        return {"status": "unavailable", "error": exc.to_dict()}, 503
    if not schema_ready():
        return {"status": "schema_not_ready", "error": {"code": "schema_not_ready", "message": SCHEMA_MESSAGE}}, 503
    return {"status": "ready"}
