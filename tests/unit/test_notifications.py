"""Notifications (services.notifications), against real local HTTP and SMTP servers."""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.notifications.delivery import LogAlerts, LogEmails
from services.notifications.notification import Notification
from services.notifications.processors import (
    EMAIL_THRESHOLD,
    URGENT_THRESHOLD,
    AlertSink,
    EmailSink,
    NotificationProcessor,
)
from services.notifications.smtp import SmtpEmails, SmtpSettings
from services.notifications.webhook import WebhookAlerts
from tests.local_servers import (
    HOST,
    Certificate,
    LocalHttpServer,
    LocalSmtpServer,
    port_of,
    reserve_port,
    self_signed_certificate,
)
from topicflow import Serdes, StreamsConfig, Topology
from topicflow.dsl.windows import TimeWindow, Windowed
from topicflow.errors import ConfigError, RetriableError, SerializationError, StreamsException
from topicflow.processor.api import Record
from topicflow.serdes import Serde
from topicflow.testing import TestOutputTopic, TopologyTestDriver

T0 = 1_795_600_800_000  # 2026-11-25T10:00:00Z, a window start
WINDOW = TimeWindow(T0, T0 + 10_000)
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
PASSWORD = "s3cr3t/p@ss:word"
PASSWORD_URL = "s3cr3t%2Fp%40ss%3Aword"


def _windowed_serialize(key: Windowed[str] | None) -> bytes | None:
    if key is None:
        return None
    return json.dumps([key.key, key.window.start, key.window.end]).encode()


def _windowed_deserialize(data: bytes | None) -> Windowed[str] | None:
    if data is None:
        return None
    user, start, end = json.loads(data)
    return Windowed(user, TimeWindow(start, end))


# A test serde: the lead's detector picks its own for the anomalies topic.
WINDOWED: Serde[Windowed[str]] = Serde("WindowedJson", _windowed_serialize, _windowed_deserialize)


class Capture:
    """A supplier that keeps the processors it makes, to look at what they buffer."""

    def __init__(self, supplier: Callable[[], NotificationProcessor]) -> None:
        self.supplier = supplier
        self.processors: list[NotificationProcessor] = []

    def __call__(self) -> NotificationProcessor:
        processor = self.supplier()
        self.processors.append(processor)
        return processor

    @property
    def pending(self) -> list[Notification]:
        return [n for p in self.processors for n in p.pending]


class Pipeline:
    """counts (Windowed key, Long count) -> notification processor -> anomalies (JSON).

    The driver commits only when told (`flush`), as the stream worker does every
    commit interval: each task flushes its processors before offsets are committed.
    """

    def __init__(self, supplier: Callable[[], NotificationProcessor]) -> None:
        self.sink = Capture(supplier)
        topology = (
            Topology()
            .add_source("counts", "counts", key_serde=WINDOWED, value_serde=Serdes.Long())
            .add_processor("notify", self.sink, "counts")
            .add_sink(
                "anomalies", "anomalies", "notify", key_serde=WINDOWED, value_serde=Serdes.String()
            )
        )
        self.driver = TopologyTestDriver(
            topology, StreamsConfig(application_id="notify-test"), commit_every_record=False
        )
        self.counts = self.driver.create_input_topic("counts", WINDOWED, Serdes.Long())
        self.anomalies: TestOutputTopic[Any, Any] = self.driver.create_output_topic(
            "anomalies", WINDOWED, Serdes.String()
        )

    def count(self, user: str, count: int, window: TimeWindow = WINDOW) -> None:
        self.counts.pipe_input(Windowed(user, window), count, timestamp=window.start + 1234)

    def flush(self) -> None:
        """A commit: the processors' flush, where a RetriableError skips the offset commit."""
        self.driver.commit()

    def close(self) -> None:
        self.driver.close()


@pytest.fixture
def pipelines() -> Iterator[Callable[[Callable[[], NotificationProcessor]], Pipeline]]:
    made: list[Pipeline] = []

    def make(supplier: Callable[[], NotificationProcessor]) -> Pipeline:
        made.append(Pipeline(supplier))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.close()


