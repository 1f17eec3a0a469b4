"""The texts of the alerts' notifications: the subject and body of a firing, a reminder and a
resolution, with the severity's icon and word."""

from __future__ import annotations

from datetime import datetime, timedelta

from ccanalytics.alerts.rulemodel import Rule, Thresholds
from ccanalytics.alerts.rules import resolution
from ccanalytics.core import timeutil
from ccanalytics.core.privacy import mask_phones_in_text

SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
SEVERITY_WORD = {"critical": "Критично", "warning": "Предупреждение", "info": "Информация"}
RESOLVED_ICON, RESOLVED_WORD = "✅", "Решено"


def duration(delta: timedelta) -> str:
    """How long, in Russian: «1 ч 1 мин», «2 дн 5 мин», «0 мин»."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} дн"] if days else []
    if hours:
        parts.append(f"{hours} ч")
    if mins or not parts:
        parts.append(f"{mins} мин")
    return " ".join(parts)


def alert_title(rule: Rule, label: str) -> str:
    """The rule's title with what the alert is about (a tenant, a scenario, a call)."""
    return f"{rule.title}: {label}" if label else rule.title


def local_time(at: datetime, tz: str, fmt: str = "%d.%m %H:%M") -> str:
    """``at`` in the business timezone, formatted."""
    return at.astimezone(timeutil.zone(tz)).strftime(fmt)


def compose(
    rule: Rule,
    event: str,
    f_text: str,
    link: str | None,
    label: str,
    *,
    since: datetime,
    now: datetime,
    tz: str,
    thresholds: Thresholds | None = None,
    note: str | None = None,
):
    """(subject, text) of a notification; phone numbers in the body are masked.

    The first line says what happened and how serious: "🔴 Критично: …", "🟠 Предупреждение: …",
    "🔴 Продолжается с … (…): …" for a reminder, "✅ Решено: …" for the end of an alert, whose body
    says what holds again (alert_rules.resolution, or ``note`` when it ended for another reason) and
    how long it lasted — not the firing sentence."""
    title = alert_title(rule, label)
    icon, word = SEVERITY_ICON.get(rule.severity, ""), SEVERITY_WORD.get(rule.severity, "")
    if event == "fired":
        subject, head = f"{word}: {title}", f"{icon} {word}: {title}"
        body = f_text
    elif event == "repeated":
        subject = f"Продолжается: {title}"
        head = f"{icon} Продолжается с {local_time(since, tz)} ({duration(now - since)}): {title}"
        body = f_text
    else:
        subject, head = f"{RESOLVED_WORD}: {title}", f"{RESOLVED_ICON} {RESOLVED_WORD}: {title}"
        same_day = local_time(since, tz, "%d.%m") == local_time(now, tz, "%d.%m")
        end = local_time(now, tz, "%H:%M" if same_day else "%d.%m %H:%M")
        body = (
            f"{note or resolution(rule.name, thresholds or Thresholds())}\n"
            f"Длилось {duration(now - since)}: {local_time(since, tz)} — {end}."
        )
    text = mask_phones_in_text(f"{head}\n{body}")
    if link:
        text += f"\nЖурнал: {link}"
    return f"[ccanalytics] {subject}", text
