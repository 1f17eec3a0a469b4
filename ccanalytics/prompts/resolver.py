"""The prompt for a call — the library the call processor imports.

    from ccanalytics.prompts.resolver import PromptResolver
    resolver = PromptResolver(database_url=os.environ["CCA_DATABASE_URL"])
    prompt = resolver.resolve("tire_agent", caller_id="+380671234567")
    prompt.system_prompt, prompt.tools_config, prompt.label, prompt.ab_test, prompt.variant

Resolves the active version, or — while an A/B test runs on the prompt — the caller's variant
(sticky: hash of the test's salt and the caller's number; by call id for hidden numbers). Given the
call's id, the version served (cca_call_prompts) and the variant (cca_ab_assignments) are recorded for
that call, so per-version figures, the optimizer and per-call A/B results work for calls the processor
writes into its own tables with prompt_version 'default' (docs/integration.md). Caches
what it read for ``ttl_seconds``. When the database is unreachable it answers from the last known
good state (kept in memory and in a local file, so a restart survives an outage too) and, with
nothing known, from a bundled default prompt. ``source`` says which.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import NotFound
from ccanalytics.core.privacy import InvalidPhone, normalize_phone
from ccanalytics.db.engine import create_engine
from ccanalytics.experiments.lifecycle import assign_variant
from ccanalytics.prompts.versions import as_uuid

log = logging.getLogger(__name__)

BUNDLED_DEFAULTS: dict[str, dict[str, Any]] = {
    "tire_agent": {
        "label": "tire_agent@bundled",
        "system_prompt": (
            "Ти — голосова помічниця інтернет-магазину шин. Говори українською, коротко і ввічливо. "
            "Допомагай підібрати шини за авто або розміром, перевіряй наявність, оформлюй замовлення і "
            "записуй на шиномонтаж тільки після підтвердження клієнта. Ціни й наявність називай лише з "
            "результатів інструментів. Якщо не можеш допомогти або клієнт просить людину — переведи на "
            "оператора (transfer_to_operator)."
        ),
        "tools_config": {},
        "metadata": {"bundled": True},
    }
}

_SNAPSHOT = """
SELECT
  (SELECT to_jsonb(v) FROM (SELECT id, label, system_prompt, tools_config, metadata FROM cca_prompt_versions
                            WHERE name = :n AND is_active ORDER BY created_at DESC LIMIT 1) v) AS active,
  (SELECT to_jsonb(t) FROM (
      SELECT t.id, t.test_name, t.salt,
             coalesce((SELECT jsonb_agg(jsonb_build_object('variant', a.variant, 'weight', a.weight,
                                        'version', (SELECT to_jsonb(p) FROM (SELECT id, label, system_prompt,
                                                    tools_config, metadata FROM cca_prompt_versions
                                                    WHERE id = a.version_id) p)) ORDER BY a.variant)
                       FROM cca_ab_variants a WHERE a.test_id = t.id),
                      jsonb_build_array(
                        jsonb_build_object('variant', 'A', 'weight', 1 - t.traffic_b, 'version',
                          (SELECT to_jsonb(p) FROM (SELECT id, label, system_prompt, tools_config, metadata
                                                    FROM cca_prompt_versions WHERE id = t.variant_a_id) p)),
                        jsonb_build_object('variant', 'B', 'weight', t.traffic_b, 'version',
                          (SELECT to_jsonb(p) FROM (SELECT id, label, system_prompt, tools_config, metadata
                                                    FROM cca_prompt_versions WHERE id = t.variant_b_id) p))))
        AS variants
      FROM cca_ab_tests t
      WHERE t.status = 'running'
        AND (t.prompt_name = :n OR (t.prompt_name IS NULL
             AND (SELECT name FROM cca_prompt_versions WHERE id = t.variant_a_id) = :n))
      ORDER BY t.started_at DESC LIMIT 1) t) AS test