Pipelines = Callable[[Callable[[], NotificationProcessor]], Pipeline]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    cert = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if cert is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return cert


def alert_env(url: str, **extra: str) -> dict[str, str]:
    return {"ALERT_WEBHOOK_URL": url, "ALERT_ROUTING_KEY": ROUTING_KEY, **extra}


def smtp_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "SMTP_URL": url,
        "EMAIL_FROM": "Anomaly Detector <detector@example.com>",
        "EMAIL_TO": "security@example.com, oncall@example.org",
        **extra,
    }


# -- Notification ----------------------------------------------------------------------------------


def test_notification_json_is_compact_sorted_and_round_trips() -> None:
    n = Notification("alice", T0, T0 + 10_000, 120, "urgent", 100)
    text = n.to_json()
    assert text == (
        '{"count":120,"severity":"urgent","threshold":100,"user_id":"alice",'
        f'"window_end":{T0 + 10_000},"window_start":{T0}}}'
    )
    assert Notification.from_json(text) == n
    assert Notification.from_json(text.encode()) == n
    assert n.dedup_key == f"alice-{T0}-urgent"
    unicode = Notification("zoë", 0, 10_000, 51, "email", 50)
    assert Notification.from_json(unicode.to_json()) == unicode


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"user_id": "a"}',
        '{"count":1,"severity":"page","threshold":1,"user_id":"a","window_end":1,"window_start":0}',
        '{"count":"1","severity":"email","threshold":1,"user_id":"a","window_end":1,'
        '"window_start":0}',
        '{"count":true,"severity":"email","threshold":1,"user_id":"a","window_end":1,'
        '"window_start":0}',
    ],
)
def test_notification_from_bad_json(text: str) -> None:
    with pytest.raises(SerializationError):
        Notification.from_json(text)


# -- suppliers and configuration -------------------------------------------------------------------


def test_sinks_are_suppliers_of_fresh_processors() -> None:
    alerts, emails = AlertSink.from_env("p.", {}), EmailSink.from_env("p.", {})
    first, second = alerts(), alerts()
    assert isinstance(first, NotificationProcessor) and first is not second
    assert (first.severity, first.threshold) == ("urgent", URGENT_THRESHOLD)
    assert (emails().severity, emails().threshold) == ("email", EMAIL_THRESHOLD)
    assert isinstance(alerts.delivery, LogAlerts)
    assert isinstance(emails.delivery, LogEmails)
    assert AlertSink.from_env("", {}, threshold=7)().threshold == 7


def test_alert_config_errors_are_one_line_without_secrets() -> None:
    for url, message in [
        ("ftp://events.example.com/x", "use an http:// or https:// URL"),
        ("https:///v2/enqueue", "no host name"),
        ("https://events.example.com:99999/x", "port is not a number"),
    ]:
        with pytest.raises(ConfigError, match=message) as caught:
            AlertSink.from_env("", alert_env(url))
        assert "\n" not in str(caught.value)
        assert ROUTING_KEY not in str(caught.value)


def test_smtp_url_parsing() -> None:
    s = SmtpSettings.parse(f"smtp://mailer:{PASSWORD_URL}@mail.example.com:2525")
    assert (s.host, s.port, s.username, s.password) == (
        "mail.example.com",
        2525,
        "mailer",
        PASSWORD,
    )
    assert (s.implicit_tls, s.starttls) == (False, False)
    assert s.shown == "smtp://mailer@mail.example.com:2525"
    assert PASSWORD not in repr(s) and PASSWORD_URL not in repr(s)
    mailer = SmtpEmails(s, "d@example.com", ["s@example.com"])
    assert PASSWORD not in repr(mailer) and PASSWORD_URL not in repr(mailer)
    assert SmtpSettings.parse("smtp://mail.example.com").port == 25
    assert SmtpSettings.parse("smtp://mail.example.com?starttls=true").port == 587
    assert SmtpSettings.parse("smtp://mail.example.com?starttls=true").starttls
    assert not SmtpSettings.parse("smtp://h:25?starttls=false").starttls
    smtps = SmtpSettings.parse("smtps://u:p@mail.example.com")
    assert (smtps.port, smtps.implicit_tls, smtps.shown) == (
        465,
        True,
        "smtps://u@mail.example.com:465",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"http://u:{PASSWORD_URL}@h:25", "unknown scheme"),
        (f"smtp://u:{PASSWORD}@h:25", "port is not a number"),  # '/' not percent-encoded
        (f"smtp://u:{PASSWORD_URL}@:25", "no host name"),
        (f"smtp://u:{PASSWORD_URL}@h:25?tls=yes", "unknown option 'tls'"),
        (f"smtp://u:{PASSWORD_URL}@h:25?starttls=maybe", "use starttls=true or false"),
        (f"smtps://u:{PASSWORD_URL}@h?starttls=true", "smtps:// is TLS from the start"),
    ],
)
def test_smtp_url_errors_never_show_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        EmailSink.from_env("", smtp_env(url))
    text = str(caught.value)
    assert text.startswith("SMTP_URL: ")
    assert "\n" not in text
    for secret in (PASSWORD, PASSWORD_URL, "s3cr3t"):
        assert secret not in text


