"""Delivery channels against real local servers: e-mail received by aiosmtpd, Telegram Bot API
requests (message and multipart document) received by a local HTTP server; failures classified."""

from __future__ import annotations

import pytest
from fakechannels import CHAT, TOKEN, FakeTelegram, SMTPServer, channel_settings

from ccanalytics.alerts.delivery import outcome_unknown
from ccanalytics.alerts.emailchannel import EmailChannel
from ccanalytics.alerts.notify import channels_from_settings, require_channels, send_with_retries
from ccanalytics.alerts.telegramchannel import TelegramChannel, split_message
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError, DeliveryError


def settings_for(tg: FakeTelegram | None = None, smtp: SMTPServer | None = None, **extra) -> Settings:
    return Settings(**channel_settings(tg, smtp, **extra))


# ------------------------------------------------------------------------------------------ e-mail
def test_email_with_html_and_attachment_reaches_every_recipient(smtp):
    channel = EmailChannel.from_settings(settings_for(smtp=smtp))
    pdf = b"%PDF-1.4 fake report \x00\x01"
    channel.send(
        "Отчёт за 20.11\nBcc: evil@x",
        "Звонков: 412",
        html="<h1>Звонков: 412</h1>",
        attachments=[("daily-2026-11-20.pdf", pdf, "application/pdf"), ("calls.csv", b"a;b\n1;2\n", "text/csv")],
    )
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["Subject"] == "Отчёт за 20.11 Bcc: evil@x"  # a line break cannot inject a header
    assert msg["Bcc"] is None
    assert msg["From"] == "alerts@shop.example"
    assert msg["To"] == "ops@shop.example, boss@shop.example"
    assert sorted(smtp.mailbox.recipients[0]) == ["boss@shop.example", "ops@shop.example"]
    assert msg.get_body(("plain",)).get_content().strip() == "Звонков: 412"
    assert msg.get_body(("html",)).get_content().strip() == "<h1>Звонков: 412</h1>"
    files = {p.get_filename(): (p.get_content_type(), p.get_payload(decode=True)) for p in msg.iter_attachments()}
    assert files == {"daily-2026-11-20.pdf": ("application/pdf", pdf), "calls.csv": ("text/csv", b"a;b\n1;2\n")}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_login_and_refused_login():
    with SMTPServer(users={"reports": "s3cret"}) as server:
        EmailChannel.from_settings(settings_for(smtp=server, smtp_user="reports", smtp_password="s3cret")).send(
            "s", "text"
        )
        assert server.mailbox.logins == ["reports"] and len(server.messages) == 1
        wrong = EmailChannel.from_settings(settings_for(smtp=server, smtp_user="reports", smtp_password="nope"))
        with pytest.raises(DeliveryError) as err:
            wrong.send("s", "text")
        assert not err.value.retryable and err.value.channel == "email"
        assert len(server.messages) == 1


def test_email_server_down_is_retryable():
    server = SMTPServer()  # never started: connection refused
    with pytest.raises(DeliveryError) as err:
        EmailChannel.from_settings(settings_for(smtp=server)).send("s", "text")
    assert err.value.retryable


# ---------------------------------------------------------------------------------------- Telegram
def test_telegram_message_is_plain_text_to_the_chat(telegram):
    TelegramChannel.from_settings(settings_for(telegram)).send_message("Переводы: 62 % <b>не разметка</b> & co")
    [req] = telegram.requests
    assert req.path == f"/bot{TOKEN}/sendMessage" and req.status == 200
    assert str(req.payload["chat_id"]) == str(CHAT)
    assert req.payload["text"] == "Переводы: 62 % <b>не разметка</b> & co"
    assert "parse_mode" not in req.payload  # plain text: nothing is interpreted


def test_telegram_long_message_is_split_at_lines(telegram):
    lines = [f"{i:04d} " + "ш" * 95 for i in range(100)]  # 100 lines × 101 chars ≈ 10 100 chars
    text = "\n".join(lines)
    TelegramChannel.from_settings(settings_for(telegram)).send_message(text)
    parts = telegram.texts()
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == text  # split only at line breaks, in order, nothing lost


def test_split_counts_utf16_units():
    emoji = "🔴" * 3000  # 2 UTF-16 units each: 6000 units on one line
    parts = split_message(emoji)
    assert [len(p) for p in parts] == [2048, 952]
    assert split_message("short") == ["short"]


def test_telegram_document_is_multipart_with_caption(telegram):
    data = bytes(range(256)) * 40
    channel = TelegramChannel.from_settings(settings_for(telegram))
    channel.send_document("daily-2026-11-20.html", data, caption="Ежедневный отчёт за 20.11")
    channel.send_document("long.csv", b"x;y\n", caption="я" * 1500)
    first, second = telegram.sent("sendDocument")
    assert first.path == f"/bot{TOKEN}/sendDocument"
    assert first.payload == {"chat_id": str(CHAT), "caption": "Ежедневный отчёт за 20.11"}
    assert first.files["document"] == ("daily-2026-11-20.html", data, "text/html")
    assert len(second.payload["caption"]) == 1024 and second.payload["caption"].endswith("…")
    assert second.files["document"][:2] == ("long.csv", b"x;y\n")


