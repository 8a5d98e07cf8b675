"""Log lines of the Anomaly Detector example, in the original Java example's format.

    user_id: alice | timestamp: 2026-11-25 10:00:00 +0000 | ip_address: 10.1.2.3 | action: login failed | message: three random words

`format_log_line` writes one, `parse_log_line` reads one back (or returns None
for a line that is not in the format). `user_of` and `is_failed_login` run on
every record of the detector: they look at one field without building a
`LogLine`.

Unlike the Java example, which keys by `line.split("|")[0]` (the key becomes
`"user_id: alice "`) and filters on `contains("login failed")` (which also
matches a message that merely mentions it), these read the fields themselves.
"""  # noqa: E501

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

FAILED_LOGIN = "login failed"
SUCCEEDED_LOGIN = "login succeeded"

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_FIELDS = ("user_id", "timestamp", "ip_address", "action", "message")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One parsed log line. `timestamp` is timezone-aware (UTC unless the line says otherwise)."""

    user_id: str
    timestamp: datetime
    ip_address: str
    action: str
    message: str

    @property
    def timestamp_ms(self) -> int:
        """The timestamp in epoch milliseconds."""
        return int(self.timestamp.timestamp() * 1000)

    @property
    def is_failed_login(self) -> bool:
        return self.action == FAILED_LOGIN

    def format(self) -> str:
        return format_log_line(
            self.user_id, self.timestamp, self.ip_address, self.action, self.message
        )


def format_log_line(
    user_id: str,
    timestamp: datetime | int,
    ip_address: str,
    action: str,
    message: str,
) -> str:
    """One log line. `timestamp` is a datetime (naive means UTC) or epoch milliseconds.

    The line's timestamp has a precision of one second, and is written in UTC
    when given in epoch milliseconds.
    """
    if isinstance(timestamp, datetime):
        moment = timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(timestamp / 1000, UTC)
    return (
        f"user_id: {user_id} | timestamp: {moment.strftime(TIMESTAMP_FORMAT)} | "
        f"ip_address: {ip_address} | action: {action} | message: {message}"
    )


def parse_log_line(line: str | bytes | None) -> LogLine | None:
    """The fields of a log line, or None when the line is not in the format.

    Tolerant of extra spaces around the separators and inside the timestamp,
    and of a message holding `|`. Fields must come in the format's order; the
    user id and the action must not be empty, the IP address must be an IPv4
    or IPv6 address, and the timestamp `YYYY-MM-DD HH:MM:SS +HHMM` (or ISO
    8601; without an offset it is taken as UTC).
    """
    if isinstance(line, bytes):
        try:
            line = line.decode()
        except UnicodeDecodeError:
            return None
    if not line:
        return None
    parts = line.strip().split("|", len(_FIELDS) - 1)
    if len(parts) != len(_FIELDS):
        return None
    values: list[str] = []
    for name, part in zip(_FIELDS, parts, strict=True):
        key, colon, value = part.partition(":")
        if not colon or key.strip() != name:
            return None
        values.append(value.strip())
    user_id, raw_timestamp, ip_address, action, message = values
    action = " ".join(action.split())
    timestamp = _parse_timestamp(raw_timestamp)
    if not user_id or not action or timestamp is None or not _is_ip_address(ip_address):
        return None
    return LogLine(user_id, timestamp, ip_address, action, message)


def _is_ip_address(text: str) -> bool:
    # The common case, a dotted IPv4 address, by the rules of `ipaddress` (four
    # ASCII decimal octets up to 255, no leading zero) at a fifth of its cost.
    octets = text.split(".")
    if len(octets) == 4 and all(
        0 < len(o) <= 3 and o.isascii() and o.isdigit() and (o[0] != "0" or o == "0")
        and int(o) <= 255
        for o in octets
    ):  # fmt: skip
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_timestamp(text: str) -> datetime | None:
    text = " ".join(text.split())
    fixed = _parse_fixed_timestamp(text)
    if fixed is not None:
        return fixed
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_fixed_timestamp(text: str) -> datetime | None:
    """`YYYY-MM-DD HH:MM:SS +HHMM` exactly, as the generator writes it, without
    strptime (a sixth of its cost); None for anything else, which strptime then reads."""
    if (
        len(text) != 25
        or text[4] != "-" or text[7] != "-" or text[10] != " " or text[13] != ":"
        or text[16] != ":" or text[19] != " " or text[20] not in "+-"
    ):  # fmt: skip
        return None
    digits = text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]
    offset = text[21:25]
    if not (digits.isascii() and digits.isdigit() and offset.isascii() and offset.isdigit()):
        return None
    if offset[2] > "5":  # strptime's %z takes minutes 00-59 only
        return None
    minutes = int(offset[:2]) * 60 + int(offset[2:])
    try:
        zone = (
            UTC
            if minutes == 0
            else timezone(timedelta(minutes=-minutes if text[20] == "-" else minutes))
        )
        return datetime(
            int(digits[0:4]), int(digits[4:6]), int(digits[6:8]),
            int(digits[8:10]), int(digits[10:12]), int(digits[12:14]), tzinfo=zone,
        )  # fmt: skip
    except ValueError:
        return None


def user_of(line: str | None) -> str | None:
    """The user id of a log line (`"alice"`), or None when the line does not start with one.

    Cheap: reads only the first field.
    """
    if not line:
        return None
    field, _, _ = line.partition("|")
    key, colon, value = field.partition(":")
    if not colon or key.strip() != "user_id":
        return None
    return value.strip() or None


def is_failed_login(line: str | None) -> bool:
    """Whether the line's action field is `login failed` (not merely its message).

    Cheap: reads only the action field.
    """
    if not line:
        return False
    parts = line.split("|", 4)
    if len(parts) != 5:
        return False
    key, colon, value = parts[3].partition(":")
    if not colon or key.strip() != "action":
        return False
    value = value.strip()
    return value == FAILED_LOGIN or " ".join(value.split()) == FAILED_LOGIN