def test_email_needs_sender_and_recipients_with_smtp() -> None:
    url = "smtp://127.0.0.1:25"
    with pytest.raises(ConfigError, match="so EMAIL_FROM and EMAIL_TO must be set too"):
        EmailSink.from_env("", {"SMTP_URL": url})
    with pytest.raises(ConfigError, match="so EMAIL_TO must be set too"):
        EmailSink.from_env("", {"SMTP_URL": url, "EMAIL_FROM": "a@example.com"})
    with pytest.raises(ConfigError, match="EMAIL_FROM: 'nobody' is not an email address"):
        EmailSink.from_env("", smtp_env(url, EMAIL_FROM="nobody"))
    with pytest.raises(ConfigError, match="EMAIL_TO: 'x' is not an email address"):
        EmailSink.from_env("", smtp_env(url, EMAIL_TO="a@example.com, x"))
    # Without SMTP_URL, emails are logged: nothing else is needed.
    assert isinstance(EmailSink.from_env("", {}).delivery, LogEmails)


# -- processing: forwarding and logging ------------------------------------------------------------


def test_without_configuration_notifications_are_forwarded_then_logged_at_flush(
    pipelines: Pipelines, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = pipelines(AlertSink.from_env("", {}))
    emails = pipelines(EmailSink.from_env("", {"EMAIL_TO": "security@example.com"}))
    caplog.set_level(logging.INFO, logger="services.notifications")
    alerts.count("mallory", 101)
    emails.count("mallory", 51)
    # Forwarded at once, with the key and timestamp of the count.
    record = alerts.anomalies.read_record()
    assert record.key == Windowed("mallory", WINDOW)
    assert record.timestamp == T0 + 1234
    assert Notification.from_json(record.value) == Notification(
        "mallory", T0, T0 + 10_000, 101, "urgent", 100
    )
    assert Notification.from_json(emails.anomalies.read_value()).severity == "email"
    assert not caplog.records  # delivered at the commit, not before
    alerts.flush()
    emails.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "ALERT (would page): user mallory had 101 failed logins in "
        "[2026-11-25T10:00:00.000+00:00, 2026-11-25T10:00:10.000+00:00)",
        "EMAIL (would send to security@example.com): user mallory had 51 failed logins in "
        "[2026-11-25T10:00:00.000+00:00, 2026-11-25T10:00:10.000+00:00)",
    ]
    assert alerts.sink.pending == [] and emails.sink.pending == []


