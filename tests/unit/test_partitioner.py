"""Kafka's default partitioner, checked against values from Kafka's own Java code.

Every expected value below is ground truth from
`org.apache.kafka.common.utils.Utils.murmur2` / `Utils.toPositive` in
kafka-clients 4.1.1, run with Java 17 (a single-file Java program on the
classpath of kafka-clients-4.1.1.jar and slf4j-api); the first six are also the
values of Kafka's `UtilsTest.testMurmur2`.
"""

from __future__ import annotations

import pytest

from topicflow.brokers.partitioner import cached_partition_for_key, murmur2, partition_for_key

MURMUR2 = [
    # Kafka's UtilsTest.testMurmur2
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
    # Every tail length (0-3 bytes past the last whole word), and bytes >= 0x80
    # (signed in Java).
    (b"", 275646681),
    (b"a", -1563381124),
    (b"ab", 316155434),
    (b"abcd", -1323649548),
    (b"abcde", 461995741),
    (b"abcdef", 1870650108),
    (b"abcdefg", -346467175),
    (bytes([0xFF, 0x80, 0x7F, 0x00, 0xFE]), -1958495739),
]

# key -> (partition of 4, partition of 6), from Utils.toPositive(Utils.murmur2(key)) % n.
PARTITIONS = {
    "user-1": (0, 2),
    "user-2": (0, 2),
    "user-3": (3, 5),
    "user-4": (3, 1),
    "user-5": (2, 4),
    "user-6": (1, 5),
    "user-7": (0, 2),
    "user-8": (1, 3),
    "user-9": (3, 5),
    "user-10": (2, 2),
    "user-11": (2, 4),
    "user-12": (2, 0),
    "user-13": (3, 1),
    "user-14": (1, 5),
    "user-15": (0, 2),
    "user-16": (2, 0),
    "user-17": (0, 0),
    "user-18": (2, 2),
    "user-19": (2, 4),
    "user-20": (3, 1),
}


@pytest.mark.parametrize(("data", "expected"), MURMUR2)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@pytest.mark.parametrize(("key", "expected"), sorted(PARTITIONS.items()))
def test_partition_for_key_matches_kafka(key: str, expected: tuple[int, int]) -> None:
    assert (partition_for_key(key.encode(), 4), partition_for_key(key.encode(), 6)) == expected
    assert cached_partition_for_key(key.encode(), 4) == expected[0]
    assert cached_partition_for_key(key.encode(), 6) == expected[1]


def test_murmur2_is_a_signed_32_bit_int_for_long_keys() -> None:
    # Past the precompiled word unpackers (256 bytes) too.
    for length in (255, 256, 257, 1000):
        h = murmur2(bytes(range(256)) * 4 + b"x" * length)
        assert -(2**31) <= h < 2**31


def test_to_positive_masks_the_sign_bit_rather_than_negating() -> None:
    h = murmur2(b"a")
    assert h < 0
    assert partition_for_key(b"a", 1000) == (h & 0x7FFFFFFF) % 1000 == 524
    assert abs(h) % 1000 != 524
