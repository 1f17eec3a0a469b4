"""Tenants: the call processor's retail networks (its ``tenants`` table) and the one way a list or a
figure is scoped to some of them.

A scope is ``None`` (every tenant, and calls whose tenant was deleted) or a tuple of tenant slugs.
:func:`scope` turns what a user asked for (a slug, several, or nothing) into a scope, checking the slugs
against the database and against the tenants the reader is limited to; :data:`SQL` is the filter every
query over ``cca_calls`` uses with it. Customers are per (tenant, phone): the same number is a customer
of each tenant it called.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ccanalytics.core.errors import Forbidden, InvalidArgument

Scope = tuple[str, ...] | None
TenantArg = str | Sequence[str] | None

# the filter of a query over cca_calls (alias c) bound to :tenants (text[] or NULL for every tenant)
SQL = "(CAST(:tenants AS text[]) IS NULL OR c.tenant = ANY(CAST(:tenants AS text[])))"
ALL_LABEL = "все сети"


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    slug: str
    name: str
    is_active: bool

    @property
    def label(self) -> str:
        """How people see it: «ПроКолесо»."""
        return f"«{self.name}»" if self.name else self.slug


def list_tenants(bind: Engine | Connection) -> list[Tenant]:
    """Every tenant of the database, by slug."""
    sql = sa.text(
        "SELECT id, slug, coalesce(name, '') AS name, coalesce(is_active, true) AS a FROM tenants ORDER BY slug"
    )
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = conn.execute(sql).all()
    else:
        rows = bind.execute(sql).all()
    return [Tenant(r.id, r.slug, r.name, r.a) for r in rows]


def _asked(tenant: TenantArg) -> tuple[str, ...]:
    if tenant is None:
        return ()
    items = [tenant] if isinstance(tenant, str) else list(tenant)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"a tenant is given by its slug, not {item!r}")
        slug = item.strip().lower()
        if slug and slug not in out:
            out.append(slug)
    return tuple(out)


def scope(bind: Engine | Connection, tenant: TenantArg = None, *, allowed: Sequence[str] | None = None) -> Scope:
    """The tenants a reader asked for, checked: ``None`` means every tenant.

    ``tenant``: a slug, several, or None/empty for all. ``allowed``: the tenants the reader is limited to
    (None: not limited). Asking for none while limited gives the allowed ones; asking for a tenant outside
    them raises Forbidden; an unknown slug raises InvalidArgument naming the known ones.
    """
    asked = _asked(tenant)
    if asked:
        known = {t.slug for t in list_tenants(bind)}
        unknown = [s for s in asked if s not in known]
        if unknown:
            have = ", ".join(sorted(known)) or "none"
            raise InvalidArgument(f"unknown tenant {unknown[0]!r}: the database has {have}")
    if allowed is None:
        return asked or None
    limit = tuple(dict.fromkeys(allowed))
    if not asked:
        return limit
    outside = [s for s in asked if s not in limit]
    if outside:
        raise Forbidden(f"no access to tenant {outside[0]!r}")
    return asked


def params(tenants: Scope) -> dict[str, list[str] | None]:
    """The bind parameters of :data:`SQL` for a scope."""
    return {"tenants": list(tenants) if tenants is not None else None}


def describe(bind: Engine | Connection, tenants: Scope) -> str:
    """A scope in words for people: «все сети», «ПроКолесо», «ПроКолесо», «Шинсервіс»."""
    return label(list_tenants(bind) if tenants is not None else [], tenants)


def label(known: Sequence[Tenant], tenants: Scope) -> str:
    """:func:`describe` with the tenants already read (``known``: :func:`list_tenants`)."""
    if tenants is None:
        return ALL_LABEL
    by_slug = {t.slug: t for t in known}
    return ", ".join(by_slug[s].label if s in by_slug else s for s in tenants)