def test_control_characters_of_a_user_id_stay_out_of_logs(
    pipelines: Pipelines, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = pipelines(AlertSink.from_env("", {}))
    alerts.count("eve\nALERT forged", 200)
    caplog.set_level(logging.INFO, logger="services.notifications")
    alerts.flush()
    (message,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in message and "eve?ALERT forged" in message
    # The forwarded JSON keeps the user id as it is.
    assert Notification.from_json(alerts.anomalies.read_value()).user_id == "eve\nALERT forged"


def test_keys_must_be_windowed_and_values_counts() -> None:
    processor = AlertSink(LogAlerts(), 100)()
    with pytest.raises(StreamsException, match="need Windowed"):
        processor.process(Record("alice", 5, 0))  # type: ignore[arg-type]
    with pytest.raises(StreamsException, match="need an int count"):
        processor.process(Record(Windowed("alice", WINDOW), "5", 0))  # type: ignore[arg-type]


def test_close_with_undelivered_notifications_warns(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as closed:
        closed.bind((HOST, 0))  # bound, not listening: refused
        sink = AlertSink(WebhookAlerts(f"http://{HOST}:{port_of(closed)}/"), 100)
        pipeline = Pipeline(sink)
        pipeline.count("mallory", 150)
        with pytest.raises(RetriableError):
            pipeline.flush()
        pipeline.close()
    assert "1 urgent notification(s) not delivered at close" in caplog.text


# -- alerts to a real HTTP server ------------------------------------------------------------------


def test_alerts_are_posted_as_pagerduty_events_at_flush(pipelines: Pipelines) -> None:
    with LocalHttpServer() as server:
        alerts = pipelines(AlertSink.from_env("staging.", alert_env(server.url())))
        alerts.count("mallory", 101)
        alerts.count("trudy", 140, TimeWindow(T0 + 10_000, T0 + 20_000))
        assert len(alerts.anomalies.read_values_to_list()) == 2
        assert server.requests == []  # only at the commit
        alerts.flush()
        assert alerts.sink.pending == []
    first, second = (r.json() for r in server.requests)
    assert [r.path for r in server.requests] == ["/v2/enqueue"] * 2
    assert server.requests[0].headers["Content-Type"] == "application/json"
    assert first == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": f"mallory-{T0}-urgent",
        "client": "topicflow anomaly-detector",
        "payload": {
            "summary": "mallory: 101 failed logins in 10 s (more than 100)",
            "source": "staging.anomaly-detector",
            "severity": "critical",
            "timestamp": "2026-11-25T10:00:00.000+00:00",
            "component": "login",
            "class": "failed logins",
            "custom_details": {
                "user_id": "mallory",
                "failed_logins": 101,
                "threshold": 100,
                "window_start": "2026-11-25T10:00:00.000+00:00",
                "window_end": "2026-11-25T10:00:10.000+00:00",
                "window_start_ms": T0,
                "window_end_ms": T0 + 10_000,
            },
        },
    }
    assert second["dedup_key"] == f"trudy-{T0 + 10_000}-urgent"
    assert second["payload"]["custom_details"]["failed_logins"] == 140


def test_without_routing_key_the_field_is_left_out(pipelines: Pipelines) -> None:
    with LocalHttpServer() as server:
        alerts = pipelines(AlertSink.from_env("", {"ALERT_WEBHOOK_URL": server.url("/hook")}))
        alerts.count("mallory", 101)
        alerts.flush()
    (request,) = server.requests
    assert request.path == "/hook"
    assert "routing_key" not in request.json()
    assert request.json()["payload"]["source"] == "anomaly-detector"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_are_retried_at_the_next_flush(pipelines: Pipelines, status: int) -> None:
    with LocalHttpServer() as server:
        alerts = pipelines(AlertSink.from_env("", alert_env(server.url())))
        alerts.count("mallory", 101)
        alerts.count("trudy", 120)
        server.reply(202)  # mallory's goes through, then trudy's fails
        server.reply(status, {"status": "unavailable", "message": "try later"})
        with pytest.raises(RetriableError) as caught:
            alerts.flush()
        message = str(caught.value)
        assert f"answered HTTP {status}" in message
        assert "1 alert kept for the next try" in message
        assert [n.user_id for n in alerts.sink.pending] == ["trudy"]
        alerts.flush()  # the server accepts again
        assert alerts.sink.pending == []
    assert [r.json()["dedup_key"] for r in server.requests] == [
        f"mallory-{T0}-urgent",
        f"trudy-{T0}-urgent",
        f"trudy-{T0}-urgent",
    ]


def test_server_down_then_up_delivers_on_the_next_flush(pipelines: Pipelines) -> None:
    reserved = reserve_port()  # bound, not listening: refused until the server starts
    server = LocalHttpServer(reserved)
    alerts = pipelines(AlertSink.from_env("", alert_env(server.url())))
    alerts.count("mallory", 101)
    with pytest.raises(RetriableError) as caught:
        alerts.flush()
    assert f"alert webhook http://{HOST}:{server.port} unreachable" in str(caught.value)
    assert "1 alert kept for the next try" in str(caught.value)
    assert len(alerts.sink.pending) == 1
    with server:
        alerts.flush()
    assert alerts.sink.pending == []
    assert [r.json()["dedup_key"] for r in server.requests] == [f"mallory-{T0}-urgent"]


def test_a_server_that_does_not_answer_times_out_as_retriable() -> None:
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen()  # accepts connections in the kernel, never answers
        delivery = WebhookAlerts(f"http://{HOST}:{port_of(silent)}/", ROUTING_KEY, timeout=0.2)
        processor = AlertSink(delivery, 100)()
        processor.pending.append(Notification("mallory", T0, T0 + 10_000, 101, "urgent", 100))
        with pytest.raises(RetriableError, match="unreachable: timed out"):
            processor.flush()
        assert len(processor.pending) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 302])
