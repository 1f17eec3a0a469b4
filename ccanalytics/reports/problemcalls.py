"""The problem-call procedure as code (docs/problem-calls.md; notebooks/problem_calls.ipynb).

1. **find** the calls of a period that show a problem: a low quality score, an auto-fail, a transfer
   to an operator, STT re-asks, tool errors or rejected tool calls, a slow reply;
2. **group** them into patterns (the main problem × scenario) so one decision covers many calls;
3. **read** representative transcripts of each pattern (the worst first);
4. **attribute** a cause — prompt, tool/Store API, STT, TTS, LLM latency, knowledge — starting from
   the suggestion made here from the signals;
5. **decide** an action (prompt edit, STT hint, escalation, knowledge update…) and **record** it in
   problem_actions, so the next report shows what was handled and whether it came back.

Step 1 covers some tenants (``find(tenant=...)``) or all; the decisions are shared by every tenant (a
pattern is a problem × scenario of the one bot and its prompts, which every tenant uses).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.auth.auditlog import audit
from ccanalytics.core import definitions, labels, timeutil
from ccanalytics.core.errors import InvalidArgument, NotFound
from ccanalytics.db import tenants

CAUSES = labels.CAUSES
ACTIONS = labels.ACTIONS
# the main problem of a call, most specific first: a call is grouped under its first flag
FLAG_ORDER = ("auto_fail", "tool_errors", "reasks", "slow", "low_score", "transfer")
FLAGS = labels.FLAGS
_PROMPT_CRITERIA = {"bot_greeted_properly", "bot_understood_intent", "bot_confirmed_before_action", "bot_was_concise"}


@dataclass(frozen=True)
class Thresholds:
    quality_below: float = definitions.LOW_QUALITY  # quality_score below this is a problem
    reasks_min: int = 2  # STT re-asks in one call
    tool_errors_min: int = 1  # failed or rejected tool calls in one call
    response_p95_ms: float = definitions.SLOW_CALL_MS  # the call's reply p95 above this is slow
    include_transfers: bool = True  # transfers are problems unless the customer asked for an operator

    def __post_init__(self) -> None:
        if not 0 <= self.quality_below <= 1:
            raise InvalidArgument("quality_below must be between 0 and 1")
        if self.reasks_min < 1 or self.tool_errors_min < 1:
            raise InvalidArgument("reasks_min and tool_errors_min must be at least 1")
        if self.response_p95_ms <= 0:
            raise InvalidArgument("response_p95_ms must be positive")

    @classmethod
    def with_defaults(cls, **values: Any) -> Thresholds:
        """Thresholds from ``values``, the catalogue's default for each one given as None."""
        return cls(**{k: v for k, v in values.items() if v is not None})


