"""Prompt optimizer: from the low-quality calls of a period, find the failure patterns (criterion ×
scenario), ask the LLM judge's endpoint for concrete prompt edits with example dialogues — or, offline,
apply the rule book of edits — and store the suggestion. A manager approves it into a new prompt
version, which is never activated automatically (test it in an A/B test first)."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from ccanalytics.auth.auditlog import audit
from ccanalytics.core import definitions, labels, timeutil
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality.judge import JudgeError
from ccanalytics.quality.rubric import DESCRIPTIONS
from ccanalytics.quality.store import load_calls
from ccanalytics.quality.transcript import render

# Offline edits: one instruction per failing criterion (Ukrainian: the prompt is Ukrainian).
RULE_BOOK: dict[str, str] = {
    "bot_greeted_properly": "Починай кожну розмову з привітання: назви магазин і запропонуй допомогу.",
    "bot_understood_intent": "Якщо не впевнена, що зрозуміла запит, перепитай одним коротким уточненням, "
    "а не повторюй попереднє питання.",
    "bot_used_correct_tool": "Перед відповіддю про ціни, наявність чи статус замовлення обов'язково виклич "
    "відповідний інструмент з повними аргументами (розмір, сезон, номер замовлення).",
    "bot_provided_accurate_info": "Називай ціни, наявність і строки лише з результатів інструментів; якщо "
    "інструмент повернув помилку, скажи про це і запропонуй оператора.",
    "bot_confirmed_before_action": "Перед створенням замовлення чи запису повтори деталі (товар, кількість, "
    "ціну, дату) і дочекайся згоди клієнта.",
    "bot_was_concise": "Відповідай коротко: одна-дві фрази, не більше трьох варіантів за раз.",
    "call_resolved_without_human": "Переводь на оператора лише якщо клієнт просить або інструменти не можуть "
    "допомогти; спершу спробуй вирішити питання сама.",
    "customer_seemed_satisfied": "Якщо клієнт роздратований, визнай проблему, вибачся одним реченням і "
    "запропонуй конкретне рішення або оператора.",
}


@dataclass(frozen=True)
class Pattern:
    criterion: str
    scenario: str
    calls: int
    avg_score: float
    reasons: tuple[str, ...]
    example_call_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Suggestion:
    id: int
    prompt_name: str
    base_version_id: uuid.UUID
    status: str
    source: str
    summary: str
    proposed_prompt: str | None
    patterns: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    new_version_id: uuid.UUID | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["base_version_id"] = str(self.base_version_id)
        out["new_version_id"] = str(self.new_version_id) if self.new_version_id else None
        return out


_PATTERNS = """
WITH low AS (
    SELECT s.call_id, c.scenario, s.criteria
    FROM call_scores s JOIN cca_calls c ON c.id = s.call_id AND c.started_at = s.started_at
    WHERE s.is_current AND s.started_at >= :start AND s.started_at < :end AND s.overall_score < :below
      AND (c.prompt_version = :label OR c.prompt_version LIKE :prefix)
), failed AS (
    SELECT low.call_id, coalesce(low.scenario, 'unknown') AS scenario, e.key AS criterion,
           (e.value ->> 'score')::float8 AS score, e.value ->> 'reason' AS reason
    FROM low, jsonb_each(low.criteria) e
    WHERE coalesce(e.value ->> 'applicable', 'true') <> 'false' AND (e.value ->> 'score')::float8 < :low_quality
)
SELECT criterion, scenario, count(*) AS calls, avg(score) AS avg_score,
       (array_agg(DISTINCT reason))[1:3] AS reasons,
       (array_agg(call_id::text ORDER BY md5(call_id::text)))[1:CAST(:examples AS int)] AS examples