def test_client_errors_are_fatal_with_a_short_reason(pipelines: Pipelines, status: int) -> None:
    with LocalHttpServer() as server:
        url = server.url("/v2/enqueue?token=T0PS3CR3TT0KEN")
        alerts = pipelines(AlertSink.from_env("", alert_env(url)))
        alerts.count("mallory", 101)
        server.reply(
            status,
            {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [f"routing_key {ROUTING_KEY} is not valid"],
            },
            Location=server.url("/elsewhere"),
        )
        with pytest.raises(StreamsException) as caught:
            alerts.flush()
    message = str(caught.value)
    assert not isinstance(caught.value, RetriableError)
    assert f"alert webhook http://{HOST}:{server.port} answered HTTP {status}" in message
    assert "Event object is invalid" in message
    assert "check ALERT_WEBHOOK_URL and ALERT_ROUTING_KEY" in message
    assert ROUTING_KEY not in message and "T0PS3CR3TT0KEN" not in message
    assert "\n" not in message
    assert len(server.requests) == 1  # a redirect is not followed


def test_webhook_credentials_in_the_url_become_basic_auth_and_stay_secret(
    pipelines: Pipelines,
) -> None:
    with LocalHttpServer() as server:
        url = f"http://hook:{PASSWORD_URL}@{HOST}:{server.port}/hook"
        alerts = pipelines(AlertSink.from_env("", {"ALERT_WEBHOOK_URL": url}))
        assert PASSWORD not in repr(alerts) and PASSWORD_URL not in repr(alerts)
        alerts.count("mallory", 101)
        server.reply(503, {"message": f"bad password {PASSWORD}"})
        with pytest.raises(RetriableError) as caught:
            alerts.flush()
        assert PASSWORD not in str(caught.value) and PASSWORD_URL not in str(caught.value)
        alerts.flush()
    expected = "Basic " + base64.b64encode(f"hook:{PASSWORD}".encode()).decode()
    assert [r.headers["Authorization"] for r in server.requests] == [expected, expected]


# -- emails to a real SMTP server ------------------------------------------------------------------


def test_emails_are_sent_at_flush_without_tls(pipelines: Pipelines) -> None:
    with LocalSmtpServer() as server:
        emails = pipelines(EmailSink.from_env("staging.", smtp_env(f"smtp://{HOST}:{server.port}")))
        emails.count("alice", 51)
        emails.count("bob", 77, TimeWindow(T0 + 10_000, T0 + 20_000))
        assert len(emails.anomalies.read_values_to_list()) == 2
        assert server.messages == []
        emails.flush()
        assert emails.sink.pending == []
    first, second = server.messages
    assert first.mail_from == "detector@example.com"
    assert first.rcpt_tos == ["security@example.com", "oncall@example.org"]
    assert not first.tls and first.login is None
    message = first.message
    assert message["From"] == "Anomaly Detector <detector@example.com>"
    assert message["To"] == "security@example.com, oncall@example.org"
    assert message["Subject"] == "[staging.anomaly-detector] alice: 51 failed logins in 10 s"
    assert message["Message-ID"].endswith(".email@example.com>")
    body = message.get_body().get_content()  # type: ignore[union-attr]
    assert "The user alice had 51 failed logins between 2026-11-25T10:00:00.000+00:00 and " in body
    assert "2026-11-25T10:00:10.000+00:00 (the threshold is 50)." in body
    assert second.message["Subject"] == "[staging.anomaly-detector] bob: 77 failed logins in 10 s"
    assert second.message["Message-ID"] != message["Message-ID"]


