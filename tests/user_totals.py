"""A user's own table for the upsert sinks: `user_totals(user_id, total, last_seen)`.

Shared by the SQLite (unit) and PostgreSQL (integration) tests of
`topicflow.sinks`: a table of another shape than the example's
`windowed_counts` (one text key, two values), its row function, a seeded
input of running totals with tombstones, and the ground truth of that input
computed with nothing but a dict.
"""

from __future__ import annotations

import random

from topicflow.processor.api import Record
from topicflow.sinks import Table

TOTALS = Table(
    "user_totals",
    keys={"user_id": "text"},
    values={"total": "bigint", "last_seen": "bigint"},
)

# The user's column names: quoted where SQL reserves them; three key columns.
ORDERS = Table(
    "orders",
    keys={"user": "text", "order": "bigint", "region": "text"},
    values={"select": "double precision", "note": "text"},
    nullable=["note"],
)

UserTotal = tuple[str, int, int]


def total_row(record: Record[str, int | None]) -> UserTotal | None:
    """(user_id, total, last_seen): a user's running total, seen at the record's time."""
    if record.value is None:
        return None  # a tombstone: the row stays as it was
    return (record.key, record.value, record.timestamp)


def running_totals(
    seed: int, records: int = 2_000, users: int = 50
) -> list[Record[str, int | None]]:
    """Records of running totals per user, a tombstone now and then."""
    rng = random.Random(seed)
    totals: dict[str, int] = {}
    out: list[Record[str, int | None]] = []
    for i in range(records):
        user = f"user{rng.randrange(users):03}"
        if rng.random() < 0.05:
            out.append(Record(user, None, 1_000 + i))
            continue
        totals[user] = totals.get(user, 0) + rng.randrange(1, 100)
        out.append(Record(user, totals[user], 1_000 + i))
    return out


def truth_of(records: list[Record[str, int | None]]) -> list[UserTotal]:
    """What the table must hold: every user's last total and its time; tombstones
    delete nothing."""
    latest: dict[str, tuple[int, int]] = {}
    for record in records:
        if record.value is not None:
            latest[record.key] = (record.value, record.timestamp)
    return sorted((user, total, seen) for user, (total, seen) in latest.items())