@pytest.mark.parametrize(
    ("setup", "retryable", "retry_after"),
    [
        ({"status": 502}, True, None),
        ({"status": 429, "retry_after": 7}, True, 7.0),
        ({"token": "999:other"}, False, None),  # bad token: 401
        ({"chat": "-42"}, False, None),  # unknown chat: 400
    ],
)
def test_telegram_failures_are_classified(setup, retryable, retry_after):
    with FakeTelegram(token=setup.get("token", TOKEN), chat=setup.get("chat", CHAT)) as tg:
        tg.status = setup.get("status", 200)
        tg.retry_after = setup.get("retry_after")
        with pytest.raises(DeliveryError) as err:
            TelegramChannel.from_settings(settings_for(tg)).send_message("x")
        assert err.value.retryable is retryable and err.value.retry_after == retry_after
        assert TOKEN not in err.value.message and len(tg.requests) == 1


def test_telegram_unreachable_is_retryable():
    tg = FakeTelegram()  # port never opened: connection refused
    with pytest.raises(DeliveryError) as err:
        TelegramChannel.from_settings(settings_for(tg)).send_message("x")
    assert err.value.retryable and TOKEN not in err.value.message
    assert TOKEN not in repr(TelegramChannel.from_settings(settings_for(tg)))


def test_send_with_retries_recovers_once_and_stops_on_permanent_errors(telegram):
    channel = TelegramChannel.from_settings(settings_for(telegram))
    telegram.status = 502
    waits: list[float] = []

    def sleep(seconds):  # the outage ends while we wait
        waits.append(seconds)
        if len(waits) == 2:
            telegram.status = 200

    send_with_retries(lambda: channel.send_message("после сбоя"), attempts=5, backoff_s=0.5, sleep=sleep)
    assert waits == [0.5, 1.0]
    assert telegram.texts() == ["после сбоя"] and len(telegram.requests) == 3

    bad = TelegramChannel(TOKEN, "-42", api_url=telegram.url)
    with pytest.raises(DeliveryError):
        send_with_retries(lambda: bad.send_message("x"), attempts=5, sleep=waits.append)
    assert len(telegram.requests) == 4 and len(waits) == 2  # not retried

    telegram.status = 502
    with pytest.raises(DeliveryError):
        send_with_retries(lambda: channel.send_message("x"), attempts=3, backoff_s=1, sleep=waits.append)
    assert waits[2:] == [1, 2]


# ------------------------------------------------------------------------------- slow channels
def test_answer_timeout_is_longer_than_the_connect_timeout(telegram, smtp):
    tg = TelegramChannel.from_settings(settings_for(telegram, notify_timeout_s=20))
    assert (tg.timeout, tg.answer_timeout) == (20, 60)
    mail = EmailChannel.from_settings(settings_for(smtp=smtp, notify_timeout_s=30))
    assert (mail.timeout, mail.answer_timeout) == (30, 90)


def test_telegram_slow_answer_within_the_answer_timeout_is_one_message(telegram):
    telegram.delay = 1.0
    TelegramChannel(TOKEN, str(CHAT), api_url=telegram.url, timeout=0.3, answer_timeout=5).send_message("медленно")
    assert telegram.texts() == ["медленно"]


def test_telegram_no_answer_after_the_request_went_out_is_unknown_not_retried(telegram):
    telegram.delay = 1.5
    channel = TelegramChannel(TOKEN, str(CHAT), api_url=telegram.url, timeout=0.3, answer_timeout=0.5)
    waits: list[float] = []
    with pytest.raises(DeliveryError) as err:
        send_with_retries(lambda: channel.send_message("может быть, доставлено"), attempts=3, sleep=waits.append)
    assert outcome_unknown(err.value) and not err.value.retryable and waits == []
    assert "delivery unknown" in err.value.message and TOKEN not in err.value.message
    assert telegram.texts() == ["может быть, доставлено"]  # it was posted: once
    # nothing went out when the server is away: retryable, not unknown
    telegram.down()
    with pytest.raises(DeliveryError) as err:
        channel.send_message("x")
    assert err.value.retryable and not outcome_unknown(err.value)


def test_email_key_gives_a_stable_message_id_and_a_slow_server_an_unknown_outcome(smtp):
    channel = EmailChannel.from_settings(settings_for(smtp=smtp))
    channel.send_text("s", "один", key="ccanalytics-alert-7-email")
    channel.send_text("s", "два", key="ccanalytics-alert-7-email")
    channel.send_text("s", "три")
    ids = [m["Message-ID"] for m in smtp.messages]
    assert ids[0] == ids[1] == "<ccanalytics-alert-7-email@shop.example>" and ids[2] != ids[0]
    smtp.mailbox.delay = 1.5
    channel.timeout, channel.answer_timeout = 0.5, 0.5
    with pytest.raises(DeliveryError) as err:
        channel.send_text("s", "медленный сервер")
    assert outcome_unknown(err.value) and not err.value.retryable
    assert len(smtp.messages) == 4  # the server kept it


# ---------------------------------------------------------------------------------------- settings
def test_channels_from_settings_and_require(telegram, smtp):
    assert channels_from_settings(Settings()) == {}
    both = channels_from_settings(settings_for(telegram, smtp))
    assert sorted(both) == ["email", "telegram"]
    assert isinstance(both["email"], EmailChannel) and isinstance(both["telegram"], TelegramChannel)
    only_tg = settings_for(telegram)
    assert list(channels_from_settings(only_tg)) == ["telegram"]
    assert list(require_channels(only_tg, ["telegram"])) == ["telegram"]
    with pytest.raises(ConfigError, match=r"channel not configured: email \(set CCA_SMTP_HOST and CCA_EMAIL_TO\)"):
        require_channels(only_tg, ["email", "telegram"])
    with pytest.raises(ConfigError, match="unknown channel sms"):
        require_channels(only_tg, ["sms"])
    # an SMTP host without recipients is not a usable channel
    assert "email" not in channels_from_settings(Settings(smtp_host="127.0.0.1"))