def test_a_repeated_email_has_the_same_message_id() -> None:
    settings = SmtpSettings.parse("smtp://127.0.0.1:25")
    mailer = SmtpEmails(settings, "d@example.com", ["s@example.com"])
    n = Notification("alice", T0, T0 + 10_000, 51, "email", 50)
    assert mailer.message(n)["Message-ID"] == mailer.message(n)["Message-ID"]
    other = Notification("alice", T0 + 10_000, T0 + 20_000, 51, "email", 50)
    assert mailer.message(n)["Message-ID"] != mailer.message(other)["Message-ID"]


def test_emails_log_in_with_the_urls_credentials(pipelines: Pipelines) -> None:
    server = LocalSmtpServer(credentials=("mailer", PASSWORD), auth_require_tls=False)
    with server:
        url = f"smtp://mailer:{PASSWORD_URL}@{HOST}:{server.port}"
        emails = pipelines(EmailSink.from_env("", smtp_env(url)))
        emails.count("alice", 51)
        emails.flush()
    (received,) = server.messages
    assert received.login == "mailer"


def test_a_wrong_password_is_fatal_and_not_shown(pipelines: Pipelines) -> None:
    server = LocalSmtpServer(credentials=("mailer", "right"), auth_require_tls=False)
    with server:
        url = f"smtp://mailer:{PASSWORD_URL}@{HOST}:{server.port}"
        emails = pipelines(EmailSink.from_env("", smtp_env(url)))
        emails.count("alice", 51)
        with pytest.raises(StreamsException) as caught:
            emails.flush()
    message = str(caught.value)
    assert not isinstance(caught.value, RetriableError)
    assert message.startswith(f"email server smtp://mailer@{HOST}:{server.port} answered 535")
    assert "check SMTP_URL, EMAIL_FROM and EMAIL_TO" in message
    for secret in (PASSWORD, PASSWORD_URL, "s3cr3t"):
        assert secret not in message
    assert set(server.failed_logins) == {"mailer"}  # smtplib tries PLAIN, then LOGIN
    assert len(emails.sink.pending) == 1


def test_starttls_with_login(pipelines: Pipelines, certificate: Certificate) -> None:
    server = LocalSmtpServer(
        starttls_context=certificate.server_context(),
        require_starttls=True,
        credentials=("mailer", PASSWORD),
    )
    with server:
        url = f"smtp://mailer:{PASSWORD_URL}@{HOST}:{server.port}?starttls=true"
        settings = SmtpSettings.parse(url)
        mailer = SmtpEmails(
            settings,
            "detector@example.com",
            ["security@example.com"],
            ssl_context=certificate.client_context(),
        )
        emails = pipelines(EmailSink(mailer, EMAIL_THRESHOLD))
        emails.count("alice", 51)
        emails.flush()
    (received,) = server.messages
    assert received.tls and received.login == "mailer"


def test_starttls_checks_the_certificate(pipelines: Pipelines, certificate: Certificate) -> None:
    server = LocalSmtpServer(starttls_context=certificate.server_context(), require_starttls=True)
    with server:
        # The default context does not trust the self-signed certificate.
        url = f"smtp://{HOST}:{server.port}?starttls=true"
        emails = pipelines(EmailSink.from_env("", smtp_env(url)))
        emails.count("alice", 51)
        with pytest.raises(RetriableError, match="CERTIFICATE_VERIFY_FAILED"):
            emails.flush()
    assert server.messages == []