FROM failed GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT :top
"""


def collect_patterns(
    engine: Engine,
    prompt_name: str,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    below: float = definitions.LOW_QUALITY,
    top: int = 8,
    examples: int = 2,
    tz: str = timeutil.DEFAULT_TZ,
) -> list[Pattern]:
    """The most frequent (criterion, scenario) failures among calls scoring below ``below``."""
    active = prompts.active_version(engine, prompt_name)
    start, end = timeutil.period_bounds(date_from, date_to, tz, default_days=14)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(_PATTERNS),
            {
                "start": start,
                "end": end,
                "below": below,
                "low_quality": definitions.LOW_QUALITY,
                "label": active.label if active else "",
                "prefix": f"{prompt_name}@%",
                "top": top,
                "examples": examples,
            },
        ).all()
    return [
        Pattern(
            r.criterion, r.scenario, r.calls, round(r.avg_score, 3), tuple(x for x in r.reasons if x), tuple(r.examples)
        )
        for r in rows
    ]


SUGGESTION_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "criterion": {"type": "string"},
                    "instruction": {"type": "string"},
                    "example_dialogue": {"type": "string"},
                },
                "required": ["criterion", "instruction", "example_dialogue"],
                "additionalProperties": False,
            },
        },
        "proposed_prompt": {"type": "string"},
    },
    "required": ["summary", "edits", "proposed_prompt"],
    "additionalProperties": False,
}


def propose(
    engine: Engine,
    prompt_name: str,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    llm: Any = None,  # an openai.OpenAI client; None: the offline rule book
    model: str | None = None,
    tz: str = timeutil.DEFAULT_TZ,
) -> Suggestion:
    """Collect the failure patterns and store a suggestion for the active version of ``prompt_name``."""
    base = prompts.active_version(engine, prompt_name)
    if base is None:
        raise NotFound(f"prompt {prompt_name!r} has no active version")
    first, last = timeutil.resolve_days(date_from, date_to, tz, default_days=14)
    patterns = collect_patterns(engine, prompt_name, first, last, tz=tz)
    if not patterns:
        raise InvalidArgument(f"no low-scoring calls of {base.label} between {first} and {last}: nothing to improve")
    examples = _examples(engine, patterns)
    if llm is None:
        source, summary, proposed, edits = "rules", *_rule_book(base.system_prompt, patterns)
    else:
        source = "llm"
        summary, proposed, edits = _ask_llm(llm, model, base.system_prompt, patterns, examples)
    with engine.begin() as conn:
        sid = conn.execute(
            sa.text(
                "INSERT INTO prompt_suggestions (prompt_name, base_version_id, source, period_from, period_to, "
                "patterns, summary, proposed_prompt, examples) VALUES (:n, :b, :s, :f, :t, :p, :sum, :pp, :ex) "
                "RETURNING id"
            ),
            {
                "n": prompt_name,
                "b": base.id,
                "s": source,
                "f": first,
                "t": last,
                "p": Jsonb([p.to_dict() for p in patterns]),
                "sum": summary,
                "pp": proposed,
                "ex": Jsonb(edits or examples),
            },
        ).scalar_one()
    return get_suggestion(engine, sid)


def _rule_book(system_prompt: str, patterns: list[Pattern]) -> tuple[str, str, list[dict]]:
    criteria = list(dict.fromkeys(p.criterion for p in patterns if p.criterion in RULE_BOOK))
    lines = ["Частые ошибки у звонков с низкой оценкой:"]
    for p in patterns:
        why = f" — «{p.reasons[0]}»" if p.reasons else ""
        lines.append(f"• {DESCRIPTIONS.get(p.criterion, p.criterion)} ({p.scenario}): {p.calls} звонков{why}")
    lines.append("Предложение: добавить в промпт уточнения по этим критериям (ниже) и проверить A/B-тестом.")
    addition = "\n".join(f"- {RULE_BOOK[c]}" for c in criteria)
    proposed = system_prompt.rstrip() + "\n\nДодаткові правила:\n" + addition + "\n"
    edits = [{"criterion": c, "instruction": RULE_BOOK[c], "example_dialogue": ""} for c in criteria]
    return "\n".join(lines), proposed, edits


def _examples(engine: Engine, patterns: list[Pattern]) -> list[dict[str, Any]]:
    ids = [cid for p in patterns[:4] for cid in p.example_call_ids[:1]]
    with engine.connect() as conn:
        views = load_calls(conn, [uuid.UUID(i) for i in ids])
    return [{"call_id": str(k), "transcript": render(v)} for k, v in views.items()]


def _ask_llm(client: Any, model: str | None, system_prompt: str, patterns: list[Pattern], examples: list[dict]):
    body = json.dumps({"patterns": [p.to_dict() for p in patterns], "examples": examples}, ensure_ascii=False)
    response = client.chat.completions.create(
        model=model or "gpt-4o-mini",
        temperature=0.2,
        messages=[
            {
                "role": "system",
                "content": (
                    "Ты улучшаешь системный промпт голосового бота магазина шин. По паттернам ошибок и примерам "
                    "звонков предложи конкретные правки промпта (по-украински, как сам промпт) с примером диалога "
                    "для каждой, краткое резюме по-русски и полный новый текст промпта."
                ),
            },
            {"role": "user", "content": f"Текущий промпт:\n{system_prompt}\n\nДанные:\n{body}"},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "prompt_suggestion", "strict": True, "schema": SUGGESTION_SCHEMA},
        },
    )
    try:
        data = json.loads(response.choices[0].message.content or "")
        return str(data["summary"]), str(data["proposed_prompt"]), list(data["edits"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise JudgeError(f"the optimizer's answer is not the expected JSON: {exc}", retryable=True) from None


_SUGGESTION_COLUMNS = (
    "id, prompt_name, base_version_id, status, source, summary, proposed_prompt, patterns, examples, new_version_id"
)


def get_suggestion(engine: Engine, suggestion_id: int) -> Suggestion:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT {_SUGGESTION_COLUMNS} FROM prompt_suggestions "  # noqa: S608 — constant column list
                "WHERE id = :i"
            ),
            {"i": suggestion_id},
        ).one_or_none()
    if row is None:
        raise NotFound(f"suggestion {suggestion_id} does not exist")
    return Suggestion(*row)


def list_suggestions(engine: Engine, status: str | None = None) -> list[Suggestion]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT {_SUGGESTION_COLUMNS} FROM prompt_suggestions "  # noqa: S608 — constant column list
                "WHERE CAST(:s AS text) IS NULL OR status = :s ORDER BY created_at DESC"
            ),
            {"s": status},
        ).all()
    return [Suggestion(*r) for r in rows]


def decide(engine: Engine, suggestion_id: int, *, by: str, approve: bool, prompt_text: str | None = None) -> Suggestion:
    """Approve (→ a new, inactive prompt version; the manager may edit the text first) or reject; ``by``
    is who acts. Conflict when the suggestion is already decided. One transaction: the decision, the new
    version and their audit entries (``suggestion.approved``/``suggestion.rejected``, ``prompt.created``)."""
    if not isinstance(by, str) or not by.strip():
        raise InvalidArgument("who decides is required", ru="не указано, кто принимает решение")
    by = by.strip()
    if isinstance(suggestion_id, bool) or not isinstance(suggestion_id, int) or not 0 < suggestion_id < 2**63:
        raise NotFound(f"suggestion {suggestion_id} does not exist", ru=f"предложения #{suggestion_id} нет")
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT {_SUGGESTION_COLUMNS} FROM prompt_suggestions "  # noqa: S608 — constant column list
                "WHERE id = :i FOR UPDATE"
            ),
            {"i": suggestion_id},
        ).one_or_none()
        if row is None:
            raise NotFound(f"suggestion {suggestion_id} does not exist", ru=f"предложения #{suggestion_id} нет")
        s = Suggestion(*row)
        if s.status != "proposed":
            raise Conflict(
                f"suggestion {suggestion_id} is already {s.status}",
                ru=f"по предложению #{suggestion_id} уже принято решение: "
                + labels.label(labels.SUGGESTION_STATUSES, s.status),
            )
        new_id = None
        edited = bool(approve and prompt_text and prompt_text.strip() and prompt_text != (s.proposed_prompt or ""))
        if approve:
            text = prompt_text if edited else s.proposed_prompt
            if not text:
                raise InvalidArgument(
                    "the suggestion has no prompt text; give the text to approve",
                    ru="в предложении нет текста промпта: впишите текст, чтобы одобрить",
                )
            base = prompts.get_version(engine, s.base_version_id)
            version = prompts.write_version(
                conn,
                s.prompt_name,
                text,
                tools_config=base.tools_config,
                metadata={**base.metadata, "suggestion_id": s.id},
                author=by,
                note=f"из предложения оптимизатора #{s.id}",
                base=base,
            )
            new_id = version.id
        conn.execute(
            sa.text(
                "UPDATE prompt_suggestions SET status = :st, decided_by = :by, decided_at = now(), "
                "new_version_id = :v WHERE id = :i"
            ),
            {"st": "approved" if approve else "rejected", "by": by, "v": new_id, "i": s.id},
        )
        action = "suggestion.approved" if approve else "suggestion.rejected"
        audit(conn, by, action, "prompt_suggestion", s.id, {"new_version_id": new_id, "edited": edited})
    return get_suggestion(engine, s.id)
