"""A notification: a user's failed logins in a window, its JSON, and its dedup key.

The dedup key is the same for every repeat of a notification (at-least-once
delivery repeats after a crash): the webhook's `dedup_key` and the email's
Message-ID are made from it, so that receivers merge the repeats.
"""

from __future__ import annotations

import collections
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from topicflow.errors import SerializationError

__all__ = ["Notification", "Pending", "Severity", "iso", "printable"]

Severity = Literal["urgent", "email"]
_SEVERITIES = ("urgent", "email")
Pending = collections.deque["Notification"]


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


def printable(text: str, limit: int = 200) -> str:
    """`text` safe for a log line, a header or a summary: no control characters, bounded."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification: `user_id` had `count` failed logins in [window_start, window_end).

    Window bounds are epoch milliseconds; `threshold` is the one `count` exceeded.
    `email` and `team` come from the user's profile in the users table
    (services/users.py), None when it has none.
    """

    user_id: str
    window_start: int
    window_end: int
    count: int
    severity: Severity
    threshold: int
    email: str | None = None
    team: str | None = None

    def to_json(self) -> str:
        """Compact JSON with sorted keys; `email` and `team` only when known."""
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    def from_json(text: str | bytes) -> Notification:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise SerializationError(f"notification is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise SerializationError("notification JSON is not an object")
        expected = {
            "user_id": str,
            "window_start": int,
            "window_end": int,
            "count": int,
            "severity": str,
            "threshold": int,
        }
        optional = {"email": str, "team": str}
        if not set(expected) <= set(data) <= set(expected) | set(optional):
            raise SerializationError(
                f"notification JSON has fields {sorted(data)}, expected {sorted(expected)} "
                f"and optionally {sorted(optional)}"
            )
        for name, kind in (expected | optional).items():
            value = data.get(name)
            if name in optional and value is None:
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise SerializationError(f"notification field {name!r} is not {kind.__name__}")
        if data["severity"] not in _SEVERITIES:
            raise SerializationError(
                f"notification severity {data['severity']!r} is not 'urgent' or 'email'"
            )
        return Notification(**data)

    @property
    def dedup_key(self) -> str:
        """`{user}-{window_start}-{severity}`: the same for every repeat of this notification."""
        key = f"{self.user_id}-{self.window_start}-{self.severity}"
        if len(key) <= 255 and key.isprintable():  # PagerDuty's limit
            return key
        digest = hashlib.sha256(self.user_id.encode()).hexdigest()[:32]
        return f"{digest}-{self.window_start}-{self.severity}"

    def describe(self) -> str:
        """`user alice had 120 failed logins in [2026-11-25T10:00:00.000+00:00, ...)`."""
        team = f" (team {printable(self.team)})" if self.team else ""
        return (
            f"user {printable(self.user_id)}{team} had {self.count} failed logins in "
            f"[{iso(self.window_start)}, {iso(self.window_end)})"
        )