"""


@dataclass(frozen=True)
class ResolvedPrompt:
    name: str
    label: str
    version_id: str | None  # uuid
    system_prompt: str
    tools_config: Any
    metadata: dict[str, Any]
    ab_test: str | None
    ab_test_id: str | None  # uuid
    variant: str | None
    source: str  # database | cache | last_known_good | bundled_default

    def call_log_fields(self) -> dict[str, Any]:
        """What the call processor puts into the call log for this call."""
        out: dict[str, Any] = {"prompt_version": self.label}
        if self.ab_test:
            out["ab_test"] = {"test_id": self.ab_test_id, "test_name": self.ab_test, "variant": self.variant}
        return out


class PromptResolver:
    def __init__(
        self,
        engine: Engine | None = None,
        *,
        database_url: str | None = None,
        ttl_seconds: float = 30.0,
        state_dir: Path | str | None = None,
        clock=time.monotonic,
    ) -> None:
        if engine is None:
            if database_url is None:
                raise ValueError("PromptResolver needs an engine or a database_url")
            engine = create_engine(database_url, pool_size=2, statement_timeout_ms=2000, application_name="cca-prompts")
        self.engine = engine
        self.ttl = ttl_seconds
        self.state_dir = Path(state_dir) if state_dir else None
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict]] = {}  # name -> (loaded at, snapshot)

    # -- state
    def _load(self, name: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.text(_SNAPSHOT), {"n": name}).one()
        snapshot = {"active": row.active, "test": row.test}
        if snapshot["active"] is None and snapshot["test"] is None:
            raise NotFound(f"prompt {name!r} has no active version")
        if self.state_dir:
            self._save(name, snapshot)
        return snapshot

    def _save(self, name: str, snapshot: dict) -> None:
        state_dir = self.state_dir
        assert state_dir is not None  # _load saves only when there is a state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            tmp = state_dir / f".{name}.json.tmp"
            tmp.write_text(json.dumps(snapshot, ensure_ascii=False), encoding="utf-8")
            tmp.replace(state_dir / f"{name}.json")
        except OSError as exc:  # the fallback file is a convenience: never fail a call for it
            log.warning("cannot save prompt state for %s: %s", name, exc)

    def _saved(self, name: str) -> dict | None:
        if not self.state_dir:
            return None
        try:
            return json.loads((self.state_dir / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def snapshot(self, name: str) -> tuple[dict | None, str]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(name)
        if cached and now - cached[0] < self.ttl:
            return cached[1], "cache"
        try:
            fresh = self._load(name)
        except NotFound:
            raise
        except sa.exc.SQLAlchemyError as exc:
            log.warning("prompt database unavailable (%s); using the last known good prompt", str(exc)[:120])
            if cached:
                return cached[1], "last_known_good"
            saved = self._saved(name)
            return (saved, "last_known_good") if saved else (None, "bundled_default")
        with self._lock:
            self._cache[name] = (now, fresh)
        return fresh, "database"

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)

    def record(self, call_id: str, prompt: ResolvedPrompt) -> bool:
        """Record what a call was served: the version (cca_call_prompts) and, during an A/B test, the
        variant (cca_ab_assignments), in one transaction; the first record of a call stays. A bundled
        default (no version in the database) or a prompt served from the last known good state (the
        database is unreachable) records nothing. A failure is logged, never raised: the call
        goes on with its prompt. Returns whether anything was written."""
        call = as_uuid(call_id)
        if call is None:
            log.warning("call id %r is not a uuid: the prompt it was served is not recorded", str(call_id)[:40])
            return False
        if prompt.version_id is None or prompt.source == "last_known_good":
            return False  # a bundled default, or the database just failed: do not wait on it again
        try:
            with self.engine.begin() as conn:
                written = conn.execute(
                    sa.text(
                        "INSERT INTO cca_call_prompts (call_id, version_id, label) VALUES (:c, :v, :l) "
                        "ON CONFLICT (call_id) DO NOTHING"
                    ),
                    {"c": call, "v": prompt.version_id, "l": prompt.label},
                ).rowcount
                if prompt.ab_test_id and prompt.variant:
                    written += conn.execute(
                        sa.text(
                            "INSERT INTO cca_ab_assignments (call_id, test_id, variant, source) "
                            "VALUES (:c, :t, :v, 'resolver') ON CONFLICT (call_id) DO NOTHING"
                        ),
                        {"c": call, "t": prompt.ab_test_id, "v": prompt.variant},
                    ).rowcount
        except sa.exc.SQLAlchemyError as exc:
            log.warning("the prompt served to call %s was not recorded: %s", call, str(exc)[:120])
            return False
        return bool(written)

    # -- the hot path
    def resolve(self, name: str, *, caller_id: str | None = None, call_id: str | None = None) -> ResolvedPrompt:
        snap, source = self.snapshot(name)
        if snap is None:
            default = BUNDLED_DEFAULTS.get(name)
            if default is None:
                raise NotFound(
                    f"prompt {name!r} is unavailable: the database cannot be reached and no default is bundled"
                )
            return ResolvedPrompt(
                name,
                default["label"],
                None,
                default["system_prompt"],
                default["tools_config"],
                default["metadata"],
                None,
                None,
                None,
                "bundled_default",
            )
        test = snap.get("test")
        if test:
            key = _caller_key(caller_id) or call_id
            if key:
                variant = assign_variant(test["salt"], key, [(v["variant"], v["weight"]) for v in test["variants"]])
                chosen = next(v for v in test["variants"] if v["variant"] == variant)
                served = _resolved(name, chosen["version"], source, test, variant)
                if call_id:
                    self.record(call_id, served)
                return served
        active = snap.get("active")
        if not active:
            assert test is not None  # a snapshot has an active version or a running test (_load)
            active = test["variants"][0]["version"]
        served = _resolved(name, active, source, None, None)
        if call_id:
            self.record(call_id, served)
        return served


def _caller_key(caller_id: str | None) -> str | None:
    try:
        return normalize_phone(caller_id)
    except InvalidPhone:
        return None


def _resolved(name: str, version: dict, source: str, test: dict | None, variant: str | None) -> ResolvedPrompt:
    return ResolvedPrompt(
        name=name,
        label=version["label"],
        version_id=version["id"],
        system_prompt=version["system_prompt"],
        tools_config=version["tools_config"],
        metadata=version["metadata"],
        ab_test=test["test_name"] if test else None,
        ab_test_id=test["id"] if test else None,
        variant=variant,
        source=source,
    )


def as_dict(prompt: ResolvedPrompt) -> dict[str, Any]:
    return asdict(prompt)
