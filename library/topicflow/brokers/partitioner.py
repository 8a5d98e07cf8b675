"""Kafka's default partitioner for keyed records.

`murmur2` is a bit-exact port of Java's `org.apache.kafka.common.utils.Utils.murmur2`,
so a key lands on the same partition number here as on Kafka's Java clients and
as with librdkafka's `partitioner=murmur2_random`. Java's signed 32-bit
arithmetic is emulated on unsigned values masked to 32 bits; the result is
converted back to a signed int at the end.
"""

from __future__ import annotations

from functools import lru_cache
from struct import Struct, unpack_from

__all__ = ["cached_partition_for_key", "murmur2", "partition_for_key"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF

# Precompiled little-endian word unpackers for keys up to 256 bytes (the usual
# case): a fixed table, cheaper than formatting and looking up a format string.
_UNPACK_WORDS = tuple(Struct(f"<{n}I").unpack_from for n in range(65))


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of `data`, as a signed 32-bit int."""
    m = _M
    mask = _MASK
    length = len(data)
    h = _SEED ^ length
    n4 = length >> 2
    if n4:
        # One unpack for the whole aligned prefix rather than one per word.
        words = _UNPACK_WORDS[n4](data) if n4 < 65 else unpack_from(f"<{n4}I", data)
        for w in words:
            k = (w * m) & mask
            k ^= k >> 24
            # Low 32 bits of a product depend only on the operands' low 32 bits,
            # so `k * m` and `h * m` can be masked once, after the xor.
            h = ((h * m) ^ (k * m)) & mask
    tail = length & 3
    if tail:
        i = length - tail
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h ^= data[i]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null `key`."""
    # Java's Utils.toPositive: clear the sign bit (not abs()).
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


# Keys repeat in most streams (users, words, ids), and a cache hit costs a tenth
# of hashing even a short key; bounded, so a stream of unique keys only pays the
# cache's overhead (about a third more per key) and memory stays bounded.
cached_partition_for_key = lru_cache(maxsize=8192)(partition_for_key)