def test_starttls_asked_but_not_offered_is_fatal(pipelines: Pipelines) -> None:
    with LocalSmtpServer() as server:
        url = f"smtp://{HOST}:{server.port}?starttls=true"
        emails = pipelines(EmailSink.from_env("", smtp_env(url)))
        emails.count("alice", 51)
        with pytest.raises(StreamsException, match="does not offer STARTTLS") as caught:
            emails.flush()
    assert not isinstance(caught.value, RetriableError)
    assert server.messages == []


def test_implicit_tls(pipelines: Pipelines, certificate: Certificate) -> None:
    # aiosmtpd 1.4 only counts STARTTLS as TLS for AUTH: allow it, the session is TLS anyway.
    server = LocalSmtpServer(
        implicit_tls_context=certificate.server_context(),
        credentials=("mailer", PASSWORD),
        auth_require_tls=False,
    )
    with server:
        settings = SmtpSettings.parse(f"smtps://mailer:{PASSWORD_URL}@{HOST}:{server.port}")
        mailer = SmtpEmails(
            settings,
            "detector@example.com",
            ["security@example.com"],
            ssl_context=certificate.client_context(),
        )
        emails = pipelines(EmailSink(mailer, EMAIL_THRESHOLD))
        emails.count("alice", 51)
        emails.flush()
    (received,) = server.messages
    assert received.tls and received.login == "mailer"


def test_smtp_down_then_up_delivers_on_the_next_flush(pipelines: Pipelines) -> None:
    reserved = reserve_port()
    server = LocalSmtpServer(reserved, credentials=("mailer", PASSWORD), auth_require_tls=False)
    url = f"smtp://mailer:{PASSWORD_URL}@{HOST}:{server.port}"
    emails = pipelines(EmailSink.from_env("", smtp_env(url)))
    emails.count("alice", 51)
    emails.count("bob", 60)
    with pytest.raises(RetriableError) as caught:
        emails.flush()
    message = str(caught.value)
    assert message.startswith(f"email server smtp://mailer@{HOST}:{server.port} unreachable")
    assert message.endswith("2 emails kept for the next try")
    for secret in (PASSWORD, PASSWORD_URL, "s3cr3t"):
        assert secret not in message
    assert [n.user_id for n in emails.sink.pending] == ["alice", "bob"]
    with server:
        emails.flush()
    assert emails.sink.pending == []
    assert [m.message["Subject"] for m in server.messages] == [
        "[anomaly-detector] alice: 51 failed logins in 10 s",
        "[anomaly-detector] bob: 60 failed logins in 10 s",
    ]


def test_temporary_smtp_refusal_is_retried_permanent_is_fatal(pipelines: Pipelines) -> None:
    with LocalSmtpServer() as server:
        emails = pipelines(EmailSink.from_env("", smtp_env(f"smtp://{HOST}:{server.port}")))
        emails.count("alice", 51)
        emails.count("bob", 52)
        server.data_replies.extend(["250 OK", "451 4.3.0 Try again later"])
        with pytest.raises(RetriableError, match=r"answered 451 4\.3\.0 Try again later"):
            emails.flush()
        assert [n.user_id for n in emails.sink.pending] == ["bob"]
        server.data_replies.append("554 5.7.1 Message rejected")
        with pytest.raises(StreamsException, match=r"answered 554 5\.7\.1 Message rejected"):
            emails.flush()
        assert [n.user_id for n in emails.sink.pending] == ["bob"]
        emails.flush()
        assert emails.sink.pending == []
    assert [m.message["Subject"] for m in server.messages] == [
        "[anomaly-detector] bob: 52 failed logins in 10 s"
    ]


def test_email_subject_is_safe_from_header_injection(pipelines: Pipelines) -> None:
    with LocalSmtpServer() as server:
        emails = pipelines(EmailSink.from_env("", smtp_env(f"smtp://{HOST}:{server.port}")))
        emails.count("eve\r\nBcc: victim@example.com", 51)
        emails.flush()
    (received,) = server.messages
    assert received.message["Bcc"] is None
    assert received.rcpt_tos == ["security@example.com", "oncall@example.org"]
    # (A long subject is folded; the parser keeps the fold's leading space.)
    assert received.message["Subject"].strip().startswith("[anomaly-detector] eve??Bcc:")
