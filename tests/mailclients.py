"""What a report sends must survive the clients that show it (issue 20, item 4). Gmail, Outlook and
Telegram cannot be run here, so their documented limits are checked instead:

- e-mail: a plain-text part beside the HTML one; the HTML part under Gmail's 102 KB clipping limit,
  only simple tags with inline styles (Gmail drops ``<style>`` blocks in some views, Outlook's Word
  engine ignores flex, grid, positioning and CSS variables), no scripts, images or SVG in the body
  (blocked or stripped), links absolute;
- the attached report: one self-contained HTML file (no script, every image inline as a data URI, no
  stylesheet or image fetched from elsewhere) that a browser opens offline;
- Telegram: a message of at most 4,096 characters sent as plain text (no parse mode to break), a
  document caption of at most 1,024.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from html.parser import HTMLParser

GMAIL_CLIP_BYTES = 102 * 1024
BODY_TAGS = {"div", "h2", "p", "br", "b", "strong", "a", "span", "table", "tr", "td", "th"}
OUTLOOK_IGNORES = re.compile(r"\b(display\s*:\s*(flex|grid)|position\s*:|float\s*:|var\()", re.I)
TELEGRAM_TEXT, TELEGRAM_CAPTION = 4096, 1024


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def assert_fits_mail_clients(mail: EmailMessage) -> None:
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and plain.get_content().strip(), "no plain-text part"
    body = html.get_content()
    assert len(body.encode("utf-8")) < GMAIL_CLIP_BYTES, "Gmail clips the message"
    for tag, attrs in tags(body):
        assert tag in BODY_TAGS, f"<{tag}> in the e-mail body"
        assert "class" not in attrs, "classes need a <style> block: inline styles only"
        assert not OUTLOOK_IGNORES.search(attrs.get("style") or ""), attrs["style"]
        if tag == "a":
            assert re.match(r"https?://", attrs.get("href") or ""), attrs
    for part in mail.iter_attachments():
        if part.get_content_type() == "text/html":
            assert_self_contained(part.get_payload(decode=True).decode("utf-8"))


def assert_self_contained(html: str) -> None:
    """A report that opens offline: no script, images inline, nothing fetched but the links one clicks."""
    for tag, attrs in tags(html):
        assert tag != "script", "a script in the report"
        if tag in ("img", "source", "iframe", "embed", "object"):
            assert (attrs.get("src") or "").startswith("data:"), f"<{tag}> fetched from {attrs.get('src')}"
        if tag == "link":
            assert (attrs.get("rel") or "") != "stylesheet", f"stylesheet fetched from {attrs.get('href')}"
    assert 'charset="utf-8"' in html.lower() or "charset=utf-8" in html.lower()


def assert_fits_telegram(tg) -> None:
    for message in tg.sent("sendMessage"):
        assert len(message.payload["text"]) <= TELEGRAM_TEXT
        assert not message.payload.get("parse_mode"), "plain text: no markup to break"
    for document in tg.sent("sendDocument"):
        assert len(document.payload.get("caption", "")) <= TELEGRAM_CAPTION
