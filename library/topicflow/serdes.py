"""Serdes: how keys and values become bytes on a topic and back.

Encodings follow Kafka's own serializers, so topicflow and Java applications can
share topics: strings are UTF-8, integers and longs are big-endian two's
complement of 4 and 8 bytes, doubles are IEEE 754 big-endian.

A serde is a pair of plain functions (`serialize`, `deserialize`), looked up
once when a task is built and then called directly on the per-record path.
`None` (Kafka's null) passes through every serde unchanged.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from topicflow.errors import SerializationError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Serde(Generic[T]):
    """A named pair of functions: `serialize(obj) -> bytes` and `deserialize(bytes) -> obj`.

    Consuming, a null key or value is None without a call to `deserialize`.
    """

    name: str
    serialize: Callable[[T | None], bytes | None]
    deserialize: Callable[[bytes | None], T | None]

    def __repr__(self) -> str:
        return f"Serdes.{self.name}()"


def encode_str(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def _decode_str(b: bytes | None) -> str | None:
    return None if b is None else b.decode()


def _identity_bytes(b: bytes | None) -> bytes | None:
    return b


_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")


def _struct_serde(name: str, packer: struct.Struct) -> Serde[Any]:
    pack, unpack, size = packer.pack, packer.unpack, packer.size

    def serialize(obj: Any) -> bytes | None:
        if obj is None:
            return None
        try:
            return pack(obj)
        except struct.error as error:
            raise SerializationError(f"{name} serializer cannot encode {obj!r}: {error}") from None

    def deserialize(data: bytes | None) -> Any:
        if data is None:
            return None
        if len(data) != size:
            raise SerializationError(
                f"{name} deserializer expects {size} bytes, got {len(data)}: "
                "the topic holds something else; check its serde"
            )
        return unpack(data)[0]

    return Serde(name, serialize, deserialize)


_json_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_json_decode = json.loads


def _encode_json(obj: Any) -> bytes | None:
    return None if obj is None else _json_encoder.encode(obj).encode()


def _decode_json(data: bytes | None) -> Any:
    return None if data is None else _json_decode(data)


class Serdes:
    """Factory of the built-in serdes, named as Kafka's `Serdes` class names them."""

    _STRING: Serde[str] = Serde("String", encode_str, _decode_str)
    _BYTES: Serde[bytes] = Serde("Bytes", _identity_bytes, _identity_bytes)
    _INTEGER: Serde[int] = _struct_serde("Integer", _INT)
    _LONG: Serde[int] = _struct_serde("Long", _LONG)
    _DOUBLE: Serde[float] = _struct_serde("Double", _DOUBLE)
    _JSON: Serde[Any] = Serde("Json", _encode_json, _decode_json)

    @staticmethod
    def String() -> Serde[str]:  # noqa: N802 - Kafka's name
        return Serdes._STRING

    @staticmethod
    def Bytes() -> Serde[bytes]:  # noqa: N802
        return Serdes._BYTES

    @staticmethod
    def ByteArray() -> Serde[bytes]:  # noqa: N802
        return Serdes._BYTES

    @staticmethod
    def Integer() -> Serde[int]:  # noqa: N802
        return Serdes._INTEGER

    @staticmethod
    def Long() -> Serde[int]:  # noqa: N802
        return Serdes._LONG

    @staticmethod
    def Double() -> Serde[float]:  # noqa: N802
        return Serdes._DOUBLE

    @staticmethod
    def Json() -> Serde[Any]:  # noqa: N802
        return Serdes._JSON

    @staticmethod
    def by_name(name: str) -> Serde[Any]:
        """Look a serde up by name (`string`, `long`, `json`...), as config files spell them."""
        table: dict[str, Serde[Any]] = {
            "string": Serdes._STRING,
            "bytes": Serdes._BYTES,
            "bytearray": Serdes._BYTES,
            "integer": Serdes._INTEGER,
            "int": Serdes._INTEGER,
            "long": Serdes._LONG,
            "double": Serdes._DOUBLE,
            "json": Serdes._JSON,
        }
        try:
            return table[name.lower()]
        except KeyError:
            raise SerializationError(
                f"unknown serde {name!r}: use one of {', '.join(sorted(table))}"
            ) from None


def bytes_decoder(serde: Serde[T]) -> Callable[[bytes], T] | None:
    """What the consuming loop calls on a record's key or value bytes when they are
    not null; None when the bytes are the value (the Bytes serde).

    String's is `bytes.decode` itself, a C function, so the commonest call on the
    per-record path costs no Python frame.
    """
    deserialize = serde.deserialize
    if deserialize is _identity_bytes:
        return None
    if deserialize is _decode_str:
        return bytes.decode  # type: ignore[return-value]
    if deserialize is _decode_json:
        return _json_decode
    return deserialize  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class WrappingSerde(Serde[T]):
    """A serde around another one that the topology leaves to the default serde (Kafka's
    WrappingNullableSerde.setIfUnset): a table's changes on a repartition topic, a
    suppression buffer's entries. `wrap(inner)` is the serde itself, made once the
    default is known (`resolve_serde`); this one only names it and must not be called."""

    wrap: Callable[[Serde[Any]], Serde[Any]]


def resolve_serde(serde: Serde[Any] | None, default: Serde[Any]) -> Serde[Any]:
    """The serde a node or store uses: its own, the default, or its own wrapped around
    the default (`WrappingSerde`)."""
    if serde is None:
        return default
    if isinstance(serde, WrappingSerde):
        return serde.wrap(default)
    return serde


def wrapping_serde(name: str, wrap: Callable[[Serde[Any]], Serde[Any]]) -> Serde[Any]:
    """A `WrappingSerde` named `name` whose serde is `wrap(default)`."""

    def unresolved(_data: Any) -> Any:
        raise SerializationError(f"serde {name} was used before its inner serde was set")

    return WrappingSerde(name, unresolved, unresolved, wrap)
