"""Urgent alerts POSTed to a webhook, as PagerDuty Events API v2 `trigger` events.

Configured by `ALERT_WEBHOOK_URL` and `ALERT_ROUTING_KEY`. Neither the routing
key, a password, nor the URL's path and query (which often hold a token)
appear in a message: the server is shown as `scheme://host:port`.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit

from services.notifications.notification import Notification, Pending, iso, printable
from topicflow.errors import ConfigError, RetriableError, StreamsException

__all__ = ["WEBHOOK_TIMEOUT_S", "WebhookAlerts"]

WEBHOOK_TIMEOUT_S = 5.0


def _shown_url(scheme: str, host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would become a GET without body: report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookAlerts:
    """Alerts POSTed as PagerDuty Events API v2 `trigger` events, one request per alert.

    2xx: delivered. 5xx, 429, timeouts and connection errors: RetriableError.
    Any other status: StreamsException (a bad URL, routing key or body will
    not get better by retrying).
    """

    def __init__(
        self,
        url: str,
        routing_key: str | None = None,
        source: str = "anomaly-detector",
        timeout: float = WEBHOOK_TIMEOUT_S,
        variable: str = "ALERT_WEBHOOK_URL",
    ) -> None:
        split = urlsplit(url.strip())
        if split.scheme not in ("http", "https"):
            raise ConfigError(f"{variable}: use an http:// or https:// URL")
        try:
            port = split.port
        except ValueError:
            raise ConfigError(f"{variable}: the port is not a number between 0 and 65535") from None
        if not split.hostname:
            raise ConfigError(f"{variable}: no host name; expected e.g. https://host/path")
        self.shown = _shown_url(split.scheme, split.hostname, port)
        password = split.password
        secrets = (routing_key, password, unquote(password or ""), split.path, split.query)
        self._secrets = [s for s in secrets if s and len(s) > 3]
        self._authorization: str | None = None
        if split.username is not None or split.password is not None:
            credentials = f"{unquote(split.username or '')}:{unquote(split.password or '')}"
            self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
            netloc = split.hostname if ":" not in split.hostname else f"[{split.hostname}]"
            netloc += f":{port}" if port is not None else ""
            split = split._replace(netloc=netloc)
        self._url = split.geturl()
        self._routing_key = routing_key or None
        self._source = source
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"WebhookAlerts({self.shown})"

    def event(self, notification: Notification) -> dict[str, Any]:
        """The PagerDuty Events API v2 body of one alert: the same for every repeat."""
        user = printable(notification.user_id)
        body: dict[str, Any] = {
            "event_action": "trigger",
            "dedup_key": notification.dedup_key,
            "payload": {
                "summary": printable(
                    f"{user}: {notification.count} failed logins in "
                    f"{(notification.window_end - notification.window_start) // 1000} s "
                    f"(more than {notification.threshold})",
                    1024,
                ),
                "source": self._source,
                "severity": "critical",
                "timestamp": iso(notification.window_start),
                "component": "login",
                "class": "failed logins",
                "custom_details": {
                    "user_id": notification.user_id,
                    "failed_logins": notification.count,
                    "threshold": notification.threshold,
                    "window_start": iso(notification.window_start),
                    "window_end": iso(notification.window_end),
                    "window_start_ms": notification.window_start,
                    "window_end_ms": notification.window_end,
                    # From the users table: who owns the account, and where to reach them.
                    **({"team": notification.team} if notification.team else {}),
                    **({"email": notification.email} if notification.email else {}),
                },
            },
            "client": "topicflow anomaly-detector",
        }
        if self._routing_key is not None:
            body["routing_key"] = self._routing_key
        return body

    def deliver(self, pending: Pending) -> None:
        if not pending:
            return
        opener = urllib.request.build_opener(_NoRedirect)
        while pending:
            self._post(opener, pending[0], len(pending))
            pending.popleft()

    def _post(
        self, opener: urllib.request.OpenerDirector, notification: Notification, pending: int
    ) -> None:
        data = json.dumps(self.event(notification), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "topicflow-anomaly-detector"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self._url, data=data, headers=headers, method="POST")
        kept = f"{pending} alert{'s' if pending > 1 else ''} kept for the next try"
        try:
            with opener.open(request, timeout=self._timeout) as response:
                response.read()
                status = int(response.status)
                reason = str(response.reason)
                detail = ""
        except urllib.error.HTTPError as error:
            status, reason = error.code, str(error.reason)
            try:
                detail = self._detail(error.read(4096))
            except OSError:
                detail = ""
            finally:
                error.close()
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            cause = error.reason if isinstance(error, urllib.error.URLError) else error
            raise RetriableError(
                f"alert webhook {self.shown} unreachable: {self._scrub(str(cause))}; {kept}"
            ) from None
        if 200 <= status < 300:
            return
        answer = f"alert webhook {self.shown} answered HTTP {status} {self._scrub(reason)}{detail}"
        if status >= 500 or status == 429:
            raise RetriableError(f"{answer}; {kept}")
        raise StreamsException(f"{answer}; check ALERT_WEBHOOK_URL and ALERT_ROUTING_KEY")

    def _detail(self, body: bytes) -> str:
        """PagerDuty's `message` and first error, when the body is such JSON."""
        try:
            data = json.loads(body)
        except ValueError:
            return ""
        if not isinstance(data, dict):
            return ""
        parts = [data.get("message"), data.get("error")]
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            parts.append(errors[0])
        text = ": ".join(str(p) for p in parts if isinstance(p, str) and p)
        return f" ({printable(self._scrub(text))})" if text else ""

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
