"""The JSON API under /api/v1: thin views over ccanalytics.

Every answer is ``{"data": …}``; every error ``{"error": {"code", "message", "details"}}`` with its
HTTP status. Query parameters and bodies are declared per view (``@query``, ``@json_body``, in
webapp/apiparams.py) and validated strictly — unknown or repeated parameters, bad dates, ids and JSON
are 400s — and the same declarations feed the OpenAPI document (webapp/openapi.py). Writes are
recorded in the audit log by the library functions they call, in the transaction of the change.

Views over calls take ``?tenant=`` (``TENANT``) and read through :func:`webapp.tenancy.scope`: a reader
limited to tenants sees only theirs (another tenant's call is a 404, as if it did not exist); prompts,
A/B tests and suggestions are shared by every tenant.

The views live with their resource — ``apicalls`` (calls out and in), ``apiprompts`` (versions and
suggestions), ``apiabtests``, ``apireview`` — on the blueprint of ``apibase``; this module assembles
them and answers who am I, the tenants, the document and the audit log.
"""

from __future__ import annotations

from flask import current_app

from ccanalytics.auth import auditlog

from . import apiabtests, apicalls, apiprompts, apireview, tenancy
from .apibase import ALL_ROLES, bp
from .apiparams import Param, ok, query
from .auth import current_principal, public, role_required
from .db import get_engine
from .openapi import spec

__all__ = ["bp"]

# each resource's views register on the blueprint when its module is imported
RESOURCES = (apicalls, apiprompts, apiabtests, apireview)


# ------------------------------------------------------------------------------------------- views
@bp.get("/me")
@role_required(*ALL_ROLES)
@query()
def me(q):
    """Who am I: the user or token of this request, its role and the tenants it may read (null: every tenant)."""
    return ok(current_principal().to_dict())


@bp.get("/tenants")
@query()
def list_tenants(q):
    """The tenants (retail networks) the reader may see: slug and name; the slugs ``?tenant=`` takes."""
    limit = tenancy.allowed()
    found = [t for t in tenancy.known() if limit is None or t.slug in limit]
    return ok([{"slug": t.slug, "name": t.name} for t in found])


@bp.get("/openapi.json")
@public
@query()
def openapi(q):
    return spec(current_app)


# -------------------------------------------------------------------------------------------- audit
@bp.get("/audit")
@role_required("admin")
@query(
    Param("action", "text", "Only this action, e.g. prompt.activated."),
    Param("object_type", "text", "Only this object type, e.g. prompt_version.", max_length=50),
    Param("object_id", "text", "Only this object id.", max_length=200),
    Param("actor", "text", "Only this actor.", max_length=200),
    Param("limit", "int", "At most this many entries.", default=100, minimum=1, maximum=1000),
)
def audit_log(q):
    """The audit log, newest first (admin only)."""
    entries = auditlog.audit_entries(
        get_engine(),
        action=q["action"],
        object_type=q["object_type"],
        object_id=q["object_id"],
        actor=q["actor"],
        limit=q["limit"],
    )
    return ok([e.to_dict() for e in entries])
