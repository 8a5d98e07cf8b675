"""The table an upsert sink writes: its name, key columns and value columns.

    Table(
        "user_totals",
        keys={"user_id": "text"},
        values={"total": "bigint", "last_seen": "bigint"},
    )

A row is a tuple of the key columns' values then the value columns' values,
in the order given. The sink creates the table if missing, with every column
NOT NULL (but the value columns named in `nullable`) and a unique index
`<table>_<key columns>_idx` on the key columns, the target of its upserts
(`INSERT ... ON CONFLICT (keys) DO UPDATE SET values`). `serial_id` adds a
surrogate primary key column first (`id serial PRIMARY KEY` in PostgreSQL),
which the sink never writes.

Names are lower-case SQL identifiers (PostgreSQL folds unquoted names to lower
case, so a name means the same quoted or not) of at most 63 characters, the
index name included; types are SQL type names (`bigint`, `text`,
`varchar(50)`, `double precision`, `numeric(12, 2)`, `timestamptz`...).
Nothing else is ever formatted into a statement: values are parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from topicflow.errors import ConfigError, RefusedRecord

__all__ = ["Row", "Table"]

# One row of a table: the key columns' values, then the value columns'.
Row = tuple[Any, ...]

# PostgreSQL's longest identifier (NAMEDATALEN - 1).
MAX_NAME = 63
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# A type name, optionally with a length or precision. No arrays: a batch travels as
# one array per column, and PostgreSQL's unnest would flatten arrays of arrays.
_TYPE = re.compile(r"[a-z][a-z0-9_]*( [a-z][a-z0-9_]*)*( ?\(\d+( ?, ?\d+)?\))?", re.I)


class Table:
    """A table's name and columns, checked once when the sink is created."""

    __slots__ = ("keys", "name", "nullable", "serial_id", "values")

    def __init__(
        self,
        name: str,
        keys: Mapping[str, str],
        values: Mapping[str, str],
        *,
        nullable: Collection[str] = (),
        serial_id: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME:
            raise ConfigError(
                f"table name {name!r} is not allowed: use 1 to {MAX_NAME} lower-case letters, "
                "digits and underscores, starting with a letter or underscore"
            )
        if not keys:
            raise ConfigError(f"table {name}: at least one key column is needed (the upsert key)")
        self.name = name
        self.keys: tuple[tuple[str, str], ...] = tuple(keys.items())
        self.values: tuple[tuple[str, str], ...] = tuple(values.items())
        self.nullable = frozenset(nullable)
        self.serial_id = serial_id
        columns = [*self.key_columns, *self.value_columns]
        if serial_id is not None:
            columns.append(serial_id)
        for column in columns:
            if not isinstance(column, str) or not _NAME.fullmatch(column) or len(column) > 63:
                raise ConfigError(f"table {name}: column name {column!r} is not allowed")
        if len(set(columns)) != len(columns):
            raise ConfigError(f"table {name}: a column is named twice")
        if not self.nullable <= set(self.value_columns):
            raise ConfigError(f"table {name}: only value columns may be nullable")
        for column, sql_type in (*self.keys, *self.values):
            if not isinstance(sql_type, str) or not _TYPE.fullmatch(sql_type):
                raise ConfigError(f"table {name}: column {column} has a bad type {sql_type!r}")
            if sql_type.lower().endswith("serial"):
                # serial is no type (no cast, no array): it is a column with a sequence.
                raise ConfigError(
                    f"table {name}: column {column} cannot be {sql_type}; use serial_id"
                )
        if len(self.index_name) > MAX_NAME:
            raise ConfigError(
                f"table name {name!r} is too long: its index name {self.index_name} "
                f"would exceed {MAX_NAME} characters"
            )

    @property
    def key_columns(self) -> list[str]:
        return [column for column, _ in self.keys]

    @property
    def value_columns(self) -> list[str]:
        return [column for column, _ in self.values]

    @property
    def columns(self) -> list[str]:
        """The columns a row holds, in its order (not the serial id)."""
        return [*self.key_columns, *self.value_columns]

    @property
    def index_name(self) -> str:
        return f"{self.name}_{'_'.join(self.key_columns)}_idx"

    def shape(self) -> str:
        """What the table must look like, for messages about a table of another shape."""
        typed = [f"{column} {sql_type}" for column, sql_type in (*self.keys, *self.values)]
        listed = ", ".join(typed[:-1]) + " and " + typed[-1] if len(typed) > 1 else typed[0]
        return (
            f"table {self.name} must have the columns {listed}, and a unique index on "
            f"({', '.join(self.key_columns)})"
        )

    def as_json(self, values: Sequence[Any]) -> bytes:
        """`values` (a row, or its key part) as a compact JSON object by column name, UTF-8.

        A lone surrogate, which UTF-8 cannot carry, becomes the JSON escape of the
        same character; values JSON has no type for are shown as text.
        """
        text = json.dumps(
            dict(zip(self.columns, values, strict=False)),
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return text.encode("utf-8", "backslashreplace")

    def refused_record(self, row: Row, error: Exception) -> RefusedRecord:
        """The default dead letter of a refused row: key its key columns, value the
        whole row, both as JSON objects; timestamp that of the commit."""
        return RefusedRecord(self.as_json(row[: len(self.keys)]), self.as_json(row), error)

    def __repr__(self) -> str:
        return f"Table({self.name!r}, keys={dict(self.keys)!r}, values={dict(self.values)!r})"
