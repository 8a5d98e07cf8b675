"""Built-in serdes produce the bytes Kafka's Java serializers produce, and read them back."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from topicflow import Serde, Serdes
from topicflow.errors import SerializationError

ALL_SERDES = [
    Serdes.String(),
    Serdes.Bytes(),
    Serdes.ByteArray(),
    Serdes.Integer(),
    Serdes.Long(),
    Serdes.Double(),
    Serdes.Json(),
]


def round_trip(serde: Serde[Any], obj: Any) -> Any:
    return serde.deserialize(serde.serialize(obj))


# -- String ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "hello", "Straße", "naïve café", "東京タワー", "emoji 🎉"])
def test_string_round_trips_non_ascii_text(text: str) -> None:
    assert round_trip(Serdes.String(), text) == text


def test_string_is_utf8_encoded() -> None:
    assert Serdes.String().serialize("é東🎉") == b"\xc3\xa9\xe6\x9d\xb1\xf0\x9f\x8e\x89"
    assert Serdes.String().deserialize(b"\xc3\xa9") == "é"


# -- Integer and Long: big-endian two's complement ----------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00\x00\x00\x00"),
        (1, b"\x00\x00\x00\x01"),
        (-1, b"\xff\xff\xff\xff"),
        (256, b"\x00\x00\x01\x00"),
        (2**31 - 1, b"\x7f\xff\xff\xff"),
        (-(2**31), b"\x80\x00\x00\x00"),
    ],
)
def test_integer_is_4_byte_big_endian_twos_complement(value: int, encoded: bytes) -> None:
    assert Serdes.Integer().serialize(value) == encoded
    assert Serdes.Integer().deserialize(encoded) == value


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00" * 8),
        (1, b"\x00" * 7 + b"\x01"),
        (-1, b"\xff" * 8),
        (258, b"\x00" * 6 + b"\x01\x02"),
        (2**63 - 1, b"\x7f" + b"\xff" * 7),
        (-(2**63), b"\x80" + b"\x00" * 7),
        (1_700_000_000_000, (1_700_000_000_000).to_bytes(8, "big", signed=True)),
    ],
)
def test_long_is_8_byte_big_endian_twos_complement(value: int, encoded: bytes) -> None:
    assert Serdes.Long().serialize(value) == encoded
    assert Serdes.Long().deserialize(encoded) == value


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x01", b"\x00" * 4, b"\x00" * 9])
def test_long_of_wrong_length_raises_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError, match=f"8 bytes, got {len(data)}"):
        Serdes.Long().deserialize(data)


@pytest.mark.parametrize("data", [b"\x00\x00\x01", b"\x00" * 8])
def test_integer_of_wrong_length_raises_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError):
        Serdes.Integer().deserialize(data)


# -- Double: IEEE 754 big-endian -----------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 1.5, -2.25, 3.141592653589793, 1e300, float("inf")])
def test_double_is_ieee754_big_endian(value: float) -> None:
    expected = struct.pack(">d", value)
    assert Serdes.Double().serialize(value) == expected
    assert Serdes.Double().deserialize(expected) == value


def test_double_known_bytes() -> None:
    # 1.5 = sign 0, exponent 1023 (0x3ff), mantissa 0x8000000000000.
    assert Serdes.Double().serialize(1.5) == bytes.fromhex("3ff8000000000000")
    assert Serdes.Double().serialize(-2.0) == bytes.fromhex("c000000000000000")


def test_double_of_wrong_length_raises_serialization_error() -> None:
    with pytest.raises(SerializationError):
        Serdes.Double().deserialize(b"\x3f\xf8\x00\x00")


# -- Json ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        {"word": "café", "count": 3, "nested": {"list": [1, 2.5, None, True]}},
        [1, "two", {"three": 3}],
        "just a string",
        42,
        0.5,
        False,
    ],
)
def test_json_round_trips(obj: Any) -> None:
    assert round_trip(Serdes.Json(), obj) == obj


def test_json_is_compact_utf8() -> None:
    data = Serdes.Json().serialize({"a": 1, "b": [1, 2], "c": "é"})
    assert data == '{"a":1,"b":[1,2],"c":"é"}'.encode()
    assert json.loads(data) == {"a": 1, "b": [1, 2], "c": "é"}


# -- None is Kafka's null ------------------------------------------------------------------


@pytest.mark.parametrize("serde", ALL_SERDES, ids=repr)
def test_none_passes_through_every_serde(serde: Serde[Any]) -> None:
    assert serde.serialize(None) is None
    assert serde.deserialize(None) is None


def test_bytes_serde_is_identity() -> None:
    data = b"\x00\xffraw"
    assert Serdes.Bytes().serialize(data) is data
    assert Serdes.ByteArray().deserialize(data) is data


# -- lookup by name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("string", Serdes.String()),
        ("String", Serdes.String()),
        ("LONG", Serdes.Long()),
        ("integer", Serdes.Integer()),
        ("int", Serdes.Integer()),
        ("double", Serdes.Double()),
        ("json", Serdes.Json()),
        ("bytes", Serdes.Bytes()),
        ("bytearray", Serdes.Bytes()),
    ],
)
def test_by_name_finds_builtin_serdes(name: str, expected: Serde[Any]) -> None:
    assert Serdes.by_name(name) is expected


def test_by_name_unknown_raises_with_the_choices() -> None:
    with pytest.raises(SerializationError) as info:
        Serdes.by_name("avro")
    message = str(info.value)
    assert "'avro'" in message
    assert "string" in message
    assert "long" in message
    assert "\n" not in message


def test_serde_repr_names_the_factory() -> None:
    assert repr(Serdes.Long()) == "Serdes.Long()"