_FIND = f"""
SELECT c.id::text AS call_id, c.tenant, c.started_at, c.scenario, c.prompt_version, c.duration_seconds,
       c.transferred_to_operator AS transferred, c.transfer_reason, c.quality_score,
       coalesce((c.quality_details->>'auto_failed')::boolean, false) AS auto_failed,
       ARRAY(SELECT k.key FROM jsonb_each(coalesce(c.quality_details->'criteria', '{{}}'::jsonb)) k
              WHERE jsonb_typeof(k.value->'score') = 'number' AND (k.value->>'score')::float8 < :low_quality
              ORDER BY k.key) AS failed_criteria,
       coalesce(m.stt_reasks, 0) AS stt_reasks, m.min_stt_confidence,
       coalesce(m.tool_errors, 0) AS tool_errors, coalesce(m.rejected_tool_calls, 0) AS rejected_tool_calls,
       m.response_p95_ms, m.stt_p95_ms, m.llm_p95_ms, m.tts_p95_ms
FROM cca_calls c LEFT JOIN call_metrics m ON m.call_id = c.id
WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
  AND (c.quality_score < :qbelow
       OR coalesce((c.quality_details->>'auto_failed')::boolean, false)
       OR (:transfers AND c.transferred_to_operator AND coalesce(c.transfer_reason, '') <> 'customer_request')
       OR coalesce(m.stt_reasks, 0) >= :reasks
       OR coalesce(m.tool_errors, 0) + coalesce(m.rejected_tool_calls, 0) >= :tool_errors
       OR m.response_p95_ms > :slow)
ORDER BY c.quality_score NULLS LAST, c.started_at
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def _flags(r: Any, t: Thresholds) -> list[str]:
    flags = []
    if r.auto_failed:
        flags.append("auto_fail")
    if r.tool_errors + r.rejected_tool_calls >= t.tool_errors_min:
        flags.append("tool_errors")
    if r.stt_reasks >= t.reasks_min:
        flags.append("reasks")
    if r.response_p95_ms is not None and r.response_p95_ms > t.response_p95_ms:
        flags.append("slow")
    if r.quality_score is not None and r.quality_score < t.quality_below:
        flags.append("low_score")
    if t.include_transfers and r.transferred and (r.transfer_reason or "") != "customer_request":
        flags.append("transfer")
    return flags


def find(
    engine: Engine,
    date_from: date | str,
    date_to: date | str,
    *,
    thresholds: Thresholds | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> list[dict[str, Any]]:
    """Step 1: the problem calls of [date_from, date_to] (local days of ``tz``) of ``tenant`` (a slug or several;
    default every tenant), worst score first, each with its ``tenant``, ``flags`` (FLAG_ORDER) and
    ``main`` problem."""
    t = thresholds or Thresholds()
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    start, end = timeutil.period_bounds(first, last, tz)
    params = {
        "start": start,
        "end": end,
        "qbelow": t.quality_below,
        "low_quality": definitions.LOW_QUALITY,
        "transfers": t.include_transfers,
        "reasks": t.reasks_min,
        "tool_errors": t.tool_errors_min,
        "slow": t.response_p95_ms,
    }
    out = []
    zone = timeutil.zone(tz)
    with engine.connect() as conn:
        params.update(tenants.params(tenants.scope(conn, tenant)))
        for r in conn.execute(sa.text(_FIND), params):
            flags = _flags(r, t)
            if not flags:
                continue
            row = dict(r._mapping)
            row["started_at"] = r.started_at.astimezone(zone)
            row["flags"] = flags
            row["main"] = flags[0]
            out.append(row)
    return out


_CALLS_PER_DAY = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day, count(*) AS calls
FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
GROUP BY 1
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def calls_per_day(
    engine: Engine,
    date_from: date | str,
    date_to: date | str,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> dict[date, int]:
    """Every call of each local day of the period (the denominator of the problem shares by day),
    of ``tenant`` (default every tenant); a day without calls is 0."""
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    start, end = timeutil.period_bounds(first, last, tz)
    out = {first + timedelta(days=i): 0 for i in range((last - first).days + 1)}
    with engine.connect() as conn:
        p = {"start": start, "end": end, "tz": tz, **tenants.params(tenants.scope(conn, tenant))}
        for r in conn.execute(sa.text(_CALLS_PER_DAY), p):
            out[r.day] = r.calls
    return out


def pattern_title(key: str) -> str:
    """A pattern key («tool_errors · order_status») in words: «ошибки / отклонения инструментов ·
    статус заказа»; a key that is not one stays as it is (a decision recorded with free text)."""
    main, sep, scenario = key.partition(" · ")
    if not sep or main not in FLAGS:
        return key
    return f"{FLAGS[main]} · {labels.scenario(None if scenario == '—' else scenario)}"


@dataclass(frozen=True)
class Pattern:
    key: str  # "<main flag> · <scenario>", what problem_actions.pattern records
    main: str
    scenario: str | None
    calls: int
    share: float  # of the period's problem calls
    examples: list[str]  # call ids, worst first
    failed_criteria: dict[str, int]
    transfer_reasons: dict[str, int]
    prompt_versions: dict[str, int]
    signals: dict[str, float]  # means over the pattern's calls
    suggested_cause: str
    suggested_action: str
    why: str  # Russian: the signals behind the suggestion
    previous_actions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _suggest(main: str, criteria: Counter, reasons: Counter, sig: dict[str, float]) -> tuple[str, str, str]:
    """A starting point for step 4, from the signals; the analyst confirms it by reading the calls."""
    if main == "tool_errors":
        if sig["rejected_tool_calls"] >= sig["tool_errors"]:
            return "prompt", "prompt_edit", "Store API отклоняет аргументы: бот передаёт неполные или неверные данные"
        return "tool", "escalation", "инструменты возвращают ошибки: проверить Store API и его доступность"
    if main == "reasks":
        conf = sig.get("min_stt_confidence")
        detail = f"; минимальная уверенность STT в среднем {conf:.2f}" if conf is not None else ""
        return "stt", "stt_hint", "бот переспрашивает клиента" + detail + ": добавить слова в подсказки STT"
    if main == "slow":
        parts = {"tts": sig.get("tts_p95_ms") or 0, "llm": sig.get("llm_p95_ms") or 0}
        over = {"tts": parts["tts"] - 400.0, "llm": parts["llm"] - 1000.0}
        worst = max(over, key=lambda k: over[k])
        if worst == "tts":
            return "tts", "tts_cache", f"TTS p95 {parts['tts']:.0f} мс при бюджете 400: кэшировать частые фразы"
        return "llm", "prompt_edit", f"LLM p95 {parts['llm']:.0f} мс при бюджете 1000: сократить промпт или модель"
    top = criteria.most_common(1)[0][0] if criteria else None
    if top == "bot_provided_accurate_info":
        return "knowledge", "knowledge_update", "бот дал неточную информацию: проверить базу знаний и данные"
    if top in _PROMPT_CRITERIA:
        return "prompt", "prompt_edit", f"чаще всего провален критерий «{labels.criterion(top)}»"
    if main == "transfer" or top == "call_resolved_without_human":
        reason = reasons.most_common(1)[0][0] if reasons else None
        if reason == "complex_question":
            return "knowledge", "knowledge_update", "сложные вопросы уходят оператору: дополнить базу знаний"
        if reason == "negative_emotion":
            return "prompt", "prompt_edit", "перевод из-за негатива клиента: проверить тон и краткость ответов"
        return "prompt", "prompt_edit", "бот не смог помочь и перевёл на оператора"
    return "other", "monitor", "явного сигнала нет: прочитать звонки"


def patterns(problems: list[dict[str, Any]], *, examples: int = 3) -> list[Pattern]:
    """Step 2: problem calls grouped by (main problem, scenario), largest groups first."""
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for p in problems:
        groups.setdefault((p["main"], p["scenario"]), []).append(p)
    total = len(problems) or 1
    out = []
    for (main, scenario), rows in groups.items():
        criteria = Counter(c for r in rows for c in r["failed_criteria"])
        reasons = Counter(r["transfer_reason"] or "unknown" for r in rows if r["transferred"])
        versions = Counter(r["prompt_version"] or "—" for r in rows)
        sig = {k: sum(r[k] for r in rows) / len(rows) for k in ("stt_reasks", "tool_errors", "rejected_tool_calls")}
        for k in ("response_p95_ms", "stt_p95_ms", "llm_p95_ms", "tts_p95_ms", "min_stt_confidence", "quality_score"):
            values = [r[k] for r in rows if r[k] is not None]
            sig[k] = sum(values) / len(values) if values else None
        cause, action, why = _suggest(main, criteria, reasons, sig)
        worst = sorted(rows, key=lambda r: (r["quality_score"] is None, r["quality_score"] or 0, r["started_at"]))
        out.append(
            Pattern(
                key=f"{main} · {scenario or '—'}",
                main=main,
                scenario=scenario,
                calls=len(rows),
                share=round(len(rows) / total, 4),
                examples=[r["call_id"] for r in worst[:examples]],
                failed_criteria=dict(criteria.most_common()),
                transfer_reasons=dict(reasons.most_common()),
                prompt_versions=dict(versions.most_common()),
                signals={k: round(v, 3) for k, v in sig.items() if v is not None},
                suggested_cause=cause,
                suggested_action=action,
                why=why,
            )
        )
    out.sort(key=lambda p: (-p.calls, p.key))
    return out


def with_history(engine: Engine, found: list[Pattern]) -> list[Pattern]:
    """Attach the actions already recorded for the same patterns (did it come back after a fix?)."""
    if not found:
        return found
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, pattern, period_from, period_to, cause, action, status, note, created_by, created_at "
                "FROM problem_actions WHERE pattern = ANY(:keys) ORDER BY created_at DESC"
            ),
            {"keys": [p.key for p in found]},
        ).mappings()
        history: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            history.setdefault(r["pattern"], []).append(dict(r))
    return [Pattern(**{**asdict(p), "previous_actions": history.get(p.key, [])}) for p in found]


def record(
    engine: Engine,
    *,
    period_from: date | str,
    period_to: date | str,
    pattern: str,
    cause: str,
    action: str,
    call_ids: list[str] | None = None,
    note: str = "",
    by: str,
    tz: str = timeutil.DEFAULT_TZ,
) -> int:
    """Step 5: record the decision for a pattern (audited); returns the action's id."""
    if cause not in CAUSES:
        raise InvalidArgument(f"cause must be one of: {', '.join(CAUSES)}")
    if action not in ACTIONS:
        raise InvalidArgument(f"action must be one of: {', '.join(ACTIONS)}")
    if not pattern.strip():
        raise InvalidArgument("pattern must not be empty")
    if not by.strip():
        raise InvalidArgument("by (who decided) must not be empty")
    first, last = timeutil.to_date(period_from, tz), timeutil.to_date(period_to, tz)
    if last < first:
        raise InvalidArgument("period_to is before period_from")
    try:
        ids = [uuid.UUID(str(c)) for c in call_ids or []]
    except ValueError:
        raise InvalidArgument("call_ids must be call ids (UUIDs)") from None
    with engine.begin() as conn:
        new_id = conn.execute(
            sa.text(
                "INSERT INTO problem_actions "
                "(period_from, period_to, pattern, cause, action, call_ids, note, created_by) "
                "VALUES (:f, :t, :p, :c, :a, :ids, :n, :by) RETURNING id"
            ),
            {"f": first, "t": last, "p": pattern.strip(), "c": cause, "a": action, "ids": ids, "n": note, "by": by},
        ).scalar_one()
        audit(
            conn,
            by,
            "problem_action.recorded",
            "problem_action",
            str(new_id),
            {"pattern": pattern, "cause": cause, "action": action},
        )
    return new_id


def set_status(engine: Engine, action_id: int, status: str, *, by: str) -> None:
    if status not in ("open", "done", "rejected"):
        raise InvalidArgument("status must be open, done or rejected")
    with engine.begin() as conn:
        hit = conn.execute(
            sa.text("UPDATE problem_actions SET status = :s, updated_at = now() WHERE id = :id RETURNING id"),
            {"s": status, "id": action_id},
        ).one_or_none()
        if hit is None:
            raise NotFound(f"problem action {action_id} does not exist")
        audit(conn, by, "problem_action.status", "problem_action", str(action_id), {"status": status})


def actions(engine: Engine, *, limit: int = 50) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.text("SELECT * FROM problem_actions ORDER BY created_at DESC, id DESC LIMIT :n"), {"n": limit}
            ).mappings()
        ]
